"""Engine hooks: SQLite enforces foreign keys (and so every ON DELETE CASCADE) only when asked."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine


def init_app() -> None:
    if not event.contains(Engine, "connect", _sqlite_foreign_keys):
        event.listen(Engine, "connect", _sqlite_foreign_keys)


def _sqlite_foreign_keys(dbapi_connection: Any, connection_record: Any) -> None:
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()
