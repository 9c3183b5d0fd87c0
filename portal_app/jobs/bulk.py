"""Run staff's background jobs a batch at a time, resumable after a crash (R-REL-2).

Each batch is one transaction that changes whole accounts and moves the job's cursor, progress,
result and errors with them, under a row lock on the job (``FOR UPDATE SKIP LOCKED``: a second
worker running the same job waits its turn rather than doing a batch twice). A worker killed
mid-batch loses only that uncommitted batch: its accounts are untouched and none of its emails
were queued; running the job again (the sweep re-enqueues jobs whose heartbeat stopped) goes on
from the cursor.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from flask import current_app
from rq import Retry
from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError

from portal_app.extensions import db
from portal_app.jobs import defer
from portal_app.models import InboxItem, Job, StaffUser, utcnow
from portal_app.services import bulk
from portal_app.transaction import commit

log = logging.getLogger(__name__)

# A running job whose heartbeat is older than this lost its worker: the sweep runs it again.
STALE_JOB = timedelta(minutes=2)


def enqueue_job(job_id: int) -> None:
    """Run the job after this transaction commits."""
    defer(run_job, job_id, retry=Retry(max=3, interval=[10, 60, 300]))


def run_job(job_id: int) -> str:
    """Work through a job until it is done; return its state ("busy" if another worker has it)."""
    try:
        while True:
            job = db.session.scalar(select(Job).where(Job.id == job_id).with_for_update(skip_locked=True))
            if job is None:
                db.session.rollback()
                return "busy"  # another worker holds it (or it is gone)
            if job.state in ("done", "failed"):
                state = job.state
                commit()
                return state
            if job.targets is None:
                _start(job)
            elif job.cursor >= len(job.targets):
                _finish(job)
            else:
                _run_batch(job)
            commit()
    except DBAPIError:
        db.session.rollback()
        raise  # the database is unwell: rq retries, and the sweep resumes it later
    except Exception as exc:
        db.session.rollback()
        log.exception("job %s failed", job_id)
        _fail(job_id, f"{type(exc).__name__}: {exc}")
        return "failed"


def _start(job: Job) -> None:
    """Resolve the targets (a filter is resolved now, as the job starts) and begin."""
    targets, errors = bulk.resolve_targets(job.firm_id, job.params)
    job.targets = targets
    job.progress_total = len(targets)
    job.errors = errors
    job.result = {**bulk.empty_result(len(targets)), "errors": len(errors)}
    job.state, job.started_at, job.heartbeat_at = "running", utcnow(), utcnow()


def _run_batch(job: Job) -> None:
    size = current_app.config["BULK_BATCH_ACCOUNTS"]
    batch = job.targets[job.cursor : job.cursor + size]
    staff = db.session.get(StaffUser, job.staff_user_id) if job.staff_user_id else None
    try:
        with db.session.begin_nested():
            outcome = bulk.apply_batch(job.firm_id, batch, job.params, staff=staff, dry_run=False)
    except DBAPIError:
        # One account broke the set-based batch (a constraint, a deadlock): apply the batch one
        # account at a time, each all or nothing, so the others still change.
        log.warning("job %s: batch at %s failed; retrying account by account", job.id, job.cursor)
        outcome = bulk.BatchOutcome()
        for account_id in batch:
            try:
                with db.session.begin_nested():
                    one = bulk.apply_batch(job.firm_id, [account_id], job.params, staff=staff, dry_run=False)
            except DBAPIError as exc:
                reason = f"Could not change this account: {type(exc.orig or exc).__name__}."
                outcome.errors.extend(bulk.account_errors(account_id, reason))
                continue
            outcome.report.add(one.report)
            outcome.accounts_changed += one.accounts_changed
            outcome.errors.extend(one.errors)
    job.cursor += len(batch)
    job.result = bulk.add_to_result(job.result, outcome)
    job.errors = [*job.errors, *outcome.errors]
    job.heartbeat_at = utcnow()


def _finish(job: Job) -> None:
    job.state, job.finished_at = "done", utcnow()
    _report_to_inbox(job)


def _fail(job_id: int, error: str) -> None:
    job = db.session.get(Job, job_id)
    if job is None or job.state in ("done", "failed"):
        return
    job.state, job.finished_at = "failed", utcnow()
    job.result = {**(job.result or {}), "failure": error[:500]}
    _report_to_inbox(job)
    commit()


def _report_to_inbox(job: Job) -> None:
    """The staff user who started the job hears how it went, errors included (R-BLK-2)."""
    result: dict[str, Any] = job.result or {}
    if job.state == "failed":
        title = "Bulk update of contact settings stopped with an error"
    else:
        title = (
            f"Bulk update done: {result.get('accounts_changed', 0)} of {result.get('accounts', 0)} accounts "
            f"changed, {result.get('invitations_sent', 0)} invitations sent, {result.get('errors', 0)} errors"
        )
    lines = [
        f"- {e.get('account_id')}: {e.get('email') or ''} {e.get('reason')}".replace("  ", " ")
        for e in job.errors[:50]
    ]
    more = len(job.errors) - len(lines)
    body = "\n".join(lines + ([f"… and {more} more (GET /api/v1/jobs/{job.id})"] if more > 0 else []))
    db.session.add(
        InboxItem(
            firm_id=job.firm_id,
            staff_user_id=job.staff_user_id,
            job_id=job.id,
            kind="bulk_update_report",
            title=title[:300],
            body=body,
            data={"result": result},
        )
    )


def sweep_jobs(stale_after: timedelta = STALE_JOB) -> int:
    """Re-enqueue jobs whose worker vanished (queued or running, no heartbeat lately)."""
    cutoff = utcnow() - stale_after
    ids = db.session.scalars(
        select(Job.id).where(Job.state.in_(("queued", "running")), Job.heartbeat_at < cutoff).order_by(Job.id)
    ).all()
    if ids:
        db.session.execute(
            update(Job)
            .where(Job.id.in_(ids))
            .values(heartbeat_at=utcnow())
            .execution_options(synchronize_session=False)
        )
    for job_id in ids:
        enqueue_job(job_id)
    commit()
    return len(ids)
