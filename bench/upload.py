"""Benchmark: client uploads through the portal under gunicorn (SPEC §15, R-DOC-2).

1 GB in 20 files POSTed to `/portal/a/<id>/documents` by a signed-in client, production
settings: once as the page's JavaScript sends them (one request per file, the file itself as the
body) and once as the no-JavaScript form does (multipart/form-data, which werkzeug parses).
Reference, same run and same gunicorn settings: a bare Flask endpoint that streams the same
bodies to the same disk (bench/_bare_upload.py), the two servers alternating file by file so
both meet the disk in the same state. Then the web worker's peak RSS growth while one 100 MiB
file is uploaded (VmHWM reset through /proc/PID/clear_refs).

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


def _raw(size: int):
    """The file itself as the body, as the page's JavaScript sends it."""
    seed_block = os.urandom(CHUNK)

    def pieces():
        sent = 0
        while sent < size:
            block = seed_block[: min(CHUNK, size - sent)]
            yield block
            sent += len(block)

    return pieces, size


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
            LIMIT_UPLOADS="100000 per hour",  # repeated runs reuse the same user id in Redis
        )
        path = f"/portal/a/{account_id}/documents"

        raw = {"Content-Type": "application/octet-stream"}
        bare_port, portico_port = free_port(), free_port()
        bare_proc = gunicorn("bench._bare_upload:app", env, bare_port)
        portico_proc = gunicorn("wsgi:app", env, portico_port)
        try:
            cookie = session_cookie(portico_port, email)
            token, cookie = csrf(portico_port, path, cookie)
            headers = {"Cookie": cookie, "X-Upload": "xhr", "X-CSRFToken": token, "X-Upload-Batch": "bench"}
            targets = {"bare": (bare_port, "/upload", {}), "portico": (portico_port, path, headers)}
            took = {(who, shape): 0.0 for who in targets for shape in ("raw", "form")}
            # file by file, alternating the two servers (and who goes first), so both meet the disk
            # in the same state
            for n in range(args.files):
                for shape in ("raw", "form"):
                    order = list(targets.items()) if n % 2 == 0 else list(targets.items())[::-1]
                    for who, (port, target, extra) in order:  # who goes first alternates too
                        if shape == "raw":
                            pieces, length = _raw(size)
                            sent = {**extra, **raw, "X-File-Name": f"{shape}-{n}.pdf"}
                        else:
                            pieces, length = _body(
                                {"csrf_token": token, "batch": "bench"}, f"{shape}-{n}.pdf", size
                            )
                            sent = extra
                        started = time.perf_counter()
                        status = post(port, target, pieces, length, sent)
                        took[(who, shape)] += time.perf_counter() - started
                        assert status == 201, (who, shape, status)
            [worker] = Path(f"/proc/{portico_proc.pid}/task/{portico_proc.pid}/children").read_text().split()
            pieces, length = _raw(100 * 1024 * 1024)
            Path(f"/proc/{worker}/clear_refs").write_text("5")
            before = _status_kb(int(worker), "VmRSS")
            assert (
                post(portico_port, path, pieces, length, {**headers, **raw, "X-File-Name": "big.pdf"}) == 201
            )
            grown = (_status_kb(int(worker), "VmHWM") - before) / 1024
        finally:
            for proc in (bare_proc, portico_proc):
                proc.terminate()
                proc.wait(timeout=30)
        portico_raw, bare_raw = took[("portico", "raw")], took[("bare", "raw")]
        portico_form, bare_form = took[("portico", "form")], took[("bare", "form")]
    total_mb = args.files * size / 1e6
    report(
        [
            share(
                f"client upload, {args.files} files, {total_mb:.0f} MB, as the page sends them (MB/s)",
                total_mb / portico_raw,
                total_mb / bare_raw,
                "MB/s",
                0.5,
                "JavaScript: the file as the body; bare Flask streams the same bodies to disk",
            ),
            share(
                f"client upload, {args.files} files, {total_mb:.0f} MB, no-JS form (MB/s)",
                total_mb / portico_form,
                total_mb / bare_form,
                "MB/s",
                0.5,
                "multipart parsed by werkzeug; bare Flask streams the same bodies unparsed",
            ),
            absolute("client upload, 100 MiB file: web worker peak RSS growth", grown, "MB", 32),
        ]
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
