"""Marshmallow schemas: they validate requests and generate the OpenAPI document."""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate


class StrictSchema(Schema):
    """Unknown fields are refused (422), never silently ignored."""

    class Meta:
        unknown = RAISE


class ErrorBodySchema(Schema):
    code = fields.String(required=True, metadata={"description": "Machine-readable error code."})
    message = fields.String(required=True)
    fields = fields.Dict(
        keys=fields.String(),
        values=fields.Raw(),
        required=True,
        metadata={"description": "Per-field messages, keyed by field name."},
    )


class ErrorSchema(Schema):
    error = fields.Nested(ErrorBodySchema, required=True)


class FirmRefSchema(Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)


class StaffUserSchema(Schema):
    id = fields.String(required=True)
    email = fields.String(required=True)
    name = fields.String(required=True)
    role = fields.String(required=True, validate=validate.OneOf(["admin", "staff"]))
    firm = fields.Nested(FirmRefSchema, required=True)


class LoginSchema(StrictSchema):
    email = fields.String(required=True, validate=validate.Length(min=1, max=254))
    password = fields.String(required=True, validate=validate.Length(min=1, max=256))


class SessionSchema(Schema):
    user = fields.Nested(StaffUserSchema, required=True)
    csrf_token = fields.String(required=True)


# --- accounts -------------------------------------------------------------------------------

ACCOUNT_TYPES = ["individual", "company"]
ACCOUNT_STATUSES = ["activated", "pending_activation", "not_activated"]
NOTIFICATION_CATEGORIES = [
    "documents_upload",
    "documents_signature",
    "documents_approval",
    "messages_tasks",
    "proposals",
    "organizers",
    "invoices_payments",
    "client_requests",
    "transactions",
]

Tag = fields.String(validate=validate.Length(min=1, max=64))
CustomFields = fields.Dict(
    keys=fields.String(validate=validate.Length(min=1, max=100)),
    values=fields.String(validate=validate.Length(max=2000)),
    validate=validate.Length(max=100),
)


class AccountSchema(Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    type = fields.String(required=True, validate=validate.OneOf(ACCOUNT_TYPES))
    company_name = fields.String(required=True, allow_none=True)
    company_address = fields.String(required=True, allow_none=True)
    tags = fields.List(fields.String(), required=True)
    custom_fields = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    status = fields.String(required=True, validate=validate.OneOf(ACCOUNT_STATUSES))
    notify = fields.Boolean(required=True)
    email_sync = fields.Boolean(required=True)
    created_at = fields.DateTime(required=True, format="iso")


class AccountPageSchema(Schema):
    items = fields.List(fields.Nested(AccountSchema), required=True)
    next_cursor = fields.String(
        required=True, allow_none=True, metadata={"description": "Pass as `cursor` for the next page."}
    )


class AccountListArgsSchema(StrictSchema):
    q = fields.String(
        validate=validate.Length(max=200),
        metadata={"description": "Part of the name, or of a linked contact's name or email."},
    )
    status = fields.String(validate=validate.OneOf(ACCOUNT_STATUSES))
    tag = fields.String(validate=validate.Length(min=1, max=64))
    type = fields.String(validate=validate.OneOf(ACCOUNT_TYPES))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = fields.String(validate=validate.Length(max=2000))


class EmailInputSchema(StrictSchema):
    address = fields.Email(required=True, validate=validate.Length(max=254))
    label = fields.String(load_default="", validate=validate.Length(max=64))
    is_primary = fields.Boolean(load_default=False)


class NewContactLinkSchema(StrictSchema):
    """Link an existing contact (contact_id) or create one (names and emails)."""

    contact_id = fields.String(validate=validate.Length(min=1, max=40))
    first_name = fields.String(validate=validate.Length(max=100))
    middle_name = fields.String(validate=validate.Length(max=100))
    last_name = fields.String(validate=validate.Length(max=100))
    emails = fields.List(fields.Nested(EmailInputSchema), validate=validate.Length(min=1, max=20))
    description = fields.String(load_default="", validate=validate.Length(max=200))
    signer_priority = fields.Integer(allow_none=True, validate=validate.Range(min=1, max=1000))


class AccountCreateSchema(StrictSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    type = fields.String(load_default="individual", validate=validate.OneOf(ACCOUNT_TYPES))
    company_name = fields.String(allow_none=True, validate=validate.Length(max=200))
    company_address = fields.String(allow_none=True, validate=validate.Length(max=2000))
    tags = fields.List(Tag, validate=validate.Length(max=50))
    custom_fields = CustomFields
    contacts = fields.List(fields.Nested(NewContactLinkSchema), validate=validate.Length(max=50))


class AccountPatchSchema(StrictSchema):
    name = fields.String(validate=validate.Length(min=1, max=200))
    type = fields.String(validate=validate.OneOf(ACCOUNT_TYPES))
    company_name = fields.String(allow_none=True, validate=validate.Length(max=200))
    company_address = fields.String(allow_none=True, validate=validate.Length(max=2000))
    tags = fields.List(Tag, validate=validate.Length(max=50))
    custom_fields = CustomFields
