"""Fetch one row of a firm by its opaque id: another firm's id, a malformed id and a missing row
all answer the same 404 (R-SEC-1)."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import select

from portal_app.extensions import db
from portal_app.services.errors import NotFound
from portal_app.services.validation import parse_id

Row = TypeVar("Row")


def firm_row(model: type[Row], firm_id: int, row_id: object, what: str) -> Row:
    key = parse_id(row_id)
    column: Any = model
    row = db.session.scalar(select(model).where(column.id == key, column.firm_id == firm_id)) if key else None
    if row is None:
        raise NotFound(f"{what} not found.")
    return row


def newest_on_account(
    model: type[Row], account_id: int, *, limit: int, before_id: int | None = None
) -> list[Row]:
    """An account's rows, newest first (by id); ``before_id`` continues below the last one shown."""
    column: Any = model
    query = select(model).where(column.account_id == account_id)
    if before_id is not None:
        query = query.where(column.id < before_id)
    return list(db.session.scalars(query.order_by(column.id.desc()).limit(limit)))
