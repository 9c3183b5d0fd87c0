"""Run staff's background jobs (bulk updates, imports) a batch at a time, resumable after a crash
(R-REL-2).

Each batch is one transaction that applies its changes and moves the job's cursor, progress,
result and errors with them, under a row lock on the job (``FOR UPDATE SKIP LOCKED``: a second
worker running the same job waits its turn rather than doing a batch twice). A worker killed
mid-batch loses only that uncommitted batch: none of its changes were made and none of its emails
were queued; running the job again (the sweep re-enqueues jobs whose heartbeat stopped) goes on
from the cursor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError

from portal_app.extensions import db
from portal_app.models import InboxItem, Job, utcnow
from portal_app.queue import stop_requested
from portal_app.services.staff_jobs import enqueue_job
from portal_app.transaction import commit

log = logging.getLogger(__name__)
Item = TypeVar("Item")
Outcome = TypeVar("Outcome")

# A running job whose heartbeat is older than this lost its worker: the sweep runs it again.
STALE_JOB = timedelta(minutes=2)


@dataclass(frozen=True)
class JobKind:
    """What a kind of job does at its start, per batch, and how its report is titled."""

    start: Callable[[Job], None]
    run_batch: Callable[[Job], None]
    finished: Callable[[Job], bool]
    title: Callable[[Job], str]
    label: str
    report_kind: str  # the Inbox+ item's kind


class _DryRun(Exception):
    """Ends a dry run's savepoint: its changes go, what it reported stays."""


def in_savepoint(job: Job, work: Callable[[], Outcome]) -> Outcome:
    """Run ``work`` in a savepoint: kept, or rolled back when the job is a dry run. Bulk updates
    and imports check the same way: they do the real work and take it back, so a dry run
    reports exactly what the job would do (what must outlive the rollback goes on the job row)."""
    result: Outcome | None = None
    try:
        with db.session.begin_nested():
            result = work()
            if job.params.get("dry_run"):
                raise _DryRun
    except _DryRun:
        pass
    assert result is not None
    return result


def batch_then_each(
    job: Job,
    items: Sequence[Item],
    apply: Callable[[list[Item]], Outcome],
    *,
    failed: Callable[[Item, DBAPIError], Outcome],
    add: Callable[[Outcome, Outcome], None],
) -> Outcome:
    """One batch with set-based statements; if one item breaks it (a constraint, a deadlock),
    each item on its own, all or nothing, so the others still go in (``failed`` reports it)."""
    try:
        return in_savepoint(job, lambda: apply(list(items)))
    except DBAPIError:
        log.warning("job %s: batch at %s failed; item by item", job.id, job.cursor, exc_info=True)
    total: Outcome | None = None
    for item in items:
        try:
            one = in_savepoint(job, lambda item=item: apply([item]))  # type: ignore[misc]
        except DBAPIError as exc:
            one = failed(item, exc)
        if total is None:
            total = one
        else:
            add(total, one)
    assert total is not None
    return total


def _kinds() -> dict[str, JobKind]:
    # The table the factory installs (portal_app.jobs.catalogue): the same in web and worker.
    return current_app.extensions["portico.job_kinds"]


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
            kind = _kinds()[job.kind]
            if job.state == "queued":
                kind.start(job)
                job.state, job.started_at = "running", utcnow()
            elif kind.finished(job):
                job.state, job.finished_at = "done", utcnow()
                _report_to_inbox(job, kind)
            else:
                kind.run_batch(job)
            job.heartbeat_at = utcnow()
            if stop_requested() and job.state == "running":
                enqueue_job(job_id)  # the worker is stopping (R-OPS-6): another goes on from here
                commit()
                return "handed over"
            commit()
    except DBAPIError:
        db.session.rollback()
        raise  # the database is unwell: rq retries, and the sweep resumes it later
    except Exception as exc:
        db.session.rollback()
        log.exception("job %s failed", job_id)
        _fail(job_id, f"{type(exc).__name__}: {exc}")
        return "failed"


def _fail(job_id: int, error: str) -> None:
    job = db.session.get(Job, job_id)
    if job is None or job.state in ("done", "failed"):
        return
    job.state, job.finished_at = "failed", utcnow()
    job.result = {**(job.result or {}), "failure": error[:500]}
    _report_to_inbox(job, _kinds().get(job.kind))
    commit()


def _report_to_inbox(job: Job, kind: JobKind | None) -> None:
    """The staff user who started the job hears how it went, errors included."""
    label = kind.label if kind else "Job"
    title = f"{label} stopped with an error" if job.state == "failed" or kind is None else kind.title(job)
    lines = []
    for error in job.errors[:50]:
        where = f"row {error['row']}" if error.get("row") else error.get("account_id")
        lines.append(
            " ".join(str(p) for p in (f"- {where}:", error.get("email") or "", error.get("reason")) if p)
        )
    more = len(job.errors) - len(lines)
    body = "\n".join(lines + ([f"… and {more} more (GET /api/v1/jobs/{job.id})"] if more > 0 else []))
    db.session.add(
        InboxItem(
            firm_id=job.firm_id,
            staff_user_id=job.staff_user_id,
            job_id=job.id,
            kind=kind.report_kind if kind else f"{job.kind}_report",
            title=title[:300],
            body=body,
            data={"result": job.result or {}},
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
