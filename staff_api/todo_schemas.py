"""Schemas of to-dos and the firm's settings."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from portal_app.models import LOGIN_FREE_ACTIONS
from staff_api.schemas import NOTIFICATION_CATEGORIES, StrictBoolean, StrictSchema

# --- to-dos ------------------------------------------------------------------------------------


class TodoDoneBySchema(Schema):
    email = fields.String(required=True, allow_none=True)
    action = fields.String(required=True, validate=validate.OneOf(["signed", "approved", "done"]))
    via = fields.String(
        required=True,
        allow_none=True,
        validate=validate.OneOf(["portal", "email_link"]),
        metadata={"description": "Where the client did it: signed in, or from an emailed link; null: staff."},
    )


class TodoItemSchema(Schema):
    id = fields.String(required=True)
    label = fields.String(required=True)
    type = fields.String(required=True, validate=validate.OneOf(["upload", "answer"]))
    complete = StrictBoolean(required=True)
    answer = fields.String(required=True, allow_none=True)
    document_ids = fields.List(fields.String(), required=True)
    comment = fields.String(
        required=True, allow_none=True, metadata={"description": "Why staff reopened it."}
    )


class TodoItemInSchema(StrictSchema):
    label = fields.String(required=True, validate=validate.Length(min=1, max=300))
    type = fields.String(required=True, validate=validate.OneOf(["upload", "answer"]))


class TodoItemPatchSchema(StrictSchema):
    reopen = StrictBoolean(required=True, validate=validate.Equal(True))
    comment = fields.String(required=True, validate=validate.Length(min=1, max=5000))


class TodoSchema(Schema):
    id = fields.String(required=True)
    account_id = fields.String(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(NOTIFICATION_CATEGORIES))
    title = fields.String(required=True)
    due_date = fields.Date(required=True, allow_none=True)
    requires_signature = StrictBoolean(required=True)
    reminder_every_days = fields.Integer(required=True)
    reminder_max = fields.Integer(required=True)
    state = fields.String(required=True, validate=validate.OneOf(["open", "done"]))
    done_at = fields.DateTime(required=True, allow_none=True, format="iso")
    done_by = fields.Nested(TodoDoneBySchema, required=True, allow_none=True)
    document_ids = fields.List(
        fields.String(),
        required=True,
        metadata={"description": "Documents the client opens before signing or approving, in order."},
    )
    items = fields.List(
        fields.Nested(TodoItemSchema),
        attribute="request_items",  # not the dict's own .items
        metadata={"description": "client_requests only: what the client uploads or answers (R-REQ-1)."},
    )
    created_at = fields.DateTime(required=True, format="iso")


REMINDER_EVERY = validate.Range(min=0, max=365)


def _todo_documents() -> fields.List:
    return fields.List(
        fields.String(validate=validate.Length(max=20)),
        validate=validate.Length(max=20),
        metadata={
            "description": "Documents of the account the client reads before signing or approving "
            "(they open them from the to-do); a PATCH replaces the list."
        },
    )


REMINDER_MAX = validate.Range(min=0, max=52)


class TodoCreateSchema(StrictSchema):
    kind = fields.String(required=True, validate=validate.OneOf(NOTIFICATION_CATEGORIES))
    title = fields.String(required=True, validate=validate.Length(min=1, max=300))
    due_date = fields.Date(allow_none=True)
    requires_signature = StrictBoolean(
        metadata={"description": "invoices_payments only: the client signs it (with payment details)."}
    )
    reminder_every_days = fields.Integer(
        strict=True,
        validate=REMINDER_EVERY,
        metadata={"description": "Days between reminders; 0: none (default 3)."},
    )
    reminder_max = fields.Integer(
        strict=True,
        validate=REMINDER_MAX,
        metadata={"description": "How many reminders at most (default 3)."},
    )
    document_ids = _todo_documents()
    items = fields.List(
        fields.Nested(TodoItemInSchema),
        validate=validate.Length(min=1, max=100),
        metadata={"description": "client_requests only: 1 to 100 items to upload to or answer."},
    )


class TodoPatchSchema(StrictSchema):
    kind = fields.String(validate=validate.OneOf(NOTIFICATION_CATEGORIES))
    title = fields.String(validate=validate.Length(min=1, max=300))
    due_date = fields.Date(allow_none=True)
    requires_signature = StrictBoolean()
    reminder_every_days = fields.Integer(strict=True, validate=REMINDER_EVERY)
    reminder_max = fields.Integer(strict=True, validate=REMINDER_MAX)
    state = fields.String(validate=validate.OneOf(["open", "done"]))
    document_ids = _todo_documents()


class TodoListArgsSchema(StrictSchema):
    state = fields.String(validate=validate.OneOf(["open", "done"]))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = fields.String(validate=validate.Length(max=40))


class TodoPageSchema(Schema):
    items = fields.List(fields.Nested(TodoSchema), required=True)
    next_cursor = fields.String(required=True, allow_none=True)


class FirmSchema(Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    timezone = fields.String(required=True, metadata={"description": "IANA time zone, e.g. Europe/Berlin."})
    require_mfa_staff = StrictBoolean(required=True)
    require_mfa_clients = StrictBoolean(required=True)
    reply_to = fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "Reply-To of the firm's emails (From: MAIL_FROM under the firm's name)."},
    )
    login_free_actions = fields.List(
        fields.String(validate=validate.OneOf(LOGIN_FREE_ACTIONS)),
        required=True,
        metadata={"description": "What clients may do from an email without logging in (R-LFA-1)."},
    )


class FirmPatchSchema(StrictSchema):
    name = fields.String(validate=validate.Length(min=1, max=200))
    timezone = fields.String(validate=validate.Length(min=1, max=64))
    reply_to = fields.String(
        allow_none=True,
        validate=validate.Length(max=254),
        metadata={"description": "The firm's contact address for answers; null or empty: none."},
    )
    require_mfa_staff = StrictBoolean(metadata={"description": "Every staff user signs in with two factors."})
    require_mfa_clients = StrictBoolean(metadata={"description": "Every client signs in with two factors."})
    login_free_actions = fields.List(
        fields.String(validate=validate.OneOf(LOGIN_FREE_ACTIONS)),
        validate=validate.Length(max=len(LOGIN_FREE_ACTIONS)),
        metadata={
            "description": "A subset of " + ", ".join(LOGIN_FREE_ACTIONS) + "; [] (the default): none."
        },
    )
