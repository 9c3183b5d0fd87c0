"""Firms, staff users, staff login and personal API tokens."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select

from portal_app.extensions import db
from portal_app.models import ApiToken, Firm, StaffUser, utcnow
from portal_app.passwords import MIN_LENGTH, hash_password, needs_rehash, verify_password
from portal_app.services.errors import Conflict, ValidationFailed
from portal_app.services.validation import normalise_email

API_TOKEN_PREFIX = "pt_"


def create_firm(name: str, *, timezone: str = "UTC") -> Firm:
    name = name.strip()
    if not name:
        raise ValidationFailed("A firm needs a name.", fields={"name": ["Required."]})
    firm = Firm(name=name, timezone=timezone, portal_settings={})
    db.session.add(firm)
    db.session.flush()
    return firm


def create_staff_user(
    firm: Firm, *, email: str, password: str | None, name: str = "", role: str = "staff"
) -> StaffUser:
    address = normalise_email(email)
    if db.session.scalar(select(StaffUser.id).where(StaffUser.email == address)):
        raise Conflict("A staff user with this email already exists.", fields={"email": ["Taken."]})
    if role not in ("admin", "staff"):
        raise ValidationFailed("Unknown role.", fields={"role": ["Must be admin or staff."]})
    if password is not None and len(password) < MIN_LENGTH:
        raise ValidationFailed(
            f"Passwords need at least {MIN_LENGTH} characters.",
            fields={"password": [f"At least {MIN_LENGTH} characters."]},
        )
    user = StaffUser(
        firm_id=firm.id,
        email=address,
        name=name,
        role=role,
        password_hash=hash_password(password) if password else None,
    )
    db.session.add(user)
    db.session.flush()
    return user


def authenticate_staff(email: str, password: str) -> StaffUser | None:
    """Return the staff user for these credentials; same cost for unknown emails."""
    try:
        address = normalise_email(email)
    except ValidationFailed:
        address = ""
    user = db.session.scalar(select(StaffUser).where(StaffUser.email == address)) if address else None
    ok = verify_password(user.password_hash if user else None, password)
    if not (ok and user and user.is_active):
        return None
    if needs_rehash(user.password_hash or ""):
        user.password_hash = hash_password(password)
    user.last_login_at = utcnow()
    return user


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_api_token(user: StaffUser, *, name: str = "") -> tuple[ApiToken, str]:
    """Create a personal API token; the raw token is returned once and never stored."""
    raw = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(firm_id=user.firm_id, staff_user_id=user.id, name=name, token_digest=_digest(raw))
    db.session.add(token)
    db.session.flush()
    return token, raw


def staff_for_api_token(raw: str) -> StaffUser | None:
    """Return the active staff user a bearer token belongs to, or None."""
    if not raw.startswith(API_TOKEN_PREFIX) or len(raw) > 200:
        return None
    token = db.session.scalar(
        select(ApiToken).where(ApiToken.token_digest == _digest(raw), ApiToken.revoked_at.is_(None))
    )
    if token is None or not token.staff_user.is_active:
        return None
    token.last_used_at = utcnow()
    return token.staff_user


def revoke_api_token(token: ApiToken) -> None:
    if token.revoked_at is None:
        token.revoked_at = utcnow()
