"""Small wording helpers for the staff-facing English of reports and messages."""

from __future__ import annotations


def count(n: int, noun: str, plural: str | None = None) -> str:
    """ "1 error", "2 errors", "0 errors"."""
    return f"{n} {noun if n == 1 else (plural or noun + 's')}"
