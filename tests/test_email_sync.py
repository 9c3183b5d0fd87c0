"""Email sync (R-SYN-1..7) through the inbound endpoint: storage, threading, replies, attachments as
documents, real mail from real clients; and documents, notes and the account overview."""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import event, func, select, text

from portal_app.extensions import db
from portal_app.models import Document, InboundMessage, InboxItem, Message, Thread
from tests.conftest import in_app

MAIL = Path(__file__).parent / "data" / "mail"


def raw(name: str, **replace: str) -> bytes:
    data = (MAIL / name).read_bytes()
    for key, value in replace.items():
        data = data.replace(b"{" + key.encode() + b"}", value.encode())
    return data


def simple(
    sender: str, subject: str, body: str = "Hello", *, message_id: str | None = None, extra: str = ""
) -> bytes:
    headers = [f"From: {sender}", "To: office@harborfinch.example", f"Subject: {subject}"]
    if message_id:
        headers.append(f"Message-ID: {message_id}")
    return (
        "\r\n".join(headers) + extra + "\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + body + "\r\n"
    ).encode()


class World(SimpleNamespace):
    def post(self, data: bytes, secret: str | None = None, content_type: str = "message/rfc822") -> Any:
        headers = {"Content-Type": content_type}
        if secret is not False:
            headers["Authorization"] = f"Bearer {self.secret if secret is None else secret}"
        return self.client.post("/api/v1/inbound-email", data=data, headers=headers)

    def sync(self, account: Any, email: Any, **settings: Any) -> None:
        body = {"email_sync": True, "auto_save_attachments": True, **settings}
        response = self.firm.api.patch(f"/accounts/{account.id}/contact-settings/{email.id}", json=body)
        assert response.status_code == 200, response.get_json()

    def client_of(self, first: str, last: str, address: str, account_name: str, **settings: Any) -> Any:
        person = self.make.contact(self.firm.id, first, last, emails=[address])
        account = self.make.account(self.firm.id, account_name, contacts=[person])
        self.sync(account, person.emails[0], **settings)
        return account


@pytest.fixture
def world(app, make, smtp) -> World:
    app.config["MAIL_URL"] = smtp.url
    app.config["MAIL_FROM"] = "Portico <portal@harborfinch.example>"
    firm = make.firm("Harbor & Finch CPA")
    secret = firm.api.get("/firm/inbound-email").get_json()["secret"]
    return World(app=app, make=make, smtp=smtp, firm=firm, secret=secret, client=app.test_client())


def count(model: Any) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


# --- R-SYN-4: the endpoint and its secret --------------------------------------------------------


def test_r_syn_4_inbound_endpoint_takes_raw_mime_with_the_firms_secret(app, world, make):
    account = world.client_of("Jürgen", "Weiß", "juergen.weiss@example.de", "Weiss Household")
    info = world.firm.api.get("/firm/inbound-email").get_json()
    assert info["url"] == app.config["BASE_URL"] + "/api/v1/inbound-email" and info["secret"].startswith(
        "pin_"
    )
    message = raw("apple-mail.eml")
    for secret in ("pin_wrong", "", world.firm.token):
        refused = world.post(message, secret=secret)
        assert refused.status_code == 401 and refused.get_json()["error"]["code"] == "invalid_inbound_secret"
    assert world.post(message, secret=False).status_code == 401
    other = make.firm()
    other_secret = other.api.get("/firm/inbound-email").get_json()["secret"]
    assert world.post(message, secret=other_secret).get_json()["status"] == "ignored"  # not their client
    with in_app(app):
        assert count(InboundMessage) == 0 and count(Message) == 0
    assert world.post(message, content_type="application/json").status_code == 415
    assert world.post(b"   ").status_code == 422
    assert world.post(b"just some bytes, not a message").get_json()["error"]["code"] == "unreadable_message"
    stored = world.post(message)
    assert stored.status_code == 200 and stored.get_json()["status"] == "stored"
    threads = world.firm.api.get(f"/accounts/{account.id}/threads").get_json()["items"]
    assert [t["id"] for t in threads] == stored.get_json()["thread_ids"]
    # admins rotate the secret: the old one stops at once
    clerk = make.staff(world.firm.id)
    assert clerk.api.get("/firm/inbound-email").status_code == 403
    assert clerk.api.post("/firm/inbound-email/rotate").status_code == 403
    new = world.firm.api.post("/firm/inbound-email/rotate").get_json()["secret"]
    assert new != world.secret
    assert world.post(simple("juergen.weiss@example.de", "x"), secret=world.secret).status_code == 401
    assert world.post(simple("juergen.weiss@example.de", "x"), secret=new).status_code == 200
    with in_app(app) as session:  # the secret is sealed at rest
        stored_secret = session.scalar(
            text("SELECT inbound_secret FROM firms WHERE id = :id"), {"id": world.firm.id}
        )
        assert new not in stored_secret


# --- R-SYN-1, -3, -5: storage, who is kept, once ---------------------------------------------------


def test_r_syn_1_a_synced_message_is_stored_on_each_account_with_an_inbox_item_for_all_staff(
    app, world, make
):
    person = make.contact(world.firm.id, "Jürgen", "Weiß", emails=["juergen.weiss@example.de"])
    home = make.account(world.firm.id, "Weiss Household", contacts=[person])
    company = make.account(world.firm.id, "Weiss GmbH", contacts=[person])
    quiet = make.account(world.firm.id, "Weiss Trust", contacts=[person])
    for account in (home, company):
        world.sync(account, person.emails[0])
    clerk = make.staff(world.firm.id)
    message = raw("apple-mail.eml")
    result = world.post(message).get_json()
    assert result["status"] == "stored" and len(result["thread_ids"]) == 2
    assert world.firm.api.get(f"/accounts/{quiet.id}/threads").get_json()["items"] == []
    [summary] = world.firm.api.get(f"/accounts/{home.id}/threads").get_json()["items"]
    assert summary["subject"] == "Steuerbescheid 2025 für Sie"
    thread = world.firm.api.get(f"/threads/{summary['id']}").get_json()
    [received] = thread["messages"]
    assert received["direction"] == "in" and received["from"] == "Jürgen Weiß <juergen.weiss@example.de>"
    assert received["sent_at"].startswith("2026-11-23T08:14:03")
    assert "Viele Grüße" in received["text"] and 'src="cid:' in received["html"]
    original = world.firm.api.get(received["original_url"].removeprefix("/api/v1"))
    assert original.status_code == 200 and original.data == message
    assert original.headers["Content-Type"].startswith("message/rfc822")
    original.close()  # a streamed file
    for staff in (world.firm, clerk):
        items = [i for i in staff.api.get("/inbox").get_json()["items"] if i["kind"] == "email"]
        assert {i["account_id"] for i in items} == {str(home.id), str(company.id)}
        assert all(i["title"] == "Jürgen Weiß wrote: Steuerbescheid 2025 für Sie" for i in items)
        assert {i["thread_id"] for i in items} == set(result["thread_ids"])


def test_r_syn_3_messages_from_unknown_or_unsynced_addresses_are_not_kept(app, world, make):
    person = make.contact(world.firm.id, "Jürgen", "Weiß", emails=["juergen.weiss@example.de"])
    make.account(world.firm.id, "Weiss Household", contacts=[person])  # email_sync off
    assert world.post(raw("apple-mail.eml")).get_json() == {"status": "ignored", "thread_ids": []}
    assert world.post(raw("thunderbird.eml")).get_json()["status"] == "ignored"  # unknown sender
    with in_app(app):
        assert count(InboundMessage) == count(Message) == count(Thread) == count(Document) == 0
        assert count(InboxItem) == 0
    assert not any((Path(app.config["DOCUMENTS_DIR"]) / "messages").glob("*/*.eml"))


def test_r_syn_5_the_same_message_twice_is_stored_once(app, world):
    account = world.client_of("Günther", "Müller", "g.mueller@mueller-gmbh.example", "Müller GmbH")
    message = raw("thunderbird.eml")
    assert world.post(message).get_json()["status"] == "stored"
    # the same Message-ID, even with other bytes (a relay added a header)
    assert world.post(b"X-Relayed: yes\r\n" + message).get_json()["status"] == "duplicate"
    # without a Message-ID: the same bytes once, other bytes again
    bare = simple("g.mueller@mueller-gmbh.example", "Ohne ID")
    assert [world.post(bare).get_json()["status"] for _ in range(2)] == ["stored", "duplicate"]
    assert (
        world.post(simple("g.mueller@mueller-gmbh.example", "Ohne ID", "other")).get_json()["status"]
        == "stored"
    )
    with in_app(app):
        assert count(Message) == 3 and count(Document) == 1
    assert len(world.firm.api.get(f"/accounts/{account.id}/threads").get_json()["items"]) == 2


# --- R-SYN-1, -6: replies and threading ------------------------------------------------------------


def test_r_syn_1_and_6_a_reply_goes_out_threaded_and_the_clients_answer_joins_the_thread(app, world, make):
    account = world.client_of("Anna", "Berger", "anna.berger@gmail.example", "Berger Family", notify=False)
    first = world.post(
        simple(
            "Anna Berger <anna.berger@gmail.example>",
            "Your W-2 for 2025",
            "Which W-2 do you need?",
            message_id="<q1@gmail.example>",
        )
    ).get_json()
    [thread_id] = first["thread_ids"]
    replied = world.firm.api.post(f"/threads/{thread_id}/reply", json={"text": "The one from ACME, please."})
    assert replied.status_code == 201
    out = replied.get_json()["messages"][-1]
    assert out["direction"] == "out" and out["text"] == "The one from ACME, please."
    [sent] = world.smtp.wait_for(1)  # notify is off: a plain reply goes out anyway (R-NOT-4)
    assert sent["From"] == "Harbor & Finch CPA <portal@harborfinch.example>"
    assert sent["To"] == "anna.berger@gmail.example" and sent["Subject"] == "Re: Your W-2 for 2025"
    assert sent["In-Reply-To"] == "<q1@gmail.example>" and sent["References"] == "<q1@gmail.example>"
    assert sent["Message-ID"].endswith("@harborfinch.example>") and sent["Auto-Submitted"] is None
    # Gmail's answer names our reply: it joins the thread, whatever its subject
    answer = raw(
        "gmail.eml.template",
        IN_REPLY_TO=sent["Message-ID"],
        REFERENCES=f"<q1@gmail.example> {sent['Message-ID']}",
    )
    assert world.post(answer).get_json()["thread_ids"] == [thread_id]
    # a subject match (AW:/Fwd:/case) within 30 days joins too; an old thread does not
    assert world.post(simple("anna.berger@gmail.example", "AW: fwd: YOUR w-2 FOR 2025")).get_json()[
        "thread_ids"
    ] == [thread_id]
    age_threads(app, days=31)
    later = world.post(simple("anna.berger@gmail.example", "Re: Your W-2 for 2025")).get_json()["thread_ids"]
    assert later != [thread_id]
    thread = world.firm.api.get(f"/threads/{thread_id}").get_json()
    assert [m["direction"] for m in thread["messages"]] == ["in", "out", "in", "in"]
    assert len(world.firm.api.get(f"/accounts/{account.id}/threads").get_json()["items"]) == 2
    assert world.firm.api.post(f"/threads/{thread_id}/reply", json={"text": "  "}).status_code == 422


# --- R-SYN-2, -7: attachments and real mail ----------------------------------------------------------


def age_threads(app: Any, *, days: int) -> None:
    """Every thread's last message moves ``days`` into the past."""
    with in_app(app) as session:
        session.execute(
            text(f"UPDATE threads SET last_message_at = last_message_at - interval '{days} days'")
            if session.get_bind().dialect.name == "postgresql"
            else text(f"UPDATE threads SET last_message_at = datetime(last_message_at, '-{days} days')")
        )
        session.commit()


def documents_of(world: World, account: Any) -> dict[str, dict[str, Any]]:
    items = world.firm.api.get(f"/accounts/{account.id}/documents?limit=200").get_json()["items"]
    return {d["name"]: d for d in items}


def test_r_syn_2_attachments_become_documents_with_the_name_and_size_rules(app, world):
    account = world.client_of("Anna", "Berger", "anna.berger@gmail.example", "Berger Family")

    def with_file(n: int, name: str, data: bytes) -> bytes:
        import base64

        return (
            "From: anna.berger@gmail.example\r\nSubject: file\r\n"
            f"Message-ID: <file-{n}@gmail.example>\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
            "--b\r\nContent-Type: text/plain\r\n\r\nsee file\r\n"
            f'--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename="{name}"\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\n"
            + base64.encodebytes(data).decode().replace("\n", "\r\n")
            + "--b--\r\n"
        ).encode()

    world.post(with_file(1, "return.pdf", b"A" * 100))
    world.post(with_file(2, "return.pdf", b"B" * 100))  # same name, same size: skipped
    world.post(with_file(3, "return.pdf", b"C" * 200))  # same name, other size: (2)
    world.post(with_file(4, "return.pdf", b"D" * 300))  # and (3)
    world.post(with_file(5, "return.pdf", b"E" * 200))  # same as "return (2).pdf": skipped
    big = 25 * 1024 * 1024 + 1
    world.post(with_file(6, "huge.pdf", b"\0" * big))
    docs = documents_of(world, account)
    assert sorted(docs) == ["return (2).pdf", "return (3).pdf", "return.pdf"]
    assert [docs[n]["size"] for n in ("return.pdf", "return (2).pdf", "return (3).pdf")] == [100, 200, 300]
    assert all(d["new"] and d["source"] == "email" for d in docs.values())
    threads = world.firm.api.get(f"/accounts/{account.id}/threads").get_json()["items"]
    messages = world.firm.api.get(f"/threads/{threads[0]['id']}").get_json()["messages"]
    by_size = {m["attachments"][0]["size"]: m["attachments"][0] for m in messages}
    assert by_size[big]["document_id"] is None and "over 25 MB" in by_size[big]["skipped_reason"]
    skipped = [
        a
        for m in messages
        for a in m["attachments"]
        if a["skipped_reason"] and "same name" in a["skipped_reason"]
    ]
    assert len(skipped) == 2 and all(a["document_id"] for a in skipped)  # pointing at the existing file


def test_r_syn_2_without_auto_save_attachments_are_listed_not_saved(app, world):
    account = world.client_of(
        "Jürgen", "Weiß", "juergen.weiss@example.de", "Weiss Household", auto_save_attachments=False
    )
    [thread_id] = world.post(raw("apple-mail.eml")).get_json()["thread_ids"]
    [message] = world.firm.api.get(f"/threads/{thread_id}").get_json()["messages"]
    [attachment] = message["attachments"]
    assert attachment["document_id"] is None and attachment["skipped_reason"]
    assert documents_of(world, account) == {}


def test_r_syn_7_real_mail_from_outlook_apple_mail_gmail_and_thunderbird(app, world):
    apple = world.client_of("Jürgen", "Weiß", "juergen.weiss@example.de", "Weiss Household")
    outlook = world.client_of(
        "Petra", "Schmidt", "petra.schmidt@schmidt-partner.example", "Schmidt & Partner"
    )
    thunderbird = world.client_of("Günther", "Müller", "g.mueller@mueller-gmbh.example", "Müller GmbH")
    gmail = world.client_of("Anna", "Berger", "anna.berger@gmail.example", "Berger Family")
    for name in ("apple-mail.eml", "outlook-tnef.eml", "thunderbird.eml", "forwarded-hostile.eml"):
        assert world.post(raw(name)).get_json()["status"] == "stored", name
    assert world.post(raw("gmail.eml.template", IN_REPLY_TO="<x@y>", REFERENCES="<x@y>")).status_code == 200
    # Apple Mail: RFC 2231 name; the inline logo (cid:) is not a document
    assert list(documents_of(world, apple)) == ["Steuerbescheid 2025 – Jürgen.pdf"]
    # Outlook: winmail.dat unpacked into its files, names with umlauts
    assert sorted(documents_of(world, outlook)) == [
        "TBZ PARIV GmbH.jpg",
        "UmlautAnhang-äüö.txt",
        "image003.jpg",
    ]
    outlook_doc = documents_of(world, outlook)["UmlautAnhang-äüö.txt"]
    assert outlook_doc["size"] == 14
    # Thunderbird: ISO-8859-1 text and an RFC 2047 file name
    [tb_thread] = world.firm.api.get(f"/accounts/{thunderbird.id}/threads").get_json()["items"]
    assert tb_thread["subject"] == "Kontoauszüge März"
    tb = world.firm.api.get(f"/threads/{tb_thread['id']}").get_json()["messages"][0]
    assert "Kontoauszüge für März" in tb["text"] and "120,00 €" in tb["text"]
    assert list(documents_of(world, thunderbird)) == ["Kontoauszüge März.csv"]
    # Gmail and a forwarded message: the nested message is kept as an .eml; hostile HTML is defused
    docs = documents_of(world, gmail)
    assert sorted(docs) == ["W-2 2025.pdf", "Your statement for October.eml"]
    threads = world.firm.api.get(f"/accounts/{gmail.id}/threads").get_json()["items"]
    forwarded = next(t for t in threads if t["subject"] == "Fwd: Bank statement")
    html = world.firm.api.get(f"/threads/{forwarded['id']}").get_json()["messages"][0]["html"]
    for bad in ("<script", "onclick", "onerror", "javascript:", "tracker.example", "<style", "style="):
        assert bad not in html, bad
    assert "See below." in html


def test_r_syn_7_raw_utf8_headers_are_read_as_utf8_not_mojibake(app, world):
    """Apple Mail writes a non-ASCII file name (and often the subject) as raw UTF-8 in the header
    (RFC 6532) instead of RFC 2231/2047: the document and the thread get the name as written."""
    sanne = world.client_of("Sanne", "de Vriës", "sanne@devries.example", "De Vriës")
    assert world.post(raw("apple-mail-raw-utf8.eml")).get_json()["status"] == "stored"
    assert list(documents_of(world, sanne)) == ["ciële.txt"]
    [thread] = world.firm.api.get(f"/accounts/{sanne.id}/threads").get_json()["items"]
    assert thread["subject"] == "Jaaroverzicht en ciële stukken 2025"
    message = world.firm.api.get(f"/threads/{thread['id']}").get_json()["messages"][0]
    assert "financiële stukken" in message["text"]
    assert [a["name"] for a in message["attachments"]] == ["ciële.txt"]


def test_r_syn_7_broken_mime_is_stored_as_far_as_it_reads_never_a_500(app, world):
    account = world.client_of("Günther", "Müller", "g.mueller@mueller-gmbh.example", "Müller GmbH")
    assert world.post(raw("broken.eml")).status_code == 200
    [thread] = world.firm.api.get(f"/accounts/{account.id}/threads").get_json()["items"]
    [message] = world.firm.api.get(f"/threads/{thread['id']}").get_json()["messages"]
    assert "unknown charset" in message["text"] and message["attachments"][0]["name"] == "half.pdf"
    for junk in (
        b"From: \r\n\r\n",
        b"\xff\xfe\x00garbage",
        b"From: g.mueller@mueller-gmbh.example\r\nContent-Type: multipart/mixed\r\n\r\n--",
    ):
        assert world.post(junk).status_code in (200, 422), junk


# --- documents, notes, overview --------------------------------------------------------------------


@pytest.mark.settings(UPLOAD_MAX_MB=1)
def test_documents_upload_list_and_download_with_a_safe_disposition(app, world, make):
    account = make.account(world.firm.id, "Upload Household")
    path = f"/accounts/{account.id}/documents"
    client = world.firm.api
    uploaded = client._call(
        "POST",
        path,
        data={
            "file": (
                __import__("io").BytesIO(b"%PDF-1.4 return"),
                "../../etc/2025 return.pdf",
                "application/pdf",
            )
        },
        content_type="multipart/form-data",
    )
    assert uploaded.status_code == 201, uploaded.get_json()
    doc = uploaded.get_json()
    assert doc["name"] == "2025 return.pdf" and doc["new"] and doc["source"] == "upload"
    assert doc["skipped_reason"] is None and len(doc["sha256"]) == 64
    again = client._call(
        "POST",
        path,
        data={"file": (__import__("io").BytesIO(b"%PDF-1.4 return"), "2025 return.pdf")},
        content_type="multipart/form-data",
    )
    assert (
        again.status_code == 200
        and again.get_json()["id"] == doc["id"]
        and again.get_json()["skipped_reason"]
    )
    content = client.get(f"/documents/{doc['id']}/content")
    assert content.status_code == 200 and content.data == b"%PDF-1.4 return"
    assert content.headers["Content-Disposition"].startswith("attachment;")
    assert (
        "2025%20return.pdf" in content.headers["Content-Disposition"]
        or "2025 return.pdf" in content.headers["Content-Disposition"]
    )
    assert content.headers["X-Content-Type-Options"] == "nosniff"
    content.close()  # a streamed file
    assert documents_of(world, account)["2025 return.pdf"]["new"] is False  # opened: no longer NEW
    stored = Path(app.config["DOCUMENTS_DIR"]) / "documents" / doc["sha256"][:2] / doc["sha256"]
    assert stored.read_bytes() == b"%PDF-1.4 return"
    # a raw multipart body (the test client would spool a dict this size to an unclosed temp file)
    body = (
        b'--B\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n\r\n'
        + b"\0" * (1024 * 1024 + 1)
        + b"\r\n--B--\r\n"
    )
    too_big = client._call("POST", path, data=body, content_type="multipart/form-data; boundary=B")
    assert too_big.status_code == 413  # over UPLOAD_MAX_MB (R-DOC-2: staff uploads too)
    assert too_big.get_json()["error"]["code"]
    assert client._call("POST", path, json={"file": "x"}).status_code == 415
    assert client._call("POST", path, data={}, content_type="multipart/form-data").status_code == 422
    other = make.firm()
    assert other.api.get(f"/documents/{doc['id']}/content").status_code == 404


def test_notes_are_created_listed_edited_and_deleted(app, world, make):
    account = make.account(world.firm.id, "Noted Household")
    path = f"/accounts/{account.id}/notes"
    created = world.firm.api.post(path, json={"text": "Called about the 2025 return."})
    assert created.status_code == 201
    note = created.get_json()
    assert (
        note["author"]["id"] == str(world.firm.staff_id) and note["text"] == "Called about the 2025 return."
    )
    assert world.firm.api.post(path, json={"text": ""}).status_code == 422
    edited = world.firm.api.patch(f"/notes/{note['id']}", json={"text": "Called twice."}).get_json()
    assert edited["text"] == "Called twice." and edited["updated_at"] >= note["updated_at"]
    assert [n["text"] for n in world.firm.api.get(path).get_json()["items"]] == ["Called twice."]
    assert make.firm().api.delete(f"/notes/{note['id']}").status_code == 404
    assert world.firm.api.delete(f"/notes/{note['id']}").status_code == 204
    assert world.firm.api.get(path).get_json()["items"] == []


def _statements(app: Any, call: Any) -> int:
    seen: list[str] = []
    with app.app_context():
        engine = db.engine

    def record(conn, cursor, statement, *args):  # noqa: ANN001
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        response = call()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert response.status_code == 200
    return len([s for s in seen if s.lstrip().upper().startswith("SELECT")])


def test_overview_shows_the_latest_of_everything_in_a_fixed_number_of_queries(app, world, make):
    small = world.client_of("Anna", "Berger", "anna.berger@gmail.example", "Berger Family", login=True)
    big = world.client_of("Jürgen", "Weiß", "juergen.weiss@example.de", "Weiss Household", login=True)
    world.post(simple("anna.berger@gmail.example", "Hi", message_id="<s1@x>"))
    for n in range(12):
        world.post(simple("juergen.weiss@example.de", f"Question {n}", message_id=f"<b{n}@x>"))
        world.firm.api.post(f"/accounts/{big.id}/notes", json={"text": f"Note {n}"})
        world.firm.api.post(
            f"/accounts/{big.id}/todos", json={"kind": "documents_approval", "title": f"Approve {n}"}
        )
    world.firm.api.post(f"/accounts/{big.id}/todos", json={"kind": "proposals", "title": "Sign the letter"})
    world.firm.api.post(f"/accounts/{big.id}/todos", json={"kind": "organizers", "title": "Not an approval"})
    import io

    for n in range(7):
        world.firm.api._call(
            "POST",
            f"/accounts/{big.id}/documents",
            data={"file": (io.BytesIO(b"x" * (n + 1)), f"doc{n}.pdf")},
            content_type="multipart/form-data",
        )
    body = world.firm.api.get(f"/accounts/{big.id}/overview").get_json()
    assert [d["name"] for d in body["documents"]] == [
        "doc6.pdf",
        "doc5.pdf",
        "doc4.pdf",
        "doc3.pdf",
        "doc2.pdf",
    ]
    assert all(d["new"] for d in body["documents"])
    assert [c["subject"] for c in body["communication"]] == [f"Question {n}" for n in (11, 10, 9, 8, 7)]
    assert (
        body["communication"][0]["direction"] == "in"
        and "juergen.weiss@example.de" in body["communication"][0]["from"]
    )
    assert len(body["approvals"]) == 12 and [t["title"] for t in body["signatures"]] == ["Sign the letter"]
    assert body["login_activity"] == []  # nobody activated yet
    assert [n["text"] for n in body["notes"]] == [f"Note {n}" for n in (11, 10, 9, 8, 7)]
    small_queries = _statements(app, lambda: world.firm.api.get(f"/accounts/{small.id}/overview"))
    big_queries = _statements(app, lambda: world.firm.api.get(f"/accounts/{big.id}/overview"))
    assert small_queries == big_queries and big_queries <= 10
    assert make.firm().api.get(f"/accounts/{big.id}/overview").status_code == 404


def test_overview_login_activity_lists_each_portal_user_of_the_account(app, world, smtp):
    from tests.portal_helpers import activate, setup_invite

    invited = setup_invite(world.make, smtp, app)
    activate(app.test_client(), invited.link)
    body = invited.firm.api.get(f"/accounts/{invited.account.id}/overview").get_json()
    [entry] = body["login_activity"]
    assert entry["email"] == invited.email.address and entry["last_login_at"]


def test_reply_message_ids_and_raw_storage_survive_a_reparse(app, world):
    """The kept original parses to the same message again (so a better parser can re-read it)."""
    world.client_of("Petra", "Schmidt", "petra.schmidt@schmidt-partner.example", "Schmidt & Partner")
    world.post(raw("outlook-tnef.eml"))
    with in_app(app) as session:
        from portal_app.mail.parse import parse
        from portal_app.services.inbound import raw_path

        record = session.scalars(select(InboundMessage)).one()
        again = parse(raw_path(record).read_bytes())
        assert again.message_id == session.scalars(select(Message.message_id)).one()
        assert len(again.attachments) == 3
    parsed = message_from_bytes(raw("outlook-tnef.eml"), policy=policy.default)
    assert re.match(r"<AM9PR01MB", parsed["Message-ID"])


def _threads_of(world: World, account: Any) -> list[tuple[str, list[str]]]:
    threads = world.firm.api.get(f"/accounts/{account.id}/threads").get_json()["items"]
    shape = []
    for thread in threads:
        messages = world.firm.api.get(f"/threads/{thread['id']}").get_json()["messages"]
        shape.append((thread["subject"], [m["subject"] for m in messages]))
    return sorted(shape)


def test_r_syn_6_the_pollers_batch_threads_exactly_as_one_message_at_a_time(app, world):
    """A reply to a message earlier in the same batch joins its thread, a subject match joins
    the newest thread of that subject, the same message twice is stored once, an old thread a
    reply revives takes subject matches again: one batch gives what one by one gives."""
    from portal_app.services.inbound import ingest
    from portal_app.services.inbound_batch import ingest_many
    from portal_app.transaction import commit

    def mail(domain: str) -> list[bytes]:
        sender = f"anna@{domain}"
        return [
            simple(sender, "Your W-2 for 2025", message_id=f"<w1@{domain}>"),
            simple(sender, "Receipts", message_id=f"<r1@{domain}>"),
            simple(
                sender,
                "Totally different",
                message_id=f"<w2@{domain}>",
                extra=f"\r\nIn-Reply-To: <w1@{domain}>",
            ),
            simple(sender, "AW: receipts", message_id=f"<r2@{domain}>"),
            simple(sender, "Your W-2 for 2025", message_id=f"<w1@{domain}>"),  # again: a duplicate
            simple(sender, "Old matter", message_id=f"<o2@{domain}>", extra=f"\r\nReferences: <o1@{domain}>"),
            simple(sender, "Re: old matter", message_id=f"<o3@{domain}>"),
            simple(sender, "New one", message_id=f"<n1@{domain}>"),
        ]

    accounts = {}
    for domain in ("one.example", "batch.example"):
        accounts[domain] = world.client_of("Anna", domain, f"anna@{domain}", f"Account {domain}")
        # an old thread (40 days) that a reply in the batch brings back
        old = world.post(simple(f"anna@{domain}", "Old matter", message_id=f"<o1@{domain}>"))
        assert old.status_code == 200, old.get_json()
    age_threads(app, days=40)
    with app.app_context():
        firm_id = world.firm.id
        one_by_one = []
        for message in mail("one.example"):
            one_by_one.append(ingest(firm_id, message, via="imap").status)
            commit()
        batch = [outcome.status for outcome in ingest_many(firm_id, mail("batch.example"), via="imap")]
        commit()
    assert batch == one_by_one == ["stored"] * 4 + ["duplicate"] + ["stored"] * 3
    expected = [
        ("New one", ["New one"]),
        ("Old matter", ["Old matter", "Old matter", "Re: old matter"]),
        ("Receipts", ["Receipts", "AW: receipts"]),
        ("Your W-2 for 2025", ["Your W-2 for 2025", "Totally different"]),
    ]
    assert _threads_of(world, accounts["one.example"]) == expected
    assert _threads_of(world, accounts["batch.example"]) == expected
