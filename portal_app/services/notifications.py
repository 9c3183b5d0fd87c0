"""Who is told what (R-NOT-1..7): new to-dos, reminders and the weekly transactions email.

One rule decides the recipients of every event: ``recipients(category, accounts)``. Every email
is first recorded as a ``Notification`` under a unique (event_key, email_id) key, in the same
transaction as its outbox row, so a scheduler running twice, two schedulers, a retried job or
a crash between deciding and sending never send a second copy (R-NOT-5).

Links are minted when the outbox renders the email (the activation banner's invitation link,
the portal link, the one-click unsubscribe link), so whether a banner shows is decided by the
state at sending time: a client who activated in between gets no banner.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask_babel import force_locale
from flask_babel import lazy_gettext as _l
from sqlalchemy import Select, delete, select, text
from sqlalchemy.dialects import sqlite

from portal_app.extensions import db
from portal_app.i18n import DEFAULT_LANGUAGE, known_language
from portal_app.mail.outbox import enqueue_delivery
from portal_app.models import (
    Account,
    ContactEmail,
    ContactSettings,
    Firm,
    Invitation,
    Notification,
    OutboxEmail,
    PortalUser,
    Todo,
    utcnow,
)
from portal_app.sql import id_in, insert_with_ids

# The categories whose emails are lists a client may leave with one click (RFC 8058).
WEEKLY = "transactions"
WEEKLY_HOURS = (9, 21)  # Monday 09:00 local; a late scheduler still sends until 21:00
BATCH = 1000  # to-dos per reminder transaction
ROWS_PER_STATEMENT = 2000  # notifications and outbox rows per INSERT

CATEGORY_LABELS = {
    "documents_upload": _l("documents uploaded by the firm"),
    "documents_signature": _l("documents to sign"),
    "documents_approval": _l("documents to approve"),
    "messages_tasks": _l("messages and tasks"),
    "proposals": _l("proposals and engagement letters"),
    "organizers": _l("organizers"),
    "invoices_payments": _l("invoices and payments"),
    "client_requests": _l("client requests"),
    "transactions": _l("transaction questions"),
}


@dataclass(frozen=True)
class Recipient:
    """One contact email that gets an event of one account."""

    email_id: int
    address: str
    account_id: int
    firm_id: int
    login: bool
    language: str | None
    timezone: str


def recipients(category: str, accounts: Sequence[int] | Select[Any]) -> list[Recipient]:
    """R-NOT-1: every email linked to these accounts with ``notify`` on and ``category`` on in its
    preferences, and nobody else; one entry per (account, email). ``accounts`` is a list of
    ids or a SELECT of ids."""
    latest_language = (
        select(Invitation.language)
        .where(Invitation.email_id == ContactSettings.email_id, Invitation.language.is_not(None))
        .order_by(Invitation.id.desc())
        .limit(1)
        .correlate(ContactSettings)
        .scalar_subquery()
    )
    in_accounts = (
        ContactSettings.account_id.in_(accounts)
        if isinstance(accounts, Select)
        else id_in(ContactSettings.account_id, list(accounts))
    )
    rows = db.session.execute(
        select(
            ContactSettings.email_id,
            ContactEmail.address,
            ContactSettings.account_id,
            ContactSettings.firm_id,
            ContactSettings.login,
            ContactSettings.notification_preferences,
            PortalUser.language,
            latest_language,
            PortalUser.timezone,
            Firm.timezone,
        )
        .join(ContactEmail, ContactEmail.id == ContactSettings.email_id)
        .join(Firm, Firm.id == ContactSettings.firm_id)
        .outerjoin(PortalUser, PortalUser.email_id == ContactSettings.email_id)
        .where(in_accounts, ContactSettings.notify.is_(True))
        .order_by(ContactSettings.account_id, ContactEmail.address)
    ).all()
    return [
        Recipient(
            email_id=email_id,
            address=address,
            account_id=account_id,
            firm_id=firm_id,
            login=login,
            language=user_language or invitation_language,
            timezone=user_timezone or firm_timezone or "UTC",
        )
        for (
            email_id,
            address,
            account_id,
            firm_id,
            login,
            preferences,
            user_language,
            invitation_language,
            user_timezone,
            firm_timezone,
        ) in rows
        if (preferences or {}).get(category, True)
    ]


# --- recording, exactly once ---------------------------------------------------------------------


@dataclass
class Decided:
    """One email to send: who, under which key, and how to write it."""

    recipient: Recipient
    event_key: str
    kind: str
    todo_id: int | None
    subject: dict[str, str]  # the parameters of the template's subject line (SUBJECTS)
    template: str
    context: dict[str, Any]


def pieces(items: list[Any]) -> list[list[Any]]:
    return [items[at : at + ROWS_PER_STATEMENT] for at in range(0, len(items), ROWS_PER_STATEMENT)]


_INSERT_ONCE_PG = text(
    """
    INSERT INTO notifications (firm_id, event_key, kind, email_id, account_id, todo_id, outbox_id, created_at)
    SELECT r.firm_id, r.event_key, r.kind, r.email_id, r.account_id, r.todo_id, r.outbox_id, r.created_at
      FROM json_populate_recordset(NULL::notifications, :rows) AS r
    ON CONFLICT (event_key, email_id) DO NOTHING
    RETURNING outbox_id
    """
)


def _insert_ignoring_duplicates(values: list[dict[str, Any]]) -> set[int]:
    """INSERT … ON CONFLICT DO NOTHING RETURNING: the outbox ids of the rows this transaction won.
    A concurrent transaction inserting the same key makes this one wait for it, then skip."""
    won: set[int] = set()
    # one order for every writer, so two runs waiting on each other's keys cannot deadlock
    values = sorted(values, key=lambda v: (v["event_key"], v["email_id"]))
    postgres = db.session.get_bind().dialect.name == "postgresql"
    for chunk in pieces(values):
        if postgres:  # the whole batch as one JSON parameter: no statement of many VALUES to compile
            result = db.session.execute(_INSERT_ONCE_PG, {"rows": json.dumps(chunk, default=str)})
        else:
            result = db.session.execute(
                sqlite.insert(Notification)
                .values(chunk)
                .on_conflict_do_nothing(index_elements=["event_key", "email_id"])
                .returning(Notification.outbox_id)
            )
        won.update(outbox_id for (outbox_id,) in result)
    return won


# Subject lines per template, translated once per language and batch, then filled in per email.
SUBJECTS = {
    "todo_new": _l("%(firm)s: new to-do for %(account)s"),
    "todo_reminder": _l("Reminder: %(title)s (%(account)s)"),
    "weekly_transactions": _l("Your open transaction questions this week"),
    "document_new": _l("%(firm)s shared a document with %(account)s"),
    "request_reopened": _l("%(firm)s needs more for “%(title)s”"),
}


def _subjects(decided: Sequence[Decided]) -> list[tuple[str, str]]:
    """(language, subject) of each email: each subject line translated once per language."""
    languages = [known_language(item.recipient.language) or DEFAULT_LANGUAGE for item in decided]
    lines: dict[str, dict[str, str]] = {}
    for language in set(languages):
        with force_locale(language):
            lines[language] = {template: str(line) for template, line in SUBJECTS.items()}
    return [
        (
            language,
            (
                lines[language][item.template] % item.subject
                if item.subject
                else lines[language][item.template]
            )[:300],
        )
        for item, language in zip(decided, languages, strict=True)
    ]


def record_and_queue(decided: Sequence[Decided]) -> int:
    """Queue each decided email once: its outbox row is written, then recorded under its unique
    key; a key recorded before (an earlier or a concurrent run) removes the row again before the
    commit, so it is never sent twice. Set-based: a few statements per batch, whatever its size.
    Returns how many were queued."""
    if not decided:
        return 0
    now = utcnow()
    rows = [
        {
            "firm_id": item.recipient.firm_id,
            "kind": item.kind,
            "to_address": item.recipient.address,
            "subject": subject,
            "template": item.template,
            "context": {**item.context, "language": language},
            "state": "pending",
            "attempts": 0,
            "last_error": "",
            "next_attempt_at": now,
            "created_at": now,
        }
        for item, (language, subject) in zip(decided, _subjects(decided), strict=True)
    ]
    outbox_ids = insert_with_ids(OutboxEmail.__table__, rows)  # type: ignore[arg-type]
    won = _insert_ignoring_duplicates(
        [
            {
                "firm_id": item.recipient.firm_id,
                "event_key": item.event_key,
                "kind": item.kind,
                "email_id": item.recipient.email_id,
                "account_id": item.recipient.account_id if item.kind != "weekly_transactions" else None,
                "todo_id": item.todo_id,
                "outbox_id": outbox_id,
                "created_at": now,
            }
            for item, outbox_id in zip(decided, outbox_ids, strict=True)
        ]
    )
    lost = [outbox_id for outbox_id in outbox_ids if outbox_id not in won]
    if lost:  # sent before, or by a concurrent run: never a second copy
        db.session.execute(delete(OutboxEmail).where(id_in(OutboxEmail.id, lost)))
    if won:
        enqueue_delivery()
    return len(won)


# --- new to-dos and reminders --------------------------------------------------------------------


def todo_context(todo: Todo, account_name: str) -> dict[str, Any]:
    return {
        "account_id": todo.account_id,
        "account_name": account_name,
        "category": todo.kind,
        "todo_id": todo.id,
        "title": todo.title,
        "due_date": todo.due_date.isoformat() if todo.due_date else None,
        "requires_signature": todo.requires_signature,
    }


def notify_new_todo(todo: Todo) -> int:
    """R-NOT-1: the new to-do is emailed to the account's recipients of its category, in the
    transaction that creates it."""
    account_name = db.session.scalar(select(Account.name).where(Account.id == todo.account_id)) or ""
    firm = db.session.scalar(select(Firm.name).where(Firm.id == todo.firm_id)) or ""
    return record_and_queue(
        [
            Decided(
                recipient=recipient,
                event_key=f"todo:{todo.id}:new",
                kind="todo_new",
                todo_id=todo.id,
                subject={"firm": firm, "account": account_name},
                template="todo_new",
                context=todo_context(todo, account_name),
            )
            for recipient in recipients(todo.kind, [todo.account_id])
        ]
    )


def reminder_due_at(todo: Todo, number: int) -> datetime | None:
    """When reminder ``number`` (1-based) is due, or None when there is no such reminder."""
    if todo.reminder_every_days <= 0 or number > todo.reminder_max or todo.state != "open":
        return None
    return todo.created_at + timedelta(days=number * todo.reminder_every_days)


def schedule_reminders(todo: Todo) -> None:
    """Set when the next reminder is due from the to-do's settings and what was sent."""
    todo.next_reminder_at = reminder_due_at(todo, todo.reminders_sent + 1)


def _firm_and_account(firm_id: int, account_id: int) -> tuple[str, str]:
    firm = db.session.scalar(select(Firm.name).where(Firm.id == firm_id)) or ""
    account = db.session.scalar(select(Account.name).where(Account.id == account_id)) or ""
    return firm, account


def notify_new_document(document: Any) -> int:
    """R-DOC-3: a new document the client may see is emailed to the account's recipients of
    ``documents_upload`` (R-NOT-1), once (R-NOT-5)."""
    firm, account_name = _firm_and_account(document.firm_id, document.account_id)
    context = {
        "account_id": document.account_id,
        "account_name": account_name,
        "category": "documents_upload",
        "document_id": document.id,
        "document_name": document.name,
    }
    return record_and_queue(
        [
            Decided(
                recipient=recipient,
                event_key=f"document:{document.id}:new",
                kind="document_new",
                todo_id=None,
                subject={"firm": firm, "account": account_name},
                template="document_new",
                context=context,
            )
            for recipient in recipients("documents_upload", [document.account_id])
        ]
    )


def notify_request_reopened(todo: Todo, item: Any) -> int:
    """R-REQ-1: staff reopened an item of a client request; its recipients of
    ``client_requests`` hear why (each reopening once)."""
    firm, account_name = _firm_and_account(todo.firm_id, todo.account_id)
    context = {
        **todo_context(todo, account_name),
        "item_label": item.label,
        "comment": item.comment or "",
    }
    stamp = int(item.updated_at.timestamp())
    return record_and_queue(
        [
            Decided(
                recipient=recipient,
                event_key=f"todo:{todo.id}:item:{item.id}:reopened:{stamp}",
                kind="request_reopened",
                todo_id=todo.id,
                subject={"firm": firm, "title": todo.title},
                template="request_reopened",
                context=context,
            )
            for recipient in recipients("client_requests", [todo.account_id])
        ]
    )
