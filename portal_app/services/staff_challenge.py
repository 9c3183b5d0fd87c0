"""The staff API's two-step sign-in (R-SEC-13): after a correct password, an ``mfa_token``
stands for the half-done sign-in until the code comes."""

from __future__ import annotations

from portal_app import tokens
from portal_app.extensions import db
from portal_app.models import StaffUser

CHALLENGE_SECONDS = 300


def issue_challenge(user: StaffUser) -> str:
    """The ``mfa_token`` after a correct password: purpose-salted, 5 minutes, single use (only
    the digest of its nonce is kept, and using it clears it)."""
    nonce = tokens.new_secret()
    user.mfa_challenge = tokens.digest(nonce)
    return tokens.mint(tokens.MFA_LOGIN, {"u": user.id, "n": nonce})


def challenge_user(token: str) -> StaffUser | None:
    """The staff user a still-valid, unused ``mfa_token`` is for."""
    try:
        payload = tokens.read(tokens.MFA_LOGIN, token, max_age=CHALLENGE_SECONDS)
    except Exception:  # tampered, malformed or expired
        return None
    user_id, nonce = payload.get("u"), payload.get("n")
    if not isinstance(user_id, int) or not isinstance(nonce, str):
        return None
    user = db.session.get(StaffUser, user_id)
    if user is None or not user.is_active or not tokens.same_digest(nonce, user.mfa_challenge):
        return None
    return user


def challenge_subject(token: str) -> str:
    """The rate-limit key of an ``mfa_token``: its user, without checking anything else."""
    try:
        payload = tokens.read(tokens.MFA_LOGIN, token)
    except Exception:
        return "mfa-user:invalid"
    return f"mfa-user:{payload.get('u')}"
