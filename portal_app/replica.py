"""R-OPS-3: the reads a streaming replica may serve (the account list, its search, the overview).

``DATABASE_REPLICA_URL`` becomes the ``replica`` bind, which no model names: every statement goes
to the primary unless it runs inside ``from_replica``, where ``db.session`` hands the replica's
engine out instead. A staff user who wrote in the last ``READ_YOUR_WRITES_SECONDS`` reads the
primary (read-your-writes: the list shows the account just created, whatever the replica's lag).
A replica that cannot be reached is left alone for ``RETRY_SECONDS`` and the read is served by
the primary: slower, never an error.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import Any, TypeVar

from flask import current_app
from flask_sqlalchemy.session import Session
from sqlalchemy.exc import DBAPIError

from portal_app.orm import utcnow

BIND = "replica"
RETRY_SECONDS = 30.0
log = logging.getLogger(__name__)
T = TypeVar("T")
_reading: ContextVar[bool] = ContextVar("portico_replica_reading", default=False)
_unreachable_until = 0.0  # per process: after a failure, the primary serves for a while


class RoutingSession(Session):
    """Flask-SQLAlchemy's session, handing out the replica's engine inside ``from_replica``."""

    def get_bind(self, mapper: Any = None, clause: Any = None, bind: Any = None, **kwargs: Any) -> Any:
        if bind is None and _reading.get():
            engine = self._db.engines.get(BIND)
            if engine is not None:
                return engine
        return super().get_bind(mapper=mapper, clause=clause, bind=bind, **kwargs)


def configured() -> bool:
    return BIND in current_app.config.get("SQLALCHEMY_BINDS", {})


def wrote_recently(last_write_at: datetime | None) -> bool:
    window = timedelta(seconds=current_app.config["READ_YOUR_WRITES_SECONDS"])
    return last_write_at is not None and utcnow() - last_write_at < window


def from_replica(read: Callable[[], T], *, last_write_at: datetime | None) -> T:
    """``read()`` on the replica when there is one, the reader has not written lately and the
    replica answers; else on the primary."""
    global _unreachable_until
    if not configured() or wrote_recently(last_write_at) or time.monotonic() < _unreachable_until:
        return read()
    session = current_app.extensions["sqlalchemy"].session
    session.flush()  # what the request changed so far goes to the primary, never to the replica
    try:
        with _on_replica(), session.no_autoflush:
            return read()
    except DBAPIError as exc:
        if not exc.connection_invalidated and not _is_connect_error(exc):
            raise
        session.rollback()
        _unreachable_until = time.monotonic() + RETRY_SECONDS
        log.warning("replica unreachable (%s); the primary serves reads for %.0f s", exc.orig, RETRY_SECONDS)
    return read()


@contextmanager
def _on_replica() -> Iterator[None]:
    token = _reading.set(True)
    try:
        yield
    finally:
        _reading.reset(token)


def _is_connect_error(exc: DBAPIError) -> bool:
    """Refused, timed out or cut: psycopg's OperationalError, not a query the replica refused."""
    import psycopg

    return isinstance(exc.orig, psycopg.OperationalError)
