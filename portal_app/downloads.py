"""Serving stored files to staff and clients (R-DOC-4): never rendered as a page of the app's
origin. Every file is an attachment with its name in both Content-Disposition forms (RFC 6266),
``nosniff``, and a CSP that sandboxes it should a browser open it anyway; the type sent is the
one sniffed from the bytes when the document was saved."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from flask import Response

CHUNK = 256 * 1024
# types a browser could run as a page of our origin: always sent as opaque bytes
_ACTIVE = re.compile(r"^(text/html|application/xhtml|image/svg|text/xml|application/xml)", re.I)


def content_disposition(name: str, disposition: str = "attachment") -> str:
    fallback = re.sub(r"[^A-Za-z0-9 ._()-]", "_", name) or "download"
    return f"{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def file_download(path: Path, *, name: str, mimetype: str = "application/octet-stream") -> Response:
    """Stream a stored file as an attachment, the file open only while it is read."""

    def chunks() -> Iterator[bytes]:
        with path.open("rb") as handle:
            while block := handle.read(CHUNK):
                yield block

    if _ACTIVE.match(mimetype or ""):
        mimetype = "application/octet-stream"
    response = Response(chunks(), mimetype=mimetype or "application/octet-stream", direct_passthrough=True)
    response.headers["Content-Length"] = str(path.stat().st_size)
    response.headers["Content-Disposition"] = content_disposition(name)
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "sandbox; default-src 'none'"
    return response
