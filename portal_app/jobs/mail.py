"""Deliver outbox rows at most once each, and sweep up rows nobody delivered."""

from __future__ import annotations

import logging
from datetime import timedelta

from flask import current_app
from sqlalchemy import select, update

from portal_app.extensions import db
from portal_app.mail.outbox import RETRY_INTERVALS, enqueue_delivery, render_message
from portal_app.mail.transport import PermanentDeliveryError, send_message
from portal_app.models import OutboxEmail, utcnow
from portal_app.transaction import commit

log = logging.getLogger(__name__)

# A row claimed longer ago than this was interrupted mid-send (worker killed): the SMTP
# server may already have it, so it is marked failed rather than sent twice.
STALE_CLAIM = timedelta(minutes=15)


class TransientDeliveryError(Exception):
    """Delivery failed for now; rq retries the job after an interval."""


def deliver_outbox_email(outbox_id: int) -> str:
    """Send one outbox row; return its final or current state."""
    now = utcnow()
    claimed = db.session.execute(
        update(OutboxEmail)
        .where(OutboxEmail.id == outbox_id, OutboxEmail.state == "pending")
        .values(state="sending", claimed_at=now, attempts=OutboxEmail.attempts + 1)
        .execution_options(synchronize_session=False)
    ).rowcount
    commit()
    if claimed != 1:
        return "skipped"  # already sent, being sent, failed, or gone (R-REL-4)
    row = db.session.get(OutboxEmail, outbox_id, populate_existing=True)
    assert row is not None
    try:
        message = render_message(row)
        if message is None:
            row.state, row.last_error = "failed", "no longer valid; not sent"
            commit()
            return row.state
        commit()  # whatever rendering recorded (a minted link's digest) is stored before sending
        send_message(message)
    except PermanentDeliveryError as exc:
        _record_failure(row, str(exc), final=True)
        return row.state
    except Exception as exc:
        final = row.attempts >= current_app.config["MAIL_MAX_ATTEMPTS"]
        _record_failure(row, f"{type(exc).__name__}: {exc}", final=final)
        if not final:
            raise TransientDeliveryError(row.last_error) from exc
        return row.state
    row.state, row.sent_at, row.last_error = "sent", utcnow(), ""
    commit()
    return row.state


def _record_failure(row: OutboxEmail, error: str, *, final: bool) -> None:
    db.session.rollback()
    row = db.session.get(OutboxEmail, row.id, populate_existing=True)
    assert row is not None
    row.last_error = error[:2000]
    if final:
        row.state = "failed"
        log.error("outbox email %s failed for good: %s", row.id, error)
    else:
        delay = RETRY_INTERVALS[min(row.attempts - 1, len(RETRY_INTERVALS) - 1)]
        row.state, row.next_attempt_at = "pending", utcnow() + timedelta(seconds=delay)
        log.warning("outbox email %s failed (attempt %s), retrying: %s", row.id, row.attempts, error)
    commit()


def sweep_outbox(limit: int = 1000) -> int:
    """Re-enqueue unsent rows whose turn has come; fail rows stuck mid-send. Return count."""
    now = utcnow()
    stale = db.session.execute(
        update(OutboxEmail)
        .where(OutboxEmail.state == "sending", OutboxEmail.claimed_at < now - STALE_CLAIM)
        .values(state="failed", last_error="delivery was interrupted; not retried to avoid a duplicate")
        .execution_options(synchronize_session=False)
    ).rowcount
    if stale:
        log.error("marked %s interrupted outbox emails as failed", stale)
    due = db.session.scalars(
        select(OutboxEmail.id)
        .where(OutboxEmail.state == "pending", OutboxEmail.next_attempt_at <= now)
        .order_by(OutboxEmail.id)
        .limit(limit)
    ).all()
    for outbox_id in due:
        enqueue_delivery(outbox_id)
    commit()
    return len(due)
