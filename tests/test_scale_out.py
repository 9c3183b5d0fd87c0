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
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
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
