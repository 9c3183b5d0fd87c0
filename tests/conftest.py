"""Fixtures: a real database (PostgreSQL when TEST_DATABASE_URL is set, else SQLite), real
Redis when TEST_REDIS_URL is set, a real SMTP server, and factories.

Isolation is by emptying the tables after each test rather than by rolling back a
transaction: workers, live servers and second connections in these tests must see
committed rows, as they do in production.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from portal_app import create_app
from portal_app.extensions import db

TEST_SECRET_KEY = "test-secret-key-0123456789-abcdefghijklmnop"
REQUIRE_SERVICES = os.environ.get("PORTICO_REQUIRE_SERVICES") == "1"
# R-OPS-2: CI's second pass reaches PostgreSQL through a transaction-mode PgBouncer
# (TEST_DATABASE_URL); the cron's lease then uses PostgreSQL itself (TEST_DATABASE_DIRECT_URL).
DIRECT_DATABASE_URL = os.environ.get("TEST_DATABASE_DIRECT_URL", "")
POOL_ENV = {
    key: value
    for key, value in (
        ("DATABASE_POOL_MODE", os.environ.get("TEST_DATABASE_POOL_MODE", "")),
        ("DATABASE_DIRECT_URL", DIRECT_DATABASE_URL),
    )
    if value
}
_skipped: list[str] = []


# R-OPS-2: what CI runs a second time through a transaction-mode PgBouncer (`.ci/pgbouncer-pass`):
# the database layer, jobs, locks and the cron. The browser walks, parsing and pure rendering are
# the same code over the same statements and stay in the first pass only (the CI time budget).
PGBOUNCER_FILES = {
    "test_scale_out.py",
    "test_outbox_and_jobs.py",
    "test_notifications.py",
    "test_bulk_update.py",
    "test_csv_import.py",
    "test_database_constraints.py",
    "test_services_accounts_contacts.py",
    "test_services_settings.py",
    "test_api_accounts.py",
    "test_api_contacts_settings.py",
    "test_staff_auth.py",
    "test_invitations.py",
    "test_rate_limits.py",
    "test_operations.py",
    "test_passkeys.py",
    "test_action_links.py",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in PGBOUNCER_FILES:
            item.add_marker(pytest.mark.pgbouncer)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # In CI every test must run against the real services: a skip is a failure.
    if REQUIRE_SERVICES and _skipped:
        print(f"\n{len(_skipped)} test(s) skipped while PORTICO_REQUIRE_SERVICES=1: {_skipped[:5]}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        return url
    if REQUIRE_SERVICES:
        pytest.exit("TEST_DATABASE_URL is required when PORTICO_REQUIRE_SERVICES=1", returncode=3)
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"


def _base_config(database_url: str, tmp_path: Any) -> dict[str, Any]:
    return {
        "TESTING": True,
        "ENV": {
            "PORTICO_ENV": "development",
            "DATABASE_URL": database_url,
            "SECRET_KEY": TEST_SECRET_KEY,
            "SECRET_KEY_FALLBACKS": "",
            "REDIS_URL": "",
            "MAIL_URL": "",
            **POOL_ENV,
        },
        "DEV_MAIL_DIR": str(tmp_path / "mail"),
        "DOCUMENTS_DIR": str(tmp_path / "documents"),
        "WTF_CSRF_ENABLED": True,
    }


@pytest.fixture(scope="session")
def _schema(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Build the schema once per run through the Alembic migrations."""
    from flask_migrate import upgrade

    app = create_app(_base_config(database_url, tmp_path_factory.mktemp("schema")))
    with app.app_context():
        with db.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("DROP SCHEMA public CASCADE"))
                conn.execute(text("CREATE SCHEMA public"))
            else:
                for table in reversed(db.metadata.sorted_tables):
                    conn.execute(text(f'DROP TABLE IF EXISTS "{table.name}"'))
                conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
        upgrade()
        db.engine.dispose()


def _empty_tables() -> None:
    tables = [t.name for t in db.metadata.sorted_tables]
    with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for name in reversed(tables):
                conn.execute(text(f'DELETE FROM "{name}"'))


@pytest.fixture
def app(request: pytest.FixtureRequest, _schema: None, database_url: str, tmp_path: Any) -> Iterator[Flask]:
    config = _base_config(database_url, tmp_path)
    for marker in request.node.iter_markers("settings"):
        env = marker.kwargs.get("ENV")
        config.update({k: v for k, v in marker.kwargs.items() if k != "ENV"})
        if env:
            config["ENV"] = {**config["ENV"], **env}
    if "redis_url" in request.fixturenames:
        redis_url = request.getfixturevalue("redis_url")
        config["ENV"] = {**config["ENV"], "REDIS_URL": redis_url}
        config["REDIS_URL"], config["JOBS_INLINE"] = redis_url, False
    application = create_app(config)
    yield application
    with application.app_context():
        db.session.remove()
        _empty_tables()
        db.engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def ctx(app: Flask) -> Iterator[Any]:
    """An app context for service-level tests; yields the session."""
    with app.app_context():
        yield db.session
        db.session.rollback()


@contextmanager
def in_app(app: Flask) -> Iterator[Any]:
    """A short-lived app context for setup and assertions around client calls."""
    with app.app_context():
        try:
            yield db.session
        finally:
            db.session.remove()


@pytest.fixture
def redis_url() -> Iterator[str]:
    url = os.environ.get("TEST_REDIS_URL")
    if not url:
        if REQUIRE_SERVICES:
            pytest.fail("TEST_REDIS_URL is required when PORTICO_REQUIRE_SERVICES=1")
        pytest.skip("TEST_REDIS_URL not set")
    from redis import Redis

    conn = Redis.from_url(url)
    conn.flushdb()
    yield url
    conn.flushdb()
    conn.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SmtpSink:
    """A real SMTP server (aiosmtpd) on a free port that keeps what it receives."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[EmailMessage] = []
        self.connections: list[int] = []  # the SMTP session each message came over, in order
        self.delay = 0.0  # seconds per message, like a real server's latency
        self.port = free_port()
        sink = self

        class Handler:
            async def handle_RCPT(
                self, server: Any, session: Any, envelope: Any, address: str, options: Any
            ) -> str:
                if address.startswith("reject"):
                    return "550 No such mailbox"
                if address.startswith("busy"):
                    return "421 Try again later"
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                if sink.delay:
                    await asyncio.sleep(sink.delay)
                sink.messages.append(message_from_bytes(envelope.content, policy=policy.default))  # type: ignore[arg-type]
                sink.connections.append(id(session))
                return "250 OK"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        if getattr(self.controller, "_thread", None) is not None:
            self.controller.stop()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.messages


def worker_env(
    app: Flask, database_url: str, redis_url: str, mail_url: str | None, **extra: str
) -> dict[str, str]:
    """The environment of a real `flask --app wsgi worker` process on the test's database."""
    from pathlib import Path

    return {
        **os.environ,
        "PORTICO_ENV": "development",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "MAIL_URL": mail_url or "",
        "SECRET_KEY": app.config["SECRET_KEY"],
        "PORTICO_INSTANCE_PATH": str(Path(app.config["DEV_MAIL_DIR"]).parent),
        "DOCUMENTS_DIR": app.config["DOCUMENTS_DIR"],
        **POOL_ENV,
        **extra,
    }


def spawn_worker(
    app: Flask, database_url: str, redis_url: str, mail_url: str | None, *args: str, **env: str
) -> Any:
    """A real `flask --app wsgi worker` process (output piped) in a process group of its own:
    rq runs its scheduler in a child process, so a crash is ``os.killpg(worker.pid, SIGKILL)``."""
    import subprocess
    import sys
    from pathlib import Path

    return subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "worker", *args],
        cwd=Path(__file__).resolve().parents[1],
        env=worker_env(app, database_url, redis_url, mail_url, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def run_worker(app: Flask) -> None:
    """Drain the rq queue with the production worker class (no fork), each job in the app's context."""
    from portal_app.cli.jobs import AppWorker
    from portal_app.queue import get_queue

    with app.app_context():
        queue = get_queue()
        worker = AppWorker([queue], connection=queue.connection)
        worker.app = app
        worker.work(burst=True, with_scheduler=False)


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()


pytest_plugins = ["tests.factories"]
