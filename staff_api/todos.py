"""To-dos for an account's clients."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from portal_app.models import Todo
from portal_app.services import accounts, todos
from portal_app.transaction import commit
from staff_api.auth import current_staff
from staff_api.schemas import ErrorSchema, TodoCreateSchema, TodoPatchSchema, TodoSchema

blp = Blueprint("todos", __name__, description="What a client has to do; shown on the portal home.")


def todo_payload(todo: Todo) -> dict[str, Any]:
    return {
        "id": str(todo.id),
        "account_id": str(todo.account_id),
        "kind": todo.kind,
        "title": todo.title,
        "due_date": todo.due_date,
        "status": todo.status,
        "created_at": todo.created_at,
        "completed_at": todo.completed_at,
    }


@blp.route("/accounts/<account_id>/todos")
class AccountTodos(MethodView):
    @blp.arguments(TodoCreateSchema)
    @blp.response(201, TodoSchema)
    @blp.alt_response(404, schema=ErrorSchema)
    def post(self, data: dict[str, Any], account_id: str) -> dict[str, Any]:
        """Add a to-do to the account; its clients see it on their portal home."""
        account = accounts.get_account(current_staff().firm_id, account_id)
        todo = todos.create_todo(account, **data)
        commit()
        return todo_payload(todo)


@blp.route("/todos/<todo_id>")
class TodoDetail(MethodView):
    @blp.arguments(TodoPatchSchema)
    @blp.response(200, TodoSchema)
    @blp.alt_response(404, schema=ErrorSchema)
    def patch(self, changes: dict[str, Any], todo_id: str) -> dict[str, Any]:
        """Edit a to-do, or mark it done (`status: done`) or open again."""
        todo = todos.update_todo(todos.get_todo(current_staff().firm_id, todo_id), changes)
        commit()
        return todo_payload(todo)
