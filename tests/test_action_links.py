"""Acting from an email without logging in (SPEC §17, R-LFA-1..4): the firm's setting, the
"Open without logging in" link in real emails from the SMTP sink, every way such a link dies,
the pages it opens, and what those pages cannot reach."""

from __future__ import annotations

import re
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

import pytest
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import select

from portal_app.models import AuditEntry, Document, InboxItem, Todo
from tests.conftest import TEST_SECRET_KEY, in_app, run_worker
from tests.portal_helpers import csrf_from, home
from tests.test_documents import multipart, staff_upload
from tests.test_notifications import activated, add_person, html_of, new_todo, run_due, set_settings, text_of

_ACTION_LINK = re.compile(r"https?://[^/\s]+(/portal/link/[^\s\"<]+)")
ALL = ["view_documents", "sign", "approve", "upload_documents", "complete_client_requests"]


def action_link_in(message: EmailMessage) -> str | None:
    match = _ACTION_LINK.search(text_of(message))
    return match.group(1) if match else None


def allow(firm: Any, *actions: str) -> None:
    response = firm.api.patch("/firm", json={"login_free_actions": list(actions)})
    assert response.status_code == 200, response.get_json()


def world(app: Any, make: Any, smtp: Any, *actions: str, signatory: bool = True) -> Any:
    """A firm letting clients act from emails, an account whose one contact gets notifications
    (no portal login), and the mail going to the sink."""
    app.config["MAIL_URL"] = smtp.url
    firm = make.firm("Harbor & Finch CPA")
    account = make.account(firm.id, "Berger Family")
    email = account.contacts[0].emails[0]
    set_settings(firm, account.id, email.id, notify=True, signatory=signatory)
    allow(firm, *(actions or ALL))
    firm.account, firm.email = account, email
    return firm


def mailed_link(smtp: Any, count: int) -> tuple[EmailMessage, str]:
    [*_, message] = smtp.wait_for(count)
    link = action_link_in(message)
    assert link, text_of(message)
    return message, link


def todo_state(firm: Any, todo_id: str) -> dict[str, Any]:
    todos = firm.api.get(f"/accounts/{firm.account.id}/todos").get_json()["items"]
    return next(t for t in todos if t["id"] == todo_id)


def post(client: Any, link: str, path: str, data: dict[str, Any] | None = None) -> Any:
    """POST to a link page with this browser's CSRF token (the session's, as any page shows it)."""
    token = csrf_from(client.get("/portal/login").data)
    return client.post(link + path, data={"csrf_token": token, **(data or {})})


# --- R-LFA-1: the firm's setting ---------------------------------------------------------------------


def test_r_lfa_1_login_free_actions_are_empty_by_default_admins_only_checked_and_audited(app, make):
    firm = make.firm()
    assert firm.api.get("/firm").get_json()["login_free_actions"] == []
    member = make.staff(firm.id)
    refused = member.api.patch("/firm", json={"login_free_actions": ["sign"]})
    assert refused.status_code == 403
    unknown = firm.api.patch("/firm", json={"login_free_actions": ["sign", "pay_invoices"]})
    assert unknown.status_code == 422 and "login_free_actions" in unknown.get_json()["error"]["fields"]
    assert firm.api.get("/firm").get_json()["login_free_actions"] == []
    allow(firm, "upload_documents", "sign", "sign")
    assert firm.api.get("/firm").get_json()["login_free_actions"] == ["sign", "upload_documents"]
    allow(firm)
    with in_app(app) as session:
        entries = session.scalars(
            select(AuditEntry).where(AuditEntry.field == "firm.login_free_actions").order_by(AuditEntry.id)
        ).all()
        assert [(e.actor_label, e.old_value, e.new_value) for e in entries] == [
            (firm.staff_email, [], ["sign", "upload_documents"]),
            (firm.staff_email, ["sign", "upload_documents"], []),
        ]


# --- R-LFA-2: which emails carry the link, minted in the job ----------------------------------------


def test_r_lfa_2_new_to_do_and_reminder_emails_carry_the_link_only_for_allowed_actions(app, make, smtp):
    firm = world(app, make, smtp, "sign")
    account = firm.account
    sign = new_todo(firm, account.id, kind="documents_signature", title="Form 8879", reminder_every_days=1)
    message, link = mailed_link(smtp, 1)
    assert "Open without logging in" in html_of(message) and f"for {firm.email.address} only" in html_of(
        message
    )
    assert f"/portal/a/{account.id}/" in text_of(message)  # the portal link stays beside it
    # the token is minted by the delivery job, never stored with the queued email (R-SEC-9)
    with in_app(app) as session:
        from portal_app.models import OutboxEmail

        assert all("/portal/link/" not in str(row.context) for row in session.scalars(select(OutboxEmail)))
    approve = new_todo(firm, account.id, kind="documents_approval", title="Draft return")
    assert action_link_in(smtp.wait_for(2)[-1]) is None  # approving is not allowed
    plain = new_todo(firm, account.id, kind="messages_tasks", title="Call us")
    assert action_link_in(smtp.wait_for(3)[-1]) is None  # "mark done" is never login-free
    # the reminder carries a fresh link to the same to-do
    run_due(app, app_time(sign) + timedelta(days=1, minutes=1))
    reminders = [m for m in smtp.wait_for(4)[3:] if m["Subject"].startswith("Reminder")]
    assert [m["Subject"] for m in reminders] == ["Reminder: Form 8879 (Berger Family)"]
    reminder_link = action_link_in(reminders[0])
    assert reminder_link and b"Form 8879" in app.test_client().get(reminder_link).data
    del approve, plain


def app_time(todo: dict[str, Any]) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(todo["created_at"])


def test_r_lfa_2_documents_email_links_the_upload_and_the_banner_rule_is_unchanged(app, make, smtp):
    firm = world(app, make, smtp, "view_documents")
    account = firm.account
    invited = add_person(make, firm, account.id, "Ida", address="ida@berger.example")
    set_settings(firm, account.id, invited.id, notify=True, login=True, send_invitation=True)
    smtp.wait_for(1)  # Ida's invitation
    assert (
        staff_upload(firm, account.id, "engagement.pdf", b"%PDF-1.4 e", notify_client="true").status_code
        == 201
    )
    by_to = {m["To"]: m for m in smtp.wait_for(3)[1:]}
    plain, banner = by_to[firm.email.address], by_to["ida@berger.example"]
    # no login and no invitation: no banner, as before; the invited one keeps the banner
    assert "not activated yet" not in text_of(plain) and "not activated yet" in text_of(banner)
    link = action_link_in(plain)
    assert link and action_link_in(banner)
    page = app.test_client().get(link)
    assert page.status_code == 200 and b"engagement.pdf" in page.data


# --- each way a link dies ----------------------------------------------------------------------------


def _done(app: Any, firm: Any, todo: dict[str, Any]) -> None:
    assert firm.api.patch(f"/todos/{todo['id']}", json={"state": "done"}).status_code == 200


def _deleted(app: Any, firm: Any, todo: dict[str, Any]) -> None:
    assert firm.api.delete(f"/todos/{todo['id']}").status_code == 204


def _notify_off(app: Any, firm: Any, todo: dict[str, Any]) -> None:
    set_settings(firm, firm.account.id, firm.email.id, notify=False)


def _email_removed(app: Any, firm: Any, todo: dict[str, Any]) -> None:
    contact = firm.account.contacts[0]
    firm.api.post(f"/contacts/{contact.id}/emails", json={"address": "second@berger.example"})
    assert firm.api.delete(f"/contacts/{contact.id}/emails/{firm.email.id}").status_code == 204


def _email_changed(app: Any, firm: Any, todo: dict[str, Any]) -> None:
    contact = firm.account.contacts[0]
    response = firm.api.patch(
        f"/contacts/{contact.id}/emails/{firm.email.id}", json={"address": "new@berger.example"}
    )
    assert response.status_code == 200, response.get_json()


def _unlinked(make: Any, firm: Any, todo: dict[str, Any]) -> None:
    other = make.contact(firm.id, "Max", "Berger")
    firm.api.post(f"/accounts/{firm.account.id}/contacts", json={"contact_id": str(other.id)})
    contact = firm.account.contacts[0]
    assert firm.api.delete(f"/accounts/{firm.account.id}/contacts/{contact.id}").status_code == 204


def _action_off(app: Any, firm: Any, todo: dict[str, Any]) -> None:
    allow(firm, "approve", "view_documents")


def _reopened(app: Any, firm: Any, todo: dict[str, Any]) -> None:
    _done(app, firm, todo)
    assert firm.api.patch(f"/todos/{todo['id']}", json={"state": "open"}).status_code == 200


def _expired(app: Any, firm: Any, todo: dict[str, Any]) -> None:
    app.config["ACTION_LINK_MAX_AGE_DAYS"] = 0


DEATHS = {
    "done": (_done, 410, "already done"),
    "deleted": (_deleted, 410, "withdrawn by your firm"),
    "notify_off": (_notify_off, 410, "no longer works for your email address"),
    "email_removed": (_email_removed, 410, "no longer works for your email address"),
    "email_changed": (_email_changed, 410, "no longer works for your email address"),
    "contact_unlinked": (_unlinked, 410, "no longer works for your email address"),
    "action_disallowed": (_action_off, 410, "asks you to log in"),
    "done_then_reopened": (_reopened, 410, "from an earlier email"),
    "expired": (_expired, 410, "has expired"),
}


@pytest.mark.parametrize("death", list(DEATHS))
def test_r_lfa_2_a_link_dies_when(app, make, smtp, death):
    firm = world(app, make, smtp, "sign")
    todo = new_todo(firm, firm.account.id, kind="documents_signature", title="Form 8879")
    _message, link = mailed_link(smtp, 1)
    client = app.test_client()
    alive = client.get(link)
    assert alive.status_code == 200 and b"Form 8879" in alive.data
    cause, status, words = DEATHS[death]
    cause(make if death == "contact_unlinked" else app, firm, todo)
    if death == "expired":
        import time

        time.sleep(1.1)  # itsdangerous counts whole seconds
    dead = client.get(link)
    assert dead.status_code == status, death
    assert words in dead.data.decode() and "Form 8879" not in dead.data.decode()
    assert client.get(link + "/done").status_code == status  # no thank-you page for what it did not do
    signing = post(client, link, "/sign", {"confirm": "yes"})
    assert signing.status_code == status  # and nothing can be done through it
    if death not in ("done", "deleted"):
        assert todo_state(firm, todo["id"])["state"] == "open"


def test_r_lfa_2_a_tampered_or_other_purpose_token_is_refused(app, make, smtp):
    firm = world(app, make, smtp, "sign")
    new_todo(firm, firm.account.id, kind="documents_signature", title="Form 8879")
    _message, link = mailed_link(smtp, 1)
    client = app.test_client()
    assert client.get(link[:-3] + ("aaa" if not link.endswith("aaa") else "bbb")).status_code == 400
    with in_app(app) as session:
        todo_id = session.scalar(select(Todo.id))
    other_purpose = URLSafeTimedSerializer(TEST_SECRET_KEY, salt="portico.unsubscribe.v1").dumps(
        {"t": todo_id, "e": firm.email.id, "a": firm.account.id, "h": "x"}
    )
    assert client.get(f"/portal/link/{other_purpose}").status_code == 400


# --- R-LFA-3: the pages ------------------------------------------------------------------------------


def test_r_lfa_3_get_changes_nothing_and_a_signatory_signs_recorded_as_email_link(app, make, smtp):
    firm = world(app, make, smtp, "sign")
    account = firm.account
    doc = staff_upload(firm, account.id, "8879.pdf", b"%PDF-1.4 8879").get_json()
    todo = new_todo(firm, account.id, kind="documents_signature", title="Form 8879", document_ids=[doc["id"]])
    _message, link = mailed_link(smtp, 1)
    client = app.test_client()
    for _ in range(3):  # a mail scanner, a preview, the client
        page = client.get(link)
        assert page.status_code == 200
    text = page.data.decode()
    assert "Harbor &amp; Finch CPA" in text and "Berger Family" in text and firm.email.address in text
    assert "I have read the document above. I, Anna Berger, sign it for Berger Family." in text
    assert page.headers["Referrer-Policy"] == "no-referrer" and "no-store" in page.headers["Cache-Control"]
    assert "Log in to see everything" not in text  # no login of their own
    assert todo_state(firm, todo["id"])["state"] == "open"
    download = client.get(f"{link}/documents/{doc['id']}")
    assert download.status_code == 200 and download.data == b"%PDF-1.4 8879"
    assert download.headers["Content-Disposition"].startswith("attachment")
    unconfirmed = post(client, link, "/sign")
    assert unconfirmed.status_code == 422 and todo_state(firm, todo["id"])["state"] == "open"
    signed = post(client, link, "/sign", {"confirm": "yes"})
    assert signed.status_code == 303 and signed.headers["Location"].endswith(link + "/done")
    assert "You signed “Form 8879”" in client.get(signed.headers["Location"]).data.decode()
    done = todo_state(firm, todo["id"])
    assert done["state"] == "done"
    assert done["done_by"] == {"email": firm.email.address, "action": "signed", "via": "email_link"}
    audit = firm.api.get(f"/audit?account_id={account.id}").get_json()["items"]
    assert {
        "field": "todo.signed",
        "actor": {"type": "email_link", "id": str(firm.email.id), "label": firm.email.address},
    }.items() <= {"field": audit[0]["field"], "actor": audit[0]["actor"]}.items()
    # the link is spent: signing again changes nothing and says so
    again = client.get(link)
    assert again.status_code == 410 and "already done" in again.data.decode()


def test_r_lfa_3_r_sig_1_only_a_signatory_signs_from_the_link(app, make, smtp):
    firm = world(app, make, smtp, "sign", signatory=False)
    todo = new_todo(firm, firm.account.id, kind="documents_signature", title="Form 8879")
    _message, link = mailed_link(smtp, 1)
    client = app.test_client()
    page = client.get(link).data.decode()
    assert "Only authorised signers can sign this" in page and "Sign now" not in page
    refused = post(client, link, "/sign", {"confirm": "yes"})
    assert refused.status_code == 403
    assert todo_state(firm, todo["id"])["state"] == "open"
    # approving from a signing link is not a way round it either
    assert post(client, link, "/approve").status_code == 400
    assert todo_state(firm, todo["id"])["state"] == "open"


def test_r_lfa_3_approve_from_the_link_without_a_login(app, make, smtp):
    firm = world(app, make, smtp, "approve")
    todo = new_todo(firm, firm.account.id, kind="documents_approval", title="Draft return")
    _message, link = mailed_link(smtp, 1)
    client = app.test_client()
    approved = post(client, link, "/approve")
    assert approved.status_code == 303 and "You approved" in client.get(link + "/done").data.decode()
    assert todo_state(firm, todo["id"])["done_by"]["via"] == "email_link"


def test_r_lfa_3_the_link_opens_nothing_else_not_the_home_another_to_do_or_another_account(app, make, smtp):
    firm = world(app, make, smtp, "sign", "view_documents")
    account = firm.account
    activated(app, firm.id, firm.email.id)  # even with a login of their own
    set_settings(firm, account.id, firm.email.id, login=True)
    other_account = make.account(firm.id, "Other Household", contacts=[account.contacts[0]])
    set_settings(firm, other_account.id, firm.email.id, notify=True, login=True)
    secret = staff_upload(firm, account.id, "internal.pdf", b"%PDF-1.4 internal", visible_to_client="false")
    shared = staff_upload(firm, account.id, "shared.pdf", b"%PDF-1.4 shared").get_json()
    foreign = staff_upload(firm, other_account.id, "theirs.pdf", b"%PDF-1.4 theirs").get_json()
    todo = new_todo(firm, account.id, kind="documents_signature", title="Form 8879")
    other_todo = new_todo(firm, account.id, kind="documents_signature", title="Other form")
    message = next(m for m in smtp.wait_for(2) if "Form 8879" in text_of(m))
    link = action_link_in(message)
    assert link
    client = app.test_client()
    page = client.get(link)
    assert page.status_code == 200 and "Log in to see everything" in page.data.decode()
    assert "Other form" not in page.data.decode()
    # nothing of the portal opens with what the link left in this browser
    for path in (
        "/portal/",
        f"/portal/a/{account.id}/",
        f"/portal/a/{account.id}/todos/{other_todo['id']}/sign",
        f"/portal/a/{other_account.id}/",
        "/portal/documents",
        f"/portal/documents/{shared['id']}",
        "/portal/profile",
    ):
        response = client.get(path)
        assert response.status_code == 302 and "/portal/login" in response.headers["Location"], path
    switch = client.post("/portal/switch", data={"account_id": str(other_account.id)})
    assert switch.status_code in (302, 400) and "portal/a/" not in switch.headers.get("Location", "")
    # the link's document route serves only the link's own item
    for document_id in (shared["id"], foreign["id"], secret.get_json()["id"]):
        assert client.get(f"{link}/documents/{document_id}").status_code == 404
    # another to-do's action through this link's token is not a route at all
    assert client.post(f"{link}/{other_todo['id']}/sign").status_code == 404
    assert todo_state(firm, other_todo["id"])["state"] == "open"
    del todo


def test_r_lfa_3_a_client_request_completed_from_the_link_through_the_same_rules(app, make, smtp):
    firm = world(app, make, smtp, "complete_client_requests")
    account = firm.account
    todo = firm.api.post(
        f"/accounts/{account.id}/todos",
        json={
            "kind": "client_requests",
            "title": "2026 documents",
            "items": [{"label": "W-2", "type": "upload"}, {"label": "Did you move?", "type": "answer"}],
        },
    ).get_json()
    upload_item, answer_item = (i["id"] for i in todo["items"])
    _message, link = mailed_link(smtp, 1)
    client = app.test_client()
    page = client.get(link).data.decode()
    assert "W-2" in page and "Did you move?" in page and "disabled" in page
    early = post(client, link, "/submit")
    assert early.status_code == 422 and todo_state(firm, todo["id"])["state"] == "open"
    assert post(client, link, f"/items/{answer_item}/answer", {"answer": "No"}).status_code == 303
    too_long = post(client, link, f"/items/{answer_item}/answer", {"answer": "x" * 5001})
    assert too_long.status_code == 422
    token = csrf_from(client.get(link).data)
    body, content_type = multipart({"csrf_token": token}, [(b"%PDF-1.4 w2", "w2.pdf")])
    uploaded = client.post(f"{link}/items/{upload_item}/files", data=body, content_type=content_type)
    assert uploaded.status_code == 303
    submitted = post(client, link, "/submit")
    assert submitted.status_code == 303 and "You submitted" in client.get(link + "/done").data.decode()
    done = todo_state(firm, todo["id"])
    assert done["done_by"] == {"email": firm.email.address, "action": "done", "via": "email_link"}
    assert [i["complete"] for i in done["items"]] == [True, True]
    with in_app(app) as session:
        w2 = session.scalar(select(Document).where(Document.name == "w2.pdf"))
        assert w2.source == "client" and w2.uploaded_by_email_id == firm.email.id
        assert str(w2.request_item_id) == upload_item
        kinds = {i.kind: i for i in session.scalars(select(InboxItem))}
        assert "from an emailed link" in kinds["request_submitted"].body
        assert "client_upload" in kinds
    # staff reopen an item: the old link stays dead, the reopened email's own link opens it
    reopened = firm.api.patch(
        f"/todos/{todo['id']}/items/{upload_item}", json={"reopen": True, "comment": "Page 2 is missing"}
    )
    assert reopened.status_code == 200, reopened.get_json()
    assert "from an earlier email" in client.get(link).data.decode()
    _message, fresh = mailed_link(smtp, 2)
    again = client.get(fresh)
    assert again.status_code == 200 and "Page 2 is missing" in again.data.decode()


def test_r_lfa_3_documents_link_shows_the_upload_and_takes_files_when_allowed(app, make, smtp):
    firm = world(app, make, smtp, "upload_documents")
    account = firm.account
    doc = staff_upload(firm, account.id, "letter.pdf", b"%PDF-1.4 letter", notify_client="true").get_json()
    _message, link = mailed_link(smtp, 1)
    client = app.test_client()
    page = client.get(link).data.decode()
    # uploading is allowed, viewing is not: the file is named but not served
    assert "Log in to your client portal to read it" in page
    assert client.get(f"{link}/documents/{doc['id']}").status_code == 404
    token = csrf_from(page)
    body, content_type = multipart(
        {"csrf_token": token}, [(b"bank statement", "bank.csv"), (b"%PDF-1.4 r", "r.pdf")]
    )
    sent = client.post(f"{link}/upload", data=body, content_type=content_type)
    assert sent.status_code == 303 and "uploaded=2" in sent.headers["Location"]
    confirmed = client.get(sent.headers["Location"]).data.decode()
    assert "2 documents uploaded" in confirmed
    assert "What you sent" in confirmed and "bank.csv" in confirmed and "r.pdf" in confirmed
    listed = firm.api.get(f"/accounts/{account.id}/documents").get_json()["items"]
    names = {d["name"]: d for d in listed}
    assert names["bank.csv"]["uploaded_by"]["email"] == firm.email.address
    assert names["bank.csv"]["source"] == "client"
    with in_app(app) as session:
        [item] = session.scalars(select(InboxItem).where(InboxItem.kind == "client_upload")).all()
        assert item.title == "Anna Berger uploaded 2 documents to Berger Family"
    allow(firm, "view_documents", "upload_documents")
    shown = client.get(f"{link}/documents/{doc['id']}")
    assert shown.status_code == 200 and shown.data == b"%PDF-1.4 letter"
    # hidden since: what the link was for is gone
    assert firm.api.patch(f"/documents/{doc['id']}", json={"visible_to_client": False}).status_code == 200
    assert client.get(link).status_code == 410


def test_r_lfa_3_the_page_speaks_the_emails_language(app, make, smtp):
    firm = world(app, make, smtp, "sign")
    activated(app, firm.id, firm.email.id, language="de")
    new_todo(firm, firm.account.id, kind="documents_signature", title="Formular 8879")
    message, link = mailed_link(smtp, 1)
    assert message["Content-Language"] == "de" and "Ohne Anmeldung öffnen" in html_of(message)
    page = app.test_client().get(link).data.decode()
    assert 'lang="de"' in page and "Jetzt unterschreiben" in page


# --- R-LFA-4: limits, headers, logs ----------------------------------------------------------------


@pytest.mark.settings(LIMIT_PER_LINK="3 per minute", LIMIT_PER_IP="1000 per minute")
def test_r_lfa_4_a_link_is_rate_limited_per_token(app, make, smtp, redis_url):
    firm = world(app, make, smtp, "sign")
    new_todo(firm, firm.account.id, kind="documents_signature", title="Form 8879")
    new_todo(firm, firm.account.id, kind="documents_signature", title="Form 8453")
    run_worker(app)  # rq delivers the mail (the rate limits live in Redis)
    first, second = (action_link_in(m) for m in smtp.wait_for(2))
    assert first and second and first != second
    client = app.test_client()
    assert [client.get(first).status_code for _ in range(4)] == [200, 200, 200, 429]
    assert client.get(second).status_code == 200  # another link has its own count


@pytest.mark.settings(LIMIT_PER_LINK="1000 per minute", LIMIT_PER_IP="3 per minute")
def test_r_lfa_4_link_pages_are_rate_limited_per_ip(app, make, smtp, redis_url):
    firm = world(app, make, smtp, "sign")
    new_todo(firm, firm.account.id, kind="documents_signature", title="Form 8879")
    run_worker(app)
    _message, link = mailed_link(smtp, 1)
    client = app.test_client()
    statuses = [client.get(link, environ_base={"REMOTE_ADDR": "203.0.113.9"}).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    assert client.get(link, environ_base={"REMOTE_ADDR": "203.0.113.10"}).status_code == 200


def test_r_lfa_4_link_paths_are_redacted_in_the_access_log(app, make, smtp):
    import logging

    from portal_app.redact import RedactTokens

    firm = world(app, make, smtp, "sign")
    new_todo(firm, firm.account.id, kind="documents_signature", title="Form 8879")
    _message, link = mailed_link(smtp, 1)
    token = link.removeprefix("/portal/link/")
    record = logging.LogRecord("gunicorn.access", logging.INFO, __file__, 1, "%(r)s", None, None)
    record.args = {"r": f"POST {link}/sign HTTP/1.1", "U": f"{link}/sign"}
    RedactTokens().filter(record)
    line = record.getMessage()
    assert token not in line and "/portal/link/[redacted]/sign" in line


def test_r_lfa_3_a_signed_in_browser_acts_as_the_links_email_only(app, make, smtp):
    """Someone else signed in on the same browser (a shared family computer): the link acts for
    its own email, and the other person stays who they were."""
    firm = world(app, make, smtp, "sign")
    account = firm.account
    partner = add_person(make, firm, account.id, "Paul", address="paul@berger.example")
    set_settings(firm, account.id, partner.id, login=True)
    activated(app, firm.id, partner.id)
    client = app.test_client()
    from tests.portal_helpers import login

    assert login(client, "paul@berger.example").status_code == 302
    todo = new_todo(firm, account.id, kind="documents_signature", title="Form 8879")
    message = next(m for m in smtp.wait_for(1) if m["To"] == firm.email.address)
    link = action_link_in(message)
    assert post(client, link, "/sign", {"confirm": "yes"}).status_code == 303
    assert todo_state(firm, todo["id"])["done_by"]["email"] == firm.email.address
    assert home(client).status_code == 200  # Paul is still signed in as Paul
