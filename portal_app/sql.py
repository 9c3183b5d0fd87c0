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


def _with_defaults(table: Table, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fill in the columns' Python-side defaults (the JSON path bypasses SQLAlchemy's)."""
    defaults: dict[str, Any] = {}
    for column in table.columns:
        default = column.default
        if (
            default is None
            or column.primary_key
            or not getattr(default, "is_scalar", False)
            and not getattr(default, "is_callable", False)
        ):
            continue
        defaults[column.name] = default
    filled = []
    for row in rows:
        values = dict(row)
        for name, default in defaults.items():
            if name not in values:
                values[name] = default.arg(None) if default.is_callable else default.arg
        filled.append(values)
    return filled


def next_ids(table: Table, count: int) -> list[int]:
    """``count`` new ids from the table's id sequence (PostgreSQL)."""
    return list(
        db.session.scalars(
            text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :count)"),
            {"table": table.name, "count": count},
        )
    )


def insert_with_ids(table: Table, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert many rows; return their new ids in the rows' order."""
    if not rows:
        return []
    if not _postgresql():
        statement = insert(table).returning(table.c.id, sort_by_parameter_order=True)
        return list(db.session.scalars(statement, _with_defaults(table, rows)))
    ids = next_ids(table, len(rows))
    insert_rows(table, [{**row, "id": new_id} for row, new_id in zip(rows, ids, strict=True)])
    return ids


def insert_rows(table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert many rows in one statement (PostgreSQL: one JSON parameter)."""
    if not rows:
        return
    rows = _with_defaults(table, rows)
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
