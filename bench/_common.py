"""What every benchmark shares: a PostgreSQL database of its own (created with a unique name and
dropped afterwards), the app on it, and figures reported in one shape for `make bench`.

A figure is (name, Portico, reference, unit, target, met): `ratio` is Portico / reference
for times (lower is better) or reference / Portico for throughputs, as the target says.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SERVER_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
SECRET_KEY = "bench-secret-key-0123456789-abcdefghijkl"


@dataclass
class Figure:
    name: str
    portico: float
    reference: float
    unit: str
    ratio: float
    target: str
    met: bool
    note: str = ""


def time_ratio(
    name: str, portico: float, reference: float, unit: str, limit: float, note: str = ""
) -> Figure:
    """A figure where Portico should take at most ``limit`` × the reference."""
    ratio = portico / reference if reference else float("inf")
    return Figure(name, portico, reference, unit, ratio, f"≤ {limit:g}×", ratio <= limit, note)


def growth(name: str, portico: float, reference: float, limit: float, note: str = "") -> Figure:
    """How much slower Portico gets from the small data set to the large one (``portico``),
    beside how much slower the hand-written reference query gets on the same data
    (``reference``). Met when Portico grows at most ``limit``× or no more than the reference:
    a query whose work grows with the data (a substring search) cannot be asked to stay flat."""
    ratio = portico / reference if reference else float("inf")
    met = portico <= limit or portico <= reference
    return Figure(name, portico, reference, "×", ratio, f"≤ {limit:g}× or ≤ ref", met, note)


def share(name: str, portico: float, reference: float, unit: str, minimum: float, note: str = "") -> Figure:
    """A figure where Portico should reach at least ``minimum`` of the reference's throughput."""
    ratio = portico / reference if reference else 0.0
    return Figure(name, portico, reference, unit, ratio, f"≥ {minimum:.0%}", ratio >= minimum, note)


def absolute(name: str, portico: float, unit: str, limit: float, note: str = "") -> Figure:
    """A figure with a fixed ceiling (seconds, MB) rather than a reference."""
    return Figure(name, portico, limit, unit, portico / limit, f"≤ {limit:g} {unit}", portico <= limit, note)


def report(figures: list[Figure]) -> None:
    """Print the figures as a table; with BENCH_JSON set, also append them there for `make bench`."""
    print(table(figures))
    path = os.environ.get("BENCH_JSON")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            for figure in figures:
                out.write(json.dumps(asdict(figure)) + "\n")


def table(figures: list[Figure]) -> str:
    width = max([len("figure"), *(len(f.name) for f in figures)])
    tw = max([12, *(len(f.target) for f in figures)])
    header = f"{'figure':<{width}} {'Portico':>12} {'reference':>12} {'ratio':>8}  {'target':<{tw}} result"
    lines = [header, "-" * len(header)]
    for f in figures:
        ratio = f"{f.ratio:.0%}" if f.target.startswith("≥") else f"{f.ratio:.2f}×"
        portico, reference = _value(f.portico, f.unit), _value(f.reference, f.unit)
        lines.append(
            f"{f.name:<{width}} {portico:>12} {reference:>12} {ratio:>8}  "
            f"{f.target:<{tw}} {_verdict(f)}{'  ' + f.note if f.note else ''}"
        )
    return "\n".join(lines)


def _verdict(figure: Figure) -> str:
    if figure.target.startswith("("):
        return "—"  # a figure printed for information, with no target of its own
    return "met" if figure.met else "MISSED"


def _value(value: float, unit: str) -> str:
    if unit == "×":
        return f"{value:.2f}×"
    if unit == "req/s":
        return f"{value:,.0f} {unit}"
    if value >= 100:
        return f"{value:,.0f} {unit}"
    return f"{value:.2f} {unit}"


@contextmanager
def own_database(label: str) -> Iterator[str]:
    """A fresh PostgreSQL database for this run (unique name), dropped afterwards."""
    name = f"portico_bench_{label}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(f"{SERVER_URL}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{SERVER_URL}/{name}"
    finally:
        with psycopg.connect(f"{SERVER_URL}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def app_env(database_url: str, **extra: str) -> dict[str, str]:
    return {
        "PORTICO_ENV": "development",
        "DATABASE_URL": database_url,
        "SECRET_KEY": SECRET_KEY,
        "REDIS_URL": "",
        "MAIL_URL": "",
        **extra,
    }


def build_app(database_url: str, *, migrate: bool = True, **env: str) -> Any:
    from portal_app import create_app

    app = create_app({"ENV": app_env(database_url, **env), "DEV_MAIL_DIR": tempfile.mkdtemp()})
    if migrate:
        from flask_migrate import upgrade

        with app.app_context():
            upgrade()
    return app


def peak_rss_mb(pid: int) -> float:
    """The peak resident memory of a live process (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def wait_until(predicate: Any, timeout: float, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def run_job_through_worker(app: Any, url: str, token: str, post: Any) -> tuple[float, float, dict[str, Any]]:
    """Start a real `flask --app wsgi worker` (as production has one running), then time
    ``post(client, headers)`` — a request answering 202 with a job — until the job is done.
    Return the seconds, the worker's peak RSS in MB and the job's result."""
    import os
    import subprocess

    from redis import Redis
    from rq import Worker

    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    env = dict(os.environ, **app_env(url, REDIS_URL=REDIS_URL), PORTICO_INSTANCE_PATH=tempfile.mkdtemp())
    env["DOCUMENTS_DIR"] = app.config["DOCUMENTS_DIR"]
    redis = Redis.from_url(REDIS_URL)
    worker = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "worker"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_until(lambda: len(Worker.all(connection=redis)) == 1, 30), "the worker did not start"
        time.sleep(0.5)
        started = time.perf_counter()
        response = post(client, headers)
        assert response.status_code == 202, response.get_json()
        job_id = int(response.get_json()["id"])
        with psycopg.connect(url, autocommit=True) as conn:  # a cheap poll, not an API call

            def ended() -> bool:
                row = conn.execute("SELECT state FROM jobs WHERE id = %s", (job_id,)).fetchone()
                return row is not None and row[0] in ("done", "failed")

            assert wait_until(ended, 900, 0.02), "the job did not end"
        elapsed = time.perf_counter() - started
        rss = peak_rss_mb(worker.pid)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    job = client.get(f"/api/v1/jobs/{job_id}", headers=headers).get_json()
    assert job["state"] == "done", job
    return elapsed, rss, job["result"]


def gunicorn(app_path: str, env: dict[str, str], port: int) -> Any:
    """`gunicorn -c gunicorn.conf.py APP` on a port, without an access log, once it answers."""
    import socket
    import subprocess

    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--access-logfile", "/dev/null"]
        + [app_path],
        cwd=ROOT,
        env={**env, "GUNICORN_BIND": f"127.0.0.1:{port}"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def up() -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    assert wait_until(up, 30), f"gunicorn did not start for {app_path}"
    time.sleep(1.0)
    return proc


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
