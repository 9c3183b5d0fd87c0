"""Engine hooks: how Portico talks to its database, statement by statement.

- **SQLite** enforces foreign keys (and so every ON DELETE CASCADE) only when asked.
- **PostgreSQL: reads without a transaction, writes in one.** The engine runs psycopg in
  autocommit (``config.engine_options``), and ``_begin_before_writes`` sends BEGIN just before
  the first statement that is not a plain read: an INSERT, UPDATE, DELETE, DDL, a SAVEPOINT, a
  ``SELECT … FOR UPDATE``, a transaction-scoped lock or setting. From there on it is an ordinary
  transaction: the unit of work's commit sends COMMIT, a refusal or an error sends ROLLBACK
  (psycopg sends either only when a transaction is open). A read-only request so costs no
  BEGIN and no COMMIT round trip. Plain reads before the first write see what is committed,
  exactly what they saw inside a READ COMMITTED transaction (each statement takes its own
  snapshot there too), and hold no locks in either case. A connection opened explicitly with
  ``isolation_level="AUTOCOMMIT"`` (the delivery marks) is left alone.
- **A dead pooled connection is swapped, not reported**, at no round-trip cost. When PostgreSQL
  restarts or ends a backend, the server writes its FATAL notice and closes the socket, so an
  idle pooled connection has something to read. ``_swap_dead_connection`` checks exactly that
  on checkout (a zero-timeout ``select``) and raises ``DisconnectionError``, on which the pool
  drops the connection and checks out (or opens) another. This replaces ``pool_pre_ping``,
  which spent a ``SELECT 1`` round trip on every checkout to learn the same thing.
"""

from __future__ import annotations

import re
import select
from typing import Any

from psycopg.pq import TransactionStatus
from sqlalchemy import event, exc
from sqlalchemy.engine import Engine
from sqlalchemy.pool import Pool

IDLE = TransactionStatus.IDLE
# A SELECT that must run inside the transaction: row locks, and functions whose effect is scoped
# to it (a transaction's advisory lock, ``set_config(…, true)``).
_TRANSACTIONAL_READ = re.compile(
    r"\bFOR\s+(?:UPDATE|NO\s+KEY\s+UPDATE|SHARE|KEY\s+SHARE)\b|\bset_config\s*\(|advisory_xact", re.I
)
_PLAIN_READS: dict[str, bool] = {}
_MAX_REMEMBERED = 4096


def init_app() -> None:
    for target, name, hook in (
        (Engine, "connect", _sqlite_foreign_keys),
        (Engine, "before_cursor_execute", _begin_before_writes),
        (Pool, "checkout", _swap_dead_connection),
    ):
        if not event.contains(target, name, hook):
            event.listen(target, name, hook)


def _sqlite_foreign_keys(dbapi_connection: Any, connection_record: Any) -> None:
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


def is_plain_read(statement: str) -> bool:
    """True for a SELECT that may run outside a transaction (no lock, nothing scoped to it)."""
    plain = _PLAIN_READS.get(statement)
    if plain is None:
        plain = statement.lstrip()[:6].upper() == "SELECT" and not _TRANSACTIONAL_READ.search(statement)
        if len(_PLAIN_READS) < _MAX_REMEMBERED:  # the compiled statements are a bounded set
            _PLAIN_READS[statement] = plain
    return plain


def _begin_before_writes(
    conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
) -> None:
    dbapi_connection = cursor.connection
    if getattr(dbapi_connection, "autocommit", False) is not True or not hasattr(dbapi_connection, "info"):
        return  # SQLite, or a psycopg connection that manages its own transactions
    if dbapi_connection.info.transaction_status != IDLE or is_plain_read(statement):
        return
    if conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
        return  # asked for statement-by-statement commits explicitly
    cursor.execute("BEGIN")


def _swap_dead_connection(dbapi_connection: Any, connection_record: Any, connection_proxy: Any) -> None:
    pgconn = getattr(dbapi_connection, "pgconn", None)
    if pgconn is None:
        return  # not psycopg
    if dbapi_connection.closed or pgconn.socket < 0:
        raise exc.DisconnectionError("the pooled connection is closed")
    readable, _, _ = select.select([pgconn.socket], [], [], 0)
    if readable:  # an idle connection has nothing to say unless the server ended it
        raise exc.DisconnectionError("the server ended the pooled connection")
