"""The mailbox poller's batch (R-SYN-4): ``ingest`` for many messages in the caller's one
transaction, with what ``ingest`` asks of the database per message asked once per batch.

Each message gets exactly the outcome ``ingest`` would give it, in order: the senders' accounts
are read in one query, the deliveries recorded in one statement (the same message twice in a
batch is a duplicate), the threads found for the whole batch in two queries and then resolved
message by message as ``find_thread`` would (a reply to a message earlier in the batch joins its
thread; a subject matches the most recent thread, the batch's own new threads included), and
the threads, messages, attachments and Inbox+ items are inserted table by table, many rows per
statement. A message that is not an email is refused before anything of it is written; its
``ValidationFailed`` takes its place in the answer.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from portal_app.extensions import db
from portal_app.files import store_blob
from portal_app.mail.parse import Parsed, parse, parse_headers, subject_key
from portal_app.models import Account, ContactSettings, Message, Thread, utcnow
from portal_app.services.errors import ValidationFailed
from portal_app.services.inbound import (
    RAW_AREA,
    THREAD_BY_SUBJECT_DAYS,
    Ingested,
    _check_size,
    _insert_many,
    _recipients_of,
    _sender,
    file_and_announce,
    new_message,
)

Target = tuple[Account, ContactSettings]


def ingest_many(firm_id: int, raws: list[bytes], *, via: str) -> list[Ingested | ValidationFailed]:
    outcomes: list[Ingested | ValidationFailed | None] = [None] * len(raws)
    heads: dict[int, Parsed] = {}
    for n, raw in enumerate(raws):
        try:
            _check_size(raw)
            heads[n] = parse_headers(raw)
            _sender(heads[n])
        except ValidationFailed as exc:
            outcomes[n] = exc
    live = {n: head for n, head in heads.items() if outcomes[n] is None}
    senders = _recipients_of(firm_id, [head.from_address for head in live.values()])
    wanted: dict[str, tuple[int, str, int]] = {}  # dedupe key -> the first message with it
    for n, head in live.items():
        targets = senders.get(head.from_address, [])
        if not targets:
            outcomes[n] = Ingested("ignored")  # R-SYN-3: nothing of it is kept
            continue
        sha256 = hashlib.sha256(raws[n]).hexdigest()
        key = head.message_id or f"sha256:{sha256}"
        if key in wanted:
            outcomes[n] = Ingested("duplicate")
        else:
            wanted[key] = (n, sha256, len(targets))
    recorded = _insert_many(
        firm_id, {key: (len(raws[n]), sha256, count) for key, (n, sha256, count) in wanted.items()}, via
    )
    stored: list[tuple[int, Parsed, list[Target], int]] = []
    for key, (n, _sha256, _count) in wanted.items():
        inbound_id = recorded.get(key)
        if inbound_id is None:
            outcomes[n] = Ingested("duplicate")
            continue
        store_blob(RAW_AREA, raws[n], ".eml")
        stored.append((n, parse(raws[n]), senders[heads[n].from_address], inbound_id))
    stored.sort()  # in the batch's order: a reply after the message it answers
    for n, result in _store_all(stored).items():
        outcomes[n] = result
    assert all(outcome is not None for outcome in outcomes)
    return outcomes  # type: ignore[return-value]


def _store_all(stored: list[tuple[int, Parsed, list[Target], int]]) -> dict[int, Ingested]:
    threads = _Threads([(parsed, account) for _n, parsed, targets, _id in stored for account, _s in targets])
    now = utcnow()
    placed: list[tuple[int, Parsed, Target, int, Any, Thread]] = []
    for n, parsed, targets, inbound_id in stored:
        sent_at = min(parsed.date, now) if parsed.date else now
        for target in targets:
            thread = threads.find(target[0], parsed, sent_at)
            placed.append((n, parsed, target, inbound_id, sent_at, thread))
    db.session.flush()  # the new threads, many rows per statement: now they have ids
    messages = [
        new_message(account, parsed, inbound_id, sent_at, thread)
        for _n, parsed, (account, _s), inbound_id, sent_at, thread in placed
    ]
    db.session.flush()  # the messages, likewise
    results: dict[int, Ingested] = {}
    for (n, parsed, (account, settings), _id, _at, thread), message in zip(placed, messages, strict=True):
        file_and_announce(account, settings, parsed, message, thread)
        result = results.setdefault(n, Ingested("stored"))
        result.message_ids.append(message.id)
        result.accounts.append(account.id)
    db.session.flush()
    return results


class _Threads:
    """``inbound.find_thread`` for a batch: what the database holds, read once, and the threads
    and messages the batch adds as it goes."""

    def __init__(self, wanted: list[tuple[Parsed, Account]]) -> None:
        self.by_message: dict[tuple[int, str], Thread] = {}
        self.by_subject: dict[tuple[int, str], list[Thread]] = {}
        account_ids = sorted({account.id for _parsed, account in wanted})
        replies = sorted({i for parsed, _a in wanted for i in _answers(parsed)})
        keys = sorted({subject_key(parsed.subject) for parsed, _a in wanted})
        if replies:
            rows = db.session.execute(
                select(Message.account_id, Message.message_id, Thread)
                .join(Thread, Thread.id == Message.thread_id)
                .where(Message.account_id.in_(account_ids), Message.message_id.in_(replies))
            ).all()
            for account_id, message_id, thread in rows:
                self.by_message.setdefault((account_id, message_id), thread)
        recent = utcnow() - timedelta(days=THREAD_BY_SUBJECT_DAYS)
        for thread in db.session.scalars(
            select(Thread).where(
                Thread.account_id.in_(account_ids),
                Thread.subject_key.in_(keys),
                Thread.last_message_at >= recent,
            )
        ):
            self.by_subject.setdefault((thread.account_id, thread.subject_key), []).append(thread)
        self.recent = recent

    def find(self, account: Account, parsed: Parsed, sent_at: Any) -> Thread:
        thread = self._answered(account, parsed) or self._same_subject(account, parsed)
        if thread is None:
            key = subject_key(parsed.subject)
            thread = Thread(
                firm_id=account.firm_id,
                account_id=account.id,
                subject=parsed.subject or "(no subject)",
                subject_key=key,
                last_message_at=sent_at,
                created_at=utcnow(),
            )
            db.session.add(thread)
        if sent_at > thread.last_message_at:  # as new_message will: the subject's order sees it
            thread.last_message_at = sent_at
        same_subject = self.by_subject.setdefault((account.id, thread.subject_key), [])
        if thread not in same_subject:  # an older thread a reply brought back
            same_subject.append(thread)
        if parsed.message_id:
            self.by_message.setdefault((account.id, parsed.message_id), thread)
        return thread

    def _answered(self, account: Account, parsed: Parsed) -> Thread | None:
        for candidate in _answers(parsed):
            thread = self.by_message.get((account.id, candidate))
            if thread is not None:
                return thread
        return None

    def _same_subject(self, account: Account, parsed: Parsed) -> Thread | None:
        candidates = [
            thread
            for thread in self.by_subject.get((account.id, subject_key(parsed.subject)), [])
            if thread.last_message_at >= self.recent
        ]
        return max(candidates, key=lambda thread: thread.last_message_at, default=None)


def _answers(parsed: Parsed) -> list[str]:
    """The messages this one answers, nearest first (as ``find_thread`` tries them)."""
    return [i for i in [parsed.in_reply_to, *reversed(parsed.references)] if i]
