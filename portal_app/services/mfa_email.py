"""Sign-in codes by email (R-SEC-13), for clients who chose them over an app: a fresh code
replaces the earlier ones, is minted only when the email is rendered (so it is never stored in
the clear, not even in the outbox) and works once, for 10 minutes."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import timedelta
from typing import Any

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import update

from portal_app import sealed
from portal_app.extensions import db
from portal_app.mail.outbox import outbox_row, queue_email
from portal_app.models import EmailCode, OutboxEmail, PortalUser, utcnow

EMAIL_CODE_MINUTES = 10


def _email_code_digest(user_id: int, code: str) -> str:
    key = sealed.derived_key(current_app.config["SECRET_KEY"])
    return hmac.new(key, f"{user_id}:{code}".encode(), hashlib.sha256).hexdigest()


def accept_email_code(user: PortalUser, code: str, *, purpose: str) -> bool:
    code = re.sub(r"\s", "", code)
    if not re.fullmatch(r"\d{6}", code):
        return False
    used = db.session.execute(
        update(EmailCode)
        .where(
            EmailCode.portal_user_id == user.id,
            EmailCode.purpose == purpose,
            EmailCode.code_digest == _email_code_digest(user.id, code),
            EmailCode.used_at.is_(None),
            EmailCode.expires_at > utcnow(),
        )
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    return used >= 1


def send_email_code(user: PortalUser, *, purpose: str) -> OutboxEmail:
    """Queue an email with a fresh code; earlier unused codes of that purpose stop working."""
    db.session.execute(
        update(EmailCode)
        .where(EmailCode.portal_user_id == user.id, EmailCode.purpose == purpose, EmailCode.used_at.is_(None))
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    entry = EmailCode(portal_user_id=user.id, purpose=purpose)
    db.session.add(entry)
    db.session.flush()
    return email_client(
        user, "mfa_code", _l("Your sign-in code"), {"purpose": purpose}, email_code_id=entry.id
    )


def email_client(
    user: PortalUser, template: str, subject: Any, context: dict[str, Any], **row: Any
) -> OutboxEmail:
    """An email about the client's sign-in, in their language."""
    return queue_email(
        outbox_row(
            firm_id=user.firm_id,
            kind=template,
            to_address=user.email.address,
            subject=subject,
            template=template,
            context=context,
            language=user.language,
            **row,
        )
    )


def email_code_context(row: OutboxEmail) -> dict[str, Any] | None:
    entry = db.session.get(EmailCode, row.email_code_id) if row.email_code_id else None
    if entry is None or entry.used_at is not None or entry.code_digest is not None:
        return None  # replaced by a newer code, or already minted once
    code = f"{secrets.randbelow(1_000_000):06d}"
    entry.code_digest = _email_code_digest(entry.portal_user_id, code)
    entry.expires_at = utcnow() + timedelta(minutes=EMAIL_CODE_MINUTES)
    return {"code": code, "minutes": EMAIL_CODE_MINUTES}
