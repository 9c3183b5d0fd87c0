"""Staff API: to-dos (shown on the client portal home)."""

from __future__ import annotations


def test_todos_are_created_edited_and_completed(make):
    firm = make.firm()
    account = make.account(firm.id)
    created = firm.api.post(
        f"/accounts/{account.id}/todos",
        json={"kind": "documents_signature", "title": "Sign the 2025 return", "due_date": "2026-12-15"},
    )
    assert created.status_code == 201, created.get_json()
    todo = created.get_json()
    assert (todo["status"], todo["due_date"], todo["completed_at"]) == ("open", "2026-12-15", None)
    done = firm.api.patch(f"/todos/{todo['id']}", json={"status": "done"}).get_json()
    assert done["status"] == "done" and done["completed_at"]
    reopened = firm.api.patch(f"/todos/{todo['id']}", json={"status": "open", "due_date": None}).get_json()
    assert reopened["completed_at"] is None and reopened["due_date"] is None


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
    ):
        assert firm.api.post(f"/accounts/{account.id}/todos", json=body).status_code == 422, body
    assert (
        firm.api.post(f"/accounts/{other.id}/todos", json={"kind": "proposals", "title": "x"}).status_code
        == 404
    )
    theirs_todo = theirs.api.post(
        f"/accounts/{other.id}/todos", json={"kind": "proposals", "title": "x"}
    ).get_json()
    assert firm.api.patch(f"/todos/{theirs_todo['id']}", json={"status": "done"}).status_code == 404
    assert theirs.api.patch(f"/todos/{theirs_todo['id']}", json={}).get_json()["status"] == "open"
