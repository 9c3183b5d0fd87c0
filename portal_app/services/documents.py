"""An account's documents: uploaded by staff (R-DOC-3) or a client (R-DOC-2), or saved from a
synced email (R-SYN-2).

Files live under DOCUMENTS_DIR by SHA-256; a name is only ever a label, cleaned (R-DOC-4) and
numbered by the same rules for every way in: the same name and size as a document of the account
is skipped; the same name with another size is saved as "name (2).ext", "name (3).ext", …. The
stored type is sniffed from the bytes, never the uploader's word. NEW until a staff user of the
firm opens the file. A client sees a document only with ``visible_to_client`` on (R-DOC-1), and
nobody downloads one that clamd has not passed when scanning is on (services/scanning).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import filetype
from sqlalchemy import func, or_, select

from portal_app.extensions import db
from portal_app.files import blob_path, store_blob
from portal_app.mail.parse import safe_filename
from portal_app.models import Account, Document, StaffUser, utcnow
from portal_app.services import scanning
from portal_app.services.errors import Conflict, Forbidden, Gone, NotFound, ValidationFailed
from portal_app.services.lookup import firm_row, newest_on_account
from portal_app.services.validation import parse_id
from portal_app.upload_stream import StreamedFile

MAX_EMAIL_BYTES = 25 * 1024 * 1024  # an attachment of a synced email over this is not saved
AREA = "documents"
CLIENT_DELETE_WINDOW = timedelta(minutes=10)


@dataclass
class Saved:
    document: Document | None  # the new document, or the existing one when skipped
    skipped_reason: str | None  # None: saved


@dataclass
class Incoming:
    """A file to save: its bytes (a parsed attachment) or a file streamed to disk (an upload)."""

    name: str
    data: bytes | None = None
    content_type: str = "application/octet-stream"
    streamed: StreamedFile | None = None

    @property
    def size(self) -> int:
        return self.streamed.size if self.streamed is not None else len(self.data or b"")

    @property
    def head(self) -> bytes:
        return self.streamed.head if self.streamed is not None else (self.data or b"")[:8192]


@dataclass(frozen=True)
class ClientUploader:
    """Who uploaded from the portal, as they were then (R-DOC-2's ``uploaded_by``)."""

    email_id: int
    name: str
    address: str


def sniff(head: bytes) -> str:
    """The type by the file's first bytes (``filetype``'s magic numbers); text that decodes as
    UTF-8 is text/plain; anything else is application/octet-stream."""
    kind = filetype.guess(head) if head else None
    if kind is not None:
        return str(kind.mime)
    if head and b"\0" not in head:
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.start < len(head) - 4:  # not just a character cut at the end of the head
                return "application/octet-stream"
        return "text/plain"
    return "application/octet-stream"


def _numbered(name: str, n: int) -> str:
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        return f"{name} ({n})"
    return f"{stem} ({n}).{ext}"


def save(account: Account, file: Incoming, **who: Any) -> Saved:
    [saved] = save_many(account, [file], **who)
    return saved


def save_many(
    account: Account,
    files: list[Incoming],
    *,
    source: str,
    uploaded_by: StaffUser | None = None,
    client: ClientUploader | None = None,
    visible_to_client: bool | None = None,
    request_item_id: int | None = None,
) -> list[Saved]:
    """Save files on the account in order, with the names of the account's documents (and of the
    files before them) read in one query: a message of many same-named parts numbers them
    "(2)", "(3)", … without a query per part. New files are scanned once this commits."""
    names = [safe_filename(f.name, sniff(f.head)) for f in files]
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
    visible = (source != "email") if visible_to_client is None else visible_to_client
    results: list[Saved] = []
    for file, name in zip(files, names, strict=True):
        if file.streamed is None and file.size > MAX_EMAIL_BYTES:
            results.append(Saved(None, "over 25 MB: not saved"))
            continue
        candidate, n = name, 1
        skipped = None
        while candidate in taken:
            size, document = taken[candidate]
            if size == file.size:
                skipped = Saved(document, "same name and size as a document already on the account")
                break
            n += 1
            candidate = _numbered(name, n)
        if skipped is not None:
            results.append(skipped)
            continue
        sha256 = file.streamed.keep(AREA) if file.streamed is not None else store_blob(AREA, file.data or b"")
        document = Document(
            firm_id=account.firm_id,
            account_id=account.id,
            name=candidate,
            size=file.size,
            content_type=sniff(file.head)[:127],
            sha256=sha256,
            source=source,
            uploaded_by_id=uploaded_by.id if uploaded_by else None,
            uploaded_by_email_id=client.email_id if client else None,
            uploaded_by_name=(client.name if client else uploaded_by.name if uploaded_by else None),
            uploaded_by_address=(client.address if client else uploaded_by.email if uploaded_by else None),
            visible_to_client=visible,
            request_item_id=request_item_id,
            scan=scanning.initial_state(),
            created_at=utcnow(),
        )
        db.session.add(document)
        taken[candidate] = (document.size, document)
        results.append(Saved(document, None))
    db.session.flush()
    scanning.scan_after_commit(
        [s.document.id for s in results if s.document and s.document.scan == "pending"]
    )
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


def file_of(document: Document) -> Path:
    """The stored file of a document that may be served: 409 while clamd has not passed it,
    410 when it was infected and deleted, 404 when the file is missing."""
    if document.scan == "infected":
        raise Gone("This file contained a virus and was deleted.")
    if document.scan == "pending":
        raise Conflict("This file is being checked for viruses. Try again in a moment.", code="scan_pending")
    path = blob_path(AREA, document.sha256)
    if not path.exists():
        raise NotFound("The file of this document is missing.")
    return path


def open_document(document: Document) -> Path:
    """The file to stream to staff; opening it clears NEW for the whole firm."""
    path = file_of(document)
    if document.opened_at is None:
        document.opened_at = utcnow()
    return path


def update_document(document: Document, changes: dict[str, Any]) -> Document:
    """Staff rename a document or show or hide it from the account's clients (R-DOC-1)."""
    if "name" in changes:
        name = safe_filename(changes["name"] or "", document.content_type)
        if not (changes["name"] or "").strip():
            raise ValidationFailed("A document needs a name.", fields={"name": ["Required."]})
        document.name = name
    if changes.get("visible_to_client") is not None:
        document.visible_to_client = bool(changes["visible_to_client"])
    db.session.flush()
    return document


# --- what a client sees (R-DOC-1) and may undo (R-DOC-2) ------------------------------------------


def client_documents(account_id: int) -> list[Document]:
    """The account's documents its clients see, newest first."""
    return list(
        db.session.scalars(
            select(Document)
            .where(Document.account_id == account_id, Document.visible_to_client.is_(True))
            .order_by(Document.id.desc())
        )
    )


def client_document(account_id: int, document_id: object) -> Document:
    """A visible document of this account (the caller checked the client may see it); 404 else."""
    key = parse_id(document_id)
    document = (
        db.session.scalar(
            select(Document).where(
                Document.id == key, Document.account_id == account_id, Document.visible_to_client.is_(True)
            )
        )
        if key is not None
        else None
    )
    if document is None:
        raise NotFound("Document not found.")
    return document


def deletable_by(document: Document, email_id: int) -> bool:
    """A client may delete their own upload within 10 minutes of it."""
    return (
        document.source == "client"
        and document.uploaded_by_email_id == email_id
        and utcnow() - document.created_at <= CLIENT_DELETE_WINDOW
    )


def delete_client_upload(document: Document, email_id: int) -> None:
    if not deletable_by(document, email_id):
        raise Forbidden("Only your own uploads, and only within 10 minutes.")
    sha256 = document.sha256
    db.session.delete(document)
    db.session.flush()
    remove_unreferenced(sha256)


def remove_unreferenced(sha256: str) -> None:
    """Delete a stored file no document refers to any more."""
    if not db.session.scalar(select(func.count()).select_from(Document).where(Document.sha256 == sha256)):
        blob_path(AREA, sha256).unlink(missing_ok=True)
