"""Files under DOCUMENTS_DIR, content-addressed by SHA-256 and written atomically (a temp file
renamed into place). A path is always built from a digest, never from a name a client chose."""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from flask import current_app

_DIGEST = re.compile(r"^[0-9a-f]{64}$")
# Inside ``one_sync``: the files written so far, made durable together when it ends.
_pending: ContextVar[list[Path] | None] = ContextVar("portico_pending_sync", default=None)


def blob_path(area: str, sha256: str, suffix: str = "") -> Path:
    if not _DIGEST.match(sha256):
        raise ValueError("not a SHA-256 digest")
    return Path(current_app.config["DOCUMENTS_DIR"]) / area / sha256[:2] / f"{sha256}{suffix}"


def store_blob(area: str, data: bytes, suffix: str = "") -> str:
    """Keep ``data`` once under its digest; return the digest."""
    sha256 = hashlib.sha256(data).hexdigest()
    target = blob_path(area, sha256, suffix)
    if not target.exists():
        write_atomically(target, data)
    return sha256


def write_atomically(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` through a temp file renamed into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
    try:
        pending = _pending.get()
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            if pending is None:
                os.fsync(out.fileno())
        os.replace(temp, target)
        if pending is not None:
            pending.append(target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


@contextmanager
def one_sync() -> Iterator[None]:
    """Files written inside are made durable together when it ends (before the caller
    commits the rows that name them): one ``syncfs`` of DOCUMENTS_DIR's file system instead of
    an ``fsync`` per file, for the mailbox poller's batch. Where ``syncfs`` is not available,
    each file is synced then."""
    written: list[Path] = []
    token = _pending.set(written)
    try:
        yield
    finally:
        _pending.reset(token)
        if written:
            _sync(written)


def _sync(paths: list[Path]) -> None:
    root = os.open(current_app.config["DOCUMENTS_DIR"], os.O_RDONLY)
    try:
        if _libc_syncfs(root) == 0:
            return
    finally:
        os.close(root)
    for path in paths:
        handle = os.open(path, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)


def _libc_syncfs(fd: int) -> int:
    try:
        return ctypes.CDLL(None, use_errno=True).syncfs(fd)
    except (OSError, AttributeError):
        return -1


CHUNK = 1024 * 1024


class Spooled:
    """A request body streamed to a temporary file under DOCUMENTS_DIR as it arrives, hashed on
    the way: memory stays at one chunk whatever the size. ``keep`` renames it into the store
    under its digest; ``discard`` removes it. Use it as a context manager: a body that is not
    kept is always removed."""

    def __init__(self, area: str, suffix: str = "") -> None:
        self.area, self.suffix = area, suffix
        folder = Path(current_app.config["DOCUMENTS_DIR"]) / area
        folder.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=folder, prefix=".incoming-")
        self.path = Path(temp)
        self._file = os.fdopen(handle, "w+b")
        self._hash = hashlib.sha256()
        self.size = 0
        self.sha256 = ""

    def write_from(self, stream: object, *, limit: int) -> None:
        """Copy ``stream`` (anything with ``read``) here; ``TooLarge`` past ``limit`` bytes."""
        read = stream.read  # type: ignore[attr-defined]
        while block := read(CHUNK):
            self.size += len(block)
            if self.size > limit:
                raise TooLarge(limit)
            self._hash.update(block)
            self._file.write(block)
        self._file.flush()
        self.sha256 = self._hash.hexdigest()

    def head(self, limit: int = 256 * 1024) -> bytes:
        """The first bytes (a message's header block lives there)."""
        self._file.seek(0)
        return self._file.read(limit)

    def read_all(self) -> bytes:
        self._file.seek(0)
        return self._file.read()

    def keep(self) -> Path:
        """Move it into the store under its digest (once: an equal file may be there already)."""
        os.fsync(self._file.fileno())
        self._file.close()
        target = blob_path(self.area, self.sha256, self.suffix)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            self.path.unlink(missing_ok=True)
        else:
            os.replace(self.path, target)
        return target

    def discard(self) -> None:
        if not self._file.closed:
            self._file.close()
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> Spooled:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.discard()


class TooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"over {limit} bytes")
        self.limit = limit
