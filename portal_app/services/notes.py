"""Staff's notes on an account."""

from __future__ import annotations

from portal_app.extensions import db
from portal_app.models import Account, Note, StaffUser, utcnow
from portal_app.services.errors import ValidationFailed
from portal_app.services.lookup import firm_row, newest_on_account

MAX_TEXT = 20_000


def _text(value: str | None) -> str:
    text = (value or "").strip()
    if not text:
        raise ValidationFailed("A note needs some text.", fields={"text": ["Required."]})
    if len(text) > MAX_TEXT:
        raise ValidationFailed("The note is too long.", fields={"text": [f"At most {MAX_TEXT} characters."]})
    return text


def create_note(account: Account, author: StaffUser, text: str) -> Note:
    now = utcnow()
    note = Note(
        firm_id=account.firm_id,
        account_id=account.id,
        author_id=author.id,
        author_name=author.name or author.email,
        text=_text(text),
        created_at=now,
        updated_at=now,
    )
    db.session.add(note)
    db.session.flush()
    return note


def list_notes(account_id: int, *, limit: int = 50, before_id: int | None = None) -> list[Note]:
    return newest_on_account(Note, account_id, limit=limit, before_id=before_id)


def get_note(firm_id: int, note_id: object) -> Note:
    return firm_row(Note, firm_id, note_id, "Note")


def update_note(note: Note, text: str) -> Note:
    note.text = _text(text)
    note.updated_at = utcnow()
    db.session.flush()
    return note


def delete_note(note: Note) -> None:
    db.session.delete(note)
    db.session.flush()
