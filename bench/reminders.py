"""Reminders and the weekly transactions email (SPEC §15): one `cron run-due` for ~100 000
recipients, against hand-written SQL that selects the same recipients and hands the same messages
to the outbox, in the same run and on the same data.

The firm (N accounts, ~2.5 emails each, as in bench/account_list.py) has `notify` on everywhere,
and every account has a proposal whose first reminder is due and an open transaction question.
At a Monday 09:30 UTC (the firm's time zone), every email gets one reminder and one weekly email.
Portico: `run_due` as the cron job runs it (notifications recorded under their unique keys,
outbox rows, one delivery job enqueued). Reference: one SELECT per kind, the rows built in
Python, the notifications and outbox rows written with COPY, in a transaction rolled back so
Portico starts from the same state.

    .venv/bin/python bench/reminders.py [--accounts 40000]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from redis import Redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REDIS_URL, build_app, own_database, report, time_ratio  # noqa: E402
from account_list import seed  # noqa: E402

AT = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)  # a Monday
CREATED = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)

TODOS_SQL = """
UPDATE contact_settings SET notify = true WHERE firm_id = %(firm)s;
INSERT INTO todos (firm_id, account_id, kind, title, requires_signature, state, reminder_every_days,
                   reminder_max, reminders_sent, next_reminder_at, created_at)
SELECT %(firm)s, a.id, 'proposals', 'Engagement letter 2026', false, 'open', 3, 3, 0,
       %(created)s::timestamptz + interval '3 days', %(created)s
  FROM accounts a WHERE a.firm_id = %(firm)s;
INSERT INTO todos (firm_id, account_id, kind, title, requires_signature, state, reminder_every_days,
                   reminder_max, reminders_sent, next_reminder_at, created_at)
SELECT %(firm)s, a.id, 'transactions', 'What is the 120.00 payment to ACME?', false, 'open', 0, 3, 0,
       NULL, %(created)s
  FROM accounts a WHERE a.firm_id = %(firm)s;
"""

REMINDER_RECIPIENTS = """
SELECT t.id, t.account_id, t.title, a.name, e.id, e.address, f.name
  FROM todos t
  JOIN accounts a ON a.id = t.account_id
  JOIN firms f ON f.id = t.firm_id
  JOIN contact_settings s ON s.account_id = t.account_id AND s.notify
  JOIN contact_emails e ON e.id = s.email_id
 WHERE t.state = 'open' AND t.next_reminder_at <= %(at)s
   AND coalesce((s.notification_preferences ->> t.kind)::boolean, true)
"""

WEEKLY_RECIPIENTS = """
SELECT e.id, e.address, s.firm_id,
       json_agg(json_build_object('id', a.id, 'name', a.name, 'todos',
                (SELECT json_agg(json_build_object('title', t.title, 'due_date', t.due_date))
                   FROM todos t WHERE t.account_id = a.id AND t.kind = 'transactions' AND t.state = 'open'))
                ORDER BY lower(a.name))
  FROM contact_settings s
  JOIN contact_emails e ON e.id = s.email_id
  JOIN accounts a ON a.id = s.account_id
 WHERE s.notify AND coalesce((s.notification_preferences ->> 'transactions')::boolean, true)
   AND EXISTS (SELECT 1 FROM todos t WHERE t.account_id = s.account_id
                  AND t.kind = 'transactions' AND t.state = 'open')
 GROUP BY e.id, e.address, s.firm_id
"""


def run_reference(url: str) -> tuple[float, int]:
    """The same notifications and outbox rows, by hand, then rolled back."""
    started = time.perf_counter()
    written = 0
    with psycopg.connect(url) as conn:
        now = datetime.now(UTC)
        notifications, outbox = [], []
        next_id = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM outbox_emails").fetchone()[0]
        for todo_id, account_id, title, account, email_id, address, firm in conn.execute(
            REMINDER_RECIPIENTS, {"at": AT}
        ):
            context = {
                "account_id": account_id,
                "account_name": account,
                "category": "proposals",
                "todo_id": todo_id,
                "title": title,
                "reminder_number": 1,
                "firm": firm,
                "language": "en",
            }
            outbox.append(
                (
                    next_id,
                    "todo_reminder",
                    address,
                    f"Reminder: {title} ({account})",
                    "todo_reminder",
                    json.dumps(context),
                    "pending",
                    0,
                    "",
                    now,
                    now,
                )
            )
            notifications.append(
                (f"todo:{todo_id}:reminder:1", "todo_reminder", email_id, account_id, todo_id, next_id, now)
            )
            next_id += 1
        for email_id, address, _firm_id, accounts in conn.execute(WEEKLY_RECIPIENTS):
            context = {
                "category": "transactions",
                "week_of": "2026-12-07",
                "email_id": email_id,
                "accounts": accounts,
                "language": "en",
            }
            outbox.append(
                (
                    next_id,
                    "weekly_transactions",
                    address,
                    "Your open transaction questions this week",
                    "weekly_transactions",
                    json.dumps(context),
                    "pending",
                    0,
                    "",
                    now,
                    now,
                )
            )
            notifications.append(
                ("weekly:2026-12-07", "weekly_transactions", email_id, None, None, next_id, now)
            )
            next_id += 1
        firm_id = conn.execute("SELECT id FROM firms LIMIT 1").fetchone()[0]
        with conn.cursor().copy(
            "COPY outbox_emails (id, kind, to_address, subject, template, context, state, attempts,"
            " last_error, next_attempt_at, created_at) FROM STDIN"
        ) as copy:
            for row in outbox:
                copy.write_row(row)
        with conn.cursor().copy(
            "COPY notifications (event_key, kind, email_id, account_id, todo_id, outbox_id, created_at,"
            " firm_id) FROM STDIN"
        ) as copy:
            for row in notifications:
                copy.write_row((*row, firm_id))
        written = len(outbox)
        conn.rollback()
    return time.perf_counter() - started, written


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--accounts", type=int, default=40_000)
    args = parser.parse_args()
    Redis.from_url(REDIS_URL).flushdb()
    with own_database("reminders") as url:
        app = build_app(url, REDIS_URL=REDIS_URL)
        with psycopg.connect(url) as conn:
            firm_id, _token = seed(app, conn, args.accounts)
            for statement in TODOS_SQL.split(";\n"):
                if statement.strip():
                    conn.execute(statement, {"firm": firm_id, "created": CREATED})
            conn.commit()
            conn.execute("ANALYZE")
            conn.commit()
            recipients = conn.execute(
                "SELECT count(*) FROM contact_settings WHERE firm_id = %s AND notify", (firm_id,)
            ).fetchone()[0]
        reference, written = run_reference(url)
        with app.app_context():
            from portal_app.extensions import db
            from portal_app.jobs.periodic import run_due

            started = time.perf_counter()
            done = run_due(AT.isoformat())
            portico = time.perf_counter() - started
            db.engine.dispose()
        print(
            f"{recipients:,} recipients; reference wrote {written:,} outbox rows in {reference:.2f} s; "
            f"Portico queued {done['reminders']:,} reminders and {done['weekly']:,} weekly emails "
            f"in {portico:.2f} s",
            flush=True,
        )
        assert done["reminders"] + done["weekly"] == written, (done, written)
    Redis.from_url(REDIS_URL).flushdb()
    report(
        [
            time_ratio(
                f"cron run-due, {recipients:,} recipients (reminder + weekly each)",
                portico,
                reference,
                "s",
                3.0,
            )
        ]
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
