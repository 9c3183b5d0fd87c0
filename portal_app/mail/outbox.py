"""The email outbox: rows written with the change that causes them, rendered at send time."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email.utils import formataddr, formatdate, make_msgid, parseaddr
from typing import Any

from flask import current_app, render_template
from flask_babel import force_locale
from rq import Retry
from sqlalchemy import select

from portal_app.extensions import db
from portal_app.i18n import DEFAULT_LANGUAGE, email_locale, known_language
from portal_app.mail.mime import RenderedEmail, address_value, build_alternative, header_value
from portal_app.models import Firm, OutboxEmail
from portal_app.queue import defer_once

# Seconds between delivery attempts of one row (the sweep re-enqueues rows whose turn has come).
RETRY_INTERVALS = [30, 120, 600, 1800]

# Kinds a person at the firm wrote; every other kind is system mail (RFC 3834 Auto-Submitted),
# so that out-of-office replies do not answer it.
PERSONAL_KINDS = frozenset({"plain", "reply"})

# A template's builder adds context only the job may hold (e.g. a freshly minted link), or says
# None: the email must no longer go. Its loader reads what a batch's builders need in a few
# queries, not one per row, and returns the rows it loaded, which the caller holds (the
# session's identity map is weak).
ContextBuilder = Callable[[OutboxEmail], dict[str, Any] | None]
Prefetcher = Callable[[list[OutboxEmail]], list[Any]]
DRAIN_JOB = "drain_outbox"


@dataclass(frozen=True)
class EmailContext:
    build: ContextBuilder
    prefetch: Prefetcher | None = None


def _email_contexts() -> dict[str, EmailContext]:
    # The table the factory installs (portal_app.jobs.catalogue): the same in web and worker.
    return current_app.extensions["portico.email_contexts"]


def queue_email(row: OutboxEmail) -> OutboxEmail:
    """Write one outbox row (made by ``outbox_row``) in the current transaction; a delivery job
    follows the commit."""
    db.session.add(row)
    db.session.flush()
    enqueue_delivery()
    return row


def outbox_row(
    *,
    firm_id: int | None,
    kind: str,
    to_address: str,
    subject: Any,
    template: str,
    context: dict[str, Any] | None = None,
    invitation_id: int | None = None,
    email_code_id: int | None = None,
    language: str | None = None,
) -> OutboxEmail:
    """A new outbox row (not yet added): ``queue_email`` writes one; batch callers add many, then
    call ``enqueue_delivery()``. `subject` may be a lazy string: it is rendered in the recipient's
    `language`, like the body."""
    language = known_language(language) or DEFAULT_LANGUAGE
    with force_locale(language):
        subject = str(subject)
    return OutboxEmail(
        firm_id=firm_id,
        kind=kind,
        to_address=to_address,
        subject=subject,
        template=template,
        context={**(context or {}), "language": language},
        invitation_id=invitation_id,
        email_code_id=email_code_id,
    )


def enqueue_delivery() -> None:
    """After this transaction commits, a delivery job drains every due outbox row (one job per
    transaction, however many rows it wrote)."""
    defer_once(DRAIN_JOB, retry=Retry(max=len(RETRY_INTERVALS), interval=RETRY_INTERVALS))


def prefetch_for(rows: Iterable[OutboxEmail]) -> list[Any]:
    """Load what rendering the rows will read (firms, and what their context builders need) in a
    few queries per batch; hold the returned list while rendering."""
    rows = list(rows)
    firm_ids = {row.firm_id for row in rows if row.firm_id}
    loaded: list[Any] = (
        list(db.session.scalars(select(Firm).where(Firm.id.in_(firm_ids)))) if firm_ids else []
    )
    by_template: dict[str, list[OutboxEmail]] = {}
    for row in rows:
        by_template.setdefault(row.template, []).append(row)
    contexts = _email_contexts()
    for template, group in by_template.items():
        entry = contexts.get(template)
        if entry is not None and entry.prefetch is not None:
            loaded.extend(entry.prefetch(group))
    return loaded


def render_message(row: OutboxEmail) -> RenderedEmail | None:
    """Render the row into the bytes to send, or None when it must no longer be sent."""
    context: dict[str, Any] = dict(row.context)
    entry = _email_contexts().get(row.template)
    if entry is not None:
        extra = entry.build(row)
        if extra is None:
            return None
        context.update(extra)
    firm = db.session.get(Firm, row.firm_id) if row.firm_id else None
    context.setdefault("firm_name", firm.name if firm else "Portico")
    context.setdefault("subject", row.subject)
    language = known_language(context.get("language")) or DEFAULT_LANGUAGE
    with email_locale(language):
        text = render_template(f"emails/{row.template}.txt", **context)
        html = render_template(f"emails/{row.template}.html", **context)
    sender = current_app.config["MAIL_FROM"]
    # Every email of a firm comes from the firm: MAIL_FROM's address under the firm's name (a
    # staff reply also carries the Message-ID the thread knows, so the answer threads back, R-SYN-1)
    display_name = context.get("from_name") or (firm.name if firm else "")
    from_header = formataddr((display_name, parseaddr(sender)[1])) if display_name else sender
    headers = [
        ("Subject", header_value(row.subject)),
        ("From", address_value(from_header)),
        ("To", address_value(row.to_address)),
        ("Date", formatdate(localtime=False, usegmt=True)),
        ("Message-ID", context.get("message_id") or make_msgid(domain=sender_domain(sender))),
        ("Content-Language", language),
        ("X-Portico-Outbox-Id", str(row.id)),
    ]
    if firm is not None and firm.reply_to and row.kind != "reply":
        # answers to system mail reach the firm's own mailbox; a thread reply's answer must come
        # back to the synced address to thread (R-SYN-1)
        headers.append(("Reply-To", address_value(firm.reply_to)))
    if context.get("in_reply_to"):
        headers.append(("In-Reply-To", context["in_reply_to"]))
    if context.get("references"):
        headers.append(("References", header_value(context["references"])))
    if row.kind not in PERSONAL_KINDS:
        headers.append(("Auto-Submitted", "auto-generated"))
    if context.get("list_unsubscribe"):
        # RFC 2369 + RFC 8058: mail providers show an unsubscribe button that POSTs here
        headers.append(("List-Unsubscribe", f"<{context['list_unsubscribe']}>"))
        headers.append(("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))
    return RenderedEmail(
        sender=parseaddr(sender)[1],
        recipient=row.to_address,
        data=build_alternative(headers, text, html),
    )


def sender_domain(sender: str) -> str:
    """The domain of MAIL_FROM, for our Message-IDs (RFC 5322 wants them globally unique)."""
    address = parseaddr(sender)[1]
    return address.rpartition("@")[2] or "portico.localhost"


def absolute_url(endpoint: str, **values: Any) -> str:
    """An absolute link from BASE_URL; works inside jobs, where there is no request."""
    path = current_app.url_map.bind("portico.invalid").build(endpoint, values)
    return current_app.config["BASE_URL"] + path


def firm_name(firm_id: int) -> str:
    """The firm's name, as emails name it."""
    return db.session.scalar(select(Firm.name).where(Firm.id == firm_id)) or "Your firm"
