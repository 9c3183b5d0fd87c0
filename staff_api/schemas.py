"""Marshmallow schemas: they validate requests and generate the OpenAPI document."""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, pre_load, validate

from portal_app.i18n import LANGUAGES
from portal_app.models import ACCOUNT_TYPES as MODEL_ACCOUNT_TYPES
from portal_app.models import NOTIFICATION_CATEGORIES as MODEL_NOTIFICATION_CATEGORIES
from portal_app.services.account_list import ACCOUNT_STATUSES as SERVICE_ACCOUNT_STATUSES
from portal_app.services.validation import text_problem


class StrictBoolean(fields.Boolean):
    """JSON true or false only; not "yes", 1 or "on"."""

    truthy = {True}
    falsy = {False}


def _text_problems(value: Any, path: str, problems: dict[str, list[str]]) -> None:
    if isinstance(value, str):
        problem = text_problem(value)
        if problem:
            problems[path or "_schema"] = [problem]
    elif isinstance(value, dict):
        for key, item in value.items():
            _text_problems(key, path, problems)
            _text_problems(item, f"{path}.{key}" if path else str(key), problems)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _text_problems(item, f"{path}.{index}" if path else str(index), problems)


class StrictSchema(Schema):
    """Unknown fields are refused (422), never silently ignored; text that no database can
    store (NUL, lone surrogates) is refused before any field is looked at."""

    class Meta:
        unknown = RAISE

    @pre_load
    def _refuse_unstorable_text(self, data: Any, **kwargs: Any) -> Any:
        problems: dict[str, list[str]] = {}
        # query strings arrive as a MultiDict; JSON bodies as plain data
        _text_problems(dict(data) if hasattr(data, "getlist") else data, "", problems)
        if problems:
            raise ValidationError(problems)
        return data


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


# --- accounts -------------------------------------------------------------------------------

# One source for the domain's enumerations: the models and the account-list service.
ACCOUNT_TYPES = list(MODEL_ACCOUNT_TYPES)
ACCOUNT_STATUSES = list(SERVICE_ACCOUNT_STATUSES)
NOTIFICATION_CATEGORIES = list(MODEL_NOTIFICATION_CATEGORIES)

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
    notify = StrictBoolean(required=True)
    email_sync = StrictBoolean(required=True)
    photo_url = fields.String(
        required=True,
        allow_none=True,
        metadata={
            "description": "The 256-pixel photo (`?size=64` for the small one), for the firm's "
            "staff and the account's portal users."
        },
    )
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
    is_primary = StrictBoolean(load_default=False)


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


# --- contacts, links, settings, audit ------------------------------------------------------


class PhoneSchema(StrictSchema):
    label = fields.String(load_default="", validate=validate.Length(max=64))
    number = fields.String(required=True, validate=validate.Length(min=1, max=40))


class PostalAddressSchema(StrictSchema):
    label = fields.String(load_default="", validate=validate.Length(max=64))
    street = fields.String(load_default="", validate=validate.Length(max=200))
    city = fields.String(load_default="", validate=validate.Length(max=100))
    postal_code = fields.String(load_default="", validate=validate.Length(max=20))
    region = fields.String(load_default="", validate=validate.Length(max=100))
    country = fields.String(load_default="", validate=validate.Length(max=100))


class EmailSchema(Schema):
    id = fields.String(required=True)
    address = fields.String(required=True)
    label = fields.String(required=True)
    is_primary = StrictBoolean(required=True)


class ContactSchema(Schema):
    id = fields.String(required=True)
    first_name = fields.String(required=True)
    middle_name = fields.String(required=True)
    last_name = fields.String(required=True)
    display_name = fields.String(required=True)
    phones = fields.List(fields.Nested(PhoneSchema), required=True)
    addresses = fields.List(fields.Nested(PostalAddressSchema), required=True)
    custom_fields = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    emails = fields.List(fields.Nested(EmailSchema), required=True)


class ContactPageSchema(Schema):
    items = fields.List(fields.Nested(ContactSchema), required=True)
    next_cursor = fields.String(required=True, allow_none=True)


class ContactListArgsSchema(StrictSchema):
    q = fields.String(validate=validate.Length(max=200))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = fields.String(validate=validate.Length(max=2000))


class ContactFieldsMixin(StrictSchema):
    first_name = fields.String(validate=validate.Length(max=100))
    middle_name = fields.String(validate=validate.Length(max=100))
    last_name = fields.String(validate=validate.Length(max=100))
    phones = fields.List(fields.Nested(PhoneSchema), validate=validate.Length(max=20))
    addresses = fields.List(fields.Nested(PostalAddressSchema), validate=validate.Length(max=20))
    custom_fields = CustomFields


class ContactCreateSchema(ContactFieldsMixin):
    emails = fields.List(
        fields.Nested(EmailInputSchema), required=True, validate=validate.Length(min=1, max=20)
    )


class ContactPatchSchema(ContactFieldsMixin):
    pass


class EmailPatchSchema(StrictSchema):
    address = fields.Email(validate=validate.Length(max=254))
    label = fields.String(validate=validate.Length(max=64))
    is_primary = StrictBoolean(validate=validate.Equal(True, error="Make another email primary instead."))


class LinkCreateSchema(StrictSchema):
    contact_id = fields.String(required=True, validate=validate.Length(min=1, max=40))
    description = fields.String(load_default="", validate=validate.Length(max=200))
    signer_priority = fields.Integer(allow_none=True, validate=validate.Range(min=1, max=1000))


class LinkPatchSchema(StrictSchema):
    description = fields.String(validate=validate.Length(max=200))
    signer_priority = fields.Integer(allow_none=True, validate=validate.Range(min=1, max=1000))


class LinkSchema(Schema):
    account_id = fields.String(required=True)
    contact_id = fields.String(required=True)
    contact_name = fields.String(required=True)
    description = fields.String(required=True)
    signer_priority = fields.Integer(required=True, allow_none=True)


NotificationPreferences = fields.Dict(
    keys=fields.String(validate=validate.OneOf(NOTIFICATION_CATEGORIES)), values=StrictBoolean()
)


class InvitationStateSchema(Schema):
    state = fields.String(
        required=True, validate=validate.OneOf(["not_invited", "invited", "expired", "activated"])
    )
    sent_at = fields.DateTime(required=True, allow_none=True, format="iso")
    expires_at = fields.DateTime(required=True, allow_none=True, format="iso")
    delivery = fields.String(
        allow_none=True,
        validate=validate.OneOf(["pending", "sending", "sent", "failed"]),
        metadata={"description": "The invitation email's delivery; `failed` means it never arrived."},
    )
    delivery_error = fields.String(allow_none=True)


class SettingsSchema(Schema):
    account_id = fields.String(required=True)
    contact_id = fields.String(required=True)
    contact_name = fields.String(required=True)
    email_id = fields.String(required=True)
    address = fields.String(required=True)
    login = StrictBoolean(required=True)
    notify = StrictBoolean(required=True)
    notification_preferences = fields.Dict(keys=fields.String(), values=StrictBoolean(), required=True)
    email_sync = StrictBoolean(required=True)
    auto_save_attachments = StrictBoolean(required=True)
    signatory = StrictBoolean(required=True)
    invitation = fields.Nested(InvitationStateSchema, required=True)


class ContactSettingsGroupSchema(Schema):
    contact_id = fields.String(required=True)
    contact_name = fields.String(required=True)
    description = fields.String(required=True)
    signer_priority = fields.Integer(required=True, allow_none=True)
    emails = fields.List(fields.Nested(SettingsSchema), required=True)


class ContactSettingsListSchema(Schema):
    contacts = fields.List(fields.Nested(ContactSettingsGroupSchema), required=True)


INVITATION_LANGUAGE = fields.String(
    validate=validate.OneOf(list(LANGUAGES)),
    metadata={
        "description": "The invitation email's and activation page's language; by default the "
        "address's earlier portal language, else English (email) and the browser's (page)."
    },
)


class SettingsPatchSchema(StrictSchema):
    login = StrictBoolean()
    notify = StrictBoolean()
    notification_preferences = NotificationPreferences
    email_sync = StrictBoolean()
    auto_save_attachments = StrictBoolean()
    signatory = StrictBoolean()
    send_invitation = StrictBoolean(
        metadata={"description": "With login on: email an invitation now (R-LOG-1)."}
    )
    invitation_message = fields.String(
        validate=validate.Length(max=2000),
        metadata={"description": "A personal message for the invitation email (shown escaped)."},
    )
    invitation_language = INVITATION_LANGUAGE


class InvitationSendSchema(StrictSchema):
    invitation_message = fields.String(validate=validate.Length(max=2000))
    invitation_language = INVITATION_LANGUAGE


class AuditEntrySchema(Schema):
    id = fields.String(required=True)
    account_id = fields.String(required=True, allow_none=True)
    contact_id = fields.String(required=True, allow_none=True)
    email_id = fields.String(required=True, allow_none=True)
    address = fields.String(required=True)
    actor = fields.Dict(keys=fields.String(), values=fields.Raw(), required=True)
    field = fields.String(required=True)
    old_value = fields.Raw(required=True, allow_none=True)
    new_value = fields.Raw(required=True, allow_none=True)
    created_at = fields.DateTime(required=True, format="iso")


class AuditPageSchema(Schema):
    items = fields.List(fields.Nested(AuditEntrySchema), required=True)
    next_cursor = fields.String(required=True, allow_none=True)


class AuditArgsSchema(StrictSchema):
    account_id = fields.String(validate=validate.Length(min=1, max=40))
    email_id = fields.String(validate=validate.Length(min=1, max=40))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = fields.String(validate=validate.Length(max=100))
