"""Staff's notes on an account, and the account's Overview tab."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from portal_app.models import Note
from portal_app.services import accounts, notes, overview, todos
from staff_api.auth import current_staff, staff_read
from staff_api.documents import document_payload
from staff_api.mail import message_sender
from staff_api.mail_schemas import (
    NoteInSchema,
    NotePageSchema,
    NoteSchema,
    OverviewSchema,
    PageArgs,
)
from staff_api.paging import id_page
from staff_api.schemas import ErrorSchema
from staff_api.todos import todo_payload

blp = Blueprint("notes", __name__, description="Accounts › Notes and the overview.")


def note_payload(note: Note) -> dict[str, Any]:
    return {
        "id": str(note.id),
        "account_id": str(note.account_id),
        "text": note.text,
        "author": {"id": str(note.author_id) if note.author_id else None, "name": note.author_name},
        "created_at": note.created_at,
        "updated_at": note.updated_at,
    }


@blp.route("/accounts/<account_id>/notes")
class AccountNotes(MethodView):
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, NotePageSchema)
    @blp.alt_response(404, schema=ErrorSchema)
    def get(self, args: dict[str, Any], account_id: str) -> dict[str, Any]:
        """Staff's notes on the account, newest first."""
        account = accounts.get_account(current_staff().firm_id, account_id)
        return id_page(
            args,
            lambda limit, before: notes.list_notes(account.id, limit=limit, before_id=before),
            note_payload,
        )

    @blp.arguments(NoteInSchema)
    @blp.response(201, NoteSchema)
    @blp.alt_response(404, schema=ErrorSchema)
    def post(self, data: dict[str, Any], account_id: str) -> dict[str, Any]:
        """Add a note."""
        staff = current_staff()
        note = notes.create_note(accounts.get_account(staff.firm_id, account_id), staff, data["text"])
        return note_payload(note)


@blp.route("/notes/<note_id>")
class NoteDetail(MethodView):
    @blp.arguments(NoteInSchema)
    @blp.response(200, NoteSchema)
    @blp.alt_response(404, schema=ErrorSchema)
    def patch(self, data: dict[str, Any], note_id: str) -> dict[str, Any]:
        """Change a note's text."""
        note = notes.update_note(notes.get_note(current_staff().firm_id, note_id), data["text"])
        return note_payload(note)

    @blp.response(204)
    @blp.alt_response(404, schema=ErrorSchema)
    def delete(self, note_id: str) -> None:
        """Delete a note."""
        notes.delete_note(notes.get_note(current_staff().firm_id, note_id))


@blp.route("/accounts/<account_id>/overview")
class AccountOverview(MethodView):
    @blp.response(200, OverviewSchema)
    @blp.alt_response(404, schema=ErrorSchema)
    def get(self, account_id: str) -> dict[str, Any]:
        """The account's Overview tab: the last 5 documents (with NEW), the latest messages in and
        out, open approvals and signatures, each portal user's last login, the last 5 notes."""
        account = accounts.get_account(current_staff().firm_id, account_id)
        return staff_read(lambda: _overview_payload(account.id))


def _overview_payload(account_id: int) -> dict[str, Any]:
    view = overview.overview(account_id)
    attached = todos.documents_of([t.id for t in [*view.approvals, *view.signatures]])
    return {
        "documents": [document_payload(d) for d in view.documents],
        "communication": [
            {
                "thread_id": str(m.thread_id),
                "subject": subject,
                "direction": m.direction,
                "from_": message_sender(m),
                "sent_at": m.sent_at,
            }
            for m, subject in view.communication
        ],
        "approvals": [todo_payload(t, attached.get(t.id, [])) for t in view.approvals],
        "signatures": [todo_payload(t, attached.get(t.id, [])) for t in view.signatures],
        "login_activity": [{"email": e, "last_login_at": at} for e, at in view.login_activity],
        "notes": [note_payload(n) for n in view.notes],
    }
