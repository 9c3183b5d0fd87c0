"""One ingestion for both ways in (R-SYN-1..7): the inbound endpoint and the IMAP poller.

A message from an address with ``email_sync`` on for an account is stored on each such account,
threaded, its attachments saved as documents where ``auto_save_attachments`` is on, and an
Inbox+ item tells the firm's staff. From anyone else nothing is kept. The same message twice (by
Message-ID, else by its bytes) is stored once. The raw bytes are kept by their SHA-256, so a
message can be parsed again and downloaded as the original .eml.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from portal_app import sealed
from portal_app.extensions import db
from portal_app.files import Spooled, blob_path, store_blob
from portal_app.mail.html import sanitise_html
from portal_app.mail.parse import Parsed, parse, parse_headers, subject_key
from portal_app.models import (
    Account,
    ContactEmail,
    ContactSettings,
    Firm,
    InboundMessage,
    InboxItem,
    Message,
    MessageAttachment,
    Thread,
    utcnow,
)
from portal_app.services import documents
from portal_app.services.errors import ValidationFailed

RAW_AREA = "messages"
THREAD_BY_SUBJECT_DAYS = 30
MAX_RAW_BYTES = 60 * 1024 * 1024  # a 25 MB attachment, base64-encoded, and then some
# The endpoint reads a message up to this size in the request; a larger one is streamed to disk
# and read by a worker (the web process never holds a large message, R-REL-3).
INLINE_BYTES = 4 * 1024 * 1024


@dataclass
class Ingested:
    status: str  # "stored" | "duplicate" | "ignored" | "queued"
    message_ids: list[int] = field(default_factory=list)
    accounts: list[int] = field(default_factory=list)
    inbound_id: int | None = None  # queued: the recorded message a worker is to parse


def _insert_once(
    firm_id: int, dedupe_key: str, size: int, sha256: str, via: str, accounts: int
) -> int | None:
    """Record the delivery under its unique key; None when it was delivered before."""
    dialect = db.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(InboundMessage)
        .values(
            firm_id=firm_id,
            dedupe_key=dedupe_key,
            raw_sha256=sha256,
            raw_size=size,
            via=via,
            accounts_stored=accounts,
            received_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["firm_id", "dedupe_key"])
        .returning(InboundMessage.id)
    )
    return db.session.execute(statement).scalar()


def _recipients(firm_id: int, address: str) -> list[tuple[Account, ContactSettings]]:
    """The accounts where this sender's email has ``email_sync`` on."""
    return _recipients_of(firm_id, [address]).get(address, [])


def _recipients_of(firm_id: int, addresses: list[str]) -> dict[str, list[tuple[Account, ContactSettings]]]:
    """``_recipients`` for several senders in one query."""
    rows = db.session.execute(
        select(ContactEmail.address, Account, ContactSettings)
        .join(ContactSettings, ContactSettings.account_id == Account.id)
        .join(ContactEmail, ContactEmail.id == ContactSettings.email_id)
        .where(
            ContactEmail.firm_id == firm_id,
            ContactEmail.address.in_(sorted(set(addresses))),
            ContactSettings.email_sync.is_(True),
        )
        .order_by(Account.id)
    ).all()
    found: dict[str, list[tuple[Account, ContactSettings]]] = {}
    for address, account, settings in rows:
        found.setdefault(address, []).append((account, settings))
    return found


def _sender(headers: Parsed) -> str:
    if not headers.from_address or "@" not in headers.from_address:
        raise ValidationFailed(
            "This is not an email message: it has no readable From address.",
            fields={"body": ["No From header."]},
            code="unreadable_message",
        )
    return headers.from_address


def ingest(firm_id: int, raw: bytes, *, via: str) -> Ingested:
    """Store one raw message for the firm (flushes; the caller commits). Who sent it is read
    from the headers first: a message nobody syncs is never parsed further (R-SYN-3)."""
    _check_size(raw)
    headers = parse_headers(raw)
    targets = _recipients(firm_id, _sender(headers))
    if not targets:
        return Ingested("ignored")  # R-SYN-3: nothing of it is kept
    sha256 = hashlib.sha256(raw).hexdigest()
    inbound_id = _insert_once(
        firm_id, headers.message_id or f"sha256:{sha256}", len(raw), sha256, via, len(targets)
    )
    if inbound_id is None:
        return Ingested("duplicate")
    store_blob(RAW_AREA, raw, ".eml")
    return _store(parse(raw), targets, inbound_id)


def _check_size(raw: bytes) -> None:
    if not raw.strip():
        raise ValidationFailed("The message is empty.", fields={"body": ["Send the raw message (RFC 5322)."]})
    if len(raw) > MAX_RAW_BYTES:
        raise ValidationFailed("The message is larger than 60 MB.", fields={"body": ["Too large."]})


def _insert_many(firm_id: int, deliveries: dict[str, tuple[int, str, int]], via: str) -> dict[str, int]:
    """Record the deliveries (dedupe key -> size, digest, accounts) in one statement; return the
    ids of those never delivered before, by key."""
    if not deliveries:
        return {}
    dialect = db.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    now = utcnow()
    rows = [
        {
            "firm_id": firm_id,
            "dedupe_key": key,
            "raw_sha256": sha256,
            "raw_size": size,
            "via": via,
            "accounts_stored": accounts,
            "received_at": now,
        }
        for key, (size, sha256, accounts) in deliveries.items()
    ]
    statement = (
        insert(InboundMessage)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["firm_id", "dedupe_key"])
        .returning(InboundMessage.dedupe_key, InboundMessage.id)
    )
    return {key: inbound_id for key, inbound_id in db.session.execute(statement).all()}


def receive(firm_id: int, stream: Any, *, via: str) -> Ingested:
    """A message as it arrives (the endpoint's request body), streamed to disk: memory stays at
    one chunk, and a body over MAX_RAW_BYTES, whatever its framing, raises ``TooLarge`` with
    nothing kept (R-REL-3). Up to INLINE_BYTES it is stored now; a larger one is recorded and
    ``queued`` for a worker (``inbound_id`` says which)."""
    with Spooled(RAW_AREA, ".eml") as spool:
        spool.write_from(stream, limit=MAX_RAW_BYTES)
        if spool.size <= INLINE_BYTES:
            return ingest(firm_id, spool.read_all(), via=via)
        return accept_spooled(firm_id, spool, via=via)


def accept_spooled(firm_id: int, spool: Spooled, *, via: str) -> Ingested:
    """A large message already streamed to disk: decide from its headers, record it once, keep
    the file, and leave parsing to a worker (``jobs.inbound.ingest_stored``)."""
    if spool.size == 0 or not spool.head(4096).strip():
        raise ValidationFailed("The message is empty.", fields={"body": ["Send the raw message (RFC 5322)."]})
    headers = parse_headers(spool.head())
    targets = _recipients(firm_id, _sender(headers))
    if not targets:
        return Ingested("ignored")
    inbound_id = _insert_once(
        firm_id, headers.message_id or f"sha256:{spool.sha256}", spool.size, spool.sha256, via, len(targets)
    )
    if inbound_id is None:
        return Ingested("duplicate")
    spool.keep()
    return Ingested("queued", inbound_id=inbound_id)  # the caller defers jobs.inbound.ingest_stored


def ingest_kept(inbound: InboundMessage) -> Ingested:
    """Parse and store a message recorded by ``accept_spooled`` (the worker's part); a second
    run finds its messages and does nothing."""
    if db.session.scalar(select(Message.id).where(Message.inbound_id == inbound.id).limit(1)) is not None:
        return Ingested("duplicate")
    parsed = parse(raw_path(inbound).read_bytes())
    targets = _recipients(inbound.firm_id, parsed.from_address)
    inbound.accounts_stored = len(targets)
    if not targets:
        return Ingested("ignored")  # email sync was switched off meanwhile
    return _store(parsed, targets, inbound.id)


def _store(parsed: Parsed, targets: list[tuple[Account, ContactSettings]], inbound_id: int) -> Ingested:
    result = Ingested("stored")
    now = utcnow()
    sent_at = min(parsed.date, now) if parsed.date else now
    for account, settings in targets:
        message = _store_on_account(account, settings, parsed, inbound_id, sent_at)
        result.message_ids.append(message.id)
        result.accounts.append(account.id)
    db.session.flush()
    return result


def _store_on_account(
    account: Account, settings: ContactSettings, parsed: Parsed, inbound_id: int, sent_at: Any
) -> Message:
    thread = find_thread(account, parsed, sent_at=sent_at)
    message = new_message(account, parsed, inbound_id, sent_at, thread)
    db.session.flush()
    file_and_announce(account, settings, parsed, message, thread)
    return message


def new_message(account: Account, parsed: Parsed, inbound_id: int, sent_at: Any, thread: Thread) -> Message:
    """The message on the account's thread (added, not flushed); the thread moves up."""
    message = Message(
        firm_id=account.firm_id,
        account_id=account.id,
        thread_id=thread.id,
        inbound_id=inbound_id,
        direction="in",
        message_id=parsed.message_id,
        in_reply_to=parsed.in_reply_to,
        references=" ".join(parsed.references)[:10000],
        from_address=parsed.from_address,
        from_name=parsed.from_name,
        to=parsed.to,
        subject=parsed.subject,
        text=parsed.text,
        html=sanitise_html(parsed.html),
        notice="; ".join(parsed.problems)[:2000],
        sent_at=sent_at,
        created_at=utcnow(),
    )
    db.session.add(message)
    if sent_at > thread.last_message_at:
        thread.last_message_at = sent_at
    return message


def file_and_announce(
    account: Account, settings: ContactSettings, parsed: Parsed, message: Message, thread: Thread
) -> None:
    """A stored message's attachments (saved as documents where the settings say so) and the
    Inbox+ item that tells the firm; ``message`` has its id."""
    saved: list[documents.Saved | None] = [None] * len(parsed.attachments)
    if settings.auto_save_attachments and parsed.attachments:
        files = [documents.Incoming(a.name, a.data, a.content_type) for a in parsed.attachments]
        saved = list(documents.save_many(account, files, source="email"))
    db.session.add_all(
        MessageAttachment(
            message_id=message.id,
            name=attachment.name,
            size=len(attachment.data),
            content_type=attachment.content_type[:127],
            document_id=outcome.document.id if outcome and outcome.document else None,
            skipped_reason=outcome.skipped_reason if outcome else "attachments are not saved for this email",
        )
        for attachment, outcome in zip(parsed.attachments, saved, strict=True)
    )
    sender = parsed.from_name or parsed.from_address
    db.session.add(
        InboxItem(
            firm_id=account.firm_id,
            account_id=account.id,
            kind="email",
            title=f"{sender} wrote: {parsed.subject or '(no subject)'}"[:300],
            body=(parsed.text or "")[:500],
            data={"thread_id": str(thread.id), "message_id": str(message.id)},
        )
    )


def find_thread(account: Account, parsed: Parsed, *, sent_at: Any = None) -> Thread:
    """R-SYN-6: the thread of a message this one answers (our replies included), else the recent
    thread with the same subject, else a new one."""
    wanted = [i for i in [parsed.in_reply_to, *reversed(parsed.references)] if i]
    if wanted:
        rows = db.session.execute(
            select(Message.message_id, Message.thread_id).where(
                Message.account_id == account.id, Message.message_id.in_(wanted)
            )
        ).all()
        by_id = {message_id: thread_id for message_id, thread_id in rows}
        for candidate in wanted:
            if candidate in by_id:
                return db.session.get_one(Thread, by_id[candidate])
    key = subject_key(parsed.subject)
    recent = utcnow() - timedelta(days=THREAD_BY_SUBJECT_DAYS)
    thread = db.session.scalar(
        select(Thread)
        .where(Thread.account_id == account.id, Thread.subject_key == key, Thread.last_message_at >= recent)
        .order_by(Thread.last_message_at.desc())
        .limit(1)
    )
    if thread is not None:
        return thread
    thread = Thread(
        firm_id=account.firm_id,
        account_id=account.id,
        subject=parsed.subject or "(no subject)",
        subject_key=key,
        last_message_at=sent_at or utcnow(),
        created_at=utcnow(),
    )
    db.session.add(thread)
    db.session.flush()
    return thread


def raw_path(inbound: InboundMessage):  # type: ignore[no-untyped-def]
    return blob_path(RAW_AREA, inbound.raw_sha256, ".eml")


# --- the firm's inbound secret -------------------------------------------------------------------

SECRET_PREFIX = "pin_"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def rotate_secret(firm: Firm) -> str:
    """A new inbound secret; the old one stops working at once."""
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    firm.inbound_secret = sealed.seal(secret)
    firm.inbound_secret_digest = _digest(secret)
    db.session.flush()
    return secret


def read_secret(firm: Firm) -> str:
    secret = sealed.unseal(firm.inbound_secret)
    return secret if secret is not None else rotate_secret(firm)


def firm_for_secret(secret: str) -> Firm | None:
    if not secret.startswith(SECRET_PREFIX) or len(secret) > 200:
        return None
    return db.session.scalar(select(Firm).where(Firm.inbound_secret_digest == _digest(secret)))
