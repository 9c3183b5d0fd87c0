"""Background jobs: deferred until commit, then enqueued on rq or run in process.

Jobs are plain functions that take ids, re-read their rows and return quietly when the
work is already done, so a retry or a second delivery is harmless.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import current_app
from redis import Redis
from rq import Queue, Retry

from portal_app.db_events import DEFERRED, READY
from portal_app.extensions import db

QUEUE_NAME = "portico"
log = logging.getLogger(__name__)


def defer(func: Callable[..., Any], *args: Any, retry: Retry | None = None) -> None:
    """Run ``func(*args)`` as a job once the current transaction commits."""
    db.session.info.setdefault(DEFERRED, []).append((func, args, retry))


def defer_once(func: Callable[..., Any], *args: Any, retry: Retry | None = None) -> None:
    """Like ``defer``, but a job already deferred by this transaction is not deferred again."""
    deferred = db.session.info.setdefault(DEFERRED, [])
    if not any(f is func and a == args for f, a, _ in deferred):
        deferred.append((func, args, retry))


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
    for func, args, retry in ready:
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
