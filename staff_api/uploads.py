"""Request bodies larger than the rest of the API allows (CSV imports, raw mail, documents)."""

from __future__ import annotations

from flask import request

from portal_app.services.csv_files import FileTooLarge


def allow_body(limit: int, too_large: str) -> None:
    """Refuse a declared body over ``limit`` bytes at once (413 with ``too_large``), and let this
    request read up to ``limit`` instead of the app-wide cap."""
    if request.content_length is not None and request.content_length > limit:
        raise FileTooLarge(too_large)
    request.max_content_length = limit
