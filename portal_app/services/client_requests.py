"""Client requests (R-REQ-1): a ``client_requests`` to-do whose items the client completes —
files uploaded to an upload item, a typed answer to an answer item — and then submits. Staff
reopen an item with a comment, which reopens the to-do and tells the client; reminders
(R-NOT-3) go on while it is open.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from portal_app.extensions import db
from portal_app.models import (
    REQUEST_ITEM_TYPES,
    Account,
    Document,
    InboxItem,
    Todo,
    TodoItem,
    utcnow,
)
from portal_app.services import notifications
from portal_app.services.errors import Conflict, NotFound, ValidationFailed
from portal_app.services.todo_done import ClientDone, mark_done_by_client, reopen_todo
from portal_app.services.validation import parse_id

KIND = "client_requests"
MAX_ITEMS = 100
MAX_ANSWER = 5000
WHERE = {"portal": "from the client portal", "email_link": "from an emailed link"}


def check_items(items: list[dict[str, Any]]) -> list[dict[str, str]]:
    """1 to 100 items, each a label and ``upload`` or ``answer`` (422 otherwise)."""
    if not 1 <= len(items) <= MAX_ITEMS:
        raise ValidationFailed("A client request has 1 to 100 items.", fields={"items": ["1 to 100 items."]})
    errors: dict[str, list[str]] = {}
    clean = []
    for n, item in enumerate(items):
        label = (item.get("label") or "").strip()
        if not label or len(label) > 300:
            errors[f"items.{n}.label"] = ["Required, at most 300 characters."]
        if item.get("type") not in REQUEST_ITEM_TYPES:
            errors[f"items.{n}.type"] = ["upload or answer."]
        clean.append({"label": label, "type": item.get("type") or ""})
    if errors:
        raise ValidationFailed("An item of the request is not valid.", fields=errors)
    return clean


def add_items(todo: Todo, items: list[dict[str, Any]]) -> None:
    if todo.kind != KIND:
        raise ValidationFailed(
            "Only a client request has items.", fields={"items": ["Only for client_requests."]}
        )
    clean = check_items(items)
    db.session.add_all(
        TodoItem(
            todo_id=todo.id, position=n, label=i["label"], type=i["type"], complete=False, updated_at=utcnow()
        )
        for n, i in enumerate(clean)
    )
    todo.item_count = len(clean)
    db.session.flush()


def items_of(todo_ids: list[int]) -> dict[int, list[TodoItem]]:
    found: dict[int, list[TodoItem]] = {}
    if not todo_ids:
        return found
    for item in db.session.scalars(
        select(TodoItem).where(TodoItem.todo_id.in_(todo_ids)).order_by(TodoItem.todo_id, TodoItem.position)
    ):
        found.setdefault(item.todo_id, []).append(item)
    return found


def documents_of_items(item_ids: list[int]) -> dict[int, list[Document]]:
    found: dict[int, list[Document]] = {}
    if not item_ids:
        return found
    for document in db.session.scalars(
        select(Document).where(Document.request_item_id.in_(item_ids)).order_by(Document.id)
    ):
        found.setdefault(document.request_item_id or 0, []).append(document)
    return found


def item_payloads(todo: Todo) -> list[dict[str, Any]] | None:
    if not todo.item_count:
        return None
    items = items_of([todo.id]).get(todo.id, [])
    files = documents_of_items([i.id for i in items])
    return [
        {
            "id": str(i.id),
            "label": i.label,
            "type": i.type,
            "complete": i.complete,
            "answer": i.answer,
            "document_ids": [str(d.id) for d in files.get(i.id, [])],
            "comment": i.comment,
        }
        for i in items
    ]


def get_item(todo: Todo, item_id: object) -> TodoItem:
    key = parse_id(item_id)
    item = (
        db.session.scalar(select(TodoItem).where(TodoItem.id == key, TodoItem.todo_id == todo.id))
        if key is not None
        else None
    )
    if item is None:
        raise NotFound("No such item on this request.")
    return item


def _still_open(todo: Todo) -> None:
    if todo.state != "open":
        raise Conflict("This request was already submitted.", code="already_done")


def answer(todo: Todo, item: TodoItem, text: str) -> TodoItem:
    """The client's answer to an answer item (at most 5 000 characters); an empty one leaves the
    item incomplete."""
    _still_open(todo)
    if item.type != "answer":
        raise ValidationFailed("This item asks for files.", fields={"answer": ["Upload files instead."]})
    text = (text or "").strip()
    if len(text) > MAX_ANSWER:
        raise ValidationFailed("The answer is too long.", fields={"answer": ["At most 5 000 characters."]})
    item.answer = text or None
    item.complete = bool(text)
    item.updated_at = utcnow()
    db.session.flush()
    return item


def files_added(todo: Todo, item: TodoItem, files: list[Document]) -> None:
    """Files were saved to an upload item: it is complete. A file skipped because the account
    already had it (same name and size) counts for the item too, unless another item has it."""
    _still_open(todo)
    for document in files:
        if document.request_item_id is None:
            document.request_item_id = item.id
    item.complete = True
    item.updated_at = utcnow()
    db.session.flush()


def submit(client: ClientDone, todo: Todo, client_name: str) -> Todo:
    """Every item complete: the request is done (R-POR-6) and the firm hears of it, with who
    submitted it and from where (the portal, or an emailed link)."""
    items = items_of([todo.id]).get(todo.id, [])
    missing = [i.label for i in items if not i.complete]
    if missing:
        raise ValidationFailed("Some items are not complete yet.", fields={"items": missing})
    try:
        mark_done_by_client(todo, client, "done")
    except Conflict:
        raise Conflict("This request was already submitted.", code="already_done") from None
    account_name = db.session.scalar(select(Account.name).where(Account.id == todo.account_id)) or ""
    db.session.add(
        InboxItem(
            firm_id=todo.firm_id,
            account_id=todo.account_id,
            kind="request_submitted",
            title=f"{client_name} completed “{todo.title}” for {account_name}"[:300],
            body=f"{len(items)} items; submitted {WHERE[client.via]} by {client.address}.",
            data={"todo_id": str(todo.id)},
            created_at=utcnow(),
        )
    )
    return todo


def reopen(todo: Todo, item: TodoItem, comment: str) -> Todo:
    """Staff reopen one item with a comment: the item is incomplete again, the request open
    again (reminders resume), and the client is told why."""
    comment = (comment or "").strip()
    if not comment or len(comment) > MAX_ANSWER:
        raise ValidationFailed(
            "Say what is missing.", fields={"comment": ["Required, at most 5 000 characters."]}
        )
    item.complete = False
    item.comment = comment
    item.updated_at = utcnow()
    reopen_todo(todo)
    notifications.schedule_reminders(todo)
    db.session.flush()
    notifications.notify_request_reopened(todo, item)
    return todo
