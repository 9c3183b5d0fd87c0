"""Uploads streamed to disk as they arrive (R-DOC-2): the web process's memory does not grow
with the file.

werkzeug parses ``multipart/form-data`` chunk by chunk (``UploadFormParser``: 1 MiB) and hands
each file part to the request's stream factory. ``UploadRequest`` answers that call, on a route of
``UPLOAD_ENDPOINTS``, with a ``StreamedFile``: a temporary file under DOCUMENTS_DIR (the same
file system as the store, so keeping it is a rename) that hashes and counts every chunk and
refuses the part past the per-file limit (413). The other limits are werkzeug's own:
``max_content_length`` for the whole body (chunked bodies included), ``max_form_parts`` for the
number of parts, ``max_form_memory_size`` for the text fields, the only parts kept in memory.
The page's JavaScript sends the file itself as
the body instead (``receive_raw_file``): nothing to parse. A file no view kept is removed when the
request ends.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import IO, Any

from flask import Flask, Request, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.formparser import FormDataParser, MultiPartParser

from portal_app.files import blob_path

HEAD_BYTES = 8192  # what type sniffing reads


class UploadTooLarge(RequestEntityTooLarge):
    def __init__(self, limit: int) -> None:
        super().__init__(f"A file is over the limit of {limit // (1024 * 1024)} MB.")
        self.limit = limit


class StreamedFile:
    """One file part, written to a temporary file as it arrives and hashed on the way."""

    def __init__(self, folder: Path, limit: int) -> None:
        handle, temp = tempfile.mkstemp(dir=folder, prefix=".incoming-")
        self.path = Path(temp)
        self._file: IO[bytes] = os.fdopen(handle, "w+b")
        self._hash = hashlib.sha256()
        self.limit = limit
        self.size = 0
        self.head = b""
        self.kept = False

    def write(self, data: bytes) -> int:
        self.size += len(data)
        if self.size > self.limit:
            raise UploadTooLarge(self.limit)
        if len(self.head) < HEAD_BYTES:
            self.head += data[: HEAD_BYTES - len(self.head)]
        self._hash.update(data)
        return self._file.write(data)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def keep(self, area: str) -> str:
        """Move the file into the store under its digest (once: an equal file may be there)."""
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        digest = self.sha256
        target = blob_path(area, digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            self.path.unlink(missing_ok=True)
        else:
            os.replace(self.path, target)
        self.kept = True
        return digest

    def discard(self) -> None:
        if not self._file.closed:
            self._file.close()
        if not self.kept:
            self.path.unlink(missing_ok=True)

    # what werkzeug's FileStorage reads back (FileStorage.stream)
    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence)

    def read(self, size: int = -1) -> bytes:
        return self._file.read(size)

    def readline(self, size: int = -1) -> bytes:
        return self._file.readline(size)

    def tell(self) -> int:
        return self._file.tell()

    def close(self) -> None:
        pass  # FileStorage.close: the request's end removes it unless a view kept it

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)


PARSE_CHUNK = 1024 * 1024


class UploadFormParser(FormDataParser):
    """werkzeug's form parser reading multipart bodies in 1 MiB chunks instead of 64 KiB: the
    parser's Python-level work is per chunk, so a large upload costs a sixteenth of the loop
    turns; memory stays at a chunk or two."""

    def _parse_multipart(
        self, stream: IO[bytes], mimetype: str, content_length: int | None, options: dict[str, str]
    ) -> Any:
        parser = MultiPartParser(
            stream_factory=self.stream_factory,
            max_form_memory_size=self.max_form_memory_size,
            max_form_parts=self.max_form_parts,
            cls=self.cls,
            buffer_size=PARSE_CHUNK,
        )
        boundary = options.get("boundary", "").encode("ascii")
        if not boundary:
            raise ValueError("Missing boundary")
        form, files = parser.parse(stream, boundary, content_length)
        return stream, form, files


class UploadRequest(Request):
    """Flask's request, whose file parts go to ``StreamedFile`` on an upload route."""

    form_data_parser_class = UploadFormParser
    upload_folder: Path | None = None
    upload_file_limit: int = 0

    def _get_file_stream(
        self,
        total_content_length: int | None,
        content_type: str | None,
        filename: str | None = None,
        content_length: int | None = None,
    ) -> IO[bytes]:
        if self.upload_folder is None:
            return super()._get_file_stream(total_content_length, content_type, filename, content_length)
        streamed = StreamedFile(self.upload_folder, self.upload_file_limit)
        self.__dict__.setdefault("streamed_files", []).append(streamed)
        return streamed  # type: ignore[return-value]

    def discard_uploads(self) -> None:
        for streamed in self.__dict__.pop("streamed_files", []):
            streamed.discard()


# The routes whose files stream to disk: endpoint -> (area under DOCUMENTS_DIR, the per-file
# limit in bytes or the config key of one in MiB, files per request). Configured before any
# other hook runs, because the API's CSRF check reads the form (and so parses the body) first.
UPLOAD_ENDPOINTS: dict[str, tuple[str, int | str, int | str]] = {
    "documents.AccountDocuments": ("documents", "UPLOAD_MAX_MB", 1),
    "portal.upload_documents": ("documents", "UPLOAD_MAX_MB", "UPLOAD_MAX_FILES"),
    "portal.upload_request_files": ("documents", "UPLOAD_MAX_MB", "UPLOAD_MAX_FILES"),
    "portal.action_link_upload": ("documents", "UPLOAD_MAX_MB", "UPLOAD_MAX_FILES"),
    "portal.action_link_item_files": ("documents", "UPLOAD_MAX_MB", "UPLOAD_MAX_FILES"),
    "photos.AccountPhoto": ("photos", 10 * 1024 * 1024, 1),
    "portal.upload_photo": ("photos", 10 * 1024 * 1024, 1),
}


def _configure_upload() -> None:
    """On an upload route: file parts stream to disk, each at most its limit; the whole body at
    most that plus 1 MiB for the form (one file per request with JavaScript; a no-JS form's
    files together); at most so many parts."""
    spec = UPLOAD_ENDPOINTS.get(request.endpoint or "")
    if spec is None or request.method not in ("POST", "PUT") or not isinstance(request, UploadRequest):
        return
    area, limit, files = spec
    config = current_app.config
    file_limit = int(config[limit]) * 1024 * 1024 if isinstance(limit, str) else limit
    max_files = int(config[files]) if isinstance(files, str) else files
    folder = Path(config["DOCUMENTS_DIR"]) / area
    folder.mkdir(parents=True, exist_ok=True)
    request.upload_folder = folder
    request.upload_file_limit = file_limit
    request.max_content_length = file_limit + 1024 * 1024
    request.max_form_parts = max_files + 10
    # werkzeug's decoder refuses a parse chunk larger than this, so it must hold one chunk;
    # the text fields of an upload form are a CSRF token and a batch id
    request.max_form_memory_size = 2 * PARSE_CHUNK
    if request.content_length is not None and request.content_length > request.max_content_length:
        raise UploadTooLarge(file_limit)


def receive_raw_file() -> StreamedFile:
    """The whole body of an upload route as one file (what the page's JavaScript sends: the
    file itself, no multipart framing to parse), streamed to disk in 1 MiB chunks."""
    assert isinstance(request, UploadRequest) and request.upload_folder is not None
    file = StreamedFile(request.upload_folder, request.upload_file_limit)
    request.__dict__.setdefault("streamed_files", []).append(file)
    read = request.stream.read
    while block := read(PARSE_CHUNK):
        file.write(block)
    return file


def streamed(storage: Any) -> StreamedFile:
    """The ``StreamedFile`` behind a ``FileStorage`` of an upload route."""
    stream = storage.stream
    assert isinstance(stream, StreamedFile)
    return stream


def init_app(app: Flask) -> None:
    app.request_class = UploadRequest
    app.before_request_funcs.setdefault(None, []).insert(0, _configure_upload)

    @app.teardown_request
    def _discard_uploads(_exc: BaseException | None) -> None:
        if isinstance(request, UploadRequest):
            request.discard_uploads()
