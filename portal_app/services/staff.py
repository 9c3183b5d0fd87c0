"""Firms, staff users, staff login and personal API tokens."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import joinedload

from portal_app.extensions import db
from portal_app.models import LOGIN_FREE_ACTIONS, ApiToken, AuditEntry, Firm, StaffUser, utcnow
from portal_app.passwords import MIN_LENGTH, hash_password, needs_rehash, verify_password
from portal_app.services.errors import Conflict, Forbidden, ValidationFailed
from portal_app.services.lookup import firm_row
from portal_app.services.validation import check_timezone, normalise_email

API_TOKEN_PREFIX = "pt_"
LAST_USED_PRECISION = timedelta(minutes=1)


def create_firm(name: str, *, timezone: str = "UTC") -> Firm:
    name = name.strip()
    if not name:
        raise ValidationFailed("A firm needs a name.", fields={"name": ["Required."]})
    firm = Firm(name=name, timezone=check_timezone(timezone), portal_settings={})
    db.session.add(firm)
    db.session.flush()
    return firm


def update_firm(actor: StaffUser, firm: Firm, changes: dict[str, Any]) -> Firm:
    """Admins change the firm's name, time zone (the weekly email's default zone), the Reply-To
    of its emails, and whether two factors are required of staff and of clients."""
    if not actor.is_admin:
        raise Forbidden("Only admins change the firm's settings.")
    if "name" in changes:
        name = changes["name"].strip()
        if not name:
            raise ValidationFailed("A firm needs a name.", fields={"name": ["Required."]})
        firm.name = name
    if "timezone" in changes:
        firm.timezone = check_timezone(changes["timezone"])
    if "reply_to" in changes:
        # where clients' answers to Portico's emails go; empty or null: no Reply-To
        value = (changes["reply_to"] or "").strip()
        firm.reply_to = normalise_email(value, field="reply_to") if value else None
    for flag in ("require_mfa_staff", "require_mfa_clients"):
        if flag in changes:
            setattr(firm, flag, bool(changes[flag]))
    if "login_free_actions" in changes:
        set_login_free_actions(actor, firm, changes["login_free_actions"])
    db.session.flush()
    return firm


def set_login_free_actions(actor: StaffUser, firm: Firm, actions: list[str]) -> None:
    """R-LFA-1: a subset of LOGIN_FREE_ACTIONS, kept in their canonical order; a change is
    audited. Taking an action away kills every link already emailed for it (R-LFA-2)."""
    unknown = [a for a in actions if a not in LOGIN_FREE_ACTIONS]
    if unknown:
        raise ValidationFailed(
            "Unknown login-free action.",
            fields={"login_free_actions": [f"One of {', '.join(LOGIN_FREE_ACTIONS)}."]},
        )
    old = list(firm.login_free_actions or [])
    new = [a for a in LOGIN_FREE_ACTIONS if a in actions]
    if new == old:
        return
    firm.login_free_actions = new
    db.session.add(
        AuditEntry(
            firm_id=firm.id,
            actor_type="staff",
            actor_id=actor.id,
            actor_label=actor.email,
            field="firm.login_free_actions",
            old_value=old,
            new_value=new,
        )
    )


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


# Every API call runs it, so it is built once. One round trip: the token, its user, and the firm
# whose two-factor rule the request's gate reads (``mfa.required`` then finds it in the session's
# identity map).
_TOKEN_LOOKUP = (
    select(ApiToken)
    .options(joinedload(ApiToken.staff_user).joinedload(StaffUser.firm))
    .where(ApiToken.token_digest == bindparam("digest"), ApiToken.revoked_at.is_(None))
)


def staff_for_api_token(raw: str) -> StaffUser | None:
    """Return the active staff user a bearer token belongs to, or None."""
    if not raw.startswith(API_TOKEN_PREFIX) or len(raw) > 200:
        return None
    token = db.session.scalar(_TOKEN_LOOKUP, {"digest": _digest(raw)})
    if token is None or not token.staff_user.is_active:
        return None
    now = utcnow()
    # "Last used" is shown to within a minute; writing it on every call would turn each
    # read-only API request into a write.
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_PRECISION:
        token.last_used_at = now
    return token.staff_user


def revoke_api_token(token: ApiToken) -> None:
    if token.revoked_at is None:
        token.revoked_at = utcnow()


def get_staff_user(firm_id: int, staff_id: object) -> StaffUser:
    return firm_row(StaffUser, firm_id, staff_id, "Staff user")


def list_api_tokens(actor: StaffUser, *, staff_id: int | None = None) -> list[ApiToken]:
    """The actor's own tokens; admins see every token of the firm (optionally one user's)."""
    query = select(ApiToken).where(ApiToken.firm_id == actor.firm_id).order_by(ApiToken.id.desc())
    if not actor.is_admin:
        query = query.where(ApiToken.staff_user_id == actor.id)
    elif staff_id is not None:
        query = query.where(ApiToken.staff_user_id == staff_id)
    return list(db.session.scalars(query))


def create_api_token_for(actor: StaffUser, owner: StaffUser, *, name: str) -> tuple[ApiToken, str]:
    """Issue a token for ``owner``; only admins may issue tokens for someone else."""
    if owner.id != actor.id and not actor.is_admin:
        raise Forbidden("Only admins create API tokens for other staff users.")
    if not owner.is_active:
        raise ValidationFailed("This staff user is deactivated.", fields={"staff_id": ["Deactivated."]})
    return issue_api_token(owner, name=name)


def revoke_api_token_as(actor: StaffUser, token_id: object) -> ApiToken:
    """Revoke one of the actor's tokens, or (admins) any token of the firm."""
    token = firm_row(ApiToken, actor.firm_id, token_id, "API token")
    if token.staff_user_id != actor.id and not actor.is_admin:
        raise Forbidden("Only admins revoke other staff users' API tokens.")
    revoke_api_token(token)
    return token
