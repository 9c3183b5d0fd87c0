"""An account's documents: uploaded by staff or saved from a synced email (R-SYN-2).

Files live under DOCUMENTS_DIR by SHA-256 (written atomically); a name is only ever a label. The
same rules for every way in: the same name and size as a document of the account is skipped;
the same name with another size is saved as "name (2).ext", "name (3).ext", …; over 25 MB is
not saved. NEW until a staff user of the firm opens the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from portal_app.extensions import db
from portal_app.files import blob_path, store_blob
from portal_app.mail.parse import safe_filename
from portal_app.models import Account, Document, StaffUser, utcnow
from portal_app.services.lookup import firm_row, newest_on_account

MAX_BYTES = 25 * 1024 * 1024
AREA = "documents"


@dataclass
class Saved:
    document: Document | None  # the new document, or the existing one when skipped
    skipped_reason: str | None  # None: saved


def _numbered(name: str, n: int) -> str:
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        return f"{name} ({n})"
    return f"{stem} ({n}).{ext}"


def save(
    account: Account,
    *,
    name: str,
    data: bytes,
    content_type: str,
    source: str,
    uploaded_by: StaffUser | None = None,
) -> Saved:
    if len(data) > MAX_BYTES:
        return Saved(None, "over 25 MB: not saved")
    name = safe_filename(name, content_type)
    taken = {
        doc_name: size
        for doc_name, size in db.session.execute(
            select(Document.name, Document.size).where(
                Document.account_id == account.id, Document.name.like(_like_prefix(name), escape="\\")
            )
        ).all()
    }
    candidate, n = name, 1
    while candidate in taken:
        if taken[candidate] == len(data):
            existing = db.session.scalar(
                select(Document).where(Document.account_id == account.id, Document.name == candidate)
            )
            return Saved(existing, "same name and size as a document already on the account")
        n += 1
        candidate = _numbered(name, n)
    sha256 = store_blob(AREA, data)
    document = Document(
        firm_id=account.firm_id,
        account_id=account.id,
        name=candidate,
        size=len(data),
        content_type=(content_type or "application/octet-stream")[:127],
        sha256=sha256,
        source=source,
        uploaded_by_id=uploaded_by.id if uploaded_by else None,
        created_at=utcnow(),
    )
    db.session.add(document)
    db.session.flush()
    return Saved(document, None)


def _like_prefix(name: str) -> str:
    """Names that may collide: the name itself and its numbered variants (same stem)."""
    stem = name.rpartition(".")[0] or name
    escaped = stem.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def list_documents(account_id: int, *, limit: int = 50, before_id: int | None = None) -> list[Document]:
    return newest_on_account(Document, account_id, limit=limit, before_id=before_id)


def get_document(firm_id: int, document_id: object) -> Document:
    return firm_row(Document, firm_id, document_id, "Document")


def open_document(document: Document) -> Path:
    """The file to stream; opening it clears NEW for the whole firm."""
    if document.opened_at is None:
        document.opened_at = utcnow()
    return blob_path(AREA, document.sha256)
