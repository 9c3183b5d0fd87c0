"""Inbound email (SPEC §15): ingesting 10 000 real-shaped messages (a third with attachments)
through Portico's ingestion (parse, route, dedupe, thread, sanitise, save attachments as
documents, Inbox+ item) as the mailbox poller stores them (a fetched batch of 25 per transaction
and per durable file sync, ``mail_poll.store_batch``), against Python's `email` parser alone
parsing the same bytes, in the same run. Target ≤ 3×; peak memory printed. Another 2 000
messages go through the endpoint's way (one message, one commit) and are printed beside it.

    .venv/bin/python bench/inbound_email.py [--messages 10000]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from email import message_from_bytes, policy
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, Figure, absolute, build_app, own_database, peak_rss_mb, report, time_ratio  # noqa: E402

MAIL = ROOT / "tests" / "data" / "mail"
SENDERS = 200


def _messages(count: int, senders: list[str]) -> list[bytes]:
    """Real client shapes (Apple Mail, Gmail, Thunderbird, Outlook with TNEF) with fresh
    Message-IDs, senders and subjects; every third carries attachments."""
    rng = random.Random(7)
    with_files = [
        (MAIL / "apple-mail.eml").read_bytes(),
        (MAIL / "thunderbird.eml").read_bytes(),
        (MAIL / "outlook-tnef.eml").read_bytes(),
        (MAIL / "gmail.eml.template")
        .read_bytes()
        .replace(b"{IN_REPLY_TO}", b"<a@b>")
        .replace(b"{REFERENCES}", b"<a@b>"),
    ]
    plain_body = (
        "Hallo,\r\n\r\nkurze Frage zur Umsatzsteuervoranmeldung f\u00fcr Oktober: Ist die Rechnung von "
        "ACME schon gebucht?\r\n\r\nViele Gr\u00fc\u00dfe\r\n"
    ).encode()
    out = []
    for n in range(count):
        sender = senders[n % len(senders)]
        if n % 3 == 0:
            template = with_files[n % len(with_files)]
            # a new Message-ID and sender, and a different file each time (no two alike)
            message = template
            for old in (
                b"juergen.weiss@example.de",
                b"g.mueller@mueller-gmbh.example",
                b"petra.schmidt@schmidt-partner.example",
                b"anna.berger@gmail.example",
            ):
                message = message.replace(old, sender.encode())
            message = message.replace(b"Message-I", b"X-Old-Message-I", 1).replace(
                b"Message-Id", b"X-Old-Message-Id", 1
            )
            message = f"Message-ID: <bench-{n}@bench.example>\r\n".encode() + message
            out.append(message)
        else:
            subject = f"Frage {rng.randint(1, 400)} zur Buchhaltung"
            out.append(
                (
                    f"From: Client {n % len(senders)} <{sender}>\r\nTo: office@harborfinch.example\r\n"
                    f"Subject: {subject}\r\nMessage-ID: <bench-{n}@bench.example>\r\n"
                    "Date: Mon, 23 Nov 2026 09:14:03 +0100\r\nMIME-Version: 1.0\r\n"
                    'Content-Type: multipart/alternative; boundary="alt"\r\n\r\n'
                    "--alt\r\nContent-Type: text/plain; charset=utf-8\r\n"
                    "Content-Transfer-Encoding: 8bit\r\n\r\n"
                ).encode()
                + plain_body
                + b"--alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<div>"
                + plain_body.replace(b"\r\n", b"<br>")
                + b"</div>\r\n--alt--\r\n"
            )
    return out


def _endpoint_memory(database_url: str, secret: str, sender: str, documents_dir: str) -> tuple[float, int]:
    """A 58 MiB message POSTed (chunked) to /api/v1/inbound-email under gunicorn (one sync
    worker, production settings, Redis jobs): the web worker's peak RSS growth while it is
    received, measured from the moment before (VmHWM reset through /proc/PID/clear_refs)."""
    import http.client

    from _common import REDIS_URL, SECRET_KEY, free_port, gunicorn

    sys.path.insert(0, str(ROOT))
    from tests.test_hardening import big_message

    port = free_port()
    env = {
        **os.environ,
        "PORTICO_ENV": "production",
        "SECRET_KEY": SECRET_KEY,
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "MAIL_URL": "smtp://127.0.0.1:1",
        "DOCUMENTS_DIR": documents_dir,
        "PORTICO_INSTANCE_PATH": tempfile.mkdtemp(prefix="portico-bench-instance-"),
        "WEB_CONCURRENCY": "1",
    }
    proc = gunicorn("wsgi:app", env, port)
    try:
        [worker] = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()

        def post(body: bytes) -> int:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            pieces = (body[at : at + 1024 * 1024] for at in range(0, len(body), 1024 * 1024))
            headers = {"Authorization": f"Bearer {secret}", "Content-Type": "message/rfc822"}
            conn.request("POST", "/api/v1/inbound-email", body=pieces, headers=headers, encode_chunked=True)
            status = conn.getresponse().status
            conn.close()
            return status

        assert post(big_message(sender, 200_000).replace(b"scans-60mb", b"warm-up")) == 200
        message = big_message(sender, 58 * 1024 * 1024)
        Path(f"/proc/{worker}/clear_refs").write_text("5")
        before = _status_kb(int(worker), "VmRSS")
        assert post(message) == 202
        return (_status_kb(int(worker), "VmHWM") - before) / 1024, len(message)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _information(name: str, portico: float, reference: float) -> Figure:
    ratio = portico / reference if reference else float("inf")
    return Figure(name, portico, reference, "s", ratio, "(information)", True, "one request per message")


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=10_000)
    args = parser.parse_args()
    with own_database("inbound") as database_url:
        documents_dir = tempfile.mkdtemp(prefix="portico-bench-docs-")
        app = build_app(database_url, DOCUMENTS_DIR=documents_dir)
        with app.app_context():
            from portal_app.extensions import db
            from portal_app.models import ContactSettings
            from portal_app.services import accounts, contacts, links
            from portal_app.services.inbound import ingest
            from portal_app.services.staff import create_firm
            from portal_app.transaction import commit

            firm = create_firm("Bench CPA")
            senders = []
            for n in range(SENDERS):
                address = f"client{n}@bench-clients.example"
                contact = contacts.create_contact(
                    firm.id, first_name="Client", last_name=str(n), emails=[{"address": address}]
                )
                account = accounts.create_account(firm.id, name=f"Account {n}", type="individual", tags=[])
                links.link_contact(account, contact)
                senders.append(address)
            commit()
            db.session.execute(
                ContactSettings.__table__.update().values(email_sync=True, auto_save_attachments=True)  # type: ignore[attr-defined]
            )
            commit()
            from portal_app.jobs.mail_poll import FETCH_BATCH, PollResult, store_batch

            every = _messages(args.messages + args.messages // 5, senders)
            messages, one_by_one = every[: args.messages], every[args.messages :]
            total_mb = sum(len(m) for m in messages) / 1e6

            def parse_all(batch: list[bytes]) -> float:
                started = time.perf_counter()
                for raw in batch:
                    message_from_bytes(raw, policy=policy.default)
                return time.perf_counter() - started

            reference, reference_one_by_one = parse_all(messages), parse_all(one_by_one)

            firm_id = firm.id
            polled = PollResult()
            started = time.perf_counter()
            for at in range(0, len(messages), FETCH_BATCH):
                batch = list(enumerate(messages[at : at + FETCH_BATCH], start=at))
                assert len(store_batch(firm_id, batch, polled)) == len(batch)
            portico = time.perf_counter() - started
            assert polled.stored == len(messages), f"only {polled.stored} of {len(messages)} stored"

            started = time.perf_counter()
            stored = 0
            for raw in one_by_one:
                result = ingest(firm_id, raw, via="http")
                commit()
                stored += result.status == "stored"
            portico_one_by_one = time.perf_counter() - started
            assert stored == len(one_by_one), f"only {stored} of {len(one_by_one)} stored"
            from portal_app.services.inbound import read_secret

            secret = read_secret(db.session.get_one(type(firm), firm_id))
            commit()
        peak = peak_rss_mb(os.getpid())
        grown_mb, message_bytes = _endpoint_memory(database_url, secret, senders[0], documents_dir)
    note = f"{args.messages} messages, {total_mb:.0f} MB, a third with attachments"
    report(
        [
            time_ratio(f"inbound email, {args.messages} messages (poller)", portico, reference, "s", 3, note),
            _information(
                f"inbound email, {len(one_by_one)} messages (endpoint, one commit each)",
                portico_one_by_one,
                reference_one_by_one,
            ),
            absolute("inbound email, peak memory (process)", peak, "MB", 250),
            absolute(
                f"inbound endpoint, {message_bytes / 2**20:.0f} MiB message: web worker peak RSS growth",
                grown_mb,
                "MB",
                round(2 * message_bytes / 2**20),
                "gunicorn sync worker, chunked; target ≤ 2× the message",
            ),
        ]
    )


if __name__ == "__main__":
    main()
