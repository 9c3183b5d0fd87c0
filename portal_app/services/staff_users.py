"""A firm's staff users (SPEC §11): admins add colleagues, change roles, deactivate.

A new staff user gets no password from anyone: an email carries a set-your-password link minted
in the delivery job (like an invitation: purpose-salted, expiring after INVITATION_MAX_AGE_DAYS,
dead once a password is set, since it is bound to the password hash). Deactivating rotates the
user's session token, so their sessions end at the next request; their API tokens stop too (a
token of an inactive user authenticates nobody). The last active admin of a firm cannot be
demoted or deactivated. Every change is in the audit trail.
"""

from __future__ import annotations

import hashlib
from typing import Any

from flask import current_app
from itsdangerous import BadSignature
from sqlalchemy import func, select

from portal_app import tokens
from portal_app.extensions import db
from portal_app.mail.outbox import absolute_url, outbox_row, queue_email
from portal_app.models import AuditEntry, Firm, StaffUser, new_session_token
from portal_app.passwords import MIN_LENGTH, hash_password
from portal_app.services.errors import Conflict, Forbidden, ValidationFailed
from portal_app.services.lookup import firm_row
from portal_app.services.staff import create_staff_user


def _admin(actor: StaffUser) -> None:
    if not actor.is_admin:
        raise Forbidden("Only admins manage the firm's staff users.")


def _audit(actor: StaffUser, user: StaffUser, field: str, old: object, new: object) -> None:
    db.session.add(
        AuditEntry(
            firm_id=user.firm_id,
            address=user.email,
            actor_type="staff",
            actor_id=actor.id,
            actor_label=actor.email,
            field=field,
            old_value=old,
            new_value=new,
        )
    )


def invite_staff_user(actor: StaffUser, *, email: str, name: str, role: str) -> StaffUser:
    """Create a staff user of the actor's firm without a password, and email them the link to
    set one (409 if the email is taken)."""
    _admin(actor)
    firm = db.session.get_one(Firm, actor.firm_id)
    user = create_staff_user(firm, email=email, password=None, name=(name or "").strip(), role=role)
    _audit(actor, user, "staff.created", None, {"role": role, "name": user.name})
    queue_email(
        outbox_row(
            firm_id=firm.id,
            kind="staff_welcome",
            to_address=user.email,
            subject=f"{firm.name}: set your password for Portico",
            template="staff_welcome",
            context={"staff_user_id": user.id, "invited_by": actor.name or actor.email},
        )
    )
    return user


def get_staff_user(firm_id: int, staff_id: object) -> StaffUser:
    return firm_row(StaffUser, firm_id, staff_id, "Staff user")


def _active_admins(firm_id: int) -> int:
    return (
        db.session.scalar(
            select(func.count())
            .select_from(StaffUser)
            .where(StaffUser.firm_id == firm_id, StaffUser.role == "admin", StaffUser.is_active.is_(True))
        )
        or 0
    )


def update_staff_user(actor: StaffUser, user: StaffUser, changes: dict[str, Any]) -> StaffUser:
    """Change ``role`` and ``active``; never leave the firm without an active admin (409)."""
    _admin(actor)
    role = changes.get("role", user.role)
    active = changes.get("active", user.is_active)
    if role not in ("admin", "staff"):
        raise ValidationFailed("Unknown role.", fields={"role": ["Must be admin or staff."]})
    loses_admin = user.role == "admin" and user.is_active and (role != "admin" or not active)
    if loses_admin:
        # lock the firm's admins so two admins demoting each other at once cannot both succeed
        db.session.scalars(
            select(StaffUser.id)
            .where(StaffUser.firm_id == user.firm_id, StaffUser.role == "admin")
            .with_for_update()
        ).all()
        if _active_admins(user.firm_id) <= 1:
            raise Conflict(
                "This is the firm's last active admin: make another staff user admin first.",
                code="last_admin",
            )
    if role != user.role:
        _audit(actor, user, "staff.role", user.role, role)
        user.role = role
    if active != user.is_active:
        _audit(actor, user, "staff.active", user.is_active, active)
        user.is_active = active
        if not active:
            user.session_token = new_session_token()  # every session ends at its next request
    db.session.flush()
    return user


# --- the set-your-password link ------------------------------------------------------------------


def _password_version(user: StaffUser) -> str:
    return hashlib.sha256((user.password_hash or "unset").encode()).hexdigest()[:16]


def staff_welcome_context(row: Any) -> dict[str, Any] | None:
    user = db.session.get(StaffUser, row.context.get("staff_user_id"))
    if user is None or not user.is_active:
        return None
    token = tokens.mint(tokens.STAFF_PASSWORD, {"u": user.id, "v": _password_version(user)})
    return {
        "link": absolute_url("staff-password.set_password", token=token),
        "days": current_app.config["INVITATION_MAX_AGE_DAYS"],
        "address": user.email,
    }


def check_set_password_token(token: str) -> tuple[StaffUser | None, str | None]:
    """The staff user a link is for, or why not: invalid, expired, used."""
    max_age = current_app.config["INVITATION_MAX_AGE_DAYS"] * 86400
    try:
        payload = tokens.read(tokens.STAFF_PASSWORD, token, max_age=max_age)
    except BadSignature as exc:
        return None, "expired" if type(exc).__name__ == "SignatureExpired" else "invalid"
    except tokens.InvalidToken:
        return None, "invalid"
    user = db.session.get(StaffUser, payload.get("u")) if isinstance(payload.get("u"), int) else None
    if user is None or not user.is_active:
        return None, "invalid"
    if payload.get("v") != _password_version(user):
        return None, "used"
    return user, None


def set_first_password(user: StaffUser, password: str, confirm: str) -> None:
    if password != confirm:
        raise ValidationFailed(
            "The two passwords differ.", fields={"confirm": ["Type the same password twice."]}
        )
    if len(password) < MIN_LENGTH or len(password) > 256:
        raise ValidationFailed(
            f"Passwords need {MIN_LENGTH} to 256 characters.",
            fields={"password": [f"At least {MIN_LENGTH} characters."]},
        )
    user.password_hash = hash_password(password)
    user.session_token = new_session_token()
    db.session.flush()
