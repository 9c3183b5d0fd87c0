"""Commands for the outbox, the rq worker and the periodic scheduler."""

from __future__ import annotations

import time
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext
from rq import Queue, SimpleWorker
from rq.job import Job

from portal_app.extensions import db
from portal_app.queue import QUEUE_NAME, get_redis, request_stop

outbox_cli = AppGroup("outbox", help="The email outbox.")

SWEEP_INTERVAL_SECONDS = 60


@outbox_cli.command("sweep")
def outbox_sweep() -> None:
    """Re-enqueue unsent outbox rows (also run every minute by `cron`)."""
    from portal_app.jobs.mail import sweep_outbox

    count = sweep_outbox()
    click.echo(f"Re-enqueued {count} unsent email(s).")


class AppContextMixin:
    """Run every job inside the Flask app's context, with a fresh database session."""

    app: Flask

    def perform_job(self, job: Job, queue: Queue) -> bool:
        from flask import g

        from portal_app.request_log import log_job

        with self.app.app_context():
            # the request that enqueued this job names it; the jobs this one enqueues inherit it
            g.request_id = (job.meta or {}).get("request_id")
            started = time.perf_counter()
            ok = False
            try:
                ok = super().perform_job(job, queue)  # type: ignore[misc]
                return ok
            finally:
                db.session.remove()
                log_job(
                    job.func_name, job.id, time.perf_counter() - started, "finished" if ok else "failed",
                    g.request_id,
                )


class AppWorker(AppContextMixin, SimpleWorker):
    """The production worker: every job in this warm process, not in a forked work horse.

    Forking a cold child per job reloaded the Babel catalogues, recompiled the Jinja email
    templates and SQLAlchemy statements and opened new connections for every email; here they
    stay warm across jobs. rq still enforces job timeouts (by signal, in this process); a worker
    killed mid-job leaves its outbox rows ``sending`` for the sweep (at most once, R-REL-1)."""

    def request_stop(self, signum: Any, frame: Any) -> None:
        """SIGTERM (R-OPS-6): rq lets the job at hand finish; Portico's long jobs see the flag,
        finish their batch, enqueue the rest and return, so the worker exits within seconds."""
        request_stop()
        super().request_stop(signum, frame)


def _require_redis(app: Flask) -> None:
    if not app.config["REDIS_URL"]:
        raise click.ClickException("REDIS_URL is not set: jobs run in process in the embedded default.")


@click.command("worker")
@click.option("--burst", is_flag=True, help="Drain the queue, then exit.")
@click.option("--max-jobs", type=click.IntRange(min=1), default=None, help="Exit after this many jobs.")
@with_appcontext
def worker_command(burst: bool, max_jobs: int | None) -> None:
    """Run an rq worker on queue 'portico' (with rq's scheduler for retries)."""
    app: Any = current_app._get_current_object()  # type: ignore[attr-defined]
    _require_redis(app)
    worker = AppWorker([Queue(QUEUE_NAME, connection=get_redis())], connection=get_redis())
    worker.app = app
    worker.work(burst=burst, with_scheduler=True, max_jobs=max_jobs)


# The scheduler wakes at least this often for reminders and the weekly email, so "Monday 09:00"
# means 09:00-09:05 local time (SPEC §14 asks for at most 15 minutes).
PERIODIC_INTERVAL_SECONDS = 300


@click.group("cron", invoke_without_command=True)
@click.pass_context
@with_appcontext
def cron_command(ctx: click.Context) -> None:
    """Run the periodic jobs through rq's CronScheduler (sweeps, reminders and the weekly email,
    the mailbox poll when INBOUND_IMAP_URL is set). Run one per host: the one holding the lease
    leads, the others wait to take over (R-OPS-1)."""
    if ctx.invoked_subcommand is not None:
        return
    from rq.cron import CronScheduler

    from portal_app.jobs.mail import sweep_outbox
    from portal_app.jobs.periodic import run_due
    from portal_app.jobs.staff_jobs import sweep_jobs

    _require_redis(current_app)  # type: ignore[arg-type]
    scheduler = CronScheduler(connection=get_redis(), name="portico-cron")
    scheduler.register(sweep_outbox, queue_name=QUEUE_NAME, interval=SWEEP_INTERVAL_SECONDS)
    scheduler.register(sweep_jobs, queue_name=QUEUE_NAME, interval=SWEEP_INTERVAL_SECONDS)
    scheduler.register(run_due, queue_name=QUEUE_NAME, interval=PERIODIC_INTERVAL_SECONDS)
    if current_app.config.get("INBOUND_IMAP_URL"):
        from portal_app.jobs.mail_poll import poll_configured_mailbox

        scheduler.register(poll_configured_mailbox, queue_name=QUEUE_NAME, interval=SWEEP_INTERVAL_SECONDS)
    url = _lease_url()
    if url is None:
        click.echo("The database is not PostgreSQL: no lease, so run exactly one cron.", err=True)
        scheduler.start()
        return
    _lead_while_leader(scheduler, url)


def _lease_url() -> str | None:
    """Where the lease lives: the direct connection (never a transaction-mode PgBouncer)."""
    url = current_app.config.get("DATABASE_DIRECT_URL") or ""
    if current_app.config.get("DATABASE_POOL_MODE") == "transaction" and not url:
        raise click.ClickException(
            "DATABASE_POOL_MODE=transaction: set DATABASE_DIRECT_URL (PostgreSQL itself, not PgBouncer) "
            "for the cron's lease."
        )
    return url if url.startswith("postgresql") else None


def _lead_while_leader(scheduler: Any, url: str) -> None:
    import signal

    from portal_app.jobs.cron_leader import Lease, lead

    stop: list[int] = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda number, frame: stop.append(number))
    lease = Lease(url)
    born: list[bool] = []

    def tick() -> float:
        if not born:
            scheduler.register_birth()
            born.append(True)
        if scheduler.enqueue_jobs():
            scheduler.save()
        scheduler.heartbeat()
        return scheduler.calculate_sleep_interval()

    click.echo(f"Cron on {lease.host} (pid {lease.pid}): waiting for the lease, or leading.")
    try:
        lead(lease, tick, lambda: bool(stop))
    finally:
        if born:
            scheduler.register_death()


@cron_command.command("status")
@with_appcontext
def cron_status() -> None:
    """Print the cron process that leads (host, pid, since), or that none does."""
    from portal_app.jobs.cron_leader import current_leader

    url = _lease_url()
    if url is None:
        raise click.ClickException("The database is not PostgreSQL: there is no lease to read.")
    leader = current_leader(url)
    if leader is None:
        click.echo("No leader: no cron process holds the lease; periodic jobs are not being scheduled.")
        raise SystemExit(1)
    click.echo(f"Leader: {leader.describe()}")


@cron_command.command("run-due")
@click.option("--at", "at", default=None, help="The instant, ISO 8601 with offset (default: now).")
@with_appcontext
def cron_run_due(at: str | None) -> None:
    """Run once every periodic job due at that instant, then exit (safe to repeat)."""
    from portal_app.jobs.periodic import parse_instant, run_due

    if at is not None:
        try:
            parse_instant(at)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--at") from None
    done = run_due(at)
    click.echo(
        f"Reminders: {done['reminders']} email(s); weekly: {done['weekly']} email(s); "
        f"outbox: {done['outbox']} due; jobs re-enqueued: {done['jobs']}."
    )


mail_cli = AppGroup("mail", help="Inbound email.")


@mail_cli.command("poll")
def mail_poll() -> None:
    """Fetch new messages from INBOUND_IMAP_URL once (R-SYN-4); also scheduled by `cron`."""
    from portal_app.jobs.mail_poll import MailboxError, mailbox_firm, poll

    url = current_app.config.get("INBOUND_IMAP_URL")
    if not url:
        raise click.ClickException("INBOUND_IMAP_URL is not set.")
    try:
        result = poll(url, mailbox_firm(current_app.config.get("INBOUND_IMAP_FIRM")))
    except MailboxError as exc:
        raise click.ClickException(f"{exc} (nothing was marked seen; the next run tries again)") from None
    click.echo(
        f"Fetched {result.fetched}: stored {result.stored}, already stored {result.duplicate}, "
        f"not from a synced address {result.ignored}, unreadable {result.unreadable}, "
        f"failed {result.failed} (left unseen)."
    )
    if result.failed:
        raise SystemExit(1)
