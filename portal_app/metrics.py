"""Prometheus metrics (R-OPS-4), with prometheus-client in multiprocess mode.

Counters and the latency histogram live in this module. With ``PROMETHEUS_MULTIPROC_DIR`` set in
the environment of every gunicorn and rq worker process (it must be set before the process
starts: prometheus-client picks its storage when it is imported), each process writes its
values to files there and ``/metrics`` adds them up; gunicorn's ``child_exit`` hook marks a dead
worker's gauges (see gunicorn.conf.py). Without it (``make run``, one process) values live in
memory.

What needs a query is not kept in any process: outbox rows by state and the oldest pending row's
age, Portico jobs by kind and state, and rq's queue depth and failed jobs are read when
Prometheus scrapes, one statement (or one Redis round trip) each.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

REQUESTS = Counter("portico_http_requests_total", "HTTP requests answered.", ["endpoint", "method", "status"])
LATENCY = Histogram(
    "portico_http_request_duration_seconds",
    "Time to answer an HTTP request.",
    ["endpoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
EMAILS = Counter("portico_emails_total", "Emails handed to the SMTP server, or failed for good.", ["outcome"])
INBOUND = Counter("portico_inbound_messages_total", "Inbound messages by what became of them.", ["outcome"])
SIGN_INS = Counter(
    "portico_sign_ins_total", "Sign-in attempts (password and code steps).", ["who", "outcome"]
)
RATE_LIMITED = Counter("portico_rate_limited_total", "Requests refused by a rate limit (429).", ["endpoint"])
JOB_RUNS = Counter(
    "portico_rq_jobs_total", "rq jobs run by the workers, by function and outcome.", ["job", "outcome"]
)


class ScrapeTimeCollector(Collector):
    """Gauges read from PostgreSQL and Redis at scrape time, one statement each."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from portal_app.extensions import db

        with self.app.app_context():
            try:
                yield from self._outbox(db)
                yield from self._jobs(db)
            finally:
                db.session.remove()
            yield from self._queue()

    def _outbox(self, db: Any) -> Iterator[GaugeMetricFamily]:
        from sqlalchemy import case, func, select

        from portal_app.models import OutboxEmail

        first_pending = func.min(case((OutboxEmail.state == "pending", OutboxEmail.created_at)))
        rows = db.session.execute(
            select(OutboxEmail.state, func.count(), first_pending).group_by(OutboxEmail.state)
        ).all()
        by_state = GaugeMetricFamily("portico_outbox_emails", "Outbox rows by state.", labels=["state"])
        counts = {state: 0 for state in ("pending", "sending", "sent", "failed")}
        oldest = None
        for state, count, first_pending in rows:
            counts[state] = count
            oldest = first_pending or oldest
        for state, count in counts.items():
            by_state.add_metric([state], count)
        yield by_state
        age = GaugeMetricFamily(
            "portico_outbox_oldest_pending_seconds", "Age of the oldest pending outbox row (0: none)."
        )
        age.add_metric([], _age_seconds(oldest))
        yield age

    def _jobs(self, db: Any) -> Iterator[GaugeMetricFamily]:
        from sqlalchemy import func, select

        from portal_app.models import Job

        family = GaugeMetricFamily(
            "portico_jobs",
            "Portico jobs (bulk updates, imports) by kind and state.",
            labels=["kind", "state"],
        )
        for kind, state, count in db.session.execute(
            select(Job.kind, Job.state, func.count()).group_by(Job.kind, Job.state)
        ).all():
            family.add_metric([kind, state], count)
        yield family

    def _queue(self) -> Iterator[GaugeMetricFamily]:
        if not self.app.config["REDIS_URL"]:
            return
        from rq import Queue
        from rq.registry import FailedJobRegistry, StartedJobRegistry

        from portal_app.queue import QUEUE_NAME

        with self.app.app_context():
            from portal_app.queue import get_redis

            redis = get_redis()
            queue = Queue(QUEUE_NAME, connection=redis)
            pipe = redis.pipeline()
            pipe.llen(queue.key)
            pipe.zcard(StartedJobRegistry(queue=queue).key)
            pipe.zcard(FailedJobRegistry(queue=queue).key)
            queued, started, failed = pipe.execute()
        for name, help_text, value in (
            ("portico_rq_queued_jobs", "Jobs waiting in the rq queue.", queued),
            ("portico_rq_started_jobs", "Jobs running now.", started),
            ("portico_rq_failed_jobs", "Jobs in rq's failed registry.", failed),
        ):
            gauge = GaugeMetricFamily(name, help_text)
            gauge.add_metric([], value)
            yield gauge


def _age_seconds(moment: Any) -> float:
    if moment is None:
        return 0.0
    from portal_app.models import utcnow

    if moment.tzinfo is None:
        from datetime import UTC

        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (utcnow() - moment).total_seconds())


def exposition(app: Any) -> bytes:
    """The text format of every process's values plus the scrape-time gauges."""
    registry = CollectorRegistry()
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry, path=path)
    else:  # one process: its own values, without the default registry's process metrics
        for collector in (REQUESTS, LATENCY, EMAILS, INBOUND, SIGN_INS, RATE_LIMITED, JOB_RUNS):
            registry.register(collector)
    registry.register(ScrapeTimeCollector(app))
    return generate_latest(registry)


def mark_process_dead(pid: int) -> None:
    """gunicorn's child_exit: a dead worker's live gauges stop counting (its counters stay)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
