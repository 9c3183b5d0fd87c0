"""The job queue: jobs deferred by a transaction, released by its commit, then enqueued on rq
or run in process.

This is the lowest job module: services defer, the edge (``transaction.commit``) dispatches,
and nothing here imports a job. Jobs are plain functions that take ids, re-read their rows and
return quietly when the work is already done, so a retry or a second delivery is harmless.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from flask import current_app
from redis import Redis
from rq import Queue, Retry
from sqlalchemy import event
from sqlalchemy.orm import Session

from portal_app.extensions import db

QUEUE_NAME = "portico"
DEFERRED = "portico.deferred_jobs"
READY = "portico.ready_jobs"
log = logging.getLogger(__name__)
_stopping = threading.Event()


def request_stop() -> None:
    """The worker got SIGTERM (R-OPS-6): long jobs finish the batch at hand, then hand over."""
    _stopping.set()


def stop_requested() -> bool:
    """True once this worker is stopping: a job between batches enqueues the rest and returns."""
    return _stopping.is_set()


def init_app() -> None:
    """Jobs deferred by a transaction are released by its commit and dropped by its rollback."""
    for name, listener in (("after_commit", _release_deferred_jobs), ("after_rollback", _drop_deferred_jobs)):
        if not event.contains(Session, name, listener):
            event.listen(Session, name, listener)


def _release_deferred_jobs(session: Session) -> None:
    deferred = session.info.pop(DEFERRED, None)
    if deferred:
        session.info.setdefault(READY, []).extend(deferred)


def _drop_deferred_jobs(session: Session) -> None:
    # The rows the jobs would read were never committed: the jobs must not run.
    session.info.pop(DEFERRED, None)


# A job is a function, or the name of one in the app's job table (portal_app.jobs.catalogue):
# a module below the jobs (a service, the outbox) names the job it needs instead of importing it.
JobRef = Callable[..., Any] | str


def defer(job: JobRef, *args: Any, retry: Retry | None = None) -> None:
    """Run ``job(*args)`` once the current transaction commits."""
    db.session.info.setdefault(DEFERRED, []).append((job, args, retry))


def defer_once(job: JobRef, *args: Any, retry: Retry | None = None) -> None:
    """Like ``defer``, but a job already deferred by this transaction is not deferred again."""
    deferred = db.session.info.setdefault(DEFERRED, [])
    if not any(j == job and a == args for j, a, _ in deferred):
        deferred.append((job, args, retry))


def _resolve(job: JobRef) -> Callable[..., Any]:
    return current_app.extensions["portico.jobs"][job] if isinstance(job, str) else job


def get_redis() -> Redis:
    """Return the app's Redis connection (REDIS_URL)."""
    ext = current_app.extensions
    if "portico.redis" not in ext:
        ext["portico.redis"] = Redis.from_url(
            current_app.config["REDIS_URL"], socket_connect_timeout=2, socket_timeout=5
        )
    return ext["portico.redis"]


def get_queue() -> Queue:
    """Return the rq queue every job goes to."""
    ext = current_app.extensions
    if "portico.queue" not in ext:
        ext["portico.queue"] = Queue(QUEUE_NAME, connection=get_redis())
    return ext["portico.queue"]


def dispatch_ready_jobs() -> None:
    """Hand committed jobs to rq, or run them here in the embedded default."""
    ready = db.session.info.pop(READY, None)
    if not ready:
        return
    inline = current_app.config["JOBS_INLINE"]
    for job, args, retry in ready:
        func = _resolve(job)
        if inline:
            _run_inline(func, args)
        else:
            _enqueue(func, args, retry)


def _request_id() -> str | None:
    """The id of the request (or the job) this job comes from, for its log line (R-OPS-5)."""
    from flask import g, has_app_context

    return g.get("request_id") if has_app_context() else None


def _enqueue(func: Callable[..., Any], args: tuple[Any, ...], retry: Retry | None) -> None:
    try:
        get_queue().enqueue(func, *args, retry=retry, meta={"request_id": _request_id()})
    except Exception:  # Redis down: the committed outbox row waits for the sweep (R-REL-1).
        log.warning("could not enqueue %s%r; the periodic sweep will pick it up", func.__name__, args)


def _run_inline(func: Callable[..., Any], args: tuple[Any, ...]) -> None:
    try:
        func(*args)
    except Exception:
        db.session.rollback()
        log.exception("in-process job %s%r failed", func.__name__, args)
    # A job may defer further jobs; they run now, in order.
    dispatch_ready_jobs()
