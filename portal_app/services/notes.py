"""Staff's notes on an account."""

from __future__ import annotations

from sqlalchemy import select

from portal_app.extensions import db
from portal_app.models import Account, Note, StaffUser, utcnow
from portal_app.services.errors import NotFound, ValidationFailed
from portal_app.services.validation import parse_id

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
    query = select(Note).where(Note.account_id == account_id)
    if before_id is not None:
        query = query.where(Note.id < before_id)
    return list(db.session.scalars(query.order_by(Note.id.desc()).limit(limit)))


def get_note(firm_id: int, note_id: object) -> Note:
    key = parse_id(note_id)
    note = db.session.scalar(select(Note).where(Note.id == key, Note.firm_id == firm_id)) if key else None
    if note is None:
        raise NotFound("Note not found.")
    return note


def update_note(note: Note, text: str) -> Note:
    note.text = _text(text)
    note.updated_at = utcnow()
    db.session.flush()
    return note


def delete_note(note: Note) -> None:
    db.session.delete(note)
    db.session.flush()
