"""The unit of work: one commit per request, per command and per job, then the jobs it released.

Services flush and never commit. A request ends in ``_end_request``: an answer below 400 commits
(then hands the jobs the transaction deferred to rq, or runs them in process); a refusal or an
error rolls back, so nothing half-changed survives it (``keep_refusal_record`` is the one way a
refusal keeps what it writes after the rollback). Commands and the job runner, the other
edges, call ``commit()`` themselves.
"""

from __future__ import annotations

from flask import Flask, Response, g

from portal_app import queue
from portal_app.extensions import db
from portal_app.queue import dispatch_ready_jobs


def commit() -> None:
    """Commit the session, then enqueue (or run) the jobs the transaction deferred."""
    db.session.commit()
    dispatch_ready_jobs()


def keep_refusal_record() -> None:
    """For the one refusal that must leave a record (a cloned passkey, blocked and reported,
    R-SEC-15): what the request did so far is rolled back, and what the session holds from here
    on commits with the 4xx answer."""
    db.session.rollback()
    g.commit_refusal = True


def init_app(app: Flask) -> None:
    """Registered last, so this runs before every other after-request hook (Flask runs them in
    reverse): the log line and the metrics see the answer the commit allowed."""
    queue.init_app()
    app.after_request(_end_request)


def _end_request(response: Response) -> Response:
    if not db.session.registry.has():  # the request never touched the database
        return response
    if response.status_code < 400 or g.pop("commit_refusal", False):
        commit()
    else:
        db.session.rollback()
    return response
