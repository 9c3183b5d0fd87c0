"""Email sync (R-SYN-*), documents, notes and the account overview."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, request
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from portal_app import metrics
from portal_app.downloads import file_download
from portal_app.extensions import db
from portal_app.files import TooLarge
from portal_app.jobs import defer
from portal_app.jobs.inbound import ingest_stored
from portal_app.models import Document, Firm, InboundMessage, Message, MessageAttachment, Note, Thread
from portal_app.services import accounts, documents, inbound, notes, overview, threads, todos
from portal_app.services.csv_files import FileTooLarge
from portal_app.services.errors import Forbidden, NotFound, UnsupportedMediaType, ValidationFailed
from portal_app.transaction import commit
from staff_api.auth import Unauthorized, current_staff
from staff_api.mail_schemas import (
    DocumentPageSchema,
    DocumentUploadedSchema,
    InboundResultSchema,
    InboundSecretSchema,
    NoteInSchema,
    NotePageSchema,
    NoteSchema,
    OverviewSchema,
    PageArgs,
    ReplySchema,
    ThreadPageSchema,
    ThreadSchema,
)
from staff_api.paging import before_id
from staff_api.schemas import ErrorSchema
from staff_api.todos import todo_payload
from staff_api.uploads import allow_body

blp = Blueprint("mail", __name__, description="Communication › Email, documents, notes, the overview.")


def _page(rows: list[Any], limit: int, payload: Any) -> dict[str, Any]:
    shown = rows[:limit]
    more = len(rows) > limit
    return {
        "items": [payload(r) for r in shown],
        "next_cursor": str(shown[-1].id) if more and shown else None,
    }




# --- payloads ------------------------------------------------------------------------------------


def document_payload(document: Document) -> dict[str, Any]:
    return {
        "id": str(document.id),
        "account_id": str(document.account_id),
        "name": document.name,
        "size": document.size,
        "content_type": document.content_type,
        "sha256": document.sha256,
        "source": document.source,
        "new": document.opened_at is None,
        "created_at": document.created_at,
    }


def note_payload(note: Note) -> dict[str, Any]:
    return {
        "id": str(note.id),
        "account_id": str(note.account_id),
        "text": note.text,
        "author": {"id": str(note.author_id) if note.author_id else None, "name": note.author_name},
        "created_at": note.created_at,
        "updated_at": note.updated_at,
    }


def _sender(message: Message) -> str:
    return f"{message.from_name} <{message.from_address}>" if message.from_name else message.from_address


def message_payload(message: Message, attachments: list[MessageAttachment]) -> dict[str, Any]:
    return {
        "id": str(message.id),
        "direction": message.direction,
        "from_": _sender(message),
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


# --- inbound email (R-SYN-4) ---------------------------------------------------------------------

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
        commit()
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


def _admin_firm() -> Firm:
    staff = current_staff()
    if not staff.is_admin:
        raise Forbidden("Only admins read or rotate the inbound secret.")
    return db.session.get_one(Firm, staff.firm_id)


def _secret_answer(secret: str) -> dict[str, str]:
    return {"url": current_app.config["BASE_URL"] + "/api/v1/inbound-email", "secret": secret}


@blp.route("/firm/inbound-email")
class FirmInboundEmail(MethodView):
    @blp.response(200, InboundSecretSchema)
    @blp.alt_response(403, schema=ErrorSchema, description="Admins only.")
    def get(self) -> dict[str, str]:
        """Where to send inbound mail, and the secret to send with it (admins)."""
        firm = _admin_firm()
        secret = inbound.read_secret(firm)
        commit()
        return _secret_answer(secret)


@blp.route("/firm/inbound-email/rotate")
class FirmInboundEmailRotate(MethodView):
    @blp.response(200, InboundSecretSchema)
    @blp.alt_response(403, schema=ErrorSchema, description="Admins only.")
    def post(self) -> dict[str, str]:
        """A new inbound secret; the old one stops working at once (admins)."""
        secret = inbound.rotate_secret(_admin_firm())
        commit()
        return _secret_answer(secret)


# --- threads -------------------------------------------------------------------------------------


@blp.route("/accounts/<account_id>/threads")
class AccountThreads(MethodView):
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, ThreadPageSchema)
    @blp.alt_response(404, schema=ErrorSchema)
    def get(self, args: dict[str, Any], account_id: str) -> dict[str, Any]:
        """The account's email threads, latest activity first."""
        account = accounts.get_account(current_staff().firm_id, account_id)
        rows = threads.list_threads(
            account.id, limit=args["limit"] + 1, before_id=before_id(args.get("cursor"))
        )
        return _page(
            rows,
            args["limit"],
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
        commit()
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


# --- documents -----------------------------------------------------------------------------------

DOCUMENT_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {"file": {"type": "string", "format": "binary"}},
                "required": ["file"],
            }
        }
    },
}


@blp.route("/accounts/<account_id>/documents")
class AccountDocuments(MethodView):
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, DocumentPageSchema)
    @blp.alt_response(404, schema=ErrorSchema)
    def get(self, args: dict[str, Any], account_id: str) -> dict[str, Any]:
        """The account's documents, newest first; `new` until a staff user opens one."""
        account = accounts.get_account(current_staff().firm_id, account_id)
        rows = documents.list_documents(
            account.id, limit=args["limit"] + 1, before_id=before_id(args.get("cursor"))
        )
        return _page(rows, args["limit"], document_payload)

    @blp.response(201, DocumentUploadedSchema)
    @blp.alt_response(200, schema=DocumentUploadedSchema, description="Skipped: same name and size.")
    @blp.alt_response(404, schema=ErrorSchema)
    @blp.alt_response(413, schema=ErrorSchema, description="Over 25 MB.")
    @blp.alt_response(415, schema=ErrorSchema)
    @blp.doc(requestBody=DOCUMENT_BODY)
    def post(self, account_id: str) -> Any:
        """Upload a file (multipart, field `file`, at most 25 MB). A file with the same name and
        size as one already there is skipped (200, the existing one); the same name with another
        size is saved as "name (2).ext"."""
        staff = current_staff()
        account = accounts.get_account(staff.firm_id, account_id)
        allow_body(documents.MAX_BYTES + 1024 * 1024, "The file is over 25 MB.")
        if request.mimetype != "multipart/form-data":
            raise UnsupportedMediaType("Send the file as multipart/form-data in the field `file`.")
        upload = request.files.get("file")
        if upload is None:
            raise ValidationFailed("Send the file in the form field `file`.", fields={"file": ["Required."]})
        try:
            data = upload.read(documents.MAX_BYTES + 1)
        finally:
            upload.close()
        if len(data) > documents.MAX_BYTES:
            raise FileTooLarge("The file is over 25 MB.")
        saved = documents.save(
            account,
            name=upload.filename or "upload",
            data=data,
            content_type=upload.mimetype or "application/octet-stream",
            source="upload",
            uploaded_by=staff,
        )
        commit()
        assert saved.document is not None
        body = {**document_payload(saved.document), "skipped_reason": saved.skipped_reason}
        return body, (200 if saved.skipped_reason else 201)


@blp.route("/documents/<document_id>/content")
class DocumentContent(MethodView):
    @blp.response(200, content_type="application/octet-stream")
    @blp.alt_response(404, schema=ErrorSchema)
    def get(self, document_id: str) -> Response:
        """The file, always as a download with its name (never rendered in the app's origin);
        opening it clears NEW."""
        document = documents.get_document(current_staff().firm_id, document_id)
        path = documents.open_document(document)
        commit()
        if not path.exists():
            raise NotFound("The file of this document is missing.")
        return file_download(
            path, mimetype=document.content_type or "application/octet-stream", name=document.name
        )


# --- notes ---------------------------------------------------------------------------------------


@blp.route("/accounts/<account_id>/notes")
class AccountNotes(MethodView):
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, NotePageSchema)
    @blp.alt_response(404, schema=ErrorSchema)
    def get(self, args: dict[str, Any], account_id: str) -> dict[str, Any]:
        """Staff's notes on the account, newest first."""
        account = accounts.get_account(current_staff().firm_id, account_id)
        rows = notes.list_notes(account.id, limit=args["limit"] + 1, before_id=before_id(args.get("cursor")))
        return _page(rows, args["limit"], note_payload)

    @blp.arguments(NoteInSchema)
    @blp.response(201, NoteSchema)
    @blp.alt_response(404, schema=ErrorSchema)
    def post(self, data: dict[str, Any], account_id: str) -> dict[str, Any]:
        """Add a note."""
        staff = current_staff()
        note = notes.create_note(accounts.get_account(staff.firm_id, account_id), staff, data["text"])
        commit()
        return note_payload(note)


@blp.route("/notes/<note_id>")
class NoteDetail(MethodView):
    @blp.arguments(NoteInSchema)
    @blp.response(200, NoteSchema)
    @blp.alt_response(404, schema=ErrorSchema)
    def patch(self, data: dict[str, Any], note_id: str) -> dict[str, Any]:
        """Change a note's text."""
        note = notes.update_note(notes.get_note(current_staff().firm_id, note_id), data["text"])
        commit()
        return note_payload(note)

    @blp.response(204)
    @blp.alt_response(404, schema=ErrorSchema)
    def delete(self, note_id: str) -> None:
        """Delete a note."""
        notes.delete_note(notes.get_note(current_staff().firm_id, note_id))
        commit()


# --- overview ------------------------------------------------------------------------------------


@blp.route("/accounts/<account_id>/overview")
class AccountOverview(MethodView):
    @blp.response(200, OverviewSchema)
    @blp.alt_response(404, schema=ErrorSchema)
    def get(self, account_id: str) -> dict[str, Any]:
        """The account's Overview tab: the last 5 documents (with NEW), the latest messages in and
        out, open approvals and signatures, each portal user's last login, the last 5 notes."""
        account = accounts.get_account(current_staff().firm_id, account_id)
        view = overview.overview(account.id)
        attached = todos.documents_of([t.id for t in [*view.approvals, *view.signatures]])
        return {
            "documents": [document_payload(d) for d in view.documents],
            "communication": [
                {
                    "thread_id": str(m.thread_id),
                    "subject": subject,
                    "direction": m.direction,
                    "from_": _sender(m),
                    "sent_at": m.sent_at,
                }
                for m, subject in view.communication
            ],
            "approvals": [todo_payload(t, attached.get(t.id, [])) for t in view.approvals],
            "signatures": [todo_payload(t, attached.get(t.id, [])) for t in view.signatures],
            "login_activity": [{"email": e, "last_login_at": at} for e, at in view.login_activity],
            "notes": [note_payload(n) for n in view.notes],
        }
