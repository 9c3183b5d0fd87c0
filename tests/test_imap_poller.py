"""The mailbox poller against a real IMAP server (R-SYN-4, R-SYN-5): Debian's Dovecot, started by
the test on a free port with a temporary configuration and a passwd-file user."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from imapclient import IMAPClient
from sqlalchemy import func, select

from portal_app.models import InboundMessage, Message
from tests.conftest import REQUIRE_SERVICES, free_port, in_app
from tests.test_email_sync import raw, simple

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
USER, PASSWORD = "client-mail", "imap secret 42"

CONFIG = """
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 0
mail_location = maildir:{root}/mail/%u
{internal}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = 0
  }}
}}
service submission-login {{
  inet_listener submission {{
    port = 0
  }}
}}
"""


@pytest.fixture
def dovecot() -> Iterator[SimpleNamespace]:
    if not Path(DOVECOT).exists():
        message = "dovecot is missing: apt-get install dovecot-imapd"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)
    # not under pytest's tmp_path (0700): Dovecot's auth and mail processes run as other users
    root = Path(tempfile.mkdtemp(prefix="portico-dovecot-"))
    root.chmod(0o755)
    for sub in ("run", "state", "mail", "home"):
        (root / sub).mkdir(parents=True)
    if os.geteuid() == 0:
        # as root, Dovecot runs mail access as an unprivileged user (its own package's "dovenull")
        owner = pwd.getpwnam("dovenull")
        uid, gid, internal = owner.pw_uid, owner.pw_gid, ""
        for sub in ("mail", "home"):
            os.chown(root / sub, uid, gid)
    else:
        me = pwd.getpwuid(os.geteuid())
        uid, gid = me.pw_uid, me.pw_gid
        internal = f"default_internal_user = {me.pw_name}\ndefault_login_user = {me.pw_name}"
    (root / "users").write_text(f"{USER}:{{PLAIN}}{PASSWORD}::::::\n")
    port = free_port()
    config = root / "dovecot.conf"
    config.write_text(CONFIG.format(root=root, port=port, uid=uid, gid=gid, internal=internal))
    log = root / "stdout.log"
    with log.open("wb") as out:  # a file, not a pipe nobody reads
        process = subprocess.Popen([DOVECOT, "-F", "-c", str(config)], stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            IMAPClient("127.0.0.1", port=port, ssl=False, timeout=2).logout()
            break
        except OSError:
            time.sleep(0.1)
    else:
        process.kill()
        process.wait()
        raise RuntimeError("dovecot did not start: " + log.read_text() + (root / "dovecot.log").read_text())
    server = SimpleNamespace(
        port=port, url=f"imap://{USER}:imap%20secret%2042@127.0.0.1:{port}/INBOX", process=process
    )
    try:
        yield server
    finally:
        process.terminate()
        try:
            process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
        shutil.rmtree(root, ignore_errors=True)


def mailbox(server: Any) -> IMAPClient:
    client = IMAPClient("127.0.0.1", port=server.port, ssl=False, timeout=5)
    client.login(USER, PASSWORD)
    client.select_folder("INBOX")
    return client


def deliver(server: Any, *messages: bytes) -> None:
    client = mailbox(server)
    for message in messages:
        client.append("INBOX", message)
    client.logout()


def unseen(server: Any) -> int:
    client = mailbox(server)
    try:
        return len(client.search(["UNSEEN"]))
    finally:
        client.logout()


def poll(app: Any, url: str) -> Any:
    app.config["INBOUND_IMAP_URL"] = url
    return app.test_cli_runner().invoke(args=["mail", "poll"])


@pytest.fixture
def synced(app, make) -> SimpleNamespace:
    firm = make.firm("Harbor & Finch CPA")
    person = make.contact(firm.id, "Günther", "Müller", emails=["g.mueller@mueller-gmbh.example"])
    account = make.account(firm.id, "Müller GmbH", contacts=[person])
    body = {"email_sync": True, "auto_save_attachments": True}
    assert (
        firm.api.patch(
            f"/accounts/{account.id}/contact-settings/{person.emails[0].id}", json=body
        ).status_code
        == 200
    )
    return SimpleNamespace(firm=firm, account=account)


def test_r_syn_4_the_poller_stores_new_mail_and_marks_it_seen_only_after(app, dovecot, synced):
    deliver(
        dovecot,
        raw("thunderbird.eml"),
        simple("stranger@elsewhere.example", "Not a client"),
        simple("g.mueller@mueller-gmbh.example", "Noch eine Frage", message_id="<q2@mueller-gmbh.example>"),
    )
    assert unseen(dovecot) == 3
    result = poll(app, dovecot.url)
    assert result.exit_code == 0, result.output
    assert "Fetched 3: stored 2, already stored 0, not from a synced address 1" in result.output
    assert unseen(dovecot) == 0
    threads = synced.firm.api.get(f"/accounts/{synced.account.id}/threads").get_json()["items"]
    assert sorted(t["subject"] for t in threads) == ["Kontoauszüge März", "Noch eine Frage"]
    docs = synced.firm.api.get(f"/accounts/{synced.account.id}/documents").get_json()["items"]
    assert [d["name"] for d in docs] == ["Kontoauszüge März.csv"]
    again = poll(app, dovecot.url)  # nothing new
    assert again.exit_code == 0 and "Fetched 0" in again.output


def test_r_syn_5_a_message_delivered_both_ways_is_stored_once(app, dovecot, synced):
    secret = synced.firm.api.get("/firm/inbound-email").get_json()["secret"]
    message = raw("thunderbird.eml")
    posted = app.test_client().post(
        "/api/v1/inbound-email",
        data=message,
        headers={"Authorization": f"Bearer {secret}", "Content-Type": "message/rfc822"},
    )
    assert posted.get_json()["status"] == "stored"
    deliver(dovecot, message, message)  # and twice into the mailbox
    result = poll(app, dovecot.url)
    assert "stored 0, already stored 2" in result.output and unseen(dovecot) == 0
    with in_app(app) as session:
        assert session.scalar(select(func.count()).select_from(Message)) == 1
        assert session.scalar(select(func.count()).select_from(InboundMessage)) == 1


def test_r_syn_4_a_connection_failure_is_reported_and_loses_nothing(app, dovecot, synced):
    deliver(dovecot, raw("thunderbird.eml"))
    wrong_password = dovecot.url.replace("imap%20secret%2042", "wrong")
    failed = poll(app, wrong_password)
    assert failed.exit_code != 0 and "nothing was marked seen" in failed.output
    closed = poll(app, f"imap://{USER}:x@127.0.0.1:{free_port()}/INBOX")
    assert closed.exit_code != 0 and "cannot connect" in closed.output
    assert unseen(dovecot) == 1
    with in_app(app) as session:
        assert session.scalar(select(func.count()).select_from(Message)) == 0
    assert poll(app, dovecot.url).exit_code == 0  # the next run gets it
    assert unseen(dovecot) == 0


def test_r_syn_4_a_message_that_cannot_be_stored_stays_unseen_for_the_next_run(
    app, dovecot, synced, monkeypatch
):
    deliver(
        dovecot,
        simple("g.mueller@mueller-gmbh.example", "Eins", message_id="<one@x>"),
        simple("g.mueller@mueller-gmbh.example", "Zwei", message_id="<two@x>"),
    )
    from portal_app.jobs import mail_poll as imap
    from portal_app.services import inbound, inbound_batch

    real, real_many = inbound.ingest, inbound_batch.ingest_many

    def flaky(firm_id: int, data: bytes, *, via: str) -> Any:
        if b"Zwei" in data:
            raise RuntimeError("database went away")
        return real(firm_id, data, via=via)

    def flaky_many(firm_id: int, raws: list[bytes], *, via: str) -> Any:
        stored = real_many(firm_id, raws, via=via)  # written, then the batch fails: rolled back
        if any(b"Zwei" in data for data in raws):
            raise RuntimeError("database went away")
        return stored

    monkeypatch.setattr(imap, "ingest", flaky)
    monkeypatch.setattr(imap, "ingest_many", flaky_many)
    result = poll(app, dovecot.url)
    assert result.exit_code != 0 and "stored 1" in result.output and "failed 1 (left unseen)" in result.output
    assert unseen(dovecot) == 1
    with in_app(app) as session:  # the failed batch left nothing behind: "Eins" once, by itself
        assert session.scalar(select(func.count()).select_from(Message)) == 1
    monkeypatch.setattr(imap, "ingest", real)
    monkeypatch.setattr(imap, "ingest_many", real_many)
    assert "stored 1" in poll(app, dovecot.url).output
    assert unseen(dovecot) == 0


def test_r_syn_4_a_batch_is_one_transaction_and_a_non_email_in_it_spoils_nothing(app, dovecot, synced):
    """The poller stores what it fetched together (one commit for the batch, then \\Seen); a
    message that is not an email is refused before anything of it is written, so the rest of
    its batch is stored with it; the same message twice in one batch is stored once (R-SYN-5)."""
    from sqlalchemy import event

    from portal_app.extensions import db

    deliver(
        dovecot,
        simple("g.mueller@mueller-gmbh.example", "Eins", message_id="<b1@x>"),
        b"no headers at all, just text\r\n",
        raw("thunderbird.eml"),
        simple("g.mueller@mueller-gmbh.example", "Drei", message_id="<b3@x>"),
        simple("g.mueller@mueller-gmbh.example", "Eins", message_id="<b1@x>"),  # twice in one batch
    )
    commits: list[int] = []
    with app.app_context():
        engine = db.engine
    count = lambda _conn: commits.append(1)  # noqa: E731
    event.listen(engine, "commit", count)
    try:
        result = poll(app, dovecot.url)
    finally:
        event.remove(engine, "commit", count)
    assert result.exit_code == 0, result.output
    assert "Fetched 5: stored 3, already stored 1" in result.output and "unreadable 1" in result.output
    assert len(commits) == 1  # the batch of five, together
    assert unseen(dovecot) == 0
    threads = synced.firm.api.get(f"/accounts/{synced.account.id}/threads").get_json()["items"]
    assert sorted(t["subject"] for t in threads) == ["Drei", "Eins", "Kontoauszüge März"]


def test_r_syn_4_the_poller_needs_to_know_the_firm_when_several_are_served(app, dovecot, synced, make):
    make.firm("Another Firm")
    result = poll(app, dovecot.url)
    assert result.exit_code != 0 and "INBOUND_IMAP_FIRM" in result.output
    app.config["INBOUND_IMAP_FIRM"] = str(synced.firm.id)
    assert poll(app, dovecot.url).exit_code == 0
