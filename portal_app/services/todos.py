"""To-dos: what an account's client has to do (kind = a notification category).

Creating one emails its recipients (R-NOT-1); reminders follow until it is done (R-NOT-3).
Clients complete them from the portal: sign, approve or mark done (R-POR-6), signing only with
``signatory`` on for the account (R-SIG-1).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import bindparam, case, delete, func, select

from portal_app.extensions import db
from portal_app.models import (
    NOTIFICATION_CATEGORIES,
    TODO_STATES,
    Account,
    ContactSettings,
    Document,
    PortalUser,
    StaffUser,
    Todo,
    TodoDocument,
    utcnow,
)
from portal_app.services import client_requests, notifications
from portal_app.services.errors import Forbidden, NotFound, ValidationFailed
from portal_app.services.lookup import firm_row
from portal_app.services.todo_done import PAST_TENSE, ClientDone, mark_done_by_client, reopen_todo
from portal_app.services.validation import parse_id

# Kinds a client signs (``invoices_payments`` only when the to-do says so), and approves.
SIGNING_KINDS = ("documents_signature", "proposals")
APPROVAL_KINDS = ("documents_approval",)


def action_for(todo: Todo) -> str:
    """What completing this to-do is: ``sign``, ``approve`` or ``done`` (R-POR-6)."""
    if todo.kind in SIGNING_KINDS or (todo.kind == "invoices_payments" and todo.requires_signature):
        return "sign"
    if todo.kind in APPROVAL_KINDS:
        return "approve"
    if todo.item_count:
        return "submit"  # a client request with items: completed on its own page (R-REQ-1)
    return "done"




def _check(changes: dict[str, Any]) -> None:
    errors: dict[str, list[str]] = {}
    kind = changes.get("kind")
    if kind is not None and kind not in NOTIFICATION_CATEGORIES:
        errors["kind"] = [f"One of {', '.join(NOTIFICATION_CATEGORIES)}."]
    if changes.get("state") is not None and changes["state"] not in TODO_STATES:
        errors["state"] = ["open or done."]
    if "title" in changes and not (changes["title"] or "").strip():
        errors["title"] = ["Required."]
    every, most = changes.get("reminder_every_days"), changes.get("reminder_max")
    if every is not None and not 0 <= every <= 365:
        errors["reminder_every_days"] = ["From 0 (no reminders) to 365 days."]
    if most is not None and not 0 <= most <= 52:
        errors["reminder_max"] = ["From 0 to 52."]
    if errors:
        raise ValidationFailed("The to-do is not valid.", fields=errors)


def create_todo(
    account: Account,
    *,
    kind: str,
    title: str,
    due_date: date | None = None,
    requires_signature: bool = False,
    reminder_every_days: int = 3,
    reminder_max: int = 3,
    document_ids: list[str] | None = None,
    items: list[dict[str, Any]] | None = None,
) -> Todo:
    """Add a to-do and email it to the account's recipients of its kind (R-NOT-1); the
    documents named are what the client reads before signing or approving."""
    _check(
        {
            "kind": kind,
            "title": title,
            "reminder_every_days": reminder_every_days,
            "reminder_max": reminder_max,
        }
    )
    todo = Todo(
        firm_id=account.firm_id,
        account_id=account.id,
        kind=kind,
        title=title.strip(),
        due_date=due_date,
        requires_signature=requires_signature,
        reminder_every_days=reminder_every_days,
        reminder_max=reminder_max,
        reminders_sent=0,
        state="open",
        created_at=utcnow(),
    )
    notifications.schedule_reminders(todo)
    db.session.add(todo)
    db.session.flush()
    if document_ids:
        set_documents(todo, document_ids)
    if items is not None:
        client_requests.add_items(todo, items)
    notifications.notify_new_todo(todo)
    return todo


def get_todo(firm_id: int, todo_id: object) -> Todo:
    return firm_row(Todo, firm_id, todo_id, "To-do")


def update_todo(todo: Todo, changes: dict[str, Any], *, staff: StaffUser | None = None) -> Todo:
    """Staff edit a to-do, or mark it done (``state: done``, by them) or open again."""
    _check(changes)
    if changes.get("document_ids") is not None:
        set_documents(todo, changes["document_ids"])
    for field in ("title", "kind", "due_date", "requires_signature", "reminder_every_days", "reminder_max"):
        if field in changes:
            setattr(todo, field, changes[field].strip() if field == "title" else changes[field])
    if "state" in changes and changes["state"] != todo.state:
        if changes["state"] == "done":
            _mark_done(
                todo,
                action="done",
                address=staff.email if staff else None,
                staff_id=staff.id if staff else None,
            )
        else:
            reopen_todo(todo)
    notifications.schedule_reminders(todo)
    db.session.flush()
    return todo


def delete_todo(todo: Todo) -> None:
    """The database removes its items, its document list and its notification rows' reference
    with it; the documents themselves stay on the account."""
    todo_id = todo.id
    db.session.expunge(todo)
    db.session.execute(delete(Todo).where(Todo.id == todo_id))


def _mark_done(
    todo: Todo, *, action: str, address: str | None, email_id: int | None = None, staff_id: int | None = None
) -> None:
    todo.state = "done"
    todo.done_at = utcnow()
    todo.done_action = PAST_TENSE[action]
    todo.done_by_address = address
    todo.done_by_email_id = email_id
    todo.done_by_staff_id = staff_id
    todo.done_via = None
    todo.next_reminder_at = None  # reminders stop the moment it is done (R-NOT-3)


def list_todos(
    account_id: int, *, state: str | None = None, limit: int = 50, after: tuple[int, int] | None = None
) -> list[Todo]:
    """Open first (soonest due first, undated last), then done (latest first); ``after`` is the
    (rank, id) cursor of the last row of the previous page."""
    if state is not None and state not in TODO_STATES:
        raise ValidationFailed("Unknown state.", fields={"state": ["open or done."]})
    query = select(Todo).where(Todo.account_id == account_id)
    if state is not None:
        query = query.where(Todo.state == state)
    rank = case((Todo.state == "open", 0), else_=1)
    if after is not None:
        query = query.where((rank > after[0]) | ((rank == after[0]) & (Todo.id > after[1])))
    return list(db.session.scalars(query.order_by(rank, Todo.id).limit(limit)))


DONE_SHOWN = 20


_PAGE_TODOS = select(Todo).where(
    Todo.account_id == bindparam("account_id"),
    (Todo.state == "open")
    | Todo.id.in_(
        select(Todo.id)
        .where(Todo.account_id == bindparam("account_id"), Todo.state == "done")
        .order_by(Todo.done_at.desc(), Todo.id.desc())
        .limit(DONE_SHOWN)
        .scalar_subquery()
    ),
)  # built once: the portal home runs it on every visit


def account_page_todos(account_id: int) -> tuple[list[Todo], list[Todo]]:
    """The portal page's to-dos in one query: every open one (soonest due first, undated last,
    then oldest) and the last ``DONE_SHOWN`` done ones (latest first)."""
    rows = db.session.scalars(_PAGE_TODOS, {"account_id": account_id}).all()
    open_rows = sorted(
        (t for t in rows if t.state == "open"),
        key=lambda t: (t.due_date is None, t.due_date or date.min, t.id),
    )
    done_rows = sorted((t for t in rows if t.state == "done"), key=lambda t: (t.done_at, t.id), reverse=True)
    return open_rows, done_rows


# --- the documents a to-do asks the client to read --------------------------------------------------


def set_documents(todo: Todo, document_ids: list[str]) -> None:
    """Name the documents of this to-do (in this order), replacing earlier ones; each must be a
    document of the to-do's own account (422 otherwise, nothing changed)."""
    ids = [parse_id(value) for value in document_ids]
    wanted = list(dict.fromkeys(i for i in ids if i is not None))
    found = set(
        db.session.scalars(
            select(Document.id).where(Document.account_id == todo.account_id, Document.id.in_(wanted))
        )
        if wanted
        else []
    )
    unknown = [value for value, i in zip(document_ids, ids, strict=True) if i is None or i not in found]
    if unknown:
        raise ValidationFailed(
            "A document is not on this account.",
            fields={"document_ids": [f"Not a document of this account: {', '.join(map(str, unknown))}."]},
        )
    db.session.execute(delete(TodoDocument).where(TodoDocument.todo_id == todo.id))
    db.session.add_all(
        TodoDocument(todo_id=todo.id, document_id=doc_id, position=n) for n, doc_id in enumerate(wanted)
    )
    todo.document_count = len(wanted)
    db.session.flush()


def documents_of(todo_ids: list[int]) -> dict[int, list[Document]]:
    """Each to-do's documents, in their order, in one query (also for none: a page's query count
    does not depend on its data)."""
    found: dict[int, list[Document]] = {}
    rows = db.session.execute(
        select(TodoDocument.todo_id, Document)
        .join(Document, Document.id == TodoDocument.document_id)
        .where(TodoDocument.todo_id.in_(todo_ids))
        .order_by(TodoDocument.todo_id, TodoDocument.position)
    ).all()
    for todo_id, document in rows:
        found.setdefault(todo_id, []).append(document)
    return found


def todo_document(todo: Todo, document_id: int) -> Document:
    """One document of this to-do (404 for any other, R-POR-3)."""
    document = db.session.scalar(
        select(Document)
        .join(TodoDocument, TodoDocument.document_id == Document.id)
        .where(TodoDocument.todo_id == todo.id, Document.id == document_id)
    )
    if document is None:
        raise NotFound("Document not found.")
    return document


def open_counts(account_ids: list[int]) -> dict[int, int]:
    if not account_ids:
        return {}
    rows = db.session.execute(
        select(Todo.account_id, func.count())
        .where(Todo.account_id.in_(account_ids), Todo.state == "open")
        .group_by(Todo.account_id)
    ).all()
    return {account_id: count for account_id, count in rows}


# --- clients acting on their to-dos (R-POR-6, R-SIG-1) --------------------------------------------


@dataclass
class ClientTodo:
    """A to-do as one portal user sees it on one account."""

    todo: Todo
    action: str  # sign | approve | done
    allowed: bool  # False: signing without signatory


def can_sign(email_id: int, account_id: int, *, signed_in: bool = True) -> bool:
    """R-SIG-1: ``signatory`` on for this email on this account; signed in, the email's login
    must be on too (R-POR-3), from an emailed link it need not be (R-LFA-3)."""
    settings = ContactSettings.lets_in(email_id) if signed_in else ContactSettings.email_id == email_id
    return bool(
        db.session.scalar(
            select(ContactSettings.signatory).where(ContactSettings.account_id == account_id, settings)
        )
    )


def client_view(
    email_id: int,
    account_id: int,
    items: list[Todo],
    *,
    signed_in: bool = True,
    signatory: bool | None = None,
) -> list[ClientTodo]:
    """The to-dos as this client may act on them; ``signatory`` when the caller has read it
    already (the portal home, with the user's accounts), else it is read here."""
    if signatory is None:
        signatory = any(action_for(t) == "sign" for t in items) and can_sign(
            email_id, account_id, signed_in=signed_in
        )
    return [
        ClientTodo(todo=t, action=(action := action_for(t)), allowed=action != "sign" or signatory)
        for t in items
    ]


def client_todo(user: PortalUser, account_id: int, todo_id: int) -> ClientTodo:
    """An open-or-done to-do of an account the caller may see (the caller checked access)."""
    todo = db.session.scalar(select(Todo).where(Todo.id == todo_id, Todo.account_id == account_id))
    if todo is None:
        raise NotFound("To-do not found.")
    [view] = client_view(user.email_id, account_id, [todo])
    return view


def complete_by_client(client: ClientDone, view: ClientTodo, action: str) -> Todo:
    """The client signs, approves or marks done; only the to-do's own action, only once, and
    signing only as a signatory (403 otherwise, R-SIG-1)."""
    if action != view.action:
        raise ValidationFailed("This to-do is not completed that way.", fields={"action": [view.action]})
    if not view.allowed:
        raise Forbidden("Only authorised signers can sign this.")
    todo = view.todo
    mark_done_by_client(todo, client, action)
    return todo
