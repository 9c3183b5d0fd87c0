"""The edge's commit: one per request or command, then the jobs it released."""

from __future__ import annotations

from portal_app.extensions import db
from portal_app.jobs import dispatch_ready_jobs


def commit() -> None:
    """Commit the session, then enqueue (or run) the jobs the transaction deferred."""
    db.session.commit()
    dispatch_ready_jobs()
