"""A client completing a to-do, once: signed in to the portal (R-POR-6) or from an emailed link
(R-LFA-3), the same claim, recording who did what and where."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import update

from portal_app.extensions import db
from portal_app.models import Todo, utcnow
from portal_app.services.errors import Conflict

PAST_TENSE = {"sign": "signed", "approve": "approved", "done": "done", "submit": "done"}


@dataclass(frozen=True)
class ClientDone:
    """Who completed a to-do, and where: signed in (``portal``) or from an emailed link
    (``email_link``)."""

    email_id: int
    address: str
    via: str = "portal"


def reopen_todo(todo: Todo) -> None:
    """Open a done to-do again (staff, or a reopened request item), forgetting who completed it.
    ``times_reopened`` counts it, so links emailed before stay dead (R-LFA-2)."""
    if todo.state == "open":
        return
    todo.state = "open"
    todo.done_at = todo.done_action = todo.done_by_address = None
    todo.done_by_email_id = todo.done_by_staff_id = todo.done_via = None
    todo.times_reopened = (todo.times_reopened or 0) + 1


def mark_done_by_client(todo: Todo, client: ClientDone, action: str) -> None:
    """Claim the open to-do for this client, once: a second claim (another tab, the other
    signatory, a link and the portal at once) raises Conflict and changes nothing."""
    claimed = db.session.execute(
        update(Todo)
        .where(Todo.id == todo.id, Todo.state == "open")
        .values(
            state="done",
            done_at=utcnow(),
            done_action=PAST_TENSE[action],
            done_by_address=client.address,
            done_by_email_id=client.email_id,
            done_by_staff_id=None,
            done_via=client.via,
            next_reminder_at=None,
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    if claimed != 1:
        raise Conflict("This to-do is already done.", code="already_done")
    db.session.refresh(todo)
