"""Client requests (R-REQ-1): items to upload to or answer, submitted by the client, reopened
by staff with a comment, reminded until done."""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from portal_app.models import InboxItem
from tests.conftest import in_app
from tests.portal_helpers import csrf_from
from tests.test_documents import api_documents, multipart
from tests.test_notifications import created, run_due, set_settings
from tests.test_portal_todos import signed_in

ITEMS = [{"label": "Your 2025 W-2", "type": "upload"}, {"label": "Did you move in 2025?", "type": "answer"}]


def new_request(firm: Any, account_id: int, items: list[dict[str, str]] = ITEMS, **body: Any) -> Any:
    return firm.api.post(
        f"/accounts/{account_id}/todos",
        json={"kind": "client_requests", "title": "Year-end documents", "items": items, **body},
    )


def test_r_req_1_items_are_checked_when_a_request_is_created(app, make, smtp):
    world = signed_in(app, make, smtp)
    firm, account = world.firm, world.account
    for bad in ([], [{"label": "x", "type": "fax"}], [{"label": "", "type": "upload"}], ITEMS * 51):
        assert new_request(firm, account.id, bad).status_code == 422, bad
    wrong_kind = firm.api.post(
        f"/accounts/{account.id}/todos", json={"kind": "proposals", "title": "Sign", "items": ITEMS}
    )
    assert wrong_kind.status_code == 422
    made = new_request(firm, account.id)
    assert made.status_code == 201
    items = made.get_json()["items"]
    assert [
        (i["label"], i["type"], i["complete"], i["answer"], i["document_ids"], i["comment"]) for i in items
    ] == [
        ("Your 2025 W-2", "upload", False, None, [], None),
        ("Did you move in 2025?", "answer", False, None, [], None),
    ]
    plain = firm.api.post(f"/accounts/{account.id}/todos", json={"kind": "proposals", "title": "Sign"})
    assert "items" not in plain.get_json()


def test_r_req_1_client_uploads_answers_submits_and_staff_reopen_an_item(app, make, smtp):
    world = signed_in(app, make, smtp)
    firm, account, client = world.firm, world.account, world.client
    set_settings(firm, account.id, world.email.id, notify=True)
    todo = new_request(firm, account.id).get_json()
    upload_item, answer_item = todo["items"]
    base = f"/portal/a/{account.id}/requests/{todo['id']}"
    home = client.get(f"/portal/a/{account.id}/").data.decode()
    assert f'href="{base}"' in home and "/done" not in home.split(f'href="{base}"')[0][-300:]
    page = client.get(base).data.decode()
    assert "Your 2025 W-2" in page and "Did you move in 2025?" in page and "disabled" in page
    token = csrf_from(page)
    # not everything complete: submitting is refused, nothing changes
    assert client.post(f"{base}/submit", data={"csrf_token": token}).status_code == 422
    too_long = client.post(
        f"{base}/items/{answer_item['id']}/answer", data={"csrf_token": token, "answer": "x" * 5001}
    )
    assert too_long.status_code == 422
    answered = client.post(
        f"{base}/items/{answer_item['id']}/answer", data={"csrf_token": token, "answer": "No."}
    )
    assert answered.status_code == 303
    body, content_type = multipart({"csrf_token": token}, [(b"%PDF-1.4 w2", "w2.pdf")])
    uploaded = client.post(f"{base}/items/{upload_item['id']}/files", data=body, content_type=content_type)
    assert uploaded.status_code == 303
    wrong = client.post(
        f"{base}/items/{answer_item['id']}/files", data=body, content_type=content_type
    )  # an answer item takes no files
    assert wrong.status_code == 422
    document = api_documents(firm, account.id)["w2.pdf"]
    assert document["request_item_id"] == upload_item["id"] and document["source"] == "client"
    # a file the account already had (same name and size) counts for the item without a copy
    body, content_type = multipart({"csrf_token": token}, [(b"%PDF-1.7 shared", "organizer.pdf")])
    already = firm.api.post(
        f"/accounts/{account.id}/documents",
        data={"file": (io.BytesIO(b"%PDF-1.7 shared"), "organizer.pdf")},
        content_type="multipart/form-data",
    ).get_json()
    again = client.post(f"{base}/items/{upload_item['id']}/files", data=body, content_type=content_type)
    assert again.status_code == 303
    assert api_documents(firm, account.id)["organizer.pdf"]["id"] == already["id"]
    assert api_documents(firm, account.id)["organizer.pdf"]["request_item_id"] == upload_item["id"]
    state = firm.api.get(f"/accounts/{account.id}/todos").get_json()["items"][0]
    assert [i["complete"] for i in state["items"]] == [True, True]
    assert state["items"][0]["document_ids"] == [document["id"], already["id"]]
    assert state["items"][1]["answer"] == "No."
    assert client.post(f"{base}/submit", data={"csrf_token": token}).status_code == 303
    done = firm.api.get(f"/accounts/{account.id}/todos").get_json()["items"][0]
    assert done["state"] == "done" and done["done_by"]["email"] == world.email.address
    with in_app(app) as session:
        [item] = session.scalars(select(InboxItem).where(InboxItem.kind == "request_submitted")).all()
    assert item.title == "Anna Berger completed “Year-end documents” for Berger Family"
    # staff reopen one item with a comment: open again, the client is told why
    before = len(smtp.messages)
    reopened = firm.api.patch(
        f"/todos/{todo['id']}/items/{upload_item['id']}",
        json={"reopen": True, "comment": "Page 2 is missing."},
    )
    assert reopened.status_code == 200
    again = reopened.get_json()
    assert again["state"] == "open" and again["items"][0]["complete"] is False
    assert again["items"][0]["comment"] == "Page 2 is missing."
    [*_, mail] = smtp.wait_for(before + 1)
    assert (
        "Year-end documents" in mail["Subject"]
        and "Page 2 is missing." in mail.get_body(("plain",)).get_content()
    )
    assert "Your firm asks: Page 2 is missing." in client.get(base).data.decode()
    assert (
        firm.api.patch(f"/todos/{todo['id']}/items/{upload_item['id']}", json={"reopen": True}).status_code
        == 422
    )
    assert (
        make.firm()
        .api.patch(f"/todos/{todo['id']}/items/{upload_item['id']}", json={"reopen": True, "comment": "x"})
        .status_code
        == 404
    )
    # reminders go on while it is open (R-NOT-3)
    before = len(smtp.messages)
    run_due(app, created(todo) + timedelta(days=3, minutes=1))
    [*_, reminder] = smtp.wait_for(before + 1)
    assert "Reminder: Year-end documents" in reminder["Subject"]
    # another client's account never shows the request
    other = make.account(firm.id, "Someone Else")
    assert client.get(f"/portal/a/{other.id}/requests/{todo['id']}").status_code == 404
