"""The outbox, rq jobs and SMTP delivery (R-REL-1, R-REL-4; issue 2 §5)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue
from sqlalchemy import select, update

from portal_app.extensions import db
from portal_app.jobs.mail import deliver_outbox_email, drain_outbox, sweep_outbox
from portal_app.mail.outbox import outbox_row, queue_email
from portal_app.models import OutboxEmail, utcnow
from portal_app.queue import QUEUE_NAME
from portal_app.transaction import commit
from tests.conftest import free_port, in_app, run_worker, worker_env

ROOT = Path(__file__).resolve().parents[1]


def _queue_plain(firm_id: int | None = None, to: str = "client@example.com", body: str = "Hello") -> int:
    row = queue_email(
        outbox_row(
            firm_id=firm_id,
            kind="plain",
            to_address=to,
            subject="Your documents",
            template="plain",
            context={"body": body},
        )
    )
    return row.id


def _outbox(session, outbox_id: int) -> OutboxEmail:
    return session.scalar(
        select(OutboxEmail).where(OutboxEmail.id == outbox_id).execution_options(populate_existing=True)
    )


def _queued(redis_url: str) -> int:
    return len(Queue(QUEUE_NAME, connection=Redis.from_url(redis_url)))


def test_r_rel_1_outbox_row_and_job_vanish_with_a_rolled_back_change(app, redis_url):
    with in_app(app) as session:
        _queue_plain()
        session.rollback()
        commit()
        assert session.scalars(select(OutboxEmail)).all() == []
    assert _queued(redis_url) == 0


def test_r_rel_1_job_is_enqueued_only_after_commit(app, redis_url):
    with in_app(app):
        _queue_plain()
        assert _queued(redis_url) == 0  # flushed, not committed: no job yet
        commit()
        assert _queued(redis_url) == 1


@pytest.mark.settings(MAIL_URL=None)
def test_r_rel_1_worker_delivers_outbox_email_over_smtp(app, redis_url, smtp):
    app.config["MAIL_URL"] = smtp.url
    firm = None
    with in_app(app):
        outbox_id = _queue_plain(firm, body="Your tax return is ready <b>now</b>")
        commit()
    run_worker(app)
    [message] = smtp.wait_for(1)
    assert message["To"] == "client@example.com" and message["Subject"] == "Your documents"
    assert "Your tax return is ready" in message.get_body(("plain",)).get_content()
    assert "&lt;b&gt;now&lt;/b&gt;" in message.get_body(("html",)).get_content()  # escaped in HTML
    with in_app(app) as session:
        row = _outbox(session, outbox_id)
        assert (row.state, row.attempts) == ("sent", 1)


def test_r_rel_1_delivered_at_most_once_even_if_the_job_runs_twice(app, smtp):
    app.config["MAIL_URL"] = smtp.url
    app.config["JOBS_INLINE"] = True
    with in_app(app):
        outbox_id = _queue_plain()
        commit()  # runs the job in process
        assert deliver_outbox_email(outbox_id) == "skipped"
    assert len(smtp.wait_for(2, timeout=0.5)) == 1


def test_r_rel_1_email_survives_redis_being_down_and_the_sweep_delivers_it(app, redis_url, smtp):
    app.config["MAIL_URL"] = smtp.url
    dead = f"redis://127.0.0.1:{free_port()}/0"
    app.config["REDIS_URL"] = dead
    app.extensions.pop("portico.redis", None)
    app.extensions.pop("portico.queue", None)
    with in_app(app) as session:
        outbox_id = _queue_plain()
        commit()  # Redis is unreachable: the change and its outbox row still commit
        assert _outbox(session, outbox_id).state == "pending"
    app.config["REDIS_URL"] = redis_url
    app.extensions.pop("portico.redis", None)
    app.extensions.pop("portico.queue", None)
    with in_app(app):
        assert sweep_outbox() == 1
    run_worker(app)
    assert len(smtp.wait_for(1)) == 1
    with in_app(app) as session:
        assert _outbox(session, outbox_id).state == "sent"


@pytest.mark.settings(MAIL_MAX_ATTEMPTS=2)
def test_r_rel_1_smtp_failures_retry_with_backoff_then_end_failed(app):
    app.config["MAIL_URL"] = f"smtp://127.0.0.1:{free_port()}"  # nothing listens there
    with in_app(app) as session:
        outbox_id = _queue_plain()
        session.commit()
        assert deliver_outbox_email(outbox_id) == "pending"  # back in line, with a backoff
        row = _outbox(session, outbox_id)
        assert (row.state, row.attempts) == ("pending", 1)
        assert (
            row.next_attempt_at > utcnow() + timedelta(seconds=10)
            and "ConnectionRefusedError" in row.last_error
        )
        assert sweep_outbox() == 0  # not yet due: the backoff holds
        session.execute(update(OutboxEmail).values(next_attempt_at=utcnow()))
        session.commit()
        assert deliver_outbox_email(outbox_id) == "failed"
        row = _outbox(session, outbox_id)
        assert (row.state, row.attempts) == ("failed", 2)


def test_permanent_smtp_refusal_fails_at_once(app, smtp):
    app.config["MAIL_URL"] = smtp.url
    with in_app(app) as session:
        outbox_id = _queue_plain(to="reject-me@example.com")
        session.commit()
        assert deliver_outbox_email(outbox_id) == "failed"
        row = _outbox(session, outbox_id)
        assert row.attempts == 1 and "550" in row.last_error


def test_sweep_fails_rows_stuck_mid_send_instead_of_sending_twice(app):
    with in_app(app) as session:
        outbox_id = _queue_plain()
        session.commit()
        gone = utcnow() - timedelta(hours=1)  # its batch had begun sending (sent_at stamps that)
        session.execute(update(OutboxEmail).values(state="sending", claimed_at=gone, sent_at=gone))
        session.commit()
        assert sweep_outbox() == 0
        row = _outbox(session, outbox_id)
        assert row.state == "failed" and "interrupted" in row.last_error


def test_r_rel_1_a_batch_cut_off_mid_send_fails_only_what_may_have_gone_and_queues_the_untried(app):
    """A worker that dies leaves its claims ``sending``. One that had begun sending (stamped): it
    sent in id order and, on PostgreSQL, marked every MARK_EVERY emails, so only the first
    MARK_EVERY of what it left may have reached the SMTP server: those fail (never twice), the rest
    are due again (never lost). One that had not begun is due again whole. (SQLite marks a batch at
    its end: all of a begun claim fails.)"""
    from portal_app.jobs.mail import MARK_EVERY, STALE_CLAIM

    with in_app(app) as session:
        begun = [_queue_plain(to=f"client{n}@example.com") for n in range(MARK_EVERY + 7)]
        unbegun = [_queue_plain(to=f"later{n}@example.com") for n in range(3)]
        fresh = _queue_plain(to="busy-worker@example.com")
        session.commit()
        dead = utcnow() - STALE_CLAIM - timedelta(seconds=1)
        older = dead - timedelta(seconds=5)
        claim = update(OutboxEmail).where(OutboxEmail.id.in_(begun))
        session.execute(claim.values(state="sending", claimed_at=dead, sent_at=dead))
        session.execute(update(OutboxEmail).where(OutboxEmail.id.in_(begun[:3])).values(state="sent"))
        session.execute(
            update(OutboxEmail).where(OutboxEmail.id.in_(unbegun)).values(state="sending", claimed_at=older)
        )
        session.execute(
            update(OutboxEmail).where(OutboxEmail.id == fresh).values(state="sending", claimed_at=utcnow())
        )
        session.commit()
        postgresql = session.get_bind().dialect.name == "postgresql"
        left = begun[3:]
        window = MARK_EVERY if postgresql else len(left)
        assert sweep_outbox() == len(left) - window + len(unbegun)  # what is due again
        states = dict(session.execute(select(OutboxEmail.id, OutboxEmail.state)).all())
    assert [states[i] for i in left[:window]] == ["failed"] * window
    # queued again (the embedded default's in-process job may already have sent them)
    assert {states[i] for i in [*left[window:], *unbegun]} <= {"pending", "sent"}
    assert states[fresh] == "sending"  # a live worker's claim is left alone


def test_embedded_default_runs_jobs_in_process_and_shows_mail_at_dev_mail(app, client):
    with in_app(app):
        _queue_plain(body="Hello from the firm")
        commit()
    index = client.get("/dev/mail")
    assert index.status_code == 200 and b"Your documents" in index.data
    name = sorted(Path(app.config["DEV_MAIL_DIR"]).glob("*.eml"))[0].name
    page = client.get(f"/dev/mail/{name}")
    assert page.status_code == 200 and b"Hello from the firm" in page.data
    assert client.get("/dev/mail/..%2Fsecret_key").status_code == 404


def test_dev_mail_is_not_served_in_production(tmp_path):
    from portal_app import create_app

    env = {
        "PORTICO_ENV": "production",
        "SECRET_KEY": "p" * 48,
        "DATABASE_URL": "sqlite:///" + str(tmp_path / "x.db"),
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "MAIL_URL": "smtp://127.0.0.1:25",
    }
    production = create_app({"ENV": env})
    assert production.test_client().get("/dev/mail").status_code == 404


def test_flask_worker_burst_command_delivers(app, redis_url, smtp, database_url):
    """The real `flask --app wsgi worker --burst` process drains the queue."""
    app.config["MAIL_URL"] = smtp.url
    with in_app(app):
        outbox_id = _queue_plain()
        commit()
    env = worker_env(app, database_url, redis_url, smtp.url)
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "worker", "--burst"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(smtp.wait_for(1)) == 1
    with in_app(app) as session:
        assert _outbox(session, outbox_id).state == "sent"
        db.session.remove()


def test_cron_command_enqueues_the_sweeps_and_the_periodic_run(app, redis_url, database_url, tmp_path):
    """`flask --app wsgi cron` schedules the sweeps and `run_due` (reminders, weekly email) on
    queue 'portico' through rq's CronScheduler."""
    env = dict(
        os.environ,
        PORTICO_ENV="development",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        SECRET_KEY="c" * 48,
        PORTICO_INSTANCE_PATH=str(tmp_path),
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "cron"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    queue = Queue(QUEUE_NAME, connection=Redis.from_url(redis_url))
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and len(queue.jobs) < 3:
            time.sleep(0.1)
    finally:
        proc.terminate()
        output = proc.communicate(timeout=10)[0].decode()
    assert sorted(job.func_name for job in queue.jobs) == [
        "portal_app.jobs.mail.sweep_outbox",
        "portal_app.jobs.periodic.run_due",
        "portal_app.jobs.staff_jobs.sweep_jobs",
    ], output[-2000:]
    assert "run_due' to run on portico every 300 seconds" in output


def test_worker_and_cron_refuse_to_start_without_redis(app):
    runner = app.test_cli_runner()
    for command in (["worker", "--burst"], ["cron"]):
        result = runner.invoke(args=command)
        assert result.exit_code != 0 and "REDIS_URL" in result.output


# --- batched delivery (issue 15) -------------------------------------------------------------------


def test_r_rel_1_a_transaction_of_many_emails_is_one_job_sent_over_one_connection(app, redis_url, smtp):
    app.config["MAIL_URL"] = smtp.url
    with in_app(app):
        ids = [_queue_plain(to=f"client{n}@example.com") for n in range(450)]
        commit()
    assert _queued(redis_url) == 1  # one delivery job for the transaction, not one per email
    run_worker(app)
    messages = smtp.wait_for(450)
    assert sorted(m["To"] for m in messages) == sorted(f"client{n}@example.com" for n in range(450))
    assert len(set(smtp.connections)) == 1
    with in_app(app) as session:
        states = session.scalars(select(OutboxEmail.state).where(OutboxEmail.id.in_(ids))).all()
        assert set(states) == {"sent"}


def test_r_rel_1_a_refused_or_busy_recipient_fails_alone_and_the_batch_goes_on(app, smtp):
    app.config["MAIL_URL"] = smtp.url
    with in_app(app) as session:
        before = _queue_plain(to="before@example.com")
        busy = _queue_plain(to="busy@example.com")
        refused = _queue_plain(to="reject@example.com")
        after = _queue_plain(to="after@example.com")
        session.commit()
        assert drain_outbox() == {"sent": 2, "retrying": 1, "failed": 1}
        assert [m["To"] for m in smtp.wait_for(2)] == ["before@example.com", "after@example.com"]
        assert len(set(smtp.connections)) == 2  # reconnected after the 421
        assert _outbox(session, before).state == _outbox(session, after).state == "sent"
        assert (_outbox(session, busy).state, _outbox(session, busy).attempts) == ("pending", 1)
        assert "421" in _outbox(session, busy).last_error
        assert _outbox(session, refused).state == "failed"


def test_r_rel_1_two_worker_processes_share_the_outbox_and_send_each_email_once(
    app, redis_url, smtp, database_url
):
    """Two real `flask worker` processes drain the same outbox at once (SKIP LOCKED). Both are
    listening before the emails are queued, so the test does not depend on how fast a process
    starts on a loaded machine."""
    import signal

    from rq import Worker

    from tests.conftest import spawn_worker

    app.config["MAIL_URL"] = smtp.url
    smtp.delay = 0.004  # ~5 s for the lot
    redis = Redis.from_url(redis_url)
    workers = [spawn_worker(app, database_url, redis_url, smtp.url) for _ in range(2)]
    try:
        deadline = time.monotonic() + 60
        while len(Worker.all(connection=redis)) < 2:
            assert time.monotonic() < deadline, "the workers did not start"
            assert all(w.poll() is None for w in workers), [w.communicate()[0] for w in workers]
            time.sleep(0.2)
        with in_app(app):
            ids = [_queue_plain(to=f"client{n}@example.com") for n in range(1200)]
            commit()  # one delivery job
        Queue(QUEUE_NAME, connection=redis).enqueue(drain_outbox)  # a second, so both have one
        messages = smtp.wait_for(1200)
    finally:
        for worker in workers:
            os.killpg(worker.pid, signal.SIGTERM)  # warm shutdown, scheduler child included
        outputs = [w.communicate(timeout=60)[0].decode() for w in workers]
    addresses = [m["To"] for m in messages]
    assert len(addresses) == 1200 and len(set(addresses)) == 1200  # none lost, none twice
    assert len(set(smtp.connections)) >= 2, outputs  # both workers sent some
    with in_app(app) as session:
        states = session.scalars(select(OutboxEmail.state).where(OutboxEmail.id.in_(ids))).all()
        assert set(states) == {"sent"}


def test_every_email_has_date_and_message_id_and_system_mail_says_auto_submitted(app, smtp, make):
    app.config.update(MAIL_URL=smtp.url, MAIL_FROM="Harbor & Finch <portal@harborfinch.example>")
    firm = make.firm()
    account = make.account(firm.id)
    email = account.contacts[0].emails[0]
    firm.api.patch(
        f"/accounts/{account.id}/contact-settings/{email.id}", json={"login": True, "send_invitation": True}
    )
    with in_app(app):
        _queue_plain(to="someone@example.com")  # a person's email, not system mail
        commit()
    invitation, plain = smtp.wait_for(2)
    for message in (invitation, plain):
        assert message["Date"] and message["Message-ID"].endswith("@harborfinch.example>")
    assert invitation["Auto-Submitted"] == "auto-generated"
    assert plain["Auto-Submitted"] is None
