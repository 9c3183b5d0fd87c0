"""The mailbox poller (R-SYN-4), an edge like every job (it commits what it stores): unseen
messages of INBOUND_IMAP_URL go through the same ingestion as the inbound endpoint, and are
flagged \\Seen only after they are committed. A connection failure is logged and the next run
tries again: nothing is lost or marked seen.

Messages are fetched and stored in batches of ``FETCH_BATCH``: one transaction and one durable
file sync per batch (``files.one_sync``), then one \\Seen for the batch. A message that is not
an email is refused before anything of it is written, so it does not spoil its batch; any other
failure rolls the batch back and stores its messages one by one, each in its own transaction,
so only the message that fails stays unseen."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError
from sqlalchemy import select

from portal_app.extensions import db
from portal_app.files import one_sync
from portal_app.models import Firm
from portal_app.services.errors import ValidationFailed
from portal_app.services.inbound import ingest
from portal_app.services.inbound_batch import ingest_many
from portal_app.transaction import commit

log = logging.getLogger(__name__)
SEEN = b"\\Seen"
FETCH_BATCH = 25


class MailboxError(Exception):
    """The mailbox could not be read this time."""


@dataclass
class PollResult:
    fetched: int = 0
    stored: int = 0
    duplicate: int = 0
    ignored: int = 0
    unreadable: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass
class Mailbox:
    host: str
    port: int
    ssl: bool
    user: str
    password: str
    folder: str


def mailbox_from_url(url: str) -> Mailbox:
    parts = urlsplit(url)
    if parts.scheme not in ("imap", "imaps") or not parts.hostname or not parts.username:
        raise MailboxError("INBOUND_IMAP_URL must look like imaps://user:password@host/INBOX")
    ssl = parts.scheme == "imaps"
    return Mailbox(
        host=parts.hostname,
        port=parts.port or (993 if ssl else 143),
        ssl=ssl,
        user=unquote(parts.username),
        password=unquote(parts.password or ""),
        folder=unquote(parts.path.lstrip("/")) or "INBOX",
    )


def mailbox_firm(configured: str | None) -> int:
    """The firm the mailbox belongs to: INBOUND_IMAP_FIRM, else the only firm there is."""
    if configured:
        firm_id = (
            db.session.scalar(select(Firm.id).where(Firm.id == int(configured)))
            if configured.isdigit()
            else None
        )
        if firm_id is None:
            raise MailboxError(f"INBOUND_IMAP_FIRM={configured!r} is not a firm of this installation")
        return firm_id
    firms = db.session.scalars(select(Firm.id).limit(2)).all()
    if len(firms) != 1:
        raise MailboxError("set INBOUND_IMAP_FIRM: this installation serves several firms (or none)")
    return firms[0]


def poll(url: str, firm_id: int, *, timeout: float = 30) -> PollResult:
    """Read every unseen message once; raises MailboxError when the server cannot be used."""
    box = mailbox_from_url(url)
    result = PollResult()
    try:
        client = IMAPClient(box.host, port=box.port, ssl=box.ssl, timeout=timeout)
    except (OSError, IMAPClientError) as exc:
        raise MailboxError(f"cannot connect to {box.host}:{box.port}: {exc}") from exc
    try:
        client.login(box.user, box.password)
        client.select_folder(box.folder)
        uids = client.search(["UNSEEN"])
        for start in range(0, len(uids), FETCH_BATCH):
            chunk = uids[start : start + FETCH_BATCH]
            # BODY.PEEK: reading does not set \Seen; only a committed message is flagged
            fetched = [
                (uid, item.get(b"BODY[]") or b"")
                for uid, item in client.fetch(chunk, ["BODY.PEEK[]"]).items()
            ]
            result.fetched += len(fetched)
            seen = store_batch(firm_id, fetched, result)
            if seen:
                client.add_flags(seen, [SEEN])
    except (OSError, IMAPClientError) as exc:
        raise MailboxError(f"mailbox {box.folder} on {box.host}: {exc}") from exc
    finally:
        try:
            client.logout()
        except Exception:  # the connection may already be gone
            pass
    return result


def store_batch(firm_id: int, messages: list[tuple[int, bytes]], result: PollResult) -> list[int]:
    """Store a fetched batch in one transaction; return the UIDs that may be flagged seen."""
    try:
        with one_sync():  # the batch's files are durable before the rows naming them commit
            outcomes = ingest_many(firm_id, [raw for _uid, raw in messages], via="imap")
        commit()
    except Exception:
        db.session.rollback()
        log.warning("a batch of %d inbound messages failed; storing them one by one", len(messages))
        return [uid for uid, raw in messages if _store(firm_id, raw, result)]
    for outcome in outcomes:
        if isinstance(outcome, ValidationFailed):  # refused before anything of it was written
            result.unreadable += 1
            log.warning(
                "inbound message not an email (%s); flagged seen so it is not read again", outcome.message
            )
        else:
            setattr(result, outcome.status, getattr(result, outcome.status) + 1)
    return [uid for uid, _raw in messages]


def _store(firm_id: int, raw: bytes, result: PollResult) -> bool:
    """Ingest and commit one message; True when it may be flagged seen."""
    try:
        outcome = ingest(firm_id, raw, via="imap")
        commit()
    except ValidationFailed as exc:
        db.session.rollback()
        result.unreadable += 1
        log.warning("inbound message not an email (%s); flagged seen so it is not read again", exc.message)
        return True
    except Exception as exc:  # the database is unwell: leave it unseen for the next run
        db.session.rollback()
        result.failed += 1
        result.errors.append(f"{type(exc).__name__}: {exc}")
        log.exception("inbound message could not be stored; it stays unseen")
        return False
    setattr(result, outcome.status, getattr(result, outcome.status) + 1)
    return True


def poll_configured_mailbox() -> PollResult | None:
    """The periodic job: poll INBOUND_IMAP_URL if one is configured; failures are logged."""
    from flask import current_app

    url = current_app.config.get("INBOUND_IMAP_URL")
    if not url:
        return None
    try:
        return poll(url, mailbox_firm(current_app.config.get("INBOUND_IMAP_FIRM")))
    except MailboxError as exc:
        log.error("mail poll failed, will retry next run: %s", exc)
        return None
