"""Staff API: to-dos (shown on the client portal home)."""

from __future__ import annotations

import io


def test_todos_are_created_edited_and_completed(make):
    firm = make.firm()
    account = make.account(firm.id)
    created = firm.api.post(
        f"/accounts/{account.id}/todos",
        json={"kind": "documents_signature", "title": "Sign the 2025 return", "due_date": "2026-12-15"},
    )
    assert created.status_code == 201, created.get_json()
    todo = created.get_json()
    assert todo == {
        "id": todo["id"],
        "account_id": str(account.id),
        "kind": "documents_signature",
        "title": "Sign the 2025 return",
        "due_date": "2026-12-15",
        "requires_signature": True,  # a signature to-do is signed, whatever the flag says
        "reminder_every_days": 3,
        "reminder_max": 3,
        "state": "open",
        "done_at": None,
        "done_by": None,
        "document_ids": [],
        "created_at": todo["created_at"],
    }
    done = firm.api.patch(f"/todos/{todo['id']}", json={"state": "done"}).get_json()
    assert done["state"] == "done" and done["done_at"]
    assert done["done_by"] == {"email": firm.staff_email, "action": "done", "via": None}
    reopened = firm.api.patch(f"/todos/{todo['id']}", json={"state": "open", "due_date": None}).get_json()
    assert reopened["done_at"] is None and reopened["due_date"] is None and reopened["done_by"] is None


def test_todos_list_open_first_with_a_state_filter_and_cursor(make):
    firm = make.firm()
    account = make.account(firm.id)
    ids = [
        firm.api.post(
            f"/accounts/{account.id}/todos", json={"kind": "proposals", "title": f"T{n}"}
        ).get_json()["id"]
        for n in range(5)
    ]
    firm.api.patch(f"/todos/{ids[0]}", json={"state": "done"})
    firm.api.patch(f"/todos/{ids[2]}", json={"state": "done"})
    listed = firm.api.get(f"/accounts/{account.id}/todos").get_json()
    assert [t["title"] for t in listed["items"]] == ["T1", "T3", "T4", "T0", "T2"]
    assert listed["next_cursor"] is None
    assert [
        t["title"] for t in firm.api.get(f"/accounts/{account.id}/todos?state=done").get_json()["items"]
    ] == [
        "T0",
        "T2",
    ]
    seen, cursor = [], None
    while True:
        page = firm.api.get(
            f"/accounts/{account.id}/todos?limit=2" + (f"&cursor={cursor}" if cursor else "")
        ).get_json()
        seen += [t["title"] for t in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["T1", "T3", "T4", "T0", "T2"]
    for query in ("state=closed", "cursor=2.x", "limit=0"):
        response = firm.api.get(f"/accounts/{account.id}/todos?{query}")
        assert response.status_code == 422, query
        assert response.get_json()["error"]["code"] == "validation_failed"


def test_reminder_settings_are_validated_and_patchable(make):
    firm = make.firm()
    account = make.account(firm.id)
    path = f"/accounts/{account.id}/todos"
    for body in (
        {"kind": "proposals", "title": "x", "reminder_every_days": -1},
        {"kind": "proposals", "title": "x", "reminder_every_days": 366},
        {"kind": "proposals", "title": "x", "reminder_max": 53},
        {"kind": "proposals", "title": "x", "reminder_max": "3"},
        {"kind": "proposals", "title": "x", "requires_signature": "yes"},
    ):
        assert firm.api.post(path, json=body).status_code == 422, body
    todo = firm.api.post(
        path,
        json={
            "kind": "invoices_payments",
            "title": "Pay",
            "requires_signature": True,
            "reminder_every_days": 0,
        },
    ).get_json()
    assert (todo["requires_signature"], todo["reminder_every_days"], todo["reminder_max"]) == (True, 0, 3)
    changed = firm.api.patch(f"/todos/{todo['id']}", json={"reminder_every_days": 7, "reminder_max": 1})
    assert changed.status_code == 200
    assert (changed.get_json()["reminder_every_days"], changed.get_json()["reminder_max"]) == (7, 1)


def test_firm_timezone_is_settable_by_admins_and_validated(make):
    firm = make.firm()
    assert firm.api.get("/firm").get_json()["timezone"] == "UTC"
    changed = firm.api.patch("/firm", json={"timezone": "Europe/Berlin"})
    assert changed.status_code == 200 and changed.get_json()["timezone"] == "Europe/Berlin"
    for bad in ("Mars/Olympus", "europe/berlin", "", "CET; DROP TABLE firms"):
        response = firm.api.patch("/firm", json={"timezone": bad})
        assert response.status_code == 422, bad
    assert firm.api.get("/firm").get_json()["timezone"] == "Europe/Berlin"
    clerk = make.firm(role="staff")
    assert clerk.api.patch("/firm", json={"timezone": "Europe/Berlin"}).status_code == 403
    assert clerk.api.get("/firm").status_code == 200


def test_todo_validation_and_tenancy(make):
    firm, theirs = make.firm(), make.firm()
    account = make.account(firm.id)
    other = make.account(theirs.id)
    for body in (
        {"kind": "astrology", "title": "x"},
        {"kind": "proposals"},
        {"kind": "proposals", "title": ""},
        {"kind": "proposals", "title": "x", "due_date": "tomorrow"},
        {"kind": "proposals", "title": "x", "owner": 1},
        {"kind": "proposals", "title": "x", "status": "done"},
    ):
        assert firm.api.post(f"/accounts/{account.id}/todos", json=body).status_code == 422, body
    assert (
        firm.api.post(f"/accounts/{other.id}/todos", json={"kind": "proposals", "title": "x"}).status_code
        == 404
    )
    theirs_todo = theirs.api.post(
        f"/accounts/{other.id}/todos", json={"kind": "proposals", "title": "x"}
    ).get_json()
    assert firm.api.patch(f"/todos/{theirs_todo['id']}", json={"state": "done"}).status_code == 404
    assert theirs.api.patch(f"/todos/{theirs_todo['id']}", json={}).get_json()["state"] == "open"


def test_a_to_do_raised_by_mistake_is_deleted_its_files_stay_and_other_firms_cannot(make):
    firm = make.firm()
    account = make.account(firm.id)
    document = firm.api.post(
        f"/accounts/{account.id}/documents",
        data={"file": (io.BytesIO(b"%PDF-1.4 x"), "x.pdf")},
        content_type="multipart/form-data",
    ).get_json()
    todo = firm.api.post(
        f"/accounts/{account.id}/todos",
        json={"kind": "documents_signature", "title": "Wrong form", "document_ids": [document["id"]]},
    ).get_json()
    stranger = make.firm()
    assert stranger.api.delete(f"/todos/{todo['id']}").status_code == 404
    assert firm.api.delete(f"/todos/{todo['id']}").status_code == 204
    assert firm.api.get(f"/accounts/{account.id}/todos").get_json()["items"] == []
    assert firm.api.delete(f"/todos/{todo['id']}").status_code == 404
    assert firm.api.get(f"/documents/{document['id']}/content").status_code == 200
