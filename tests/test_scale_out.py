"""Scale-out: one leading `flask cron` of many through a PostgreSQL lease (R-OPS-1), and the app
behind a transaction-mode PgBouncer (R-OPS-2)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from redis import Redis
from rq import Queue

from portal_app.jobs.cron_leader import Lease, current_leader, plain_url
from portal_app.queue import QUEUE_NAME
from tests.conftest import DIRECT_DATABASE_URL, REQUIRE_SERVICES, worker_env

ROOT = Path(__file__).resolve().parents[1]

PERIODIC = [
    "portal_app.jobs.mail.sweep_outbox",
    "portal_app.jobs.periodic.run_due",
    "portal_app.jobs.staff_jobs.sweep_jobs",
]


@pytest.fixture
def direct_url(database_url: str) -> str:
    """The lease's connection: PostgreSQL itself, also when the suite runs through PgBouncer."""
    url = DIRECT_DATABASE_URL or database_url
    if not url.startswith("postgresql"):
        message = "the lease is a PostgreSQL advisory lock (set TEST_DATABASE_URL)"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)
    return url


def _cron(app: Any, database_url: str, redis_url: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "cron", *args],
        cwd=ROOT,
        env=worker_env(app, database_url, redis_url, None),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _status(app: Any, database_url: str, redis_url: str) -> str:
    proc = _cron(app, database_url, redis_url, "status")
    return proc.communicate(timeout=60)[0]


def _wait_for_leader(url: str, pids: set[int], timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        leader = current_leader(url)
        if leader is not None and leader.pid in pids:
            return leader.pid
        time.sleep(0.2)
    raise AssertionError(f"no cron process of {pids} took the lease within {timeout} s")


def _wait_for_jobs(queue: Queue, count: int, timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(queue.jobs) < count:
        time.sleep(0.1)
    return sorted(job.func_name for job in queue.jobs)


def test_r_ops_1_two_cron_processes_one_leads_and_a_sigkill_fails_over_well_within_90_s(
    app, database_url, redis_url, direct_url
):
    queue = Queue(QUEUE_NAME, connection=Redis.from_url(redis_url))
    first = _cron(app, database_url, redis_url)
    procs = [first]
    try:
        leader_pid = _wait_for_leader(direct_url, {first.pid}, 30)
        second = _cron(app, database_url, redis_url)
        procs.append(second)
        assert _wait_for_jobs(queue, 3, 15) == PERIODIC
        # the second process has polled the lease at least once meanwhile: it follows, enqueues nothing
        time.sleep(7)
        assert sorted(job.func_name for job in queue.jobs) == PERIODIC  # once each, not twice
        status = _status(app, database_url, redis_url)
        assert f"pid={leader_pid} " in status and "Leader: host=" in status, status

        queue.empty()
        killed_at = time.monotonic()
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        new_pid = _wait_for_leader(direct_url, {second.pid}, 90)
        assert _wait_for_jobs(queue, 3, 30) == PERIODIC  # the new leader schedules from the start
        failover = time.monotonic() - killed_at
        assert failover < 90, failover
        assert f"pid={new_pid} " in _status(app, database_url, redis_url)

        second.send_signal(signal.SIGTERM)  # a clean stop hands the lease back at once
        assert second.wait(timeout=15) == 0
        assert current_leader(direct_url) is None
        status_proc = _cron(app, database_url, redis_url, "status")
        output = status_proc.communicate(timeout=60)[0]
        assert status_proc.returncode == 1 and "No leader" in output, output
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=10)  # reaps it and closes its pipe


def test_r_ops_1_a_leader_whose_connection_was_cut_finds_out_before_acting(direct_url):
    """Fencing: a paused leader whose session PostgreSQL ended (here pg_terminate_backend, as an
    idle-session timeout or a network cut would) learns it lost the lease before its next tick,
    while another process takes it."""
    old, new = Lease(direct_url, host="old-host", pid=101), Lease(direct_url, host="new-host", pid=202)
    try:
        assert old.acquire() and not new.acquire()  # one holder at a time
        assert old.held()
        backend = old._conn.info.backend_pid  # type: ignore[union-attr]
        with psycopg.connect(plain_url(direct_url), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (backend,))
        deadline = time.monotonic() + 10
        while not new.acquire() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert new.held()
        assert not old.held()  # the fence: the old leader must not tick
        assert not old.acquire()  # and it cannot take the lease back while the new one holds it
        leader = current_leader(direct_url)
        assert leader is not None and (leader.host, leader.pid) == ("new-host", 202)
    finally:
        old.release()
        new.release()
    assert current_leader(direct_url) is None


def test_r_ops_2_the_cron_refuses_to_lease_through_a_transaction_pooler_without_a_direct_url(
    app, database_url, redis_url
):
    env = worker_env(app, database_url, redis_url, None, DATABASE_POOL_MODE="transaction")
    env.pop("DATABASE_DIRECT_URL", None)
    proc = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "cron", "status"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0 and "DATABASE_DIRECT_URL" in proc.stderr, proc.stderr


def test_r_ops_2_no_statement_is_ever_prepared_on_the_server(app, database_url):
    """psycopg prepares a statement on the server after its fifth run unless told not to; behind a
    transaction-mode PgBouncer the next transaction may land on a server connection that never saw
    it. The same query run ten times in one transaction leaves no prepared statement behind."""
    from sqlalchemy import text

    from portal_app.extensions import db

    if not database_url.startswith("postgresql"):
        if REQUIRE_SERVICES:
            pytest.fail("prepared statements are a PostgreSQL matter (set TEST_DATABASE_URL)")
        pytest.skip("prepared statements are a PostgreSQL matter")
    with app.app_context():
        for n in range(10):
            db.session.execute(text("SELECT count(*) FROM accounts WHERE id > :n"), {"n": n}).scalar_one()
        prepared = db.session.execute(text("SELECT count(*) FROM pg_prepared_statements")).scalar_one()
        db.session.rollback()
    assert prepared == 0


def test_r_ops_2_pool_mode_is_session_or_transaction(tmp_path):
    from portal_app.config import ConfigError, load_config

    base = {"PORTICO_ENV": "development", "DATABASE_URL": "postgresql://u@h/d"}
    assert load_config(str(tmp_path), base)["DATABASE_DIRECT_URL"] == "postgresql+psycopg://u@h/d"
    pooled = load_config(str(tmp_path), {**base, "DATABASE_POOL_MODE": "transaction"})
    assert pooled["DATABASE_POOL_MODE"] == "transaction" and pooled["DATABASE_DIRECT_URL"] == ""
    with pytest.raises(ConfigError, match="DATABASE_POOL_MODE"):
        load_config(str(tmp_path), {**base, "DATABASE_POOL_MODE": "statement"})


# --- R-OPS-6: graceful stops ----------------------------------------------------------------------

SEED = [
    "INSERT INTO accounts (firm_id, name, type, custom_fields, created_at, updated_at)"
    " SELECT :firm, 'Client ' || g, 'individual', '{}', now(), now() FROM generate_series(1, :n) g",
    "INSERT INTO contacts (firm_id, first_name, middle_name, last_name, phones, addresses, custom_fields,"
    " created_at, updated_at) SELECT :firm, 'Client', '', 'No ' || g, '[]', '[]', '{}', now(), now()"
    " FROM generate_series(1, :n) g",
    "INSERT INTO contact_emails (firm_id, contact_id, address, label, is_primary, created_at)"
    " SELECT :firm, id, 'client' || id || '@example.com', '', true, now()"
    " FROM contacts WHERE firm_id = :firm",
    "INSERT INTO account_contacts (account_id, contact_id, firm_id, description, created_at)"
    " SELECT a.id, c.id, :firm, '', now()"
    " FROM (SELECT id, row_number() OVER (ORDER BY id) r FROM accounts WHERE firm_id = :firm) a"
    " JOIN (SELECT id, row_number() OVER (ORDER BY id) r FROM contacts WHERE firm_id = :firm) c USING (r)",
    "INSERT INTO contact_settings (firm_id, account_id, contact_id, email_id, login, notify,"
    " notification_preferences, email_sync, auto_save_attachments, signatory, created_at, updated_at)"
    " SELECT :firm, ac.account_id, ac.contact_id, e.id, :login, false, '{}', false, false, false,"
    " now(), now()"
    " FROM account_contacts ac JOIN contact_emails e ON e.contact_id = ac.contact_id"
    " WHERE ac.firm_id = :firm",
]


def _firm_of_clients(app: Any, make: Any, database_url: str, count: int, *, login: bool) -> Any:
    """A firm of ``count`` accounts, one client email each (PostgreSQL: set-based inserts)."""
    from sqlalchemy import text

    from portal_app.transaction import commit
    from tests.conftest import in_app

    if not database_url.startswith("postgresql"):
        if REQUIRE_SERVICES:
            pytest.fail("this restart test runs on PostgreSQL (set TEST_DATABASE_URL)")
        pytest.skip("this restart test runs on PostgreSQL")
    firm = make.firm()
    with in_app(app) as session:
        for statement in SEED:
            session.execute(text(statement), {"firm": firm.id, "n": count, "login": login})
        commit()
    return firm


def _start_workers(app: Any, database_url: str, redis_url: str, mail_url: str, count: int) -> list[Any]:
    from rq import Worker

    from tests.conftest import spawn_worker

    redis = Redis.from_url(redis_url)
    before = len(Worker.all(connection=redis))
    workers = [spawn_worker(app, database_url, redis_url, mail_url) for _ in range(count)]
    deadline = time.monotonic() + 60
    while len(Worker.all(connection=redis)) < before + count:
        assert time.monotonic() < deadline, "the workers did not start"
        assert all(w.poll() is None for w in workers), [w.communicate()[0] for w in workers]
        time.sleep(0.1)
    return workers


def _sigterm(worker: Any) -> float:
    """SIGTERM to a worker's process group (rq's scheduler child included), as systemd or a
    rolling deploy sends it; returns how long the worker took to exit, after checking it exited 0."""
    started = time.monotonic()
    os.killpg(worker.pid, signal.SIGTERM)
    output = worker.communicate(timeout=60)[0].decode(errors="replace")
    assert worker.returncode == 0, output
    return time.monotonic() - started


def test_r_ops_6_a_rolling_restart_of_the_workers_during_10_000_invitations_loses_none_and_sends_none_twice(
    app, make, redis_url, smtp, database_url
):
    from sqlalchemy import func, select

    from portal_app.extensions import db
    from portal_app.models import ContactSettings, OutboxEmail, StaffUser
    from portal_app.services.invitations import send_invitations
    from portal_app.transaction import commit
    from tests.conftest import in_app

    count = 10_000
    firm = _firm_of_clients(app, make, database_url, count, login=True)
    workers = _start_workers(app, database_url, redis_url, smtp.url, 2)
    stops: list[float] = []
    try:
        with in_app(app) as session:
            staff = session.get(StaffUser, firm.staff_id)
            ids = session.scalars(select(ContactSettings.id).order_by(ContactSettings.id)).all()
            for at in range(0, len(ids), 1000):  # as the bulk job does: 1 000 a transaction
                chunk = ids[at : at + 1000]
                rows = session.scalars(select(ContactSettings).where(ContactSettings.id.in_(chunk)))
                send_invitations(list(rows), sent_by=staff, message="Welcome")
                commit()
        # Restart the workers one at a time while they deliver: each is stopped mid-drain and
        # replaced, the way a deploy rolls through hosts.
        for n in range(2):
            smtp.wait_for(2000 * (n + 1), timeout=120)
            assert len(smtp.messages) < count, "the drain finished before the restart: nothing was tested"
            stops.append(_sigterm(workers[n]))
            # it left after its batch, handing the rest over, rather than draining everything
            assert len(smtp.messages) < count, "the stopped worker drained the whole outbox first"
            workers.extend(_start_workers(app, database_url, redis_url, smtp.url, 1))
        messages = smtp.wait_for(count, timeout=300)
        time.sleep(2)  # anything sent twice would arrive now
    finally:
        for worker in workers:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGTERM)
                worker.communicate(timeout=60)
    assert all(seconds < 30 for seconds in stops), stops  # each stopped within 30 s
    addresses = [m["To"] for m in smtp.messages]
    assert len(addresses) == count and len(set(addresses)) == count  # none lost, none twice
    assert all("Welcome" in m.get_body(("plain",)).get_content() for m in messages[:20])
    with in_app(app):
        states = dict(
            db.session.execute(select(OutboxEmail.state, func.count()).group_by(OutboxEmail.state)).all()
        )
    assert states == {"sent": count}


def test_r_ops_6_sigterm_to_a_worker_mid_bulk_update_finishes_the_batch_and_another_worker_completes_it(
    app, make, redis_url, database_url
):
    """A bulk update of 3 000 accounts (batches of 500, R-REL-2): the worker that runs it is
    stopped after its first batch; it leaves within 30 s, and a second worker completes the job."""
    from sqlalchemy import func, select

    from portal_app.models import ContactSettings, Job
    from tests.conftest import in_app

    count = 3000
    firm = _firm_of_clients(app, make, database_url, count, login=False)
    first = _start_workers(app, database_url, redis_url, "", 1)[0]
    second = None
    try:
        answer = firm.api.post("/bulk/contact-settings", json={"filter": {}, "notify": "enable"})
        assert answer.status_code == 202, answer.get_json()
        job_id = answer.get_json()["id"]

        def processed() -> int:
            with in_app(app) as session:
                job = session.get(Job, int(job_id))
                return job.cursor if job is not None else 0

        deadline = time.monotonic() + 120
        while processed() == 0:
            assert time.monotonic() < deadline, "the bulk job did not start"
            time.sleep(0.05)
        seconds = _sigterm(first)
        at_stop = processed()
        assert seconds < 30 and 0 < at_stop < count, (seconds, at_stop)
        second = _start_workers(app, database_url, redis_url, "", 1)[0]
        deadline = time.monotonic() + 120
        while True:
            with in_app(app) as session:
                job = session.get(Job, int(job_id))
                if job.state != "running" and job.state != "queued":
                    break
            assert time.monotonic() < deadline, "the second worker did not complete the job"
            time.sleep(0.2)
    finally:
        for worker in (first, second):
            if worker is not None and worker.poll() is None:
                os.killpg(worker.pid, signal.SIGTERM)
                worker.communicate(timeout=60)
    with in_app(app) as session:
        job = session.get(Job, int(job_id))
        assert (job.state, job.cursor) == ("done", count), (job.state, job.cursor)
        on = session.scalar(
            select(func.count()).where(ContactSettings.firm_id == firm.id, ContactSettings.notify.is_(True))
        )
        assert on == count


def test_r_ops_6_sigterm_to_gunicorn_finishes_the_request_in_flight(
    app, make, redis_url, database_url, tmp_path, smtp
):
    """A request whose body is still arriving when gunicorn gets SIGTERM is answered in full, and
    gunicorn then exits 0 (within its graceful_timeout of 30 s)."""
    import json
    import socket
    import urllib.request

    from tests.test_production_gunicorn import start_gunicorn

    make.firm()
    app.config["MAIL_URL"] = smtp.url
    proc, port, log = start_gunicorn(app, database_url, redis_url, tmp_path, extra_env={}, args=[])
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=20) as ready:
            assert ready.status == 200  # the worker is up and takes connections
        body = json.dumps({"email": "nobody@example.com", "password": "not the password"}).encode()
        conn = socket.create_connection(("127.0.0.1", port), timeout=20)
        conn.sendall(
            b"POST /api/v1/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body[:10]
        )
        time.sleep(0.5)  # the worker has the request and waits for the rest of the body
        proc.send_signal(signal.SIGTERM)
        time.sleep(1.0)
        conn.sendall(body[10:])
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
        conn.close()
        assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
        assert b"invalid_credentials" in answer or b"error" in answer
        assert proc.wait(timeout=30) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
