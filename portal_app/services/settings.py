"""Contact settings per (account, linked contact, email) (R-SET-1, R-SEC-7)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from portal_app.extensions import db
from portal_app.models import (
    NOTIFICATION_CATEGORIES,
    Account,
    AccountContact,
    AuditEntry,
    Contact,
    ContactEmail,
    ContactSettings,
)
from portal_app.services.audit import Actor, record_setting_change
from portal_app.services.errors import NotFound, ValidationFailed
from portal_app.services.validation import parse_id

FLAGS = ("login", "notify", "email_sync", "auto_save_attachments", "signatory")
SETTING_FIELDS = (*FLAGS, "notification_preferences")


def list_account_settings(
    account: Account,
) -> list[tuple[AccountContact, Contact, ContactEmail, ContactSettings]]:
    """Every linked contact (alphabetically) with every email and its settings, in one query."""
    rows = db.session.execute(
        select(AccountContact, Contact, ContactEmail, ContactSettings)
        .join(Contact, Contact.id == AccountContact.contact_id)
        .join(
            ContactSettings,
            (ContactSettings.account_id == AccountContact.account_id)
            & (ContactSettings.contact_id == AccountContact.contact_id),
        )
        .join(ContactEmail, ContactEmail.id == ContactSettings.email_id)
        .where(AccountContact.account_id == account.id)
    ).all()
    return sorted(
        (tuple(r) for r in rows),  # type: ignore[misc]
        key=lambda r: (*r[1].sort_name, not r[2].is_primary, r[2].id),
    )


def get_settings(account: Account, email_id: int | str) -> ContactSettings:
    key = parse_id(email_id)
    if key is None:
        raise NotFound("No settings for this email on this account.")
    settings = db.session.scalar(
        select(ContactSettings).where(
            ContactSettings.account_id == account.id, ContactSettings.email_id == key
        )
    )
    if settings is None:
        raise NotFound("No settings for this email on this account.")
    return settings


def _had_login_before(settings: ContactSettings) -> bool:
    """Whether login was ever on for this row; the audit trail holds every change."""
    return (
        db.session.scalar(
            select(AuditEntry.id)
            .where(
                AuditEntry.account_id == settings.account_id,
                AuditEntry.email_id == settings.email_id,
                AuditEntry.field == "login",
            )
            .limit(1)
        )
        is not None
    )


def validate_preferences(prefs: dict[str, Any]) -> dict[str, bool]:
    unknown = set(prefs) - set(NOTIFICATION_CATEGORIES)
    wrong = [k for k, v in prefs.items() if not isinstance(v, bool)]
    if unknown or wrong:
        raise ValidationFailed(
            "Unknown notification category or non-boolean value.",
            fields={f"notification_preferences.{k}": ["Unknown category."] for k in sorted(unknown)}
            | {
                f"notification_preferences.{k}": ["Must be true or false."] for k in wrong if k not in unknown
            },
        )
    return dict(prefs)


def update_settings(settings: ContactSettings, changes: dict[str, Any], *, actor: Actor) -> list[str]:
    """Apply changes to one settings row, audit each; return the names of changed fields.

    Signatory turns on with login the first time login is turned on, unless the same
    change says otherwise (SPEC §3).
    """
    unknown = set(changes) - set(SETTING_FIELDS)
    if unknown:
        raise ValidationFailed("Unknown settings.", fields={k: ["Unknown setting."] for k in sorted(unknown)})
    for key in FLAGS:
        if key in changes and not isinstance(changes[key], bool):
            raise ValidationFailed("Settings are true or false.", fields={key: ["Must be true or false."]})
    wanted = dict(changes)
    if "notification_preferences" in wanted:
        merged = dict(settings.notification_preferences)
        merged.update(validate_preferences(wanted["notification_preferences"]))
        wanted["notification_preferences"] = merged
    if wanted.get("login") is True and not settings.login and "signatory" not in wanted:
        if not _had_login_before(settings):
            wanted["signatory"] = True
    address = (
        db.session.scalar(select(ContactEmail.address).where(ContactEmail.id == settings.email_id)) or ""
    )
    changed: list[str] = []
    for key in SETTING_FIELDS:
        if key not in wanted:
            continue
        old, new = getattr(settings, key), wanted[key]
        if old == new:
            continue
        setattr(settings, key, new)
        record_setting_change(settings, field=key, old=old, new=new, actor=actor, address=address)
        changed.append(key)
    db.session.flush()
    return changed
