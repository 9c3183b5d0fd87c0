"""The reference for the upload benchmark: a bare Flask endpoint that streams the request body
to disk in 1 MiB chunks, hashing it, served by the same gunicorn settings as Portico."""

import hashlib
import os
import tempfile

from flask import Flask, request

app = Flask(__name__)
FOLDER = os.environ.get("DOCUMENTS_DIR", tempfile.gettempdir())


@app.post("/upload")
def upload() -> tuple[dict[str, object], int]:
    digest = hashlib.sha256()
    handle, path = tempfile.mkstemp(dir=FOLDER, prefix=".bare-")
    size = 0
    with os.fdopen(handle, "wb") as out:
        while block := request.stream.read(1024 * 1024):
            digest.update(block)
            out.write(block)
            size += len(block)
        out.flush()
        os.fsync(out.fileno())
    os.unlink(path)
    return {"size": size, "sha256": digest.hexdigest()}, 201
