"""Contact settings per (account, linked contact, email) (R-SET-1, R-SEC-7)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm.attributes import set_committed_value

from portal_app.extensions import db
from portal_app.models import (
    NOTIFICATION_CATEGORIES,
    SETTING_FLAGS,
    Account,
    AccountContact,
    AuditEntry,
    Contact,
    ContactEmail,
    ContactSettings,
    StaffUser,
    utcnow,
)
from portal_app.services import invitations
from portal_app.services.audit import Actor
from portal_app.services.errors import NotFound, ValidationFailed
from portal_app.services.validation import parse_id
from portal_app.sql import chunks, id_in, insert_rows

FLAGS = SETTING_FLAGS
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


# What a change does about invitations: nothing; invite every row with login on that has no live
# invitation (the bulk update: running it twice invites nobody twice); or invite (resend) every
# row with login on (the single PATCH with send_invitation).
INVITE_NONE, INVITE_MISSING, INVITE_ALWAYS = "none", "missing", "always"


Diffs = dict[int, dict[str, tuple[Any, Any]]]  # settings id -> setting -> (old, new)


@dataclass
class ChangeReport:
    """What a change did (or, for a dry run, would do)."""

    emails: int = 0  # settings rows looked at
    emails_changed: int = 0
    changed: Counter[str] = field(default_factory=Counter)  # setting -> emails changed
    invitations_sent: int = 0
    access_granted: int = 0
    invitations_revoked: int = 0
    changed_fields: dict[int, list[str]] = field(default_factory=dict)  # settings id -> fields
    invited: set[int] = field(default_factory=set)  # settings ids an invitation went (would go) to

    def add(self, other: ChangeReport) -> None:
        self.emails += other.emails
        self.emails_changed += other.emails_changed
        self.changed.update(other.changed)
        self.invitations_sent += other.invitations_sent
        self.access_granted += other.access_granted
        self.invitations_revoked += other.invitations_revoked

    def counts(self) -> dict[str, Any]:
        return {
            "emails": self.emails,
            "emails_changed": self.emails_changed,
            "changed": {key: self.changed.get(key, 0) for key in SETTING_FIELDS},
            "invitations_sent": self.invitations_sent,
            "access_granted": self.access_granted,
            "invitations_revoked": self.invitations_revoked,
        }


def validate_changes(changes: dict[str, Any]) -> None:
    unknown = set(changes) - set(SETTING_FIELDS)
    if unknown:
        raise ValidationFailed("Unknown settings.", fields={k: ["Unknown setting."] for k in sorted(unknown)})
    for key in FLAGS:
        if key in changes and not isinstance(changes[key], bool):
            raise ValidationFailed("Settings are true or false.", fields={key: ["Must be true or false."]})
    if "notification_preferences" in changes:
        if not isinstance(changes["notification_preferences"], dict):
            raise ValidationFailed(
                "Preferences are an object.", fields={"notification_preferences": ["Must be an object."]}
            )
        validate_preferences(changes["notification_preferences"])


def apply_settings_change(
    rows: Sequence[ContactSettings],
    changes: dict[str, Any],
    *,
    actor: Actor,
    sent_by: StaffUser | None = None,
    invite: str = INVITE_NONE,
    message: str = "",
    language: str | None = None,
) -> ChangeReport:
    """Apply one change to many settings rows with set-based statements; the single PATCH and
    the bulk update both come here (R-BLK-3).

    Every changed setting is audited (R-SEC-7); signatory turns on with login the first time
    login is turned on, unless the change says otherwise (SPEC §3); login off revokes the
    outstanding invitations of that email on that account (R-LOG-7); login on for an email that
    already has an activated portal user grants access at once and says so by email instead of
    inviting (R-LOG-6). A dry run (the bulk update's, an import's) does it all in a savepoint
    and rolls it back (``jobs.staff_jobs.in_savepoint``).
    """
    validate_changes(changes)
    report = ChangeReport(emails=len(rows))
    if not rows:
        return report
    first_login_candidates = [
        row for row in rows if changes.get("login") is True and not row.login and "signatory" not in changes
    ]
    had_login = _pairs_with_login_history(first_login_candidates)
    first_login = {
        row.id for row in first_login_candidates if (row.account_id, row.email_id) not in had_login
    }
    diffs: Diffs = {}
    for row in rows:
        wanted = dict(changes)
        if "notification_preferences" in wanted:
            wanted["notification_preferences"] = {
                **row.notification_preferences,
                **wanted["notification_preferences"],
            }
        if row.id in first_login:
            wanted["signatory"] = True
        diff = {
            key: (getattr(row, key), wanted[key])
            for key in SETTING_FIELDS
            if key in wanted and getattr(row, key) != wanted[key]
        }
        if diff:
            diffs[row.id] = diff
            report.changed.update(diff.keys())
    report.emails_changed = len(diffs)
    report.changed_fields = {
        row_id: [k for k in SETTING_FIELDS if k in diff] for row_id, diff in diffs.items()
    }
    final_login = {row.id: diffs.get(row.id, {}).get("login", (row.login, row.login))[1] for row in rows}
    if invite == INVITE_ALWAYS and not all(final_login.values()):
        raise ValidationFailed(
            "Invitations go to emails with login on.", fields={"send_invitation": ["Turn login on first."]}
        )
    _write(rows, diffs, actor)
    login_off = [row for row in rows if "login" in diffs.get(row.id, {}) and not final_login[row.id]]
    report.invitations_revoked = invitations.revoke_outstanding_pairs(
        [(row.account_id, row.email_id) for row in login_off], reason="login_off"
    )
    with_login = [row for row in rows if final_login[row.id]]
    activated = invitations.activated_email_ids([row.email_id for row in with_login])
    grants = [row for row in with_login if row.email_id in activated and "login" in diffs.get(row.id, {})]
    to_invite: list[ContactSettings] = []
    if invite != INVITE_NONE:
        to_invite = [row for row in with_login if row.email_id not in activated]
        if invite == INVITE_MISSING:
            live = invitations.live_invitation_pairs([(row.account_id, row.email_id) for row in to_invite])
            to_invite = [row for row in to_invite if (row.account_id, row.email_id) not in live]
    report.access_granted, report.invitations_sent = len(grants), len(to_invite)
    report.invited = {row.id for row in to_invite}
    invitations.grant_access_many(grants)
    invitations.send_invitations(to_invite, sent_by=sent_by, message=message, language=language)
    return report


def _pairs_with_login_history(rows: Sequence[ContactSettings]) -> set[tuple[int, int]]:
    """(account, email) pairs whose login was ever set: the audit trail holds every change."""
    if not rows:
        return set()
    wanted = {(row.account_id, row.email_id) for row in rows}
    found = db.session.execute(
        select(AuditEntry.account_id, AuditEntry.email_id)
        .where(id_in(AuditEntry.account_id, {a for a, _ in wanted}), AuditEntry.field == "login")
        .distinct()
    )
    return {(account_id, email_id) for account_id, email_id in found} & wanted


def _write(
    rows: Sequence[ContactSettings], diffs: dict[int, dict[str, tuple[Any, Any]]], actor: Actor
) -> None:
    """One UPDATE per set of new values, one multi-row INSERT of audit entries."""
    if not diffs:
        return
    # Rows that get the same new values share one UPDATE, which writes each row once.
    groups: dict[tuple[tuple[str, Any], ...], tuple[dict[str, Any], list[int]]] = {}
    for row_id, diff in diffs.items():
        values = {key: new for key, (_old, new) in diff.items()}
        group = tuple(
            (key, new if isinstance(new, bool) else json.dumps(new, sort_keys=True))
            for key, new in sorted(values.items())
        )
        groups.setdefault(group, (values, []))[1].append(row_id)
    for values, ids in groups.values():
        for chunk in chunks(ids):
            db.session.execute(
                update(ContactSettings)
                .where(id_in(ContactSettings.id, chunk))
                .values({**values, "updated_at": utcnow()})
                .execution_options(synchronize_session=False)
            )
    changed_rows = [row for row in rows if row.id in diffs]
    addresses = {
        email_id: address
        for email_id, address in db.session.execute(
            select(ContactEmail.id, ContactEmail.address).where(
                id_in(ContactEmail.id, {row.email_id for row in changed_rows})
            )
        )
    }
    now = utcnow()
    entries = [
        {
            "firm_id": row.firm_id,
            "account_id": row.account_id,
            "contact_id": row.contact_id,
            "email_id": row.email_id,
            "address": addresses.get(row.email_id, ""),
            "actor_type": actor.type,
            "actor_id": actor.id,
            "actor_label": actor.label,
            "field": key,
            "old_value": old,
            "new_value": new,
            "created_at": now,
        }
        for row in changed_rows
        for key, (old, new) in diffs[row.id].items()
    ]
    insert_rows(AuditEntry.__table__, entries)
    for row in changed_rows:  # the objects say what the database now holds
        for key, (_old, new) in diffs[row.id].items():
            set_committed_value(row, key, new)


def update_settings(settings: ContactSettings, changes: dict[str, Any], *, actor: Actor) -> list[str]:
    """Apply changes to one settings row (no invitation sent); return the changed fields."""
    report = apply_settings_change([settings], changes, actor=actor)
    return report.changed_fields.get(settings.id, [])
