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
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask_babel import force_locale
from flask_babel import lazy_gettext as _l
from sqlalchemy import Select, delete, or_, select, text, update
from sqlalchemy.dialects import sqlite

from portal_app import tokens
from portal_app.extensions import db
from portal_app.i18n import DEFAULT_LANGUAGE, known_language
from portal_app.mail.outbox import absolute_url, enqueue_delivery, register_context_builder
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
from portal_app.services.audit import Actor
from portal_app.sql import chunks, id_in, insert_with_ids
from portal_app.transaction import commit

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


def _pieces(items: list[Any]) -> list[list[Any]]:
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
    for chunk in _pieces(values):
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


def _todo_context(todo: Todo, account_name: str) -> dict[str, Any]:
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
                context=_todo_context(todo, account_name),
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


def send_due_reminders(at: datetime) -> int:
    """R-NOT-3: one reminder per open to-do whose next reminder is due at ``at``. When the
    scheduler was away for several intervals, the latest due reminder goes out once (late rather
    than never, and never a burst of the same reminder). Returns the number of emails queued."""
    queued = 0
    while True:
        batch = list(
            db.session.scalars(
                select(Todo)
                .where(Todo.state == "open", Todo.next_reminder_at <= at)
                .order_by(Todo.next_reminder_at, Todo.id)
                .limit(BATCH)
                .with_for_update(skip_locked=True)
            )
        )
        if not batch:
            commit()
            return queued
        names = dict(
            db.session.execute(
                select(Account.id, Account.name).where(id_in(Account.id, {t.account_id for t in batch}))
            ).all()
        )
        firm_names = dict(
            db.session.execute(
                select(Firm.id, Firm.name).where(id_in(Firm.id, {t.firm_id for t in batch}))
            ).all()
        )
        by_kind: dict[str, list[Todo]] = defaultdict(list)
        for todo in batch:
            by_kind[todo.kind].append(todo)
        decided: list[Decided] = []
        advanced: list[dict[str, Any]] = []
        for kind, todos in by_kind.items():
            by_account: dict[int, list[Recipient]] = defaultdict(list)
            for recipient in recipients(kind, sorted({t.account_id for t in todos})):
                by_account[recipient.account_id].append(recipient)
            for todo in todos:
                number = todo.reminders_sent + 1
                while (due := reminder_due_at(todo, number + 1)) is not None and due <= at:
                    number += 1
                advanced.append(
                    {
                        "id": todo.id,
                        "reminders_sent": number,
                        "next_reminder_at": reminder_due_at(todo, number + 1),
                    }
                )
                account_name = names.get(todo.account_id, "")
                decided.extend(
                    Decided(
                        recipient=recipient,
                        event_key=f"todo:{todo.id}:reminder:{number}",
                        kind="todo_reminder",
                        todo_id=todo.id,
                        subject={"title": todo.title, "account": account_name},
                        template="todo_reminder",
                        context={
                            **_todo_context(todo, account_name),
                            "reminder_number": number,
                            "firm": firm_names.get(todo.firm_id, ""),
                        },
                    )
                    for recipient in by_account.get(todo.account_id, [])
                )
        _advance(advanced)
        queued += record_and_queue(decided)
        commit()


_ADVANCE_PG = text(
    """
    UPDATE todos SET reminders_sent = v.reminders_sent, next_reminder_at = v.next_reminder_at
      FROM json_to_recordset(:rows) AS v(id bigint, reminders_sent int, next_reminder_at timestamptz)
     WHERE todos.id = v.id
    """
)


def _advance(rows: list[dict[str, Any]]) -> None:
    """Record which reminder each to-do is at, and when the next is due: one statement."""
    if not rows:
        return
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(_ADVANCE_PG, {"rows": json.dumps(rows, default=str)})
    else:
        db.session.execute(update(Todo), rows)


# --- the weekly transactions email ---------------------------------------------------------------


def weekly_slot(at: datetime, timezone: str) -> str | None:
    """The Monday (local date) whose weekly email is due at ``at`` in ``timezone``, or None.
    Due from 09:00 to 21:00 local time on Monday (SPEC §14), whatever the UTC offset that day."""
    try:
        local = at.astimezone(ZoneInfo(timezone))
    except (KeyError, ValueError):
        local = at.astimezone(ZoneInfo("UTC"))
    if local.weekday() == 0 and WEEKLY_HOURS[0] <= local.hour < WEEKLY_HOURS[1]:
        return local.date().isoformat()
    return None


def send_weekly_transactions(at: datetime) -> int:
    """R-NOT-6: one email per recipient whose Monday 09:00 has come, listing the open
    ``transactions`` to-dos of every account it gets them for; nothing when there are none."""
    with_open = select(Todo.account_id).where(Todo.kind == WEEKLY, Todo.state == "open").distinct()
    by_email: dict[int, list[Recipient]] = defaultdict(list)
    for recipient in recipients(WEEKLY, with_open):
        by_email[recipient.email_id].append(recipient)
    due = {
        email_id: (slot, entries)
        for email_id, entries in by_email.items()
        if (slot := weekly_slot(at, entries[0].timezone)) is not None
    }
    if not due:
        commit()
        return 0
    already = set(
        db.session.scalars(
            select(Notification.email_id).where(
                id_in(Notification.email_id, list(due)),
                or_(*[Notification.event_key == f"weekly:{slot}" for slot in {s for s, _ in due.values()}]),
            )
        )
    )
    account_ids = sorted(
        {r.account_id for email_id, (_s, entries) in due.items() if email_id not in already for r in entries}
    )
    open_by_account: dict[int, list[dict[str, Any]]] = defaultdict(list)
    names: dict[int, str] = {}
    for chunk in chunks(account_ids):
        for todo, name in db.session.execute(
            select(Todo, Account.name)
            .join(Account, Account.id == Todo.account_id)
            .where(id_in(Todo.account_id, chunk), Todo.kind == WEEKLY, Todo.state == "open")
            .order_by(Todo.due_date.is_(None), Todo.due_date, Todo.id)
        ).all():
            names[todo.account_id] = name
            open_by_account[todo.account_id].append(
                {"title": todo.title, "due_date": todo.due_date.isoformat() if todo.due_date else None}
            )
    decided: list[Decided] = []
    for email_id, (slot, entries) in due.items():
        if email_id in already:
            continue
        listed = sorted(
            (r for r in entries if open_by_account.get(r.account_id)),
            key=lambda r: names[r.account_id].lower(),
        )
        if not listed:
            continue
        decided.append(
            Decided(
                recipient=listed[0],
                event_key=f"weekly:{slot}",
                kind="weekly_transactions",
                todo_id=None,
                subject={},
                template="weekly_transactions",
                context={
                    "category": WEEKLY,
                    "week_of": slot,
                    "email_id": email_id,
                    "accounts": [
                        {
                            "id": r.account_id,
                            "name": names[r.account_id],
                            "todos": open_by_account[r.account_id],
                        }
                        for r in listed
                    ],
                },
            )
        )
    queued = 0
    for chunk in _pieces(decided):
        queued += record_and_queue(chunk)
        commit()
    return queued


# --- rendering: banner, links, unsubscribe -------------------------------------------------------


def _outstanding_invitation(email_id: int, account_ids: list[int]) -> Invitation | None:
    """The email's live invitation (preferring one of these accounts), sent or about to be."""
    now = utcnow()
    candidates = db.session.scalars(
        select(Invitation)
        .where(
            Invitation.email_id == email_id,
            Invitation.accepted_at.is_(None),
            Invitation.revoked_at.is_(None),
            or_(Invitation.expires_at.is_(None), Invitation.expires_at > now),
        )
        .order_by(Invitation.id.desc())
    ).all()
    return next((i for i in candidates if i.account_id in account_ids), candidates[0] if candidates else None)


def _render_context(row: OutboxEmail) -> dict[str, Any] | None:
    """What only the sending job may know: the current state decides whether the email still
    goes (a to-do done meanwhile sends no reminder) and whether it carries the banner."""
    context = row.context
    notification = db.session.scalar(select(Notification).where(Notification.outbox_id == row.id))
    if notification is None:
        return None
    email = db.session.get(ContactEmail, notification.email_id)
    if email is None or email.address != row.to_address:
        return None  # the address changed: this email was for the old one
    category = context["category"]
    if row.template == "weekly_transactions":
        account_ids = [entry["id"] for entry in context["accounts"]]
    else:
        account_ids = [context["account_id"]]
        todo = db.session.get(Todo, context["todo_id"])
        if todo is None or (row.template == "todo_reminder" and todo.state != "open"):
            return None  # reminders stop the moment the to-do is done (R-NOT-3)
    settings = db.session.scalars(
        select(ContactSettings).where(
            ContactSettings.email_id == email.id, id_in(ContactSettings.account_id, account_ids)
        )
    ).all()
    if not any(s.notify and s.notification_preferences.get(category, True) for s in settings):
        return None  # switched off since it was decided
    user = db.session.scalar(select(PortalUser).where(PortalUser.email_id == email.id))
    activated = user is not None and user.is_active
    extra: dict[str, Any] = {
        "address": email.address,
        "category_label": str(CATEGORY_LABELS[category]),
        "portal_link": absolute_url("portal.account_home", account_id=account_ids[0])
        if len(account_ids) == 1
        else absolute_url("portal.home"),
        "banner": not activated and any(s.login for s in settings),
        "banner_link": None,
    }
    if context.get("due_date"):
        extra["due"] = date.fromisoformat(context["due_date"])
    if row.template == "weekly_transactions":
        extra["accounts"] = [
            {
                **entry,
                "todos": [
                    {**t, "due": date.fromisoformat(t["due_date"]) if t["due_date"] else None}
                    for t in entry["todos"]
                ],
            }
            for entry in context["accounts"]
        ]
    if extra["banner"]:
        invitation = _outstanding_invitation(email.id, account_ids)
        if invitation is not None:
            token = tokens.mint(tokens.INVITATION, {"i": invitation.id, "n": notification.id})
            extra["banner_link"] = absolute_url("portal.activate", token=token)
    if row.template != "todo_new":  # reminders and the weekly email are lists one may leave
        token = tokens.mint(
            tokens.UNSUBSCRIBE,
            {
                "e": email.id,
                "c": category,
                "a": None if row.template == "weekly_transactions" else account_ids[0],
            },
        )
        extra["list_unsubscribe"] = absolute_url("portal.unsubscribe", token=token)
    return extra


for _template in ("todo_new", "todo_reminder", "weekly_transactions"):
    register_context_builder(_template)(_render_context)


# --- one-click unsubscribe -----------------------------------------------------------------------


@dataclass
class Unsubscribe:
    email: ContactEmail
    category: str
    settings: list[ContactSettings]  # the rows this link switches the category off on
    accounts: list[str]


def read_unsubscribe(token: str) -> Unsubscribe | None:
    """What an unsubscribe link would switch off, or None when it is not one of ours."""
    try:
        payload = tokens.read(tokens.UNSUBSCRIBE, token)
    except tokens.InvalidToken:
        return None
    email_id, category, account_id = payload.get("e"), payload.get("c"), payload.get("a")
    if not isinstance(email_id, int) or category not in CATEGORY_LABELS:
        return None
    if account_id is not None and not isinstance(account_id, int):
        return None
    email = db.session.get(ContactEmail, email_id)
    if email is None:
        return None
    query = select(ContactSettings, Account.name).join(Account, Account.id == ContactSettings.account_id)
    query = query.where(ContactSettings.email_id == email_id)
    if account_id is not None:
        query = query.where(ContactSettings.account_id == account_id)
    rows = db.session.execute(query.order_by(Account.name)).all()
    return Unsubscribe(
        email=email,
        category=category,
        settings=[row for row, _name in rows],
        accounts=[name for _row, name in rows],
    )


def unsubscribe(link: Unsubscribe) -> int:
    """Switch the link's category off for its email (on its account, or on every account for
    the weekly email), audited with the client as the actor; return how many rows changed."""
    from portal_app.services.settings import apply_settings_change

    rows = [row for row in link.settings if row.notification_preferences.get(link.category, True)]
    if not rows:
        return 0
    user_id = db.session.scalar(select(PortalUser.id).where(PortalUser.email_id == link.email.id))
    report = apply_settings_change(
        rows,
        {"notification_preferences": {link.category: False}},
        actor=Actor("portal", user_id, label=link.email.address),
    )
    return report.emails_changed


def notification_matches_invitation(notification_id: int, invitation: Invitation) -> bool:
    """An activation-banner link is good while the notification it came with exists and was
    sent to the invitation's email."""
    return (
        db.session.scalar(
            select(Notification.id).where(
                Notification.id == notification_id, Notification.email_id == invitation.email_id
            )
        )
        is not None
    )
