"""Schemas of bulk updates, jobs and Inbox+ (they validate requests and document the API)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from portal_app.models import JOB_STATES
from portal_app.services.account_list import ACCOUNT_STATUSES
from portal_app.services.bulk import ACTIONS, MAX_ACCOUNT_IDS
from portal_app.services.invitations import MAX_MESSAGE_LENGTH
from staff_api.schemas import ACCOUNT_TYPES, NotificationPreferences, StrictBoolean, StrictSchema

Action = fields.String(
    load_default="nothing",
    validate=validate.OneOf(list(ACTIONS)),
    metadata={"description": "Do nothing, or switch on / off for every linked contact email."},
)


class BulkFilterSchema(StrictSchema):
    q = fields.String(validate=validate.Length(max=200))
    status = fields.String(validate=validate.OneOf(ACCOUNT_STATUSES))
    tag = fields.String(validate=validate.Length(min=1, max=64))
    type = fields.String(validate=validate.OneOf(ACCOUNT_TYPES))


class BulkSettingsSchema(StrictSchema):
    account_ids = fields.List(
        fields.String(validate=validate.Length(min=1, max=40)),
        validate=validate.Length(min=1, max=MAX_ACCOUNT_IDS),
        metadata={"description": "These accounts (ids of other firms or deleted accounts are error items)."},
    )
    filter = fields.Nested(
        BulkFilterSchema,
        metadata={
            "description": "Every account the list shows for these filters, resolved when the job starts."
        },
    )
    login = Action
    notify = Action
    email_sync = Action
    send_invitations = StrictBoolean(
        load_default=False,
        metadata={
            "description": "Invite every email with login on that has no live invitation and no login yet."
        },
    )
    invitation_message = fields.String(load_default="", validate=validate.Length(max=MAX_MESSAGE_LENGTH))
    notification_preferences = NotificationPreferences


class DryRunArgsSchema(StrictSchema):
    dry_run = StrictBoolean(load_default=False, truthy={True, "true", "1"}, falsy={False, "false", "0"})


class JobErrorSchema(Schema):
    account_id = fields.String(required=True, allow_none=True)
    contact_id = fields.String(required=True, allow_none=True)
    email = fields.String(required=True, allow_none=True)
    row = fields.Integer(required=True, allow_none=True)
    reason = fields.String(required=True)


class ProgressSchema(Schema):
    done = fields.Integer(required=True)
    total = fields.Integer(required=True)


class JobSchema(Schema):
    id = fields.String(required=True)
    kind = fields.String(required=True)
    state = fields.String(required=True, validate=validate.OneOf(JOB_STATES))
    progress = fields.Nested(ProgressSchema, required=True)
    result = fields.Dict(
        required=True, metadata={"description": "Counts: accounts, emails changed, invitations…"}
    )
    errors = fields.List(fields.Nested(JobErrorSchema), required=True)
    created_at = fields.DateTime(required=True, format="iso")
    finished_at = fields.DateTime(required=True, allow_none=True, format="iso")


class JobPageSchema(Schema):
    items = fields.List(fields.Nested(JobSchema), required=True)
    next_cursor = fields.String(required=True, allow_none=True)


class PageArgsSchema(StrictSchema):
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))
    cursor = fields.String(validate=validate.Length(max=40))


class InboxArgsSchema(PageArgsSchema):
    unread = StrictBoolean(load_default=False, truthy={True, "true", "1"}, falsy={False, "false", "0"})


class InboxItemSchema(Schema):
    id = fields.String(required=True)
    kind = fields.String(required=True)
    title = fields.String(required=True)
    body = fields.String(required=True)
    account_id = fields.String(required=True, allow_none=True)
    job_id = fields.String(required=True, allow_none=True)
    thread_id = fields.String(required=True, allow_none=True)
    read = StrictBoolean(required=True)
    created_at = fields.DateTime(required=True, format="iso")


class InboxPageSchema(Schema):
    items = fields.List(fields.Nested(InboxItemSchema), required=True)
    next_cursor = fields.String(required=True, allow_none=True)
