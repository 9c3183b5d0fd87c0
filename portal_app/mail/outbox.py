"""The email outbox: rows written with the change that causes them, rendered at send time."""

from __future__ import annotations

from collections.abc import Callable
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

from flask import current_app, render_template
from flask_babel import force_locale
from rq import Retry

from portal_app.extensions import db
from portal_app.i18n import DEFAULT_LANGUAGE, email_locale, known_language
from portal_app.jobs import defer
from portal_app.models import Firm, OutboxEmail

# Seconds between delivery attempts (rq retries; the sweep catches anything rq lost).
RETRY_INTERVALS = [30, 120, 600, 1800]

# Per-template builders that add context only the job may hold (e.g. a freshly minted link).
ContextBuilder = Callable[[OutboxEmail], dict[str, Any]]
CONTEXT_BUILDERS: dict[str, ContextBuilder] = {}


def register_context_builder(template: str) -> Callable[[ContextBuilder], ContextBuilder]:
    def decorate(func: ContextBuilder) -> ContextBuilder:
        CONTEXT_BUILDERS[template] = func
        return func

    return decorate


def queue_email(
    *,
    firm_id: int | None,
    kind: str,
    to_address: str,
    subject: Any,
    template: str,
    context: dict[str, Any] | None = None,
    invitation_id: int | None = None,
    language: str | None = None,
) -> OutboxEmail:
    """Write an outbox row in the current transaction; it is sent after commit.

    `subject` may be a lazy string: it is rendered in the recipient's `language`, like the body."""
    language = known_language(language) or DEFAULT_LANGUAGE
    with force_locale(language):
        subject = str(subject)
    row = OutboxEmail(
        firm_id=firm_id,
        kind=kind,
        to_address=to_address,
        subject=subject,
        template=template,
        context={**(context or {}), "language": language},
        invitation_id=invitation_id,
    )
    db.session.add(row)
    db.session.flush()
    enqueue_delivery(row.id)
    return row


def enqueue_delivery(outbox_id: int) -> None:
    from portal_app.jobs.mail import deliver_outbox_email

    defer(deliver_outbox_email, outbox_id, retry=Retry(max=len(RETRY_INTERVALS), interval=RETRY_INTERVALS))


def render_message(row: OutboxEmail) -> EmailMessage | None:
    """Render the row into a message, or None when it must no longer be sent."""
    context: dict[str, Any] = dict(row.context)
    builder = CONTEXT_BUILDERS.get(row.template)
    if builder is not None:
        extra = builder(row)
        if extra is None:
            return None
        context.update(extra)
    firm = db.session.get(Firm, row.firm_id) if row.firm_id else None
    context.setdefault("firm_name", firm.name if firm else "Portico")
    context.setdefault("subject", row.subject)
    message = EmailMessage()
    message["Subject"] = row.subject
    message["From"] = current_app.config["MAIL_FROM"]
    message["To"] = row.to_address
    message["Message-ID"] = make_msgid(domain="portico.localhost")
    message["X-Portico-Outbox-Id"] = str(row.id)
    language = known_language(context.get("language")) or DEFAULT_LANGUAGE
    with email_locale(language):
        message.set_content(render_template(f"emails/{row.template}.txt", **context))
        message.add_alternative(render_template(f"emails/{row.template}.html", **context), subtype="html")
    message["Content-Language"] = language  # after set_content, which drops Content-* headers
    return message
