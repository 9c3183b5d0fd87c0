"""Large inbound messages (R-SYN-4, R-REL-3): the endpoint streams them to disk and records them;
this job parses and stores them, so no web process ever holds a large message in memory."""

from __future__ import annotations

from portal_app.extensions import db
from portal_app.models import InboundMessage
from portal_app.services import inbound
from portal_app.transaction import commit


def ingest_stored(inbound_id: int) -> str:
    message = db.session.get(InboundMessage, inbound_id)
    if message is None:
        return "gone"
    result = inbound.ingest_kept(message)
    commit()
    return result.status
