"""Benchmark: client uploads through the portal under gunicorn (SPEC §15, R-DOC-2).

1 GB in 20 files, each POSTed as its own multipart request (as the page's JavaScript sends them)
to `/portal/a/<id>/documents` by a signed-in client, production settings; reference, same run
and same gunicorn settings: a bare Flask endpoint that streams the same bodies to the same disk
(bench/_bare_upload.py). Then the web worker's peak RSS growth while one 100 MB file is uploaded
(VmHWM reset through /proc/PID/clear_refs).

    .venv/bin/python bench/upload.py [--files 20] [--mb 50]
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    REDIS_URL,
    SECRET_KEY,
    absolute,
    build_app,
    free_port,
    gunicorn,
    own_database,
    report,
    share,
)
from inbound_email import _status_kb  # noqa: E402
from portal_home import seed, session_cookie  # noqa: E402

BOUNDARY = "portico-bench-boundary"
CHUNK = 1024 * 1024


def _body(fields: dict[str, str], name: str, size: int):
    head = "".join(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
        for k, v in fields.items()
    )
    head += f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
    head += "Content-Type: application/pdf\r\n\r\n"
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    seed_block = os.urandom(CHUNK)
    length = len(head.encode()) + size + len(tail)

    def pieces():
        yield head.encode()
        sent = 0
        while sent < size:
            block = seed_block[: min(CHUNK, size - sent)]
            yield block
            sent += len(block)
        yield tail

    return pieces, length


def post(port: int, path: str, pieces, length: int, headers: dict[str, str]) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    conn.request(
        "POST",
        path,
        body=pieces(),
        headers={
            "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
            "Content-Length": str(length),
            **headers,
        },
    )
    response = conn.getresponse()
    response.read()
    conn.close()
    return response.status


def csrf(port: int, path: str, cookie: str) -> tuple[str, str]:
    """The form's CSRF token, and the session cookie that holds it (the page may set a new one)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path, headers={"Cookie": cookie})
    response = conn.getresponse()
    page = response.read().decode()
    cookie = response.headers.get("Set-Cookie", "").split(";", 1)[0] or cookie
    conn.close()
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1), cookie


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--mb", type=int, default=50, help="MB per file (20 × 50 MB = 1 GB)")
    args = parser.parse_args()
    size = args.mb * 1_000_000
    with own_database("upload") as url:
        app = build_app(url)
        email, account_id = seed(app)
        documents_dir = tempfile.mkdtemp(prefix="portico-bench-uploads-", dir=os.environ.get("BENCH_DISK"))
        env = dict(
            os.environ,
            PORTICO_ENV="production",
            SECRET_KEY=SECRET_KEY,
            DATABASE_URL=url,
            REDIS_URL=REDIS_URL,
            MAIL_URL="smtp://127.0.0.1:25",
            PORTICO_INSTANCE_PATH=tempfile.mkdtemp(),
            DOCUMENTS_DIR=documents_dir,
            WEB_CONCURRENCY="1",
            LIMIT_PER_IP="1000 per minute",
        )
        path = f"/portal/a/{account_id}/documents"

        port = free_port()
        proc = gunicorn("bench._bare_upload:app", env, port)
        try:
            started = time.perf_counter()
            for n in range(args.files):
                pieces, length = _body({"csrf_token": "x"}, f"bare-{n}.pdf", size)
                assert post(port, "/upload", pieces, length, {}) == 201
            bare = time.perf_counter() - started
        finally:
            proc.terminate()
            proc.wait(timeout=30)

        port = free_port()
        proc = gunicorn("wsgi:app", env, port)
        try:
            cookie = session_cookie(port, email)
            token, cookie = csrf(port, path, cookie)
            headers = {"Cookie": cookie, "X-Upload": "xhr"}
            started = time.perf_counter()
            for n in range(args.files):
                pieces, length = _body({"csrf_token": token, "batch": "bench"}, f"statement-{n}.pdf", size)
                status = post(port, path, pieces, length, headers)
                assert status == 201, status
            portico = time.perf_counter() - started
            [worker] = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
            pieces, length = _body({"csrf_token": token}, "big-100mb.pdf", 100 * 1024 * 1024)
            Path(f"/proc/{worker}/clear_refs").write_text("5")
            before = _status_kb(int(worker), "VmRSS")
            assert post(port, path, pieces, length, headers) == 201
            grown = (_status_kb(int(worker), "VmHWM") - before) / 1024
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    total_mb = args.files * size / 1e6
    report(
        [
            share(
                f"client upload, {args.files} files, {total_mb:.0f} MB (MB/s)",
                total_mb / portico,
                total_mb / bare,
                "MB/s",
                0.5,
                "portal route vs a bare Flask endpoint streaming the same bodies to the same disk",
            ),
            absolute("client upload, 100 MiB file: web worker peak RSS growth", grown, "MB", 32),
        ]
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
