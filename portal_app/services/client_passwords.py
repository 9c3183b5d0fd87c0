"""Client passwords: the rules for a new one, staff- and self-service resets (R-LOG-9, R-LOG-10).

A reset link carries the user and a fingerprint of the current password hash, so it dies with the
next password change; like every link it is minted in the mail job, never stored (R-SEC-9).
"""

from __future__ import annotations

import hashlib
from typing import Any

from flask import current_app
from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from itsdangerous import SignatureExpired
from sqlalchemy import select

from portal_app import tokens
from portal_app.extensions import db
from portal_app.mail.outbox import absolute_url, firm_name, outbox_row, queue_email
from portal_app.models import ContactEmail, OutboxEmail, PortalUser, new_session_token
from portal_app.passwords import hash_password, password_problems
from portal_app.services.errors import ValidationFailed


def check_new_password(password: str, confirm: str, *, address: str) -> None:
    problems = password_problems(password, personal=(address, address.split("@")[0]))
    if password != confirm:
        problems.append(gettext("The two passwords do not match."))
    if problems:
        raise ValidationFailed(" ".join(problems), fields={"password": problems})


def _password_version(user: PortalUser) -> str:
    """Changes whenever the password does, so a reset link dies with it (R-LOG-9)."""
    return hashlib.sha256((user.password_hash or "").encode()).hexdigest()[:16]


def queue_password_reset(user: PortalUser) -> OutboxEmail:
    email = db.session.get(ContactEmail, user.email_id)
    assert email is not None
    return queue_email(
        outbox_row(
            firm_id=user.firm_id,
            kind="password_reset",
            to_address=email.address,
            subject=_l("Reset your %(firm)s portal password", firm=firm_name(user.firm_id)),
            template="password_reset",
            context={"portal_user_id": user.id},
            language=user.language,
        )
    )


def password_reset_context(row: OutboxEmail) -> dict[str, Any] | None:
    user = db.session.get(PortalUser, row.context.get("portal_user_id"))
    if user is None or not user.is_active:
        return None
    token = tokens.mint(tokens.PASSWORD_RESET, {"u": user.id, "v": _password_version(user)})
    return {
        "link": absolute_url("portal.reset_password", token=token),
        "minutes": current_app.config["PASSWORD_RESET_MAX_AGE_MINUTES"],
    }


def check_reset_token(token: str) -> tuple[PortalUser | None, str | None]:
    max_age = current_app.config["PASSWORD_RESET_MAX_AGE_MINUTES"] * 60
    try:
        payload = tokens.read(tokens.PASSWORD_RESET, token, max_age=max_age)
    except SignatureExpired:
        return None, "expired"
    except tokens.InvalidToken:
        return None, "tampered"
    user_id, version = payload.get("u"), payload.get("v")
    user = db.session.get(PortalUser, user_id) if isinstance(user_id, int) else None
    if user is None or not isinstance(version, str):
        return None, "tampered"
    if not user.is_active or version != _password_version(user):
        return None, "used"
    return user, None


def set_password(user: PortalUser, password: str, confirm: str) -> None:
    """A new password ends every session of the user (R-SEC-5)."""
    email = db.session.get(ContactEmail, user.email_id)
    check_new_password(password, confirm, address=email.address if email else "")
    user.password_hash = hash_password(password)
    user.session_token = new_session_token()
    db.session.flush()


def portal_user_for_address(address: str) -> PortalUser | None:
    """The activated portal user of an address, in any firm (addresses are unique per firm;
    the first activated match wins, so a login is unambiguous for the common case)."""
    return db.session.scalar(
        select(PortalUser)
        .join(ContactEmail, ContactEmail.id == PortalUser.email_id)
        .where(ContactEmail.address == address, PortalUser.is_activated)
        .order_by(PortalUser.id)
        .limit(1)
    )
