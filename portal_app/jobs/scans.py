"""The virus-scan job (R-DOC-4): each pending document to clamd, committed one at a time, so a
verdict is never lost to a later failure. With clamd unreachable the job fails after the rest
were tried, for rq to retry; the periodic run scans what is still pending."""

from __future__ import annotations

import logging

from flask import current_app

from portal_app import clamav
from portal_app.extensions import db
from portal_app.files import blob_path
from portal_app.models import Document
from portal_app.services import scanning
from portal_app.transaction import commit

log = logging.getLogger(__name__)


def scan_documents(document_ids: list[int]) -> int:
    """Scan these documents (those still pending); returns how many got a verdict."""
    url = current_app.config.get("CLAMAV_URL")
    if not url:
        log.warning("documents %s are pending but CLAMAV_URL is not set: they stay pending", document_ids)
        return 0
    judged, unavailable = 0, None
    for document_id in document_ids:
        document = db.session.get(Document, document_id)
        if document is None or document.scan != "pending":
            continue
        path = blob_path("documents", document.sha256)
        try:
            verdict = clamav.scan_file(url, path) if path.exists() else clamav.Verdict(True, None)
        except clamav.ScannerUnavailable as exc:
            unavailable = exc
            db.session.rollback()
            continue
        scanning.record_verdict(document, verdict)
        commit()
        judged += 1
    if unavailable is not None:
        raise unavailable  # rq retries; the document stays pending meanwhile
    return judged


def sweep_scans() -> int:
    """The periodic run's part: scan again what clamd has not judged for a while."""
    if not current_app.config.get("CLAMAV_URL"):
        return 0
    pending = scanning.still_pending()
    commit()
    if not pending:
        return 0
    try:
        return scan_documents(pending)
    except clamav.ScannerUnavailable as exc:
        log.warning("clamd unavailable; %d documents stay pending: %s", len(pending), exc)
        return 0
