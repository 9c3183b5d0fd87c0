"""Cursor paging shared by the list endpoints: the cursor is the last id shown."""

from __future__ import annotations

from portal_app.services.errors import ValidationFailed
from portal_app.services.validation import parse_id


def before_id(cursor: str | None) -> int | None:
    """The id a newest-first page continues below, from the previous page's ``next_cursor``."""
    if cursor is None:
        return None
    key = parse_id(cursor)
    if key is None:
        raise ValidationFailed("The cursor is not valid.", fields={"cursor": ["Not a valid cursor."]})
    return key
