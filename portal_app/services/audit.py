"""The audit trail of contact-setting changes (R-SEC-7)."""

from __future__ import annotations

from dataclasses import dataclass

from portal_app.extensions import db
from portal_app.models import AuditEntry, ContactSettings


@dataclass(frozen=True)
class Actor:
    """Who makes a change: a staff user, a portal user or the system."""

    type: str  # "staff" | "portal" | "system"
    id: int | None = None
    label: str = ""

    @classmethod
    def system(cls, label: str = "system") -> Actor:
        return cls("system", None, label)


def record_setting_change(
    settings: ContactSettings, *, field: str, old: object, new: object, actor: Actor, address: str
) -> AuditEntry:
    entry = AuditEntry(
        firm_id=settings.firm_id,
        account_id=settings.account_id,
        contact_id=settings.contact_id,
        email_id=settings.email_id,
        address=address,
        actor_type=actor.type,
        actor_id=actor.id,
        actor_label=actor.label,
        field=field,
        old_value=old,
        new_value=new,
    )
    db.session.add(entry)
    return entry


def list_audit(
    firm_id: int,
    *,
    account_id: int | None = None,
    email_id: int | None = None,
    limit: int = 50,
    before_id: int | None = None,
) -> list[AuditEntry]:
    """Newest first; ``before_id`` pages backwards through history."""
    from sqlalchemy import select

    query = select(AuditEntry).where(AuditEntry.firm_id == firm_id)
    if account_id is not None:
        query = query.where(AuditEntry.account_id == account_id)
    if email_id is not None:
        query = query.where(AuditEntry.email_id == email_id)
    if before_id is not None:
        query = query.where(AuditEntry.id < before_id)
    return list(db.session.scalars(query.order_by(AuditEntry.id.desc()).limit(limit)))
