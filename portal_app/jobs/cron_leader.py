"""R-OPS-1: any number of ``flask cron`` processes, exactly one leading.

The lease is a PostgreSQL session advisory lock held on the process's own direct connection
(``DATABASE_DIRECT_URL``, else ``DATABASE_URL``; never through a transaction-mode PgBouncer, which
would hand the session to another client). PostgreSQL releases the lock the moment that
connection ends, so a leader killed with SIGKILL (its socket closed by the kernel) is replaced at
the next poll of a follower, within ``POLL_SECONDS``. A host that vanishes without closing its
socket is noticed by TCP keepalives on both ends (``KEEPALIVE_*``, about 30 s).

Fencing: before every tick the leader asks PostgreSQL whether its connection still holds the lock;
a leader that was paused and lost its connection meanwhile finds out before it enqueues anything
and goes back to following. The window left between that check and the enqueue is covered by
the periodic jobs being safe to run twice (R-NOT-5).

The leader names itself in its connection's ``application_name`` (``portico-cron|host|pid|since``),
so ``flask cron status`` reads the holder of the lock from ``pg_locks`` and ``pg_stat_activity``
with no table of its own to go stale.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

log = logging.getLogger(__name__)

# pg_advisory_lock(bigint) shows in pg_locks as classid (high 32 bits) / objid (low 32 bits)
LOCK_KEY = 0x50_43_52_4E  # "PCRN", below 2**32 so classid is 0
POLL_SECONDS = 5.0
APPLICATION_PREFIX = "portico-cron"
KEEPALIVE = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3}


def plain_url(url: str) -> str:
    """libpq's form of a SQLAlchemy URL (``postgresql+psycopg://`` → ``postgresql://``)."""
    scheme, sep, rest = url.partition("://")
    return "postgresql://" + rest if sep and scheme.startswith("postgres") else url


@dataclass(frozen=True)
class Leader:
    host: str
    pid: int
    since: datetime
    address: str | None

    def describe(self) -> str:
        where = f" from {self.address}" if self.address else ""
        return f"host={self.host} pid={self.pid} since={self.since.isoformat(timespec='seconds')}{where}"


class Lease:
    """The advisory lock on one direct connection, reconnecting when that connection is lost."""

    def __init__(self, url: str, host: str | None = None, pid: int | None = None) -> None:
        self.url = plain_url(url)
        self.host = (host or socket.gethostname())[:24]
        self.pid = pid or os.getpid()
        self.since: datetime | None = None
        self._conn: psycopg.Connection[Any] | None = None

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(
                self.url,
                autocommit=True,
                prepare_threshold=None,
                application_name=f"{APPLICATION_PREFIX}|{self.host}|{self.pid}|follower",
                connect_timeout=5,
                **KEEPALIVE,
            )
        return self._conn

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error:  # pragma: no cover - closing a broken socket
                pass
        self._conn = None
        self.since = None

    def acquire(self) -> bool:
        """Take the lease if nobody holds it; True while this process leads."""
        if self.since is not None:
            return self.held()
        try:
            conn = self._connection()
            won = conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()
            if not (won and won[0]):
                return False
            since = datetime.now(UTC).replace(microsecond=0)
            name = f"{APPLICATION_PREFIX}|{self.host}|{self.pid}|{int(since.timestamp())}"
            conn.execute("SELECT set_config('application_name', %s, false)", (name,))
        except psycopg.Error as exc:
            log.warning("cron lease: database unreachable (%s); retrying", exc)
            self._drop()
            return False
        self.since = since
        log.info("cron lease: this process leads (host %s, pid %s)", self.host, self.pid)
        return True

    def held(self) -> bool:
        """Ask PostgreSQL whether this connection still holds the lock (the fence before acting)."""
        if self._conn is None or self.since is None:
            return False
        try:
            row = self._conn.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = 0 AND objid = %s"
                " AND objsubid = 1 AND granted AND pid = pg_backend_pid()",
                (LOCK_KEY,),
            ).fetchone()
        except psycopg.Error as exc:
            log.warning("cron lease: lost the connection holding the lease (%s)", exc)
            self._drop()
            return False
        if not (row and row[0]):
            self._drop()
            return False
        return True

    def release(self) -> None:
        if self._conn is not None and self.since is not None:
            try:
                self._conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
            except psycopg.Error:
                pass
        self._drop()


def current_leader(url: str) -> Leader | None:
    """The process holding the lease, read from PostgreSQL itself."""
    with psycopg.connect(plain_url(url), autocommit=True, prepare_threshold=None, connect_timeout=5) as conn:
        row = conn.execute(
            "SELECT a.application_name, host(a.client_addr) FROM pg_locks l"
            " JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.classid = 0 AND l.objid = %s AND l.objsubid = 1"
            " AND l.granted",
            (LOCK_KEY,),
        ).fetchone()
    if row is None:
        return None
    parts = (row[0] or "").split("|")
    if len(parts) != 4 or parts[0] != APPLICATION_PREFIX or not parts[3].isdigit():
        return Leader(host="?", pid=0, since=datetime.fromtimestamp(0, UTC), address=row[1])
    return Leader(
        host=parts[1], pid=int(parts[2]), since=datetime.fromtimestamp(int(parts[3]), UTC), address=row[1]
    )


def lead(lease: Lease, tick: Any, stopping: Any, poll_seconds: float = POLL_SECONDS) -> None:
    """Follow until the lease is won, then call ``tick()`` (which returns how long it may sleep)
    while the lease holds; back to following when it is lost; return when ``stopping()``."""
    while not stopping():
        if not lease.acquire():
            _sleep(poll_seconds, stopping)
            continue
        pause = float(tick())
        _sleep(min(max(pause, 0.0), poll_seconds), stopping)
    lease.release()


def _sleep(seconds: float, stopping: Any) -> None:
    deadline = time.monotonic() + seconds
    while not stopping() and time.monotonic() < deadline:
        time.sleep(min(0.2, max(deadline - time.monotonic(), 0)))
