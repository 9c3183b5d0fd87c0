"""Communication › Email: an account's threads, their messages, and staff replies (R-SYN-1,
R-NOT-4: a reply goes out whatever the contact settings)."""

from __future__ import annotations

from email.utils import make_msgid, parseaddr
from typing import Any

from flask import current_app
from sqlalchemy import select

from portal_app.extensions import db
from portal_app.mail.outbox import outbox_row, queue_email, sender_domain
from portal_app.models import Firm, Message, MessageAttachment, StaffUser, Thread, utcnow
from portal_app.services.errors import Conflict, ValidationFailed
from portal_app.services.lookup import firm_row

MAX_REPLY = 50_000


def list_threads(account_id: int, *, limit: int = 50, before_id: int | None = None) -> list[Thread]:
    query = select(Thread).where(Thread.account_id == account_id)
    if before_id is not None:
        query = query.where(Thread.id < before_id)
    return list(
        db.session.scalars(query.order_by(Thread.last_message_at.desc(), Thread.id.desc()).limit(limit))
    )


def get_thread(firm_id: int, thread_id: object) -> Thread:
    return firm_row(Thread, firm_id, thread_id, "Thread")


def get_message(firm_id: int, message_id: object) -> Message:
    return firm_row(Message, firm_id, message_id, "Message")


def messages_of(thread: Thread) -> tuple[list[Message], dict[int, list[MessageAttachment]]]:
    """The thread's messages in the order they arrived (a client's clock may be off; each shows
    its own Date), and their attachments: two queries."""
    query = select(Message).where(Message.thread_id == thread.id).order_by(Message.id)
    messages = list(db.session.scalars(query))
    attachments: dict[int, list[MessageAttachment]] = {m.id: [] for m in messages}
    if messages:
        for attachment in db.session.scalars(
            select(MessageAttachment)
            .where(MessageAttachment.message_id.in_(list(attachments)))
            .order_by(MessageAttachment.id)
        ):
            attachments[attachment.message_id].append(attachment)
    return messages, attachments


def reply(thread: Thread, staff: StaffUser, text: str) -> Message:
    """Send a reply through the outbox with our own Message-ID, In-Reply-To and References; it
    joins the thread at once."""
    text = (text or "").strip()
    if not text:
        raise ValidationFailed("Write something to send.", fields={"text": ["Required."]})
    if len(text) > MAX_REPLY:
        raise ValidationFailed(
            "The reply is too long.", fields={"text": [f"At most {MAX_REPLY} characters."]}
        )
    last_in = db.session.scalar(
        select(Message)
        .where(Message.thread_id == thread.id, Message.direction == "in")
        .order_by(Message.id.desc())
        .limit(1)
    )
    if last_in is None or not last_in.from_address:
        raise Conflict("This thread has no client message to answer.", code="nothing_to_answer")
    previous = db.session.scalar(
        select(Message).where(Message.thread_id == thread.id).order_by(Message.id.desc()).limit(1)
    )
    assert previous is not None
    references = " ".join(
        dict.fromkeys([*previous.references.split(), *([previous.message_id] if previous.message_id else [])])
    )[-2000:]
    subject = thread.subject if thread.subject.lower().startswith("re:") else f"Re: {thread.subject}"
    message_id = make_msgid(domain=sender_domain(current_app.config["MAIL_FROM"]))
    firm_name = db.session.scalar(select(Firm.name).where(Firm.id == thread.firm_id)) or ""
    now = utcnow()
    context: dict[str, Any] = {
        "text": text,
        "staff_name": staff.name or staff.email,
        "from_name": firm_name,
        "message_id": message_id,
        "in_reply_to": previous.message_id,
        "references": references,
    }
    row = queue_email(
        outbox_row(
            firm_id=thread.firm_id,
            kind="reply",
            to_address=last_in.from_address,
            subject=subject,
            template="reply",
            context=context,
        )
    )
    message = Message(
        firm_id=thread.firm_id,
        account_id=thread.account_id,
        thread_id=thread.id,
        direction="out",
        message_id=message_id,
        in_reply_to=previous.message_id,
        references=references,
        from_address=parseaddr(current_app.config["MAIL_FROM"])[1],
        from_name=firm_name,
        to=last_in.from_address,
        subject=subject,
        text=text,
        html="",
        sent_at=now,
        staff_user_id=staff.id,
        outbox_id=row.id,
        created_at=now,
    )
    db.session.add(message)
    thread.last_message_at = now
    db.session.flush()
    return message
