"""Benchmark: invitations from the service call to the SMTP sink (SPEC §15, issue 15).

A firm of N accounts with login on (one contact email each) on a PostgreSQL database of its own.
Portico: `send_invitations` as the bulk job calls it (chunks of 1 000 rows, one commit each),
then the real `flask --app wsgi worker` processes (already running, 1 and then 2 of them) render
each email, mint its link and deliver it to an SMTP sink in its own process; the clock stops when
the sink holds N messages. Reference, same run: plain smtplib sending the same rendered messages
(the bytes the sink received) over one connection to the same sink.

    .venv/bin/python bench/mail_throughput.py              # 10 000 invitations
    .venv/bin/python bench/mail_throughput.py --count 1000

Target: Portico ≤ 2× the reference.
"""

from __future__ import annotations

import argparse
import os
import smtplib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from redis import Redis
from rq import Worker

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    REDIS_URL,
    ROOT,
    app_env,
    build_app,
    own_database,
    peak_rss_mb,
    report,
    time_ratio,
    wait_until,
)
from _smtp_sink import read_messages  # noqa: E402

from portal_app.extensions import db  # noqa: E402

SEED_SQL = """
INSERT INTO accounts (firm_id, name, type, custom_fields, created_at, updated_at)
SELECT %(firm)s, 'Client ' || g, 'individual', '{}', now(), now() FROM generate_series(1, %(n)s) g;
INSERT INTO contacts (firm_id, first_name, middle_name, last_name, phones, addresses, custom_fields,
                      created_at, updated_at)
SELECT %(firm)s, 'Client', '', 'Number ' || g, '[]', '[]', '{}', now(), now()
  FROM generate_series(1, %(n)s) g;
INSERT INTO contact_emails (firm_id, contact_id, address, label, is_primary, created_at)
SELECT %(firm)s, c.id, 'client' || c.id || '@example.com', '', true, now() FROM contacts c
 WHERE c.firm_id = %(firm)s;
INSERT INTO account_contacts (account_id, contact_id, firm_id, description, created_at)
SELECT a.id, c.id, %(firm)s, '', now()
  FROM (SELECT id, row_number() OVER (ORDER BY id) r FROM accounts WHERE firm_id = %(firm)s) a
  JOIN (SELECT id, row_number() OVER (ORDER BY id) r FROM contacts WHERE firm_id = %(firm)s) c USING (r);
INSERT INTO contact_settings (firm_id, account_id, contact_id, email_id, login, notify,
                              notification_preferences, email_sync, auto_save_attachments, signatory,
                              created_at, updated_at)
SELECT %(firm)s, ac.account_id, ac.contact_id, e.id, true, false, '{}', false, false, true, now(), now()
  FROM account_contacts ac JOIN contact_emails e ON e.contact_id = ac.contact_id WHERE ac.firm_id = %(firm)s;
"""


def start_sink(port: int, outfile: str, key: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "_smtp_sink.py"), str(port), outfile, REDIS_URL, key],
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
    return proc


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_portico(
    app, url: str, count: int, workers: int, sink_url: str, key: str, redis: Redis
) -> tuple[float, float]:
    from sqlalchemy import select

    from portal_app.models import ContactSettings, StaffUser
    from portal_app.services.invitations import send_invitations
    from portal_app.transaction import commit

    env = dict(os.environ, **app_env(url, REDIS_URL=REDIS_URL, MAIL_URL=sink_url))
    env["PORTICO_INSTANCE_PATH"] = tempfile.mkdtemp()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "wsgi", "worker"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(workers)
    ]
    try:
        assert wait_until(lambda: len(Worker.all(connection=redis)) == workers, 30), "workers did not start"
        time.sleep(0.5)
        redis.set(key, 0)
        started = time.perf_counter()
        with app.app_context():
            staff = db.session.scalar(select(StaffUser))
            ids = db.session.scalars(select(ContactSettings.id).order_by(ContactSettings.id)).all()[:count]
            for at in range(0, len(ids), 1000):
                rows = db.session.scalars(
                    select(ContactSettings).where(ContactSettings.id.in_(ids[at : at + 1000]))
                ).all()
                send_invitations(rows, sent_by=staff, message="Welcome to our portal")
                commit()
            db.session.remove()
        assert wait_until(lambda: int(redis.get(key) or 0) >= count, 600, 0.01), "not every email arrived"
        elapsed = time.perf_counter() - started
        rss = max(peak_rss_mb(p.pid) for p in procs)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
    return elapsed, rss


def run_reference(port: int, messages: list[bytes]) -> float:
    started = time.perf_counter()
    client = smtplib.SMTP("127.0.0.1", port)
    for data in messages:
        client.sendmail("no-reply@portico.localhost", ["client@example.com"], data)
    client.quit()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=10_000)
    args = parser.parse_args()
    redis = Redis.from_url(REDIS_URL)
    redis.flushdb()
    port = free_port()
    outfile = tempfile.mktemp(suffix=".mbox")
    key = "bench:mail:received"
    sink = start_sink(port, outfile, key)
    figures = []
    try:
        with own_database("mail") as url:
            app = build_app(url, REDIS_URL=REDIS_URL, MAIL_URL=f"smtp://127.0.0.1:{port}")
            with app.app_context():
                from portal_app.services.staff import create_firm, create_staff_user
                from portal_app.transaction import commit

                firm = create_firm("Bench CPA")
                create_staff_user(firm, email="staff@bench.example", password=None, role="admin")
                commit()
                firm_id = firm.id
                db.session.remove()
                db.engine.dispose()
            with psycopg.connect(url) as conn:
                for statement in SEED_SQL.split(";\n"):
                    if statement.strip():
                        conn.execute(statement, {"firm": firm_id, "n": args.count})
                conn.execute("ANALYZE")
            for workers in (1, 2):
                with psycopg.connect(url) as conn:
                    conn.execute("DELETE FROM outbox_emails; DELETE FROM invitations")
                os.truncate(outfile, 0)
                portico, rss = run_portico(
                    app, url, args.count, workers, f"smtp://127.0.0.1:{port}", key, redis
                )
                messages = read_messages(outfile)
                assert len(messages) == args.count
                reference = run_reference(port, messages)
                figures.append(
                    time_ratio(
                        f"{args.count:,} invitations → SMTP sink, {workers} worker(s)",
                        portico,
                        reference,
                        "s",
                        2.0,
                        note=f"worker peak RSS {rss:.0f} MB",
                    )
                )
                print(f"{workers} worker(s): Portico {portico:.2f} s, smtplib {reference:.2f} s", flush=True)
    finally:
        sink.terminate()
        sink.wait(timeout=10)
        os.unlink(outfile)
        redis.flushdb()
    report(figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
