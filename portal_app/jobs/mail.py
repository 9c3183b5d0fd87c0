"""Deliver outbox rows in batches, at most once each, and sweep up rows nobody delivered.

A delivery job drains the outbox: it claims a batch of due rows in one statement
(``FOR UPDATE SKIP LOCKED``, so several workers share the queue without overlap), renders them,
sends them over one SMTP connection and records them sent in one statement per batch (R-REL-1).
A claimed row is ``sending`` until then; a worker killed mid-batch leaves its rows ``sending``
and the sweep marks them failed rather than risk a second copy.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from datetime import timedelta

from flask import current_app
from sqlalchemy import select, update

from portal_app import metrics
from portal_app.extensions import db
from portal_app.mail.mime import RenderedEmail
from portal_app.mail.outbox import RETRY_INTERVALS, enqueue_delivery, prefetch_for, render_message
from portal_app.mail.transport import Mailer, PermanentDeliveryError
from portal_app.models import OutboxEmail, utcnow
from portal_app.queue import stop_requested
from portal_app.transaction import commit

log = logging.getLogger(__name__)

# A row claimed longer ago than this was interrupted mid-send (worker killed): the SMTP
# server may already have it, so it is marked failed rather than sent twice.
STALE_CLAIM = timedelta(minutes=15)
BATCH_SIZE = 200
# A drain job hands over to a fresh job after this long, well inside rq's job timeout.
DRAIN_SECONDS = 60


def drain_outbox(outbox_ids: list[int] | None = None, *, batch_size: int = BATCH_SIZE) -> dict[str, int]:
    """Deliver due outbox rows (only ``outbox_ids`` when given) until none is left; return counts
    by outcome (sent, failed, retrying, skipped)."""
    started = time.monotonic()
    totals: Counter[str] = Counter()
    with Mailer() as mailer:  # one SMTP connection for the whole drain, reopened after a failure
        while True:
            claimed = _claim(outbox_ids, batch_size)
            if not claimed:
                break
            totals.update(_deliver(claimed, mailer))
            if outbox_ids is not None:
                break
            if time.monotonic() - started > DRAIN_SECONDS or stop_requested():
                # the rest in a new job: no job runs into rq's timeout, and a worker told to stop
                # (SIGTERM, R-OPS-6) leaves after the batch at hand for another worker to go on
                enqueue_delivery()
                commit()
                break
    for outcome, count in totals.items():
        metrics.EMAILS.labels(outcome).inc(count)
    return dict(totals)


def deliver_outbox_email(outbox_id: int) -> str:
    """Deliver one row now if it is due; return its state, or "skipped" if it was not ours."""
    outcome = drain_outbox([outbox_id])
    if not outcome:
        return "skipped"  # already sent, being sent, failed, not yet due, or gone (R-REL-4)
    state = db.session.scalar(select(OutboxEmail.state).where(OutboxEmail.id == outbox_id))
    return state or "skipped"


def _claim(outbox_ids: list[int] | None, batch_size: int) -> list[int]:
    """Mark a batch of due rows ``sending`` in one statement and commit; return their ids."""
    now = utcnow()
    due = (
        select(OutboxEmail.id)
        .where(OutboxEmail.state == "pending", OutboxEmail.next_attempt_at <= now)
        .order_by(OutboxEmail.id)
        .limit(batch_size)
        .with_for_update(skip_locked=True)
    )
    if outbox_ids is not None:
        due = due.where(OutboxEmail.id.in_(outbox_ids))
    ids = db.session.scalars(
        update(OutboxEmail)
        .where(OutboxEmail.id.in_(due.scalar_subquery()), OutboxEmail.state == "pending")
        .values(state="sending", claimed_at=now, attempts=OutboxEmail.attempts + 1)
        .returning(OutboxEmail.id)
        .execution_options(synchronize_session=False)
    ).all()
    commit()
    return sorted(ids)


def _deliver(ids: list[int], mailer: Mailer) -> Counter[str]:
    outcome: Counter[str] = Counter()
    rows = db.session.scalars(
        select(OutboxEmail).where(OutboxEmail.id.in_(ids)).order_by(OutboxEmail.id)
    ).all()
    loaded = prefetch_for(rows)  # held until the batch is rendered
    ready: list[tuple[int, RenderedEmail]] = []
    dead: list[int] = []
    failures: dict[int, tuple[str, bool]] = {}  # id -> (error, permanent)
    for row in rows:
        try:
            message = render_message(row)
        except Exception as exc:  # one broken row must not hold up the batch
            log.exception("outbox email %s could not be rendered", row.id)
            failures[row.id] = (f"rendering failed: {type(exc).__name__}: {exc}", True)
            continue
        if message is None:
            dead.append(row.id)
        else:
            ready.append((row.id, message))
    del loaded
    if dead:
        _set_state(dead, state="failed", last_error="no longer valid; not sent")
        outcome["skipped"] += len(dead)
    commit()  # whatever rendering recorded (a minted link's digest) is stored before sending
    sent: list[int] = []
    for outbox_id, message in ready:
        try:
            mailer.send(message)
        except PermanentDeliveryError as exc:
            failures[outbox_id] = (str(exc), True)
        except Exception as exc:
            failures[outbox_id] = (f"{type(exc).__name__}: {exc}", False)
        else:
            sent.append(outbox_id)
    if sent:
        _set_state(sent, state="sent", sent_at=utcnow(), last_error="")
        outcome["sent"] += len(sent)
    for outbox_id, (error, permanent) in failures.items():
        outcome[_record_failure(outbox_id, error, permanent=permanent)] += 1
    commit()
    return outcome


def _set_state(ids: list[int], **values: object) -> None:
    db.session.execute(
        update(OutboxEmail)
        .where(OutboxEmail.id.in_(ids), OutboxEmail.state == "sending")
        .values(**values)
        .execution_options(synchronize_session=False)
    )


def _record_failure(outbox_id: int, error: str, *, permanent: bool) -> str:
    """Back to pending with a backoff, or failed for good; return "retrying" or "failed"."""
    attempts = db.session.scalar(select(OutboxEmail.attempts).where(OutboxEmail.id == outbox_id)) or 0
    final = permanent or attempts >= current_app.config["MAIL_MAX_ATTEMPTS"]
    if final:
        _set_state([outbox_id], state="failed", last_error=error[:2000])
        log.error("outbox email %s failed for good: %s", outbox_id, error)
        return "failed"
    delay = RETRY_INTERVALS[min(attempts - 1, len(RETRY_INTERVALS) - 1)]
    retry_at = utcnow() + timedelta(seconds=delay)
    _set_state([outbox_id], state="pending", last_error=error[:2000], next_attempt_at=retry_at)
    log.warning("outbox email %s failed (attempt %s), retrying: %s", outbox_id, attempts, error)
    return "retrying"


def sweep_outbox() -> int:
    """Fail rows stuck mid-send; enqueue a delivery job if rows are due. Return how many are due."""
    now = utcnow()
    stale = db.session.execute(
        update(OutboxEmail)
        .where(OutboxEmail.state == "sending", OutboxEmail.claimed_at < now - STALE_CLAIM)
        .values(state="failed", last_error="delivery was interrupted; not retried to avoid a duplicate")
        .execution_options(synchronize_session=False)
    ).rowcount
    if stale:
        log.error("marked %s interrupted outbox emails as failed", stale)
    due = db.session.scalar(
        select(db.func.count())
        .select_from(OutboxEmail)
        .where(OutboxEmail.state == "pending", OutboxEmail.next_attempt_at <= now)
    )
    if due:
        enqueue_delivery()
    commit()
    return int(due or 0)
