"""Set-based statements that stay cheap for thousands of rows.

An ``IN (…)`` list of a thousand bound parameters is a new statement text for every length: the
driver parses it afresh and nothing is cached. On PostgreSQL an id set is one array parameter
(``= ANY(:ids)``) and many rows are one JSON parameter (``json_populate_recordset``); SQLite,
the embedded default, keeps the plain forms.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Table, any_, bindparam, insert, text
from sqlalchemy.dialects.postgresql import ARRAY

from portal_app.extensions import db

SQLITE_CHUNK = 900  # under SQLite's bound-parameter limit


def _postgresql() -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


def id_in(column: ColumnElement[int], ids: Iterable[int]) -> ColumnElement[bool]:
    """``column IN ids``: one array parameter on PostgreSQL, a plain IN list elsewhere."""
    values = sorted(set(ids))
    if _postgresql():
        return column == any_(bindparam(None, values, type_=ARRAY(BigInteger)))
    return column.in_(values)


def chunks(ids: Iterable[int]) -> list[list[int]]:
    """The ids in one piece on PostgreSQL, in SQLite-sized pieces elsewhere."""
    values = sorted(set(ids))
    if _postgresql() or len(values) <= SQLITE_CHUNK:
        return [values] if values else []
    return [values[at : at + SQLITE_CHUNK] for at in range(0, len(values), SQLITE_CHUNK)]


def insert_rows(table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert many rows in one statement (PostgreSQL: one JSON parameter), ids from the table."""
    if not rows:
        return
    if not _postgresql():
        db.session.execute(insert(table), list(rows))
        return
    columns = ", ".join(f'"{name}"' for name in rows[0])
    db.session.execute(
        text(
            f'INSERT INTO "{table.name}" ({columns}) SELECT {columns} '
            f'FROM json_populate_recordset(NULL::"{table.name}", :rows)'
        ),
        {"rows": json.dumps(list(rows), default=str)},
    )
