"""Cursor paging of the newest-first lists (jobs, Inbox+, audit, threads, documents, notes): the
cursor is the last id shown, and one more row than the page is read to know whether more follow.

The account and contact lists page by their sort keys instead; their services mint those cursors.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from portal_app.services.errors import ValidationFailed
from portal_app.services.validation import parse_id

Row = TypeVar("Row")


def before_id(cursor: str | None) -> int | None:
    """The id a newest-first page continues below, from the previous page's ``next_cursor``."""
    if cursor is None:
        return None
    key = parse_id(cursor)
    if key is None:
        raise ValidationFailed("The cursor is not valid.", fields={"cursor": ["Not a valid cursor."]})
    return key


def id_page(
    args: dict[str, Any],
    fetch: Callable[[int, int | None], Sequence[Row]],
    payload: Callable[[Row], dict[str, Any]],
    *,
    row_id: Callable[[Row], int] = lambda row: row.id,  # type: ignore[attr-defined]
) -> dict[str, Any]:
    """``{"items", "next_cursor"}`` of one page: ``fetch(limit, before_id)`` reads the rows."""
    limit = args["limit"]
    rows = fetch(limit + 1, before_id(args.get("cursor")))
    shown = rows[:limit]
    more = len(rows) > limit and bool(shown)
    return {"items": [payload(row) for row in shown], "next_cursor": str(row_id(shown[-1])) if more else None}
