"""When reminders and the weekly transactions email are due (R-NOT-3, R-NOT-6), decided a batch
at a time; the periodic job (``portal_app.jobs.periodic``) records each batch and commits it."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select, text, update

from portal_app.extensions import db
from portal_app.models import Account, Firm, Notification, Todo
from portal_app.services.notifications import (
    BATCH,
    WEEKLY,
    WEEKLY_HOURS,
    Decided,
    Recipient,
    recipients,
    record_and_queue,
    reminder_due_at,
    todo_context,
)
from portal_app.sql import chunks, id_in


def queue_reminder_batch(at: datetime) -> int | None:
    """R-NOT-3, one batch: a reminder for each of up to BATCH open to-dos whose next reminder is
    due at ``at``, locked until the caller commits (a second scheduler skips them). When the
    scheduler was away for several intervals, the latest due reminder goes out once (late rather
    than never, and never a burst of the same reminder). Returns the number of emails
    queued, or None when nothing is due."""
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
        return None
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
                        **todo_context(todo, account_name),
                        "reminder_number": number,
                        "firm": firm_names.get(todo.firm_id, ""),
                    },
                )
                for recipient in by_account.get(todo.account_id, [])
            )
    _advance(advanced)
    return record_and_queue(decided)


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


def weekly_emails_due(at: datetime) -> list[Decided]:
    """R-NOT-6: one email per recipient whose Monday 09:00 has come, listing the open
    ``transactions`` to-dos of every account it gets them for; nothing when there are none. The
    caller records them (``record_and_queue``) a piece at a time."""
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
        return []
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
    return decided
