"""An account's documents: uploaded by staff or saved from a synced email (R-SYN-2).

Files live under DOCUMENTS_DIR by SHA-256 (written atomically); a name is only ever a label. The
same rules for every way in: the same name and size as a document of the account is skipped;
the same name with another size is saved as "name (2).ext", "name (3).ext", …; over 25 MB is
not saved. NEW until a staff user of the firm opens the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import or_, select

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


@dataclass
class Incoming:
    name: str
    data: bytes
    content_type: str


def save(
    account: Account,
    *,
    name: str,
    data: bytes,
    content_type: str,
    source: str,
    uploaded_by: StaffUser | None = None,
) -> Saved:
    [saved] = save_many(account, [Incoming(name, data, content_type)], source=source, uploaded_by=uploaded_by)
    return saved


def save_many(
    account: Account, files: list[Incoming], *, source: str, uploaded_by: StaffUser | None = None
) -> list[Saved]:
    """Save files on the account in order, with the names of the account's documents (and of the
    files before them) read in one query: a message of many same-named parts numbers them
    "(2)", "(3)", … without a query per part."""
    names = [safe_filename(f.name, f.content_type) for f in files]
    prefixes = sorted({_like_prefix(name) for name in names})
    taken: dict[str, tuple[int, Document]] = {}
    if prefixes:
        existing = db.session.scalars(
            select(Document).where(
                Document.account_id == account.id,
                or_(*(Document.name.like(prefix, escape="\\") for prefix in prefixes)),
            )
        )
        taken = {doc.name: (doc.size, doc) for doc in existing}
    results: list[Saved] = []
    for file, name in zip(files, names, strict=True):
        if len(file.data) > MAX_BYTES:
            results.append(Saved(None, "over 25 MB: not saved"))
            continue
        candidate, n = name, 1
        skipped = None
        while candidate in taken:
            size, document = taken[candidate]
            if size == len(file.data):
                skipped = Saved(document, "same name and size as a document already on the account")
                break
            n += 1
            candidate = _numbered(name, n)
        if skipped is not None:
            results.append(skipped)
            continue
        document = Document(
            firm_id=account.firm_id,
            account_id=account.id,
            name=candidate,
            size=len(file.data),
            content_type=(file.content_type or "application/octet-stream")[:127],
            sha256=store_blob(AREA, file.data),
            source=source,
            uploaded_by_id=uploaded_by.id if uploaded_by else None,
            created_at=utcnow(),
        )
        db.session.add(document)
        taken[candidate] = (document.size, document)
        results.append(Saved(document, None))
    db.session.flush()
    return results


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
