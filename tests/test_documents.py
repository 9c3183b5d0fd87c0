"""Client documents (SPEC §16): the Documents page (R-DOC-1), client uploads streamed to disk
(R-DOC-2), staff uploads that notify (R-DOC-3), and files that are never trusted (R-DOC-4)."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import select, update

from portal_app.models import Document, InboxItem
from tests.conftest import in_app
from tests.portal_helpers import csrf_from
from tests.test_notifications import set_settings
from tests.test_portal_todos import signed_in


def staff_upload(firm: Any, account_id: int, name: str, data: bytes, **form: Any) -> Any:
    return firm.api.post(
        f"/accounts/{account_id}/documents",
        data={"file": (io.BytesIO(data), name, "application/octet-stream"), **form},
        content_type="multipart/form-data",
    )


def page_of(client: Any, account_id: int) -> str:
    response = client.get(f"/portal/a/{account_id}/documents")
    assert response.status_code == 200
    return response.data.decode()


def multipart(fields: dict[str, str], files: list[tuple[bytes, str]]) -> tuple[bytes, str]:
    """A raw multipart body (the test client would spool a large dict to an unclosed temp file)."""
    parts = [
        f'--B\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    ]
    for data, name in files:
        head = f'--B\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        parts.append(head.encode() + b"Content-Type: application/octet-stream\r\n\r\n" + data + b"\r\n")
    return b"".join(parts) + b"--B--\r\n", "multipart/form-data; boundary=B"


def client_upload(client: Any, account_id: int, files: list[tuple[bytes, str]], **headers: Any) -> Any:
    token = csrf_from(client.get(f"/portal/a/{account_id}/documents").data)
    body, content_type = multipart({"csrf_token": token, **headers.pop("form", {})}, files)
    return client.post(
        f"/portal/a/{account_id}/documents", data=body, content_type=content_type, headers=headers
    )


def raw_upload(
    client: Any, account_id: int, data: bytes, name: str, *, batch: str = "", token: str | None = None
) -> Any:
    """What the page's JavaScript sends: the file as the body, its name and the CSRF token in headers."""
    if token is None:
        token = csrf_from(client.get(f"/portal/a/{account_id}/documents").data)
    headers = {"X-Upload": "xhr", "X-File-Name": quote(name), "X-Upload-Batch": batch}
    if token:
        headers["X-CSRFToken"] = token
    return client.post(
        f"/portal/a/{account_id}/documents",
        data=data,
        content_type="application/octet-stream",
        headers=headers,
    )


def api_documents(firm: Any, account_id: int) -> dict[str, dict[str, Any]]:
    return {d["name"]: d for d in firm.api.get(f"/accounts/{account_id}/documents").get_json()["items"]}


def inbox(app: Any, kind: str) -> list[InboxItem]:
    with in_app(app) as session:
        return list(session.scalars(select(InboxItem).where(InboxItem.kind == kind).order_by(InboxItem.id)))


def test_r_doc_1_documents_page_lists_what_the_client_may_see_and_hides_the_rest(app, make, smtp):
    world = signed_in(app, make, smtp)
    firm, account, client = world.firm, world.account, world.client
    shared = staff_upload(firm, account.id, "2025 return.pdf", b"%PDF-1.7 shared").get_json()
    internal = staff_upload(firm, account.id, "notes.txt", b"internal", visible_to_client="false").get_json()
    assert shared["visible_to_client"] is True and internal["visible_to_client"] is False
    assert shared["uploaded_by"]["kind"] == "staff"
    with in_app(app) as session:  # an attachment saved from synced email: internal by default
        from portal_app.models import Account
        from portal_app.services import documents

        saved = documents.save(
            session.get(Account, account.id), documents.Incoming("mail.pdf", b"%PDF-1.4 mail"), source="email"
        )
        session.commit()
        mail_id = saved.document.id
    other = make.account(firm.id, "Someone Else")
    foreign = staff_upload(firm, other.id, "theirs.pdf", b"%PDF-1.7 theirs").get_json()
    page = page_of(client, account.id)
    assert "2025 return.pdf" in page and "notes.txt" not in page and "mail.pdf" not in page
    assert client.get("/portal/documents").headers["Location"].endswith(f"/portal/a/{account.id}/documents")
    download = client.get(f"/portal/documents/{shared['id']}")
    assert download.status_code == 200 and download.data == b"%PDF-1.7 shared"
    for hidden in (internal["id"], mail_id, foreign["id"], 999999):
        assert client.get(f"/portal/documents/{hidden}").status_code == 404
    assert client.get(f"/portal/a/{other.id}/documents").status_code == 404
    # staff show the internal one and rename it
    changed = firm.api.patch(
        f"/documents/{internal['id']}", json={"visible_to_client": True, "name": "Engagement.txt"}
    )
    assert changed.status_code == 200 and changed.get_json()["name"] == "Engagement.txt"
    assert "Engagement.txt" in page_of(client, account.id)
    assert firm.api.patch(f"/documents/{internal['id']}", json={"name": ""}).status_code == 422
    assert (
        make.firm().api.patch(f"/documents/{internal['id']}", json={"visible_to_client": False}).status_code
        == 404
    )
    assert app.test_client().get(f"/portal/documents/{shared['id']}").status_code == 302  # log in first


@pytest.mark.settings(UPLOAD_MAX_MB=1)
def test_r_doc_2_client_uploads_many_files_in_one_form_streamed_with_one_inbox_item(app, make, smtp):
    world = signed_in(app, make, smtp)
    firm, account, client = world.firm, world.account, world.client
    sent = client_upload(client, account.id, [(b"%PDF-1.4 w2", "W-2 2025.pdf"), (b"bank", "statement.csv")])
    assert sent.status_code == 303
    page = client.get(sent.headers["Location"]).data.decode()
    assert "2 documents uploaded" in page and "W-2 2025.pdf" in page and "statement.csv" in page
    docs = api_documents(firm, account.id)
    w2 = docs["W-2 2025.pdf"]
    assert w2["source"] == "client" and w2["new"] and w2["visible_to_client"]
    assert w2["uploaded_by"] == {"kind": "client", "name": "Anna Berger", "email": world.email.address}
    assert w2["content_type"] == "application/pdf" and w2["scan"] == "not_scanned"
    [item] = inbox(app, "client_upload")
    assert item.title == "Anna Berger uploaded 2 documents to Berger Family" and item.account_id == account.id
    # with JavaScript each file is its own request, the file as the body; one batch id: one item
    for data, name in ((b"one", "a.txt"), (b"two", "b.txt")):
        xhr = raw_upload(client, account.id, data, name, batch="b1")
        assert xhr.status_code == 201 and xhr.get_json()["saved"] == 1
    assert raw_upload(client, account.id, b"x", "no-token.txt", token="").status_code == 400
    assert raw_upload(client, account.id, b"x" * (1024 * 1024 + 10), "big-raw.bin").status_code == 413
    assert {"no-token.txt", "big-raw.bin"}.isdisjoint(api_documents(firm, account.id))
    items = inbox(app, "client_upload")
    assert len(items) == 2 and items[1].title == "Anna Berger uploaded 2 documents to Berger Family"
    # over UPLOAD_MAX_MB: 413, nothing kept, no temporary file left behind
    big = client_upload(client, account.id, [(b"x" * (1024 * 1024 + 10), "big.bin")])
    assert big.status_code == 413 and "big.bin" not in api_documents(firm, account.id)
    incoming = Path(app.config["DOCUMENTS_DIR"]) / "documents"
    assert not list(incoming.glob(".incoming-*"))
    # nothing chosen: the page says so
    token = csrf_from(client.get(f"/portal/a/{account.id}/documents").data)
    empty = client.post(
        f"/portal/a/{account.id}/documents", data={"csrf_token": token}, content_type="multipart/form-data"
    )
    assert empty.status_code == 422 and "Choose at least one file" in empty.data.decode()
    no_csrf = client.post(f"/portal/a/{account.id}/documents", data={"file": (io.BytesIO(b"x"), "x.txt")})
    assert no_csrf.status_code == 400 and "x.txt" not in api_documents(firm, account.id)
    # delete one's own upload within 10 minutes; not later, not the firm's
    page = page_of(client, account.id)
    token = csrf_from(page)
    a_id, b_id = (
        api_documents(firm, account.id)["a.txt"]["id"],
        api_documents(firm, account.id)["b.txt"]["id"],
    )
    assert client.post(f"/portal/documents/{a_id}/delete", data={"csrf_token": token}).status_code == 303
    assert "a.txt" not in api_documents(firm, account.id)
    with in_app(app) as session:
        late_doc = session.get(Document, int(b_id))
        session.execute(
            update(Document)
            .where(Document.id == late_doc.id)
            .values(created_at=late_doc.created_at - timedelta(minutes=11))
        )
        session.commit()
    late = client.post(f"/portal/documents/{b_id}/delete", data={"csrf_token": token})
    assert late.status_code == 403 and "b.txt" in api_documents(firm, account.id)
    shared = staff_upload(firm, account.id, "letter.pdf", b"%PDF-1.7 letter").get_json()
    assert (
        client.post(f"/portal/documents/{shared['id']}/delete", data={"csrf_token": token}).status_code == 403
    )


def test_r_doc_2_the_upload_is_streamed_to_disk_not_read_into_memory(app, make, smtp):
    """The file part goes to a temporary file under DOCUMENTS_DIR as it arrives and is renamed
    into the store: what reaches the service is that file, hashed on the way."""
    from portal_app.upload_stream import StreamedFile

    world = signed_in(app, make, smtp)
    seen: list[Any] = []
    from portal_app.services import documents

    original = documents.save_many

    def spy(account: Any, files: list[Any], **kw: Any) -> Any:
        seen.extend(f.streamed for f in files)
        return original(account, files, **kw)

    documents.save_many = spy
    try:
        data = b"%PDF-1.4 " + b"0" * (3 * 1024 * 1024)
        assert client_upload(world.client, world.account.id, [(data, "scan.pdf")]).status_code == 303
    finally:
        documents.save_many = original
    [streamed] = seen
    assert isinstance(streamed, StreamedFile) and streamed.size == len(data)
    import hashlib

    stored = Path(app.config["DOCUMENTS_DIR"]) / "documents" / streamed.sha256[:2] / streamed.sha256
    assert stored.read_bytes() == data and streamed.sha256 == hashlib.sha256(data).hexdigest()


def test_r_doc_3_a_visible_staff_upload_notifies_once_and_a_hidden_or_quiet_one_does_not(app, make, smtp):
    world = signed_in(app, make, smtp)
    firm, account = world.firm, world.account
    set_settings(firm, account.id, world.email.id, notify=True)
    before = len(smtp.messages)
    assert staff_upload(firm, account.id, "Organizer.pdf", b"%PDF-1.7 organizer").status_code == 201
    [*_, mail] = smtp.wait_for(before + 1)
    assert "shared a document with Berger Family" in mail["Subject"]
    text = mail.get_body(("plain",)).get_content()
    assert "Organizer.pdf" in text and f"/portal/a/{account.id}/documents" in text  # straight to it
    staff_upload(firm, account.id, "quiet.pdf", b"%PDF-1.7 quiet", notify_client="false")
    staff_upload(firm, account.id, "hidden.pdf", b"%PDF-1.7 hidden", visible_to_client="false")
    staff_upload(firm, account.id, "Organizer.pdf", b"%PDF-1.7 organizer")  # same name and size: skipped
    assert staff_upload(firm, account.id, "x.pdf", b"x", notify_client="maybe").status_code == 422
    import time

    time.sleep(0.5)
    assert len(smtp.messages) == before + 1
    # the documents_upload preference off: no email
    set_settings(firm, account.id, world.email.id, notification_preferences={"documents_upload": False})
    staff_upload(firm, account.id, "later.pdf", b"%PDF-1.7 later")
    time.sleep(0.5)
    assert len(smtp.messages) == before + 1


def test_r_doc_4_types_are_sniffed_names_cleaned_and_every_download_is_a_sandboxed_attachment(
    app, make, smtp
):
    world = signed_in(app, make, smtp)
    firm, account, client = world.firm, world.account, world.client
    html = b"<html><script>alert(document.cookie)</script></html>"
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 40
    sent = client_upload(
        client,
        account.id,
        [(html, "../../evil\u202egpj.html"), (png, "photo.png"), (b"\x00\x01binary", "C:/x/data.bin")],
    )
    assert sent.status_code == 303
    docs = api_documents(firm, account.id)
    assert set(docs) == {"evilgpj.html", "photo.png", "data.bin"}  # no directories, no bidi override
    assert docs["evilgpj.html"]["content_type"] == "text/plain"  # by the bytes, never as HTML
    assert docs["photo.png"]["content_type"] == "image/png"
    assert docs["data.bin"]["content_type"] == "application/octet-stream"
    long_name = "ü" * 200 + ".pdf"
    staff_upload(firm, account.id, long_name, b"%PDF-1.7 long")
    [kept] = [n for n in api_documents(firm, account.id) if n.endswith(".pdf")]
    assert len(kept.encode()) <= 255 and kept.endswith(".pdf")
    for response in (
        client.get(f"/portal/documents/{docs['evilgpj.html']['id']}"),
        firm.api.get(f"/documents/{docs['evilgpj.html']['id']}/content"),
    ):
        assert response.status_code == 200 and response.data == html
        assert response.headers["Content-Type"].startswith("text/plain")
        disposition = response.headers["Content-Disposition"]
        assert disposition.startswith("attachment;") and "filename*=UTF-8''evilgpj.html" in disposition
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Content-Security-Policy"] == "sandbox; default-src 'none'"


@pytest.mark.settings(LIMIT_UPLOADS="2 per hour")
def test_r_sec_3_uploads_are_rate_limited_per_portal_user(app, make, smtp):
    world = signed_in(app, make, smtp)
    firm, account, client = world.firm, world.account, world.client
    for n in range(2):
        assert client_upload(client, account.id, [(b"x%d" % n, f"{n}.txt")]).status_code == 303
    refused = client_upload(client, account.id, [(b"third", "third.txt")])
    assert refused.status_code == 429
    assert "third.txt" not in api_documents(firm, account.id) and len(api_documents(firm, account.id)) == 2
