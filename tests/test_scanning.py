"""Virus scanning with a real clamd (R-DOC-4): pending until clean, an infected file deleted and
reported, never served unscanned, and a retry once clamd is back.

This machine cannot download ClamAV's signature database, so the test starts its own clamd on a
free port with a private config whose database directory holds one signature written here: the
MD5 and size of the EICAR test file (an ``.hdb`` line)."""

from __future__ import annotations

import hashlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from portal_app.models import Document, InboxItem
from tests.conftest import REQUIRE_SERVICES, free_port, in_app
from tests.test_documents import api_documents, client_upload, staff_upload
from tests.test_portal_todos import signed_in

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
CLAMD = shutil.which("clamd") or "/usr/sbin/clamd"


@pytest.fixture(scope="module")
def clamd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not Path(CLAMD).exists():
        message = "clamd is missing: apt-get install clamav-daemon"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)
    home = tmp_path_factory.mktemp("clamd")
    (home / "db").mkdir()
    (home / "db" / "eicar.hdb").write_text(
        f"{hashlib.md5(EICAR).hexdigest()}:{len(EICAR)}:Eicar-Test-Signature\n"
    )
    port = free_port()
    (home / "clamd.conf").write_text(
        f"Foreground yes\nTCPSocket {port}\nTCPAddr 127.0.0.1\nDatabaseDirectory {home / 'db'}\n"
        f"LogFile {home / 'clamd.log'}\nPidFile {home / 'clamd.pid'}\nStreamMaxLength 100M\n"
    )
    process = subprocess.Popen(
        [CLAMD, "-c", str(home / "clamd.conf")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"zPING\0")
                if sock.recv(8).startswith(b"PONG"):
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"clamd did not start: {(home / 'clamd.log').read_text(errors='replace')[-2000:]}")
        time.sleep(0.2)
    yield f"tcp://127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=20)


def test_r_doc_4_clamd_passes_a_clean_file_and_deletes_an_infected_one_with_its_record_kept(
    app, make, smtp, clamd
):
    app.config["CLAMAV_URL"] = clamd
    world = signed_in(app, make, smtp)
    firm, account, client = world.firm, world.account, world.client
    sent = client_upload(client, account.id, [(EICAR, "invoice.com"), (b"%PDF-1.4 fine", "fine.pdf")])
    assert sent.status_code == 303
    docs = api_documents(firm, account.id)  # the embedded default scanned them after the commit
    assert docs["fine.pdf"]["scan"] == "clean"
    infected = docs["invoice.com"]
    assert infected["scan"] == "infected" and infected["scan_signature"].startswith("Eicar-Test-Signature")
    stored = Path(app.config["DOCUMENTS_DIR"]) / "documents" / infected["sha256"][:2] / infected["sha256"]
    assert not stored.exists()  # deleted; only the record stays
    assert client.get(f"/portal/documents/{infected['id']}").status_code == 410
    assert firm.api.get(f"/documents/{infected['id']}/content").status_code == 410
    assert client.get(f"/portal/documents/{docs['fine.pdf']['id']}").data == b"%PDF-1.4 fine"
    page = client.get(f"/portal/a/{account.id}/documents").data.decode()
    assert "Removed: a virus was found in this file." in page
    with in_app(app) as session:
        [item] = session.scalars(select(InboxItem).where(InboxItem.kind == "virus_found")).all()
    assert "invoice.com" in item.title and "Eicar-Test-Signature" in item.body and "Anna Berger" in item.body
    # a staff upload is scanned the same way
    staff = staff_upload(firm, account.id, "eicar.txt", EICAR).get_json()
    assert staff["scan"] == "pending"  # the answer is written before the scan job runs
    assert api_documents(firm, account.id)["eicar.txt"]["scan"] == "infected"


def test_r_doc_4_with_clamd_down_a_document_stays_pending_and_the_periodic_run_scans_it_later(
    app, make, smtp, clamd
):
    app.config["CLAMAV_URL"] = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    world = signed_in(app, make, smtp)
    firm, account, client = world.firm, world.account, world.client
    assert client_upload(client, account.id, [(b"%PDF-1.4 waiting", "waiting.pdf")]).status_code == 303
    waiting = api_documents(firm, account.id)["waiting.pdf"]
    assert waiting["scan"] == "pending"
    assert client.get(f"/portal/documents/{waiting['id']}").status_code == 409  # fail closed
    assert firm.api.get(f"/documents/{waiting['id']}/content").status_code == 409
    assert "Being checked for viruses" in client.get(f"/portal/a/{account.id}/documents").data.decode()
    app.config["CLAMAV_URL"] = clamd  # clamd is back
    with in_app(app) as session:
        document = session.get(Document, int(waiting["id"]))
        session.execute(
            update(Document)
            .where(Document.id == document.id)
            .values(created_at=document.created_at - timedelta(minutes=5))
        )
        session.commit()
    result = app.test_cli_runner().invoke(args=["cron", "run-due"])
    assert result.exit_code == 0, result.output
    assert api_documents(firm, account.id)["waiting.pdf"]["scan"] == "clean"
    assert client.get(f"/portal/documents/{waiting['id']}").data == b"%PDF-1.4 waiting"


def test_r_doc_4_scanning_runs_in_the_rq_worker_and_a_failed_scan_is_retried(
    app, make, smtp, clamd, redis_url
):
    """With Redis, the scan is an rq job (after the commit) that the production worker class runs;
    with clamd unreachable the job fails with a retry scheduled and the file stays pending."""
    from redis import Redis
    from rq import Queue
    from rq.registry import ScheduledJobRegistry

    from portal_app.queue import QUEUE_NAME
    from tests.conftest import run_worker
    from tests.portal_helpers import login
    from tests.test_notifications import activated, set_settings

    queue = Queue(QUEUE_NAME, connection=Redis.from_url(redis_url))
    firm = make.firm("Harbor & Finch CPA")
    account = make.account(firm.id, "Berger Family")
    email = account.contacts[0].emails[0]
    set_settings(firm, account.id, email.id, login=True)
    activated(app, firm.id, email.id)
    client = app.test_client()
    assert login(client, email.address).status_code == 302
    queue.empty()
    app.config["CLAMAV_URL"] = clamd
    assert (
        client_upload(client, account.id, [(EICAR, "virus.txt"), (b"%PDF-1.4 ok", "ok.pdf")]).status_code
        == 303
    )
    assert api_documents(firm, account.id)["ok.pdf"]["scan"] == "pending"  # nothing ran in the web process
    assert len(queue) == 1
    run_worker(app)
    docs = api_documents(firm, account.id)
    assert docs["ok.pdf"]["scan"] == "clean" and docs["virus.txt"]["scan"] == "infected"
    # clamd unreachable: the job fails, rq schedules its retry, the file stays pending
    app.config["CLAMAV_URL"] = f"tcp://127.0.0.1:{free_port()}"
    assert client_upload(client, account.id, [(b"%PDF-1.4 later", "later.pdf")]).status_code == 303
    run_worker(app)
    assert api_documents(firm, account.id)["later.pdf"]["scan"] == "pending"
    scheduled = ScheduledJobRegistry(queue=queue)
    assert len(scheduled) == 1  # the retry, in 10 seconds
    [job_id] = scheduled.get_job_ids()
    assert queue.fetch_job(job_id).retries_left == 4
    scheduled.remove(job_id, delete_job=True)
