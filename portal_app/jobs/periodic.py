"""The periodic jobs: one entry point that runs everything due at an instant (SPEC §14).

This is an edge: each batch of reminders and each piece of the weekly email commits on its own,
so a run over 100 000 recipients never holds one transaction (or its row locks) for all of them.
"""

from __future__ import annotations

import logging
from datetime import datetime

from portal_app.jobs.mail import sweep_outbox
from portal_app.jobs.scans import sweep_scans
from portal_app.jobs.staff_jobs import sweep_jobs
from portal_app.models import utcnow
from portal_app.services import notifications, reminders
from portal_app.transaction import commit

log = logging.getLogger(__name__)


def parse_instant(value: str) -> datetime:
    """An ISO 8601 instant with its UTC offset (``2026-12-07T09:00:00+01:00`` or ``…Z``)."""
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError("give the instant with its UTC offset, e.g. 2026-12-07T09:00:00+01:00")
    return moment


def run_due(at: str | None = None) -> dict[str, int]:
    """Run once every periodic job due at ``at`` (default now): the outbox and job sweeps, the
    reminders due by then and the weekly emails whose Monday 09:00 has come. Safe to repeat and
    to run concurrently (R-NOT-5): what was sent is never sent again."""
    moment = parse_instant(at) if at else utcnow()
    done = {
        "reminders": send_due_reminders(moment),
        "weekly": send_weekly_transactions(moment),
        "outbox": sweep_outbox(),
        "jobs": sweep_jobs(),
        "scans": sweep_scans(),
    }
    log.info("periodic jobs at %s: %s", moment.isoformat(), done)
    return done


def send_due_reminders(at: datetime) -> int:
    """R-NOT-3: every reminder due at ``at``, a committed batch at a time; the emails queued."""
    queued = 0
    while (batch := reminders.queue_reminder_batch(at)) is not None:
        queued += batch
        commit()
    commit()  # the empty last look ends its transaction too
    return queued


def send_weekly_transactions(at: datetime) -> int:
    """R-NOT-6: the weekly emails due at ``at``, recorded and committed a piece at a time."""
    queued = 0
    for piece in notifications.pieces(reminders.weekly_emails_due(at)):
        queued += notifications.record_and_queue(piece)
        commit()
    commit()
    return queued
