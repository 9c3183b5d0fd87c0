"""Deliver outbox rows in batches, at most once each, and sweep up rows nobody delivered.

A delivery job drains the outbox: it claims a batch of due rows in one statement
(``FOR UPDATE SKIP LOCKED``, so several workers share the queue without overlap), renders them,
sends them over one SMTP connection in id order and records them sent every few emails (R-REL-1).
A claimed row is ``sending`` until then; of the rows a worker killed mid-batch leaves ``sending``,
the sweep fails the few that may have reached the SMTP server rather than risk a second copy, and
queues the ones it never tried again (see MARK_SENT).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import Connection, select, text, update

from portal_app import metrics
from portal_app.extensions import db
from portal_app.mail.mime import RenderedEmail
from portal_app.mail.outbox import RETRY_INTERVALS, enqueue_delivery, prefetch_for, render_message
from portal_app.mail.transport import Mailer, PermanentDeliveryError
from portal_app.models import OutboxEmail, utcnow
from portal_app.queue import stop_requested
from portal_app.transaction import commit

log = logging.getLogger(__name__)

# A claim not renewed for this long was interrupted (its worker died): a sending worker renews it
# every RENEW_SECONDS, and one SMTP command gives up after 30 s.
STALE_CLAIM = timedelta(minutes=3)
BATCH_SIZE = 200
# A drain job hands over to a fresh job after this long, well inside rq's job timeout.
DRAIN_SECONDS = 60


def drain_outbox(outbox_ids: list[int] | None = None, *, batch_size: int = BATCH_SIZE) -> dict[str, int]:
    """Deliver due outbox rows (only ``outbox_ids`` when given) until none is left; return counts
    by outcome (sent, failed, retrying, skipped)."""
    started = time.monotonic()
    totals: Counter[str] = Counter()
    # one SMTP connection for the whole drain (reopened after a failure), one connection for marks
    with Mailer() as mailer, SentMarks() as marks:
        while True:
            claimed = _claim(outbox_ids, batch_size)
            if not claimed:
                break
            totals.update(_deliver(claimed, mailer, marks))
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


def _deliver(ids: list[int], mailer: Mailer, marks: SentMarks) -> Counter[str]:
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
    marks.start([outbox_id for outbox_id, _ in ready])
    commit()  # whatever rendering recorded (a minted link's digest) is stored before sending
    marks.begin()
    for outbox_id, message in ready:
        try:
            mailer.send(message)
        except PermanentDeliveryError as exc:
            failures[outbox_id] = (str(exc), True)
        except Exception as exc:
            failures[outbox_id] = (f"{type(exc).__name__}: {exc}", False)
        else:
            marks.add(outbox_id)
            outcome["sent"] += 1
    marks.finish()
    for outbox_id, (error, permanent) in failures.items():
        outcome[_record_failure(outbox_id, error, permanent=permanent)] += 1
    commit()
    return outcome


# How an accepted email is recorded. A batch is sent in id order. On PostgreSQL, one autocommitted
# statement on a connection of its own stamps the claim when sending begins (``sent_at`` on a
# ``sending`` row: its batch has begun sending), marks the accepted emails every MARK_EVERY (or
# MARK_SECONDS), and renews the claim every RENEW_SECONDS. A worker that dies (SIGKILL, a lost
# host) before sending leaves its claim unstamped: all of it is queued again. One that dies
# mid-batch leaves, in id order, at most MARK_EVERY undecided rows (accepted but not yet marked, or
# on the wire) and then rows it never tried: the sweep fails the first (never sent twice) and
# queues the others again (never lost). The statements do not wait for the disk
# (``synchronous_commit`` off, for that statement's transaction only): a crash that lost one would
# only leave its rows undecided.
MARK_EVERY = 10
MARK_SECONDS = 0.5
RENEW_SECONDS = 10.0
MARK_SENT = text(
    "WITH quick AS (SELECT set_config('synchronous_commit', 'off', true))"
    " UPDATE outbox_emails SET state = 'sent', sent_at = :now, last_error = ''"
    " FROM quick WHERE id = ANY(:sent) AND state = 'sending'"
)
RENEW_CLAIM = text(
    "WITH quick AS (SELECT set_config('synchronous_commit', 'off', true))"
    " UPDATE outbox_emails SET claimed_at = :now, sent_at = :now"
    " FROM quick WHERE id = ANY(:claim) AND state = 'sending'"
)


class SentMarks:
    """Marks accepted emails as sent: on PostgreSQL as they go (see MARK_SENT), elsewhere (SQLite,
    one in-process worker) with the rest of the batch's outcomes."""

    def __init__(self) -> None:
        self.sent: list[int] = []
        self.claim: list[int] = []
        self.marked_at = self.renewed_at = time.monotonic()
        self.connection: Connection | None = None
        if db.session.get_bind().dialect.name == "postgresql":
            self.connection = db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")

    def __enter__(self) -> SentMarks:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.connection is not None:
            self.connection.close()

    def start(self, claim: list[int]) -> None:
        """Sending this claim is about to begin: on SQLite the stamp goes into the session, for
        the caller's commit before sending; on PostgreSQL ``begin`` stamps it after that commit."""
        self.claim, self.sent = claim, []
        if self.connection is None and claim:
            _set_state(claim, sent_at=utcnow())

    def begin(self) -> None:
        """The session has committed (it holds no row of the claim): stamp the claim."""
        self.marked_at = self.renewed_at = time.monotonic()
        if self.connection is not None and self.claim:
            self.connection.execute(RENEW_CLAIM, {"now": utcnow(), "claim": self.claim})

    def add(self, outbox_id: int) -> None:
        self.sent.append(outbox_id)
        if self.connection is None:
            return
        now = time.monotonic()
        if len(self.sent) >= MARK_EVERY or now - self.marked_at >= MARK_SECONDS:
            self._mark()
        if now - self.renewed_at >= RENEW_SECONDS:
            self.connection.execute(RENEW_CLAIM, {"now": utcnow(), "claim": self.claim})
            self.renewed_at = now

    def _mark(self) -> None:
        assert self.connection is not None
        if self.sent:
            self.connection.execute(MARK_SENT, {"now": utcnow(), "sent": self.sent})
        self.sent, self.marked_at = [], time.monotonic()

    def finish(self) -> None:
        """The batch is done: what is left is marked (the caller commits the session)."""
        if self.connection is not None:
            self._mark()
        elif self.sent:
            _set_state(self.sent, state="sent", sent_at=utcnow(), last_error="")
            self.sent = []


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
    """Settle rows stuck mid-send; enqueue a delivery job if rows are due. Return how many are due."""
    now = utcnow()
    _settle_interrupted(now)
    due = db.session.scalar(
        select(db.func.count())
        .select_from(OutboxEmail)
        .where(OutboxEmail.state == "pending", OutboxEmail.next_attempt_at <= now)
    )
    if due:
        enqueue_delivery()
    commit()
    return int(due or 0)


def _settle_interrupted(now: datetime) -> None:
    """Rows of a claim whose worker stopped renewing it (it died). A claim that had begun sending
    (stamped ``sent_at``): the first MARK_EVERY in id order may have reached the SMTP server, so
    they fail (never sent twice); the rest were never tried, so they are due again (never lost),
    as is all of a claim that had not begun. See MARK_SENT."""
    stuck = db.session.execute(
        select(OutboxEmail.id, OutboxEmail.claimed_at, OutboxEmail.sent_at)
        .where(OutboxEmail.state == "sending", OutboxEmail.claimed_at < now - STALE_CLAIM)
        .order_by(OutboxEmail.claimed_at, OutboxEmail.id)
    ).all()
    claims: dict[object, list[int]] = {}
    untried: list[int] = []
    for outbox_id, claimed_at, began in stuck:
        if began is None:
            untried.append(outbox_id)
        else:
            claims.setdefault(claimed_at, []).append(outbox_id)
    # elsewhere (SQLite) a batch is marked at its end: all of a begun claim is undecided
    window = MARK_EVERY if db.session.get_bind().dialect.name == "postgresql" else None
    undecided = [i for ids in claims.values() for i in ids[:window]]
    untried += [i for ids in claims.values() for i in ids[window:]] if window else []
    if undecided:
        interrupted = "delivery was interrupted; not retried to avoid a duplicate"
        _set_state(undecided, state="failed", last_error=interrupted)
        log.error("marked %s interrupted outbox emails as failed", len(undecided))
    if untried:
        _set_state(untried, state="pending", next_attempt_at=now, sent_at=None, last_error="")
        log.warning("queued %s outbox emails again that an interrupted worker never tried", len(untried))
