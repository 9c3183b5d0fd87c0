"""To-dos for an account's clients, and the firm's own settings."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from portal_app.models import Todo
from portal_app.services import accounts, client_requests, todos
from portal_app.services.errors import ValidationFailed
from portal_app.services.validation import parse_id
from staff_api.auth import current_staff
from staff_api.schemas import ErrorSchema
from staff_api.todo_schemas import (
    TodoCreateSchema,
    TodoItemPatchSchema,
    TodoListArgsSchema,
    TodoPageSchema,
    TodoPatchSchema,
    TodoSchema,
)

blp = Blueprint("todos", __name__, description="What a client has to do; shown on the portal home.")


def todo_payload(todo: Todo, documents: list[Any] | None = None) -> dict[str, Any]:
    """The API's to-do; ``documents`` from ``todos.documents_of`` when a page loaded them at once."""
    if documents is None:
        documents = todos.documents_of([todo.id]).get(todo.id, [])
    return {
        "id": str(todo.id),
        "account_id": str(todo.account_id),
        "kind": todo.kind,
        "title": todo.title,
        "due_date": todo.due_date,
        "requires_signature": todos.action_for(todo) == "sign",  # what the client does, by kind or flag
        "reminder_every_days": todo.reminder_every_days,
        "reminder_max": todo.reminder_max,
        "state": todo.state,
        "done_at": todo.done_at,
        "done_by": {"email": todo.done_by_address, "action": todo.done_action, "via": todo.done_via}
        if todo.done_action
        else None,
        "document_ids": [str(d.id) for d in documents],
        **({"request_items": items} if (items := client_requests.item_payloads(todo)) is not None else {}),
        "created_at": todo.created_at,
    }


def _cursor(value: str | None) -> tuple[int, int] | None:
    """The list's cursor is "<rank>.<id>" of the last row shown (rank 0 open, 1 done)."""
    if value is None:
        return None
    rank, _, key = value.partition(".")
    todo_id = parse_id(key)
    if rank not in ("0", "1") or todo_id is None:
        raise ValidationFailed("The cursor is not valid.", fields={"cursor": ["Not a valid cursor."]})
    return int(rank), todo_id


@blp.route("/accounts/<account_id>/todos")
class AccountTodos(MethodView):
    @blp.arguments(TodoListArgsSchema, location="query")
    @blp.response(200, TodoPageSchema)
    @blp.alt_response(404, schema=ErrorSchema)
    def get(self, args: dict[str, Any], account_id: str) -> dict[str, Any]:
        """The account's to-dos: open first, then done; filter with `state`; page with `cursor`."""
        account = accounts.get_account(current_staff().firm_id, account_id)
        limit = args["limit"]
        rows = todos.list_todos(
            account.id, state=args.get("state"), limit=limit + 1, after=_cursor(args.get("cursor"))
        )
        page = rows[:limit]
        last = page[-1] if page else None
        more = len(rows) > limit and last is not None
        attached = todos.documents_of([t.id for t in page])
        return {
            "items": [todo_payload(t, attached.get(t.id, [])) for t in page],
            "next_cursor": f"{0 if last.state == 'open' else 1}.{last.id}" if more and last else None,
        }

    @blp.arguments(TodoCreateSchema)
    @blp.response(201, TodoSchema)
    @blp.alt_response(404, schema=ErrorSchema)
    def post(self, data: dict[str, Any], account_id: str) -> dict[str, Any]:
        """Add a to-do to the account: its clients see it on their portal home, and every email
        with `notify` and the to-do's category on is emailed now and reminded later (R-NOT-1..3)."""
        account = accounts.get_account(current_staff().firm_id, account_id)
        todo = todos.create_todo(account, **data)
        return todo_payload(todo)


@blp.route("/todos/<todo_id>")
class TodoDetail(MethodView):
    @blp.arguments(TodoPatchSchema)
    @blp.response(200, TodoSchema)
    @blp.alt_response(404, schema=ErrorSchema)
    def patch(self, changes: dict[str, Any], todo_id: str) -> dict[str, Any]:
        """Edit a to-do, or mark it done (`state: done`; reminders stop) or open again."""
        user = current_staff()
        todo = todos.update_todo(todos.get_todo(user.firm_id, todo_id), changes, staff=user)
        return todo_payload(todo)

    @blp.response(204)
    @blp.alt_response(404, schema=ErrorSchema)
    def delete(self, todo_id: str) -> None:
        """Delete a to-do raised by mistake: it leaves the portal, its reminders stop, and every
        "Open without logging in" link to it dies (R-LFA-2); files uploaded to it stay."""
        todos.delete_todo(todos.get_todo(current_staff().firm_id, todo_id))


@blp.route("/todos/<todo_id>/items/<item_id>")
class TodoItemDetail(MethodView):
    @blp.arguments(TodoItemPatchSchema)
    @blp.response(200, TodoSchema)
    @blp.alt_response(404, schema=ErrorSchema)
    def patch(self, changes: dict[str, Any], todo_id: str, item_id: str) -> dict[str, Any]:
        """Reopen one item of a client request with a comment (`{"reopen": true, "comment": "…"}`):
        the item is incomplete again, the request is open again (reminders resume) and the client
        is emailed the comment (category `client_requests`)."""
        todo = todos.get_todo(current_staff().firm_id, todo_id)
        item = client_requests.get_item(todo, item_id)
        return todo_payload(client_requests.reopen(todo, item, changes["comment"]))
