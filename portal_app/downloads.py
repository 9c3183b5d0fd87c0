"""Serving stored files to staff and clients: never rendered as a page of the app's origin."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from flask import Response

CHUNK = 256 * 1024

# what a browser may show in its own viewer, recognised by the file's first bytes (the type an
# uploader claimed is not trusted)
_INLINE_MAGIC = {
    "application/pdf": (b"%PDF-",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
}


def _viewable_type(path: Path) -> str | None:
    with path.open("rb") as handle:
        head = handle.read(16)
    return next((kind for kind, magics in _INLINE_MAGIC.items() if head.startswith(magics)), None)


def file_download(path: Path, *, mimetype: str, name: str, inline: bool = False) -> Response:
    """Stream a stored file: an attachment with its name in both Content-Disposition forms
    (RFC 6266), the file open only while it is read. With ``inline``, a PDF or an image (by its
    bytes) opens in the browser's viewer under a sandboxing CSP; anything else still downloads."""
    viewable = _viewable_type(path) if inline else None

    def chunks() -> Iterator[bytes]:
        with path.open("rb") as handle:
            while block := handle.read(CHUNK):
                yield block

    fallback = re.sub(r"[^A-Za-z0-9 ._()-]", "_", name) or "download"
    response = Response(chunks(), mimetype=viewable or mimetype, direct_passthrough=True)
    response.headers["Content-Length"] = str(path.stat().st_size)
    disposition = "inline" if viewable else "attachment"
    response.headers["Content-Disposition"] = (
        f"{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name)}"
    )
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    if viewable:
        response.headers["Content-Security-Policy"] = "sandbox; default-src 'none'; img-src 'self'"
    return response
