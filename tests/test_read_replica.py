"""R-OPS-3: the account list, search and the overview from a real streaming replica, with
read-your-writes for a staff user who just wrote, and the primary when the replica is down."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from portal_app import create_app
from portal_app.extensions import db
from tests.conftest import REQUIRE_SERVICES, TEST_SECRET_KEY
from tests.factories import Factory
from tests.pg_replica import ReplicatedCluster, pg_bin, start_cluster


@pytest.fixture
def cluster() -> Iterator[ReplicatedCluster]:
    if pg_bin() is None:
        if REQUIRE_SERVICES:
            pytest.fail("PostgreSQL's server programs (initdb, pg_basebackup) are needed")
        pytest.skip("PostgreSQL's server programs are not installed")
    started = start_cluster()
    yield started
    started.stop()


def _replicated_app(cluster: ReplicatedCluster, tmp_path: Path) -> Flask:
    from flask_migrate import upgrade

    app = create_app(
        {
            "TESTING": True,
            "ENV": {
                "PORTICO_ENV": "development",
                "DATABASE_URL": cluster.primary.url(),
                "DATABASE_REPLICA_URL": cluster.replica.url(),
                "SECRET_KEY": TEST_SECRET_KEY,
                "REDIS_URL": "",
                "MAIL_URL": "",
            },
            "DEV_MAIL_DIR": str(tmp_path / "mail"),
            "DOCUMENTS_DIR": str(tmp_path / "documents"),
        }
    )
    with app.app_context():
        upgrade()
    return app


def _names(api) -> list[str]:
    answer = api.get("/accounts?limit=50")
    assert answer.status_code == 200, answer.get_json()
    return [row["name"] for row in answer.get_json()["items"]]


def _notes(api, account_id: str) -> list[str]:
    answer = api.get(f"/accounts/{account_id}/overview")
    assert answer.status_code == 200, answer.get_json()
    return [note["text"] for note in answer.get_json()["notes"]]


def test_r_ops_3_the_list_and_overview_come_from_the_replica_and_a_writer_reads_its_writes(
    cluster: ReplicatedCluster, tmp_path: Path
):
    app = _replicated_app(cluster, tmp_path)
    make = Factory(app)
    firm = make.firm()  # the writer
    reader = make.staff(firm.id)  # a colleague who only reads
    alpha = firm.api.post("/accounts", json={"name": "Alpha LLC", "type": "company"}).get_json()
    cluster.wait_for_replay()
    assert _names(reader.api) == ["Alpha LLC"]
    served = cluster.replica.sql(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'portico-replica-reads'"
    )[0][0]
    assert served >= 1  # the app holds a connection to the replica (and the paused replay below
    # shows the list is read through it)

    # The replica stops replaying: what the writer adds now is on the primary only.
    cluster.replica.sql("SELECT pg_wal_replay_pause()")
    firm.api.post("/accounts", json={"name": "Beta GmbH", "type": "company"})
    firm.api.post(f"/accounts/{alpha['id']}/notes", json={"text": "Called about the W-2"})
    assert _names(reader.api) == ["Alpha LLC"]  # the reader is served by the (paused) replica
    assert _notes(reader.api, alpha["id"]) == []
    assert _names(firm.api) == ["Alpha LLC", "Beta GmbH"]  # the writer sees its writes at once
    assert _notes(firm.api, alpha["id"]) == ["Called about the W-2"]

    # Ten seconds after the write, the writer is back on the replica too.
    cluster.primary.sql(
        f"UPDATE staff_users SET last_write_at = now() - interval '11 seconds' WHERE id = {firm.staff_id}"
    )
    assert _names(firm.api) == ["Alpha LLC"]

    cluster.replica.sql("SELECT pg_wal_replay_resume()")
    cluster.wait_for_replay()
    assert _names(reader.api) == ["Alpha LLC", "Beta GmbH"]

    # The replica goes down: the primary serves the reads, with no error.
    cluster.stop_replica()
    firm.api.post("/accounts", json={"name": "Gamma AG", "type": "company"})
    assert _names(reader.api) == ["Alpha LLC", "Beta GmbH", "Gamma AG"]
    assert _notes(reader.api, alpha["id"]) == ["Called about the W-2"]
    with app.app_context():
        db.session.remove()
        for engine in db.engines.values():
            engine.dispose()


def test_r_ops_3_without_a_replica_no_write_is_tracked(app, make):
    """Read-your-writes costs nothing where there is no replica: no extra write per request."""
    firm = make.firm()
    assert firm.api.post("/accounts", json={"name": "Delta", "type": "company"}).status_code == 201
    with app.app_context():
        from portal_app.models import StaffUser

        assert db.session.get(StaffUser, firm.staff_id).last_write_at is None


def test_r_ops_3_a_database_restart_costs_no_request_an_error(cluster: ReplicatedCluster, tmp_path: Path):
    """The pool holds connections that a restart of PostgreSQL ended. Without a ping per request
    (``db_events``: a look at the socket on checkout), none of them turns into an error."""
    app = _replicated_app(cluster, tmp_path)
    make = Factory(app)
    firm = make.firm()
    assert firm.api.post("/accounts", json={"name": "Alpha LLC", "type": "company"}).status_code == 201
    with app.app_context():
        held = [db.engine.connect() for _ in range(3)]  # three pooled connections, then idle
        for connection in held:
            connection.close()
        pids_before = {row[0] for row in cluster.primary.sql("SELECT pid FROM pg_stat_activity")}

    cluster._pg_ctl(cluster.primary, "restart", "-m", "fast")
    cluster.wait_for_replay()

    assert _names(firm.api) == ["Alpha LLC"]
    created = firm.api.post("/accounts", json={"name": "Beta GmbH", "type": "company"})
    assert created.status_code == 201, created.get_json()
    for _ in range(5):
        assert _names(firm.api) == ["Alpha LLC", "Beta GmbH"]
    pids_after = {row[0] for row in cluster.primary.sql("SELECT pid FROM pg_stat_activity")}
    assert not pids_before & pids_after  # the requests above ran on new connections only
    with app.app_context():
        db.session.remove()
        for engine in db.engines.values():
            engine.dispose()
