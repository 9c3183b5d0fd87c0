"""Email sync (R-SYN-*): the inbound endpoint, threads, their messages and replies."""

from __future__ import annotations

from typing import Any

from flask import Response, request
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from portal_app import metrics
from portal_app.downloads import file_download
from portal_app.extensions import db
from portal_app.files import TooLarge
from portal_app.jobs.inbound import ingest_stored
from portal_app.models import InboundMessage, Message, MessageAttachment, Thread
from portal_app.queue import defer
from portal_app.services import accounts, inbound, threads
from portal_app.services.csv_files import FileTooLarge
from portal_app.services.errors import NotFound, UnsupportedMediaType
from staff_api.auth import Unauthorized, current_staff
from staff_api.mail_schemas import (
    InboundResultSchema,
    PageArgs,
    ReplySchema,
    ThreadPageSchema,
    ThreadSchema,
)
from staff_api.paging import id_page
from staff_api.schemas import ErrorSchema
from staff_api.uploads import allow_body

blp = Blueprint("mail", __name__, description="Communication › Inbound email, threads, replies.")


def message_sender(message: Message) -> str:
    return f"{message.from_name} <{message.from_address}>" if message.from_name else message.from_address


def message_payload(message: Message, attachments: list[MessageAttachment]) -> dict[str, Any]:
    return {
        "id": str(message.id),
        "direction": message.direction,
        "from_": message_sender(message),
        "to": message.to,
        "subject": message.subject,
        "sent_at": message.sent_at,
        "text": message.text,
        "html": message.html,
        "attachments": [
            {
                "name": a.name,
                "size": a.size,
                "document_id": str(a.document_id) if a.document_id else None,
                "skipped_reason": a.skipped_reason,
            }
            for a in attachments
        ],
        "notice": message.notice or "",
        "original_url": f"/api/v1/messages/{message.id}/original" if message.inbound_id else None,
    }


def thread_payload(thread: Thread) -> dict[str, Any]:
    messages, attachments = threads.messages_of(thread)
    return {
        "id": str(thread.id),
        "account_id": str(thread.account_id),
        "subject": thread.subject,
        "last_message_at": thread.last_message_at,
        "messages": [message_payload(m, attachments[m.id]) for m in messages],
    }


RAW_TYPES = ("message/rfc822", "application/octet-stream", "text/plain")


INBOUND_BODY = {
    "required": True,
    "content": {"message/rfc822": {"schema": {"type": "string", "format": "binary"}}},
}


@blp.route("/inbound-email")
class InboundEmail(MethodView):
    @blp.response(200, InboundResultSchema)
    @blp.alt_response(
        202, schema=InboundResultSchema, description="Over 4 MB: kept; a worker stores it on its accounts."
    )
    @blp.alt_response(401, schema=ErrorSchema, description="The inbound secret is missing or wrong.")
    @blp.alt_response(413, schema=ErrorSchema, description="Over 60 MB.")
    @blp.alt_response(415, schema=ErrorSchema)
    @blp.alt_response(422, schema=ErrorSchema, description="Not an email message.")
    @blp.doc(security=[{"inboundSecret": []}], requestBody=INBOUND_BODY)
    def post(self) -> tuple[dict[str, Any], int]:
        """Receive one raw message (what Postmark, Mailgun or SES inbound routing POSTs), with the
        firm's inbound secret as the bearer token. Stored once however often it comes. The sender
        decides first, from the headers: a message nobody syncs is not read further. Up to 4 MB
        the answer says where it was stored (200); a larger message is kept and a worker stores
        it on its accounts (202, `queued`)."""
        try:
            answer = self._receive()
        except Exception:
            metrics.INBOUND.labels("refused").inc()
            raise
        metrics.INBOUND.labels(answer[0]["status"]).inc()
        return answer

    def _receive(self) -> tuple[dict[str, Any], int]:
        scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
        firm = inbound.firm_for_secret(secret.strip()) if scheme.lower() == "bearer" else None
        if firm is None:
            raise Unauthorized("The inbound secret is missing or wrong.", code="invalid_inbound_secret")
        too_large = "The message is over 60 MB."
        allow_body(inbound.MAX_RAW_BYTES, too_large)
        # one byte more than allowed, so a chunked body over the limit is told from one at it
        request.max_content_length = inbound.MAX_RAW_BYTES + 1
        if request.mimetype not in RAW_TYPES:
            raise UnsupportedMediaType("Send the raw message with Content-Type: message/rfc822.")
        try:
            result = inbound.receive(firm.id, request.stream, via="http")
        except TooLarge:
            raise FileTooLarge(too_large) from None
        if result.inbound_id is not None:
            defer(ingest_stored, result.inbound_id)  # a large message: a worker stores it
        if result.status == "queued":
            return {"status": "queued", "thread_ids": []}, 202
        thread_ids = (
            sorted(
                set(db.session.scalars(select(Message.thread_id).where(Message.id.in_(result.message_ids))))
            )
            if result.message_ids
            else []
        )
        return {"status": result.status, "thread_ids": [str(t) for t in thread_ids]}, 200


@blp.route("/accounts/<account_id>/threads")
class AccountThreads(MethodView):
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, ThreadPageSchema)
    @blp.alt_response(404, schema=ErrorSchema)
    def get(self, args: dict[str, Any], account_id: str) -> dict[str, Any]:
        """The account's email threads, latest activity first."""
        account = accounts.get_account(current_staff().firm_id, account_id)
        return id_page(
            args,
            lambda limit, before: threads.list_threads(account.id, limit=limit, before_id=before),
            lambda t: {
                "id": str(t.id),
                "account_id": str(t.account_id),
                "subject": t.subject,
                "last_message_at": t.last_message_at,
            },
        )


@blp.route("/threads/<thread_id>")
class ThreadDetail(MethodView):
    @blp.response(200, ThreadSchema)
    @blp.alt_response(404, schema=ErrorSchema)
    def get(self, thread_id: str) -> dict[str, Any]:
        """A thread with its messages, oldest first (HTML sanitised)."""
        return thread_payload(threads.get_thread(current_staff().firm_id, thread_id))


@blp.route("/threads/<thread_id>/reply")
class ThreadReply(MethodView):
    @blp.arguments(ReplySchema)
    @blp.response(201, ThreadSchema)
    @blp.alt_response(404, schema=ErrorSchema)
    @blp.alt_response(409, schema=ErrorSchema, description="No client message to answer.")
    def post(self, data: dict[str, Any], thread_id: str) -> dict[str, Any]:
        """Reply by email: sent through the outbox with our Message-ID, In-Reply-To and References,
        from MAIL_FROM under the firm's name, whatever the contact settings (R-NOT-4)."""
        staff = current_staff()
        thread = threads.get_thread(staff.firm_id, thread_id)
        threads.reply(thread, staff, data["text"])
        return thread_payload(thread)


@blp.route("/messages/<message_id>/original")
class MessageOriginal(MethodView):
    @blp.response(200, content_type="message/rfc822")
    @blp.alt_response(404, schema=ErrorSchema)
    def get(self, message_id: str) -> Response:
        """The message as it was received (.eml), to open in a mail program."""
        message = threads.get_message(current_staff().firm_id, message_id)
        record = db.session.get(InboundMessage, message.inbound_id) if message.inbound_id else None
        path = inbound.raw_path(record) if record else None
        if path is None or not path.exists():
            raise NotFound("The original of this message is not kept.")
        return file_download(path, mimetype="message/rfc822", name=f"message-{message.id}.eml")
