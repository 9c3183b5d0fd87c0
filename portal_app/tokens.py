"""Signed, purpose-bound tokens for links in emails (R-LOG-2, R-SEC-6, R-SEC-9).

One serializer per purpose, each with its own salt, so a token minted for one purpose never
verifies for another. Keys are SECRET_KEY_FALLBACKS + SECRET_KEY (newest last, the order
itsdangerous expects): a token signed before a key rotation still verifies while the old key
is listed as a fallback. The signature only proves we minted the token; every use also checks
the database (digest, expiry, address, single use), so nothing is trusted from the token alone.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from flask import current_app
from itsdangerous import BadSignature, URLSafeTimedSerializer

INVITATION = "portico.invitation.v1"
PASSWORD_RESET = "portico.password-reset.v1"
# One-click unsubscribe (RFC 8058): the signed link is the whole credential; it switches one
# notification category off and nothing else.
UNSUBSCRIBE = "portico.unsubscribe.v1"
# The staff API's second step after a correct password (R-SEC-13): 5 minutes, single use.
MFA_LOGIN = "portico.mfa-login.v1"
STAFF_PASSWORD = "portico.staff-password.v1"
# "Open without logging in" (R-LFA-2): one item, one contact email, checked against the database
# as it is at every use.
ACTION_LINK = "portico.action-link.v1"
PURPOSES = (INVITATION, PASSWORD_RESET, UNSUBSCRIBE, MFA_LOGIN, STAFF_PASSWORD, ACTION_LINK)


class InvalidToken(Exception):
    """Tampered, malformed or signed for another purpose or with an unknown key."""


def _serializer(purpose: str) -> URLSafeTimedSerializer:
    if purpose not in PURPOSES:
        raise ValueError(f"unknown token purpose {purpose!r}")
    keys = [*current_app.config.get("SECRET_KEY_FALLBACKS", []), current_app.config["SECRET_KEY"]]
    return URLSafeTimedSerializer(keys, salt=purpose)


def new_secret() -> str:
    return secrets.token_urlsafe(24)


def digest(secret: str) -> str:
    """What the database keeps of a token's secret part."""
    return hashlib.sha256(secret.encode()).hexdigest()


def same_digest(secret: str, stored: str | None) -> bool:
    return stored is not None and hmac.compare_digest(digest(secret), stored)


def mint(purpose: str, payload: dict[str, Any]) -> str:
    return _serializer(purpose).dumps(payload)


def read(purpose: str, token: str, *, max_age: int | None = None) -> dict[str, Any]:
    """The token's payload; raises InvalidToken, or SignatureExpired (a subclass of
    BadSignature) when max_age is given and exceeded."""
    if not token or len(token) > 500:
        raise InvalidToken("malformed")
    try:
        payload = _serializer(purpose).loads(token, max_age=max_age)
    except BadSignature as exc:
        if type(exc).__name__ == "SignatureExpired":
            raise
        raise InvalidToken(str(exc)) from None
    if not isinstance(payload, dict):
        raise InvalidToken("malformed payload")
    return payload
