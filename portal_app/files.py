"""Files under DOCUMENTS_DIR, content-addressed by SHA-256 and written atomically (a temp file
renamed into place). A path is always built from a digest, never from a name a client chose."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

from flask import current_app

_DIGEST = re.compile(r"^[0-9a-f]{64}$")


def blob_path(area: str, sha256: str, suffix: str = "") -> Path:
    if not _DIGEST.match(sha256):
        raise ValueError("not a SHA-256 digest")
    return Path(current_app.config["DOCUMENTS_DIR"]) / area / sha256[:2] / f"{sha256}{suffix}"


def store_blob(area: str, data: bytes, suffix: str = "") -> str:
    """Keep ``data`` once under its digest; return the digest."""
    sha256 = hashlib.sha256(data).hexdigest()
    target = blob_path(area, sha256, suffix)
    if target.exists():
        return sha256
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return sha256
