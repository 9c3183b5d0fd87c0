"""Staff API: contacts, emails, links, contact settings and the audit trail."""

from __future__ import annotations

import re

import pytest

from portal_app.models import NOTIFICATION_CATEGORIES


def test_contact_settings_list_contacts_alphabetically_with_every_email(make):
    firm = make.firm()
    ruth = make.contact(firm.id, "Ruth", "Ito", emails=["ruth@ito.example"])
    nina = make.contact(firm.id, "Nina", "Garcia", emails=["nina@law.example", "nina@home.example"])
    account = make.account(firm.id, "Garcia Law", contacts=[ruth, nina])
    body = firm.api.get(f"/accounts/{account.id}/contact-settings").get_json()
    assert [c["contact_name"] for c in body["contacts"]] == ["Nina Garcia", "Ruth Ito"]
    nina_emails = body["contacts"][0]["emails"]
    assert [e["address"] for e in nina_emails] == ["nina@law.example", "nina@home.example"]
    first = nina_emails[0]
    assert first["invitation"] == {
        "state": "not_invited",
        "sent_at": None,
        "expires_at": None,
        "delivery": None,
        "delivery_error": None,
    }
    assert first["notification_preferences"] == {c: True for c in NOTIFICATION_CATEGORIES}
    assert (first["login"], first["notify"], first["email_sync"], first["signatory"]) == (
        False,
        False,
        False,
        False,
    )


def test_patch_contact_settings_changes_status_and_is_audited(make):
    firm = make.firm()
    account = make.account(firm.id, "Chen")
    email = account.contacts[0].emails[0]
    response = firm.api.patch(
        f"/accounts/{account.id}/contact-settings/{email.id}",
        json={"login": True, "notify": True, "notification_preferences": {"transactions": False}},
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["login"] and body["signatory"] and body["notification_preferences"]["transactions"] is False
    listed = firm.api.get(f"/accounts/{account.id}").get_json()
    assert (listed["status"], listed["notify"]) == ("pending_activation", True)
    audit = firm.api.get(f"/audit?account_id={account.id}").get_json()["items"]
    assert {e["field"] for e in audit} == {"login", "notify", "notification_preferences", "signatory"}
    assert all(e["actor"]["type"] == "staff" and e["actor"]["id"] == str(firm.staff_id) for e in audit)
    by_email = firm.api.get(f"/audit?email_id={email.id}&limit=2").get_json()
    assert len(by_email["items"]) == 2 and by_email["next_cursor"]
    rest = firm.api.get(f"/audit?email_id={email.id}&cursor={by_email['next_cursor']}").get_json()
    assert len(rest["items"]) == 2 and rest["next_cursor"] is None


@pytest.mark.parametrize(
    "body",
    [{"login": "yes"}, {"notification_preferences": {"astrology": True}}, {"password": "x"}, {"login": None}],
)
def test_invalid_settings_patch_is_422_and_changes_nothing(make, body):
    firm = make.firm()
    account = make.account(firm.id)
    email = account.contacts[0].emails[0]
    response = firm.api.patch(f"/accounts/{account.id}/contact-settings/{email.id}", json=body)
    assert response.status_code == 422 and response.get_json()["error"]["fields"]
    assert firm.api.get("/audit").get_json()["items"] == []


def test_link_edit_and_unlink_with_r_lnk_2(make):
    firm = make.firm()
    anna, paul = make.contact(firm.id, "Anna"), make.contact(firm.id, "Paul")
    account = make.account(firm.id, contacts=[anna])
    linked = firm.api.post(
        f"/accounts/{account.id}/contacts",
        json={"contact_id": str(paul.id), "description": "Spouse", "signer_priority": 2},
    )
    assert linked.status_code == 201 and linked.get_json()["description"] == "Spouse"
    again = firm.api.post(f"/accounts/{account.id}/contacts", json={"contact_id": str(paul.id)})
    assert again.status_code == 409
    edited = firm.api.patch(f"/accounts/{account.id}/contacts/{paul.id}", json={"signer_priority": None})
    assert edited.status_code == 200 and edited.get_json()["signer_priority"] is None
    assert firm.api.delete(f"/accounts/{account.id}/contacts/{paul.id}").status_code == 204
    last = firm.api.delete(f"/accounts/{account.id}/contacts/{anna.id}")
    assert last.status_code == 409 and "last contact" in last.get_json()["error"]["message"]


def test_contacts_and_emails_crud_with_r_con_1(make):
    firm = make.firm()
    created = firm.api.post(
        "/contacts",
        json={
            "first_name": "Leo",
            "last_name": "Dubois",
            "emails": [{"address": "Leo@Bakery.example", "label": "Work"}],
            "phones": [{"label": "Mobile", "number": "+1 555 0100"}],
        },
    )
    assert created.status_code == 201
    contact = created.get_json()
    assert contact["emails"][0] == {
        "id": contact["emails"][0]["id"],
        "address": "leo@bakery.example",
        "label": "Work",
        "is_primary": True,
    }
    duplicate = firm.api.post(
        "/contacts", json={"first_name": "X", "emails": [{"address": "LEO@bakery.example"}]}
    )
    assert duplicate.status_code == 409
    added = firm.api.post(
        f"/contacts/{contact['id']}/emails", json={"address": "leo@home.example", "is_primary": True}
    )
    assert added.status_code == 201 and added.get_json()["is_primary"]
    listed = firm.api.get(f"/contacts/{contact['id']}").get_json()
    assert [e["address"] for e in listed["emails"]] == ["leo@home.example", "leo@bakery.example"]
    renamed = firm.api.patch(
        f"/contacts/{contact['id']}/emails/{added.get_json()['id']}", json={"address": "leo@new.example"}
    )
    assert renamed.status_code == 200 and renamed.get_json()["address"] == "leo@new.example"
    assert firm.api.delete(f"/contacts/{contact['id']}/emails/{added.get_json()['id']}").status_code == 204
    only = firm.api.delete(f"/contacts/{contact['id']}/emails/{contact['emails'][0]['id']}")
    assert only.status_code == 409
    assert [c["display_name"] for c in firm.api.get("/contacts?q=dubois").get_json()["items"]] == [
        "Leo Dubois"
    ]
    assert (
        firm.api.patch(f"/contacts/{contact['id']}", json={"middle_name": "J"}).get_json()["display_name"]
        == "Leo J Dubois"
    )
    assert firm.api.delete(f"/contacts/{contact['id']}").status_code == 204


def _concrete(rule: str, ids: dict[str, str]) -> str:
    return re.sub(r"<(?:\w+:)?(\w+)>", lambda m: ids[m.group(1)], rule)


def _passkey(app, staff_id: int) -> str:
    from portal_app.extensions import db
    from portal_app.models import Passkey

    with app.app_context():
        row = Passkey(staff_user_id=staff_id, name="Key", credential_id=b"\x05" * 16, public_key=b"\x06" * 77)
        db.session.add(row)
        db.session.commit()
        return str(row.id)


def _inbox_item(app, firm_id: int) -> str:
    from portal_app.extensions import db
    from portal_app.models import InboxItem
    from tests.conftest import in_app

    with in_app(app):
        item = InboxItem(firm_id=firm_id, kind="invitation_request", title="A client asks for a new link")
        db.session.add(item)
        db.session.commit()
        return str(item.id)


def _mail_ids(firm, account) -> dict[str, str]:
    """A thread, message, document and note on the account (for walks over every route)."""
    import io

    email = account.contacts[0].emails[0]
    body = {"email_sync": True, "auto_save_attachments": True}
    assert firm.api.patch(f"/accounts/{account.id}/contact-settings/{email.id}", json=body).status_code == 200
    secret = firm.api.get("/firm/inbound-email").get_json()["secret"]
    message = f"From: {email.address}\r\nSubject: Walk\r\nMessage-ID: <walk-{account.id}@x>\r\n\r\nHi\r\n"
    posted = firm.api.client.post(
        "/api/v1/inbound-email",
        data=message.encode(),
        headers={"Authorization": f"Bearer {secret}", "Content-Type": "message/rfc822"},
    )
    [thread_id] = posted.get_json()["thread_ids"]
    [message] = firm.api.get(f"/threads/{thread_id}").get_json()["messages"]
    document = firm.api._call(
        "POST",
        f"/accounts/{account.id}/documents",
        data={"file": (io.BytesIO(b"walk"), "walk.txt")},
        content_type="multipart/form-data",
    ).get_json()
    note = firm.api.post(f"/accounts/{account.id}/notes", json={"text": "walk"}).get_json()
    return {
        "thread_id": thread_id,
        "message_id": message["id"],
        "document_id": document["id"],
        "note_id": note["id"],
    }


def test_r_sec_1_every_api_route_answers_404_for_another_firms_ids(app, make):
    """Walk every /api/v1 rule with ids that exist, but in another firm."""
    mine, theirs = make.firm(), make.firm()
    own = make.account(mine.id)
    other = make.account(theirs.id)
    person = other.contacts[0]
    ids = {
        "account_id": str(other.id),
        "contact_id": str(person.id),
        "email_id": str(person.emails[0].id),
        "token_id": str(theirs.token_id),
        "staff_id": str(theirs.staff_id),
        "todo_id": theirs.api.post(
            f"/accounts/{other.id}/todos", json={"kind": "messages_tasks", "title": "Theirs"}
        ).get_json()["id"],
        "job_id": theirs.api.post(
            "/bulk/contact-settings", json={"account_ids": [str(other.id)], "notify": "enable"}
        ).get_json()["id"],
        "item_id": _inbox_item(app, theirs.id),
        "passkey_id": _passkey(app, theirs.staff_id),
        **_mail_ids(theirs, other),
    }
    # Valid bodies, so the request reaches the lookup rather than stopping at validation.
    bodies = {
        ("POST", "/api/v1/accounts/<account_id>/contacts"): {"contact_id": str(own.contacts[0].id)},
        ("POST", "/api/v1/contacts/<contact_id>/emails"): {"address": "fresh@example.com"},
        ("POST", "/api/v1/accounts/<account_id>/todos"): {"kind": "proposals", "title": "x"},
        ("POST", "/api/v1/accounts/<account_id>/notes"): {"text": "x"},
        ("PATCH", "/api/v1/notes/<note_id>"): {"text": "x"},
        ("POST", "/api/v1/threads/<thread_id>/reply"): {"text": "x"},
        ("PATCH", "/api/v1/todos/<todo_id>/items/<item_id>"): {"reopen": True, "comment": "x"},
    }
    checked = 0
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/") or not rule.arguments:
            continue
        path = _concrete(rule.rule, ids)[len("/api/v1") :]
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = mine.api._call(method, path, json=bodies.get((method, rule.rule), {}))
            assert response.status_code == 404, (method, rule.rule, response.status_code)
            checked += 1
    assert checked >= 12
    # and the other firm's data is untouched
    assert theirs.api.get(f"/accounts/{other.id}").status_code == 200
    assert theirs.api.get(f"/contacts/{person.id}").status_code == 200


def test_r_sec_1_lists_and_audit_show_only_the_own_firm(make):
    mine, theirs = make.firm(), make.firm()
    make.account(mine.id, "Mine")
    make.account(theirs.id, "Theirs")
    assert [a["name"] for a in mine.api.get("/accounts").get_json()["items"]] == ["Mine"]
    assert len(mine.api.get("/contacts").get_json()["items"]) == 1
    assert (
        mine.api.post("/accounts", json={"name": "X", "contacts": [{"contact_id": "999999"}]}).status_code
        == 404
    )


def test_r_sec_2_every_unsafe_api_route_refuses_a_cookie_call_without_csrf(app, make):
    from tests.factories import STAFF_PASSWORD

    firm = make.firm()
    account = make.account(firm.id)
    person = account.contacts[0]
    ids = {
        "account_id": str(account.id),
        "contact_id": str(person.id),
        "email_id": str(person.emails[0].id),
        "token_id": str(firm.token_id),
        "staff_id": str(firm.staff_id),
        "todo_id": firm.api.post(
            f"/accounts/{account.id}/todos", json={"kind": "messages_tasks", "title": "Mine"}
        ).get_json()["id"],
        "job_id": firm.api.post(
            "/bulk/contact-settings", json={"account_ids": [str(account.id)], "notify": "enable"}
        ).get_json()["id"],
        "item_id": _inbox_item(app, firm.id),
        "passkey_id": _passkey(app, firm.staff_id),
        **_mail_ids(firm, account),
    }
    client = app.test_client()
    client.post("/api/v1/auth/login", json={"email": firm.staff_email, "password": STAFF_PASSWORD})
    checked = 0
    for rule in app.url_map.iter_rules():
        # the two sign-in steps run before any session exists: their credentials are in the body
        # (and inbound mail carries the firm's inbound secret as its bearer token)
        if not rule.rule.startswith("/api/v1/") or rule.endpoint in (
            "auth.Login",
            "auth.LoginMfa",
            "passkeys.LoginOptions",  # a passkey answer is bound to this origin (R-SEC-15)
            "passkeys.LoginVerify",
            "mail.InboundEmail",
        ):
            continue
        for method in sorted(rule.methods & {"POST", "PATCH", "DELETE", "PUT"}):
            response = client.open(_concrete(rule.rule, ids), method=method, json={})
            assert response.status_code == 403, (method, rule.rule)
            assert response.get_json()["error"]["code"] == "csrf_failed"
            checked += 1
    assert checked >= 10
    assert firm.api.get(f"/accounts/{account.id}").status_code == 200  # nothing was deleted


def test_openapi_document_is_3_1_and_documents_every_route(app, client):
    document = client.get("/api/v1/openapi.json").get_json()
    assert document["openapi"].startswith("3.1")
    paths = document["paths"]
    for rule in app.url_map.iter_rules():
        documents_itself = rule.endpoint in ("api-docs.openapi_json", "api-reference.page")
        if rule.rule.startswith("/api/v1/") and not documents_itself:
            openapi_path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)[len("/api/v1") :]
            assert openapi_path in paths or f"/api/v1{openapi_path}" in paths, rule.rule
    assert "Error" in document["components"]["schemas"]
