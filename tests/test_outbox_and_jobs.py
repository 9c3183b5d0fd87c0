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
from portal_app.jobs import QUEUE_NAME
from portal_app.jobs.mail import TransientDeliveryError, deliver_outbox_email, sweep_outbox
from portal_app.mail.outbox import queue_email
from portal_app.models import OutboxEmail, utcnow
from portal_app.transaction import commit
from tests.conftest import free_port, in_app, run_worker

ROOT = Path(__file__).resolve().parents[1]


def _queue_plain(firm_id: int | None = None, to: str = "client@example.com", body: str = "Hello") -> int:
    row = queue_email(
        firm_id=firm_id,
        kind="plain",
        to_address=to,
        subject="Your documents",
        template="plain",
        context={"body": body},
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
        with pytest.raises(TransientDeliveryError):
            deliver_outbox_email(outbox_id)
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
        session.execute(update(OutboxEmail).values(state="sending", claimed_at=utcnow() - timedelta(hours=1)))
        session.commit()
        assert sweep_outbox() == 0
        row = _outbox(session, outbox_id)
        assert row.state == "failed" and "interrupted" in row.last_error


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


def test_flask_worker_burst_command_delivers_in_a_forked_work_horse(app, redis_url, smtp, database_url):
    """The real `flask --app wsgi worker --burst` process drains the queue."""
    app.config["MAIL_URL"] = smtp.url
    with in_app(app):
        outbox_id = _queue_plain()
        commit()
    env = dict(
        os.environ,
        PORTICO_ENV="development",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        MAIL_URL=smtp.url,
        SECRET_KEY="w" * 48,
        PORTICO_INSTANCE_PATH=str(Path(app.config["DEV_MAIL_DIR"]).parent),
    )
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


def test_cron_command_enqueues_the_outbox_sweep(app, redis_url, database_url, tmp_path):
    """`flask --app wsgi cron` schedules the sweep on queue 'portico' through rq's CronScheduler."""
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
        while time.monotonic() < deadline and not queue.jobs:
            time.sleep(0.1)
    finally:
        proc.terminate()
        output = proc.communicate(timeout=10)[0].decode()
    assert [job.func_name for job in queue.jobs] == ["portal_app.jobs.mail.sweep_outbox"], output[-2000:]


def test_worker_and_cron_refuse_to_start_without_redis(app):
    runner = app.test_cli_runner()
    for command in (["worker", "--burst"], ["cron"]):
        result = runner.invoke(args=command)
        assert result.exit_code != 0 and "REDIS_URL" in result.output
