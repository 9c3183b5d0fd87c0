"""Virus scanning of new documents (R-DOC-4): with CLAMAV_URL set, every new document starts
``pending`` and a job hands it to clamd once the transaction that saved it commits; nobody can
download it until clamd says it is clean. An infected file is deleted at once, only its record
stays (``infected``, the signature), and the firm hears of it in Inbox+. When clamd cannot be
reached the document stays pending: rq retries the job, and the periodic run picks up what is
still pending (fail closed: never served unscanned)."""

from __future__ import annotations

from datetime import timedelta

from flask import current_app
from rq import Retry
from sqlalchemy import select

from portal_app.clamav import Verdict
from portal_app.extensions import db
from portal_app.files import blob_path
from portal_app.models import Account, Document, InboxItem, utcnow
from portal_app.queue import defer

SCAN_JOB = "scan_documents"
RETRY = Retry(max=5, interval=[10, 30, 60, 300, 900])
STILL_PENDING_AFTER = timedelta(minutes=2)  # the periodic run scans these again


def initial_state() -> str:
    return "pending" if current_app.config.get("CLAMAV_URL") else "not_scanned"


def scan_after_commit(document_ids: list[int]) -> None:
    if document_ids:
        defer(SCAN_JOB, document_ids, retry=RETRY)


def still_pending(limit: int = 500) -> list[int]:
    """Documents clamd has not judged for a while (it was down, or a job was lost)."""
    return list(
        db.session.scalars(
            select(Document.id)
            .where(Document.scan == "pending", Document.created_at < utcnow() - STILL_PENDING_AFTER)
            .order_by(Document.id)
            .limit(limit)
        )
    )


def record_verdict(document: Document, verdict: Verdict) -> None:
    """Clean: servable from now on. Infected: the file is deleted (every document with the same
    bytes is the same file) and the firm gets an Inbox+ item per document."""
    now = utcnow()
    if verdict.clean:
        document.scan, document.scanned_at = "clean", now
        return
    same_bytes = db.session.scalars(select(Document).where(Document.sha256 == document.sha256)).all()
    for found in same_bytes:
        found.scan, found.scan_signature, found.scanned_at = "infected", verdict.signature, now
        account_name = db.session.scalar(select(Account.name).where(Account.id == found.account_id)) or ""
        who = found.uploaded_by_name or found.uploaded_by_address or "a synced email"
        db.session.add(
            InboxItem(
                firm_id=found.firm_id,
                account_id=found.account_id,
                kind="virus_found",
                title=f"A virus was found in “{found.name}” on {account_name}"[:300],
                body=(
                    f"{verdict.signature}. Uploaded by {who} on {found.created_at:%Y-%m-%d %H:%M} UTC, "
                    f"{found.size} bytes. The file was deleted; its record stays on the account."
                ),
                data={"document_id": str(found.id), "signature": verdict.signature},
                created_at=now,
            )
        )
    blob_path("documents", document.sha256).unlink(missing_ok=True)
