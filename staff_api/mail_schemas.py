"""Schemas of email sync, documents, notes and the account overview (SPEC §11)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from staff_api.schemas import StrictBoolean, StrictSchema
from staff_api.todo_schemas import TodoSchema


class PageArgs(StrictSchema):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = fields.String(validate=validate.Length(max=40))


class UploaderSchema(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(["staff", "client"]))
    name = fields.String(required=True, allow_none=True)
    email = fields.String(required=True, allow_none=True)


class DocumentSchema(Schema):
    id = fields.String(required=True)
    account_id = fields.String(required=True)
    name = fields.String(required=True)
    size = fields.Integer(required=True)
    content_type = fields.String(required=True)
    sha256 = fields.String(required=True)
    source = fields.String(required=True, validate=validate.OneOf(["upload", "email", "client"]))
    new = StrictBoolean(required=True, metadata={"description": "No staff user has opened it yet."})
    visible_to_client = StrictBoolean(
        required=True, metadata={"description": "On the client's Documents page."}
    )
    uploaded_by = fields.Nested(UploaderSchema, required=True, allow_none=True)
    request_item_id = fields.String(required=True, allow_none=True)
    scan = fields.String(
        required=True,
        validate=validate.OneOf(["clean", "pending", "infected", "not_scanned"]),
        metadata={"description": "clamd's verdict; only clean and not_scanned files download."},
    )
    scan_signature = fields.String(
        required=True, allow_none=True, metadata={"description": "What clamd found."}
    )
    created_at = fields.DateTime(required=True, format="iso")


class DocumentPatchSchema(StrictSchema):
    name = fields.String(validate=validate.Length(min=1, max=255))
    visible_to_client = StrictBoolean()


class DocumentPageSchema(Schema):
    items = fields.List(fields.Nested(DocumentSchema), required=True)
    next_cursor = fields.String(required=True, allow_none=True)


class DocumentUploadedSchema(DocumentSchema):
    skipped_reason = fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "Set when a document of the same name and size was already there."},
    )


class AuthorSchema(Schema):
    id = fields.String(required=True, allow_none=True)
    name = fields.String(required=True)


class NoteSchema(Schema):
    id = fields.String(required=True)
    account_id = fields.String(required=True)
    text = fields.String(required=True)
    author = fields.Nested(AuthorSchema, required=True)
    created_at = fields.DateTime(required=True, format="iso")
    updated_at = fields.DateTime(required=True, format="iso")


class NotePageSchema(Schema):
    items = fields.List(fields.Nested(NoteSchema), required=True)
    next_cursor = fields.String(required=True, allow_none=True)


class NoteInSchema(StrictSchema):
    text = fields.String(required=True, validate=validate.Length(min=1, max=20_000))


class AttachmentSchema(Schema):
    name = fields.String(required=True)
    size = fields.Integer(required=True)
    document_id = fields.String(required=True, allow_none=True)
    skipped_reason = fields.String(required=True, allow_none=True)


class MessageSchema(Schema):
    id = fields.String(required=True)
    direction = fields.String(required=True, validate=validate.OneOf(["in", "out"]))
    # "from" is a Python keyword: the attribute is from_, the JSON key "from"
    from_ = fields.String(required=True, data_key="from")
    to = fields.String(required=True)
    subject = fields.String(required=True)
    sent_at = fields.DateTime(required=True, format="iso")
    text = fields.String(required=True)
    html = fields.String(
        required=True, metadata={"description": "Sanitised: no scripts, handlers, styles or remote images."}
    )
    attachments = fields.List(fields.Nested(AttachmentSchema), required=True)
    notice = fields.String(
        required=True,
        metadata={"description": "What could not be read or was left out (broken MIME, over the caps)."},
    )
    original_url = fields.String(
        required=True, allow_none=True, metadata={"description": "The received .eml."}
    )


class ThreadSchema(Schema):
    id = fields.String(required=True)
    account_id = fields.String(required=True)
    subject = fields.String(required=True)
    last_message_at = fields.DateTime(required=True, format="iso")
    messages = fields.List(fields.Nested(MessageSchema), required=True)


class ThreadSummarySchema(Schema):
    id = fields.String(required=True)
    account_id = fields.String(required=True)
    subject = fields.String(required=True)
    last_message_at = fields.DateTime(required=True, format="iso")


class ThreadPageSchema(Schema):
    items = fields.List(fields.Nested(ThreadSummarySchema), required=True)
    next_cursor = fields.String(required=True, allow_none=True)


class ReplySchema(StrictSchema):
    text = fields.String(required=True, validate=validate.Length(min=1, max=50_000))


class InboundResultSchema(Schema):
    status = fields.String(
        required=True,
        validate=validate.OneOf(["stored", "duplicate", "ignored", "queued"]),
        metadata={
            "description": "ignored: no account has email sync on for the sender; nothing kept. "
            "queued: a large message, kept, stored on its accounts by a worker."
        },
    )
    thread_ids = fields.List(fields.String(), required=True)


class InboundSecretSchema(Schema):
    url = fields.String(
        required=True, metadata={"description": "Point the mail provider's inbound route here."}
    )
    secret = fields.String(required=True, metadata={"description": "Send as Authorization: Bearer <secret>."})


class CommunicationSchema(Schema):
    thread_id = fields.String(required=True)
    subject = fields.String(required=True)
    direction = fields.String(required=True, validate=validate.OneOf(["in", "out"]))
    from_ = fields.String(required=True, data_key="from")
    sent_at = fields.DateTime(required=True, format="iso")


class LoginActivitySchema(Schema):
    email = fields.String(required=True)
    last_login_at = fields.DateTime(required=True, allow_none=True, format="iso")


class OverviewSchema(Schema):
    documents = fields.List(fields.Nested(DocumentSchema), required=True)
    communication = fields.List(fields.Nested(CommunicationSchema), required=True)
    approvals = fields.List(fields.Nested(TodoSchema), required=True)
    signatures = fields.List(fields.Nested(TodoSchema), required=True)
    login_activity = fields.List(fields.Nested(LoginActivitySchema), required=True)
    notes = fields.List(fields.Nested(NoteSchema), required=True)
