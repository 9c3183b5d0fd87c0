"""To-dos: what an account's client has to do (kind = a notification category)."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import func, select

from portal_app.extensions import db
from portal_app.models import NOTIFICATION_CATEGORIES, Account, Todo, utcnow
from portal_app.services.errors import NotFound, ValidationFailed
from portal_app.services.validation import parse_id

TODO_STATUSES = ("open", "done")


def _check(kind: str | None, status: str | None) -> None:
    if kind is not None and kind not in NOTIFICATION_CATEGORIES:
        raise ValidationFailed(
            "Unknown kind.", fields={"kind": [f"One of {', '.join(NOTIFICATION_CATEGORIES)}."]}
        )
    if status is not None and status not in TODO_STATUSES:
        raise ValidationFailed("Unknown status.", fields={"status": ["open or done."]})


def create_todo(account: Account, *, kind: str, title: str, due_date: date | None = None) -> Todo:
    _check(kind, None)
    title = title.strip()
    if not title:
        raise ValidationFailed("A to-do needs a title.", fields={"title": ["Required."]})
    todo = Todo(firm_id=account.firm_id, account_id=account.id, kind=kind, title=title, due_date=due_date)
    db.session.add(todo)
    db.session.flush()
    return todo


def get_todo(firm_id: int, todo_id: object) -> Todo:
    key = parse_id(todo_id)
    todo = db.session.scalar(select(Todo).where(Todo.id == key, Todo.firm_id == firm_id)) if key else None
    if todo is None:
        raise NotFound("To-do not found.")
    return todo


def update_todo(todo: Todo, changes: dict[str, Any]) -> Todo:
    _check(changes.get("kind"), changes.get("status"))
    if "title" in changes:
        title = (changes["title"] or "").strip()
        if not title:
            raise ValidationFailed("A to-do needs a title.", fields={"title": ["Required."]})
        todo.title = title
    if "kind" in changes:
        todo.kind = changes["kind"]
    if "due_date" in changes:
        todo.due_date = changes["due_date"]
    if "status" in changes and changes["status"] != todo.status:
        todo.status = changes["status"]
        todo.completed_at = utcnow() if todo.status == "done" else None
    db.session.flush()
    return todo


def open_todos(account_id: int) -> list[Todo]:
    """Open to-dos, soonest due first (undated last), then oldest."""
    return list(
        db.session.scalars(
            select(Todo)
            .where(Todo.account_id == account_id, Todo.status == "open")
            .order_by(Todo.due_date.is_(None), Todo.due_date, Todo.id)
        )
    )


def open_counts(account_ids: list[int]) -> dict[int, int]:
    if not account_ids:
        return {}
    rows = db.session.execute(
        select(Todo.account_id, func.count())
        .where(Todo.account_id.in_(account_ids), Todo.status == "open")
        .group_by(Todo.account_id)
    ).all()
    return {account_id: count for account_id, count in rows}
