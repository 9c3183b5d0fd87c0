"""Engine and session hooks: SQLite foreign keys, and jobs released only by a commit."""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

DEFERRED = "portico.deferred_jobs"
READY = "portico.ready_jobs"


@event.listens_for(Engine, "connect")
def _sqlite_foreign_keys(dbapi_connection: Any, connection_record: Any) -> None:
    # SQLite ignores foreign keys (and so every ON DELETE CASCADE) unless asked per connection.
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


@event.listens_for(Session, "after_commit")
def _release_deferred_jobs(session: Session) -> None:
    deferred = session.info.pop(DEFERRED, None)
    if deferred:
        session.info.setdefault(READY, []).extend(deferred)


@event.listens_for(Session, "after_rollback")
def _drop_deferred_jobs(session: Session) -> None:
    # The rows the jobs would read were never committed: the jobs must not run.
    session.info.pop(DEFERRED, None)


def init_app(app: Flask) -> None:
    from portal_app.jobs import dispatch_ready_jobs

    @app.teardown_request
    def _dispatch_after_request(exc: BaseException | None) -> None:
        # A safety net: the edge's commit() normally dispatches right away.
        if exc is None:
            dispatch_ready_jobs()
