"""One row of an import file, checked on its own (R-IMP-1..3): the columns it fills, its
yes/no settings, and why it is refused, naming the column. Only ``account_name`` and ``email``
are required."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from portal_app.models import IMPORT_FLAGS
from portal_app.services.csv_files import COLUMNS
from portal_app.services.errors import DomainError
from portal_app.services.validation import normalise_email, text_problem

YES, NO = {"yes", "true", "1"}, {"no", "false", "0"}


LIMITS = {
    "account_name": 200,
    "external_id": 100,
    "company_name": 200,
    "company_address": 2000,
    "first_name": 100,
    "middle_name": 100,
    "last_name": 100,
    "email_label": 50,
    "phone": 50,
    "tags": 1000,
}


class RowRefused(Exception):
    """A row that cannot be imported; the message says why, naming the column."""


@dataclass
class ImportRow:
    number: int  # as the spreadsheet shows it (the header is row 1)
    cells: list[str]
    values: dict[str, str]
    email: str = ""
    flags: dict[str, bool] = field(default_factory=dict)  # the settings the row sets
    invite: bool = False
    tags: list[str] | None = None


def _flag(values: dict[str, str], column: str) -> bool | None:
    raw = values.get(column, "").strip().lower()
    if raw == "":
        return None
    if raw in YES:
        return True
    if raw in NO:
        return False
    raise RowRefused(f"{column}: {values[column]!r} is not one of yes, no, true, false, 1, 0 (or empty).")


def parse_row(keys: Sequence[str], number: int, cells: list[str]) -> ImportRow:
    """Check one row on its own; raise RowRefused naming the column at fault."""
    if len(cells) > len(keys) and any(cell.strip() for cell in cells[len(keys) :]):
        raise RowRefused(f"This row has {len(cells)} cells but the header has {len(keys)} columns.")
    values = {key: cell.strip() for key, cell in zip(keys, cells, strict=False) if key in COLUMNS}
    for column, value in values.items():
        problem = text_problem(value)
        if problem:
            raise RowRefused(f"{column}: {problem}")
        if len(value) > LIMITS.get(column, 200):
            raise RowRefused(f"{column}: at most {LIMITS.get(column, 200)} characters.")
    if not values.get("account_name"):
        raise RowRefused("account_name: required.")
    if not values.get("email"):
        raise RowRefused("email: required.")
    try:
        email = normalise_email(values["email"])
    except DomainError:
        raise RowRefused(f"email: {values['email']!r} is not a valid email address.") from None
    account_type = values.get("account_type", "").lower()
    if account_type not in ("", "individual", "company"):
        raise RowRefused(f"account_type: {values['account_type']!r} is not individual or company.")
    values["account_type"] = account_type
    flags = {column: value for column in IMPORT_FLAGS if (value := _flag(values, column)) is not None}
    invite = bool(_flag(values, "send_invitation"))
    if invite and flags.get("login") is not True:
        raise RowRefused("send_invitation: only with login yes in the same row.")
    tags = None
    if values.get("tags"):
        tags = []
        for tag in (t.strip() for t in values["tags"].split(";")):
            if tag and len(tag) > 64:
                raise RowRefused("tags: each tag is at most 64 characters.")
            if tag and tag.casefold() not in {t.casefold() for t in tags}:
                tags.append(tag)
    return ImportRow(
        number=number, cells=cells, values=values, email=email, flags=flags, invite=invite, tags=tags
    )


def error_item(row_number: int, cells: list[str], email: str, reason: str) -> dict[str, Any]:
    return {
        "account_id": None,
        "contact_id": None,
        "email": email or None,
        "row": row_number,
        "reason": reason,
        "cells": cells,
    }
