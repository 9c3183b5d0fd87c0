"""Schemas of staff users, sign-in, two factors and API tokens."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from staff_api.schemas import StrictBoolean, StrictSchema


class FirmRefSchema(Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)


class StaffUserSchema(Schema):
    id = fields.String(required=True)
    email = fields.String(required=True)
    name = fields.String(required=True)
    role = fields.String(required=True, validate=validate.OneOf(["admin", "staff"]))
    firm = fields.Nested(FirmRefSchema, required=True)
    mfa_enabled = StrictBoolean(required=True, metadata={"description": "Two-factor sign-in is on."})
    active = StrictBoolean(required=True, metadata={"description": "False: deactivated, cannot sign in."})


class StaffCreateSchema(StrictSchema):
    email = fields.String(required=True, validate=validate.Length(min=3, max=254))
    name = fields.String(load_default="", validate=validate.Length(max=200))
    role = fields.String(load_default="staff", validate=validate.OneOf(["admin", "staff"]))


class StaffPatchSchema(StrictSchema):
    role = fields.String(validate=validate.OneOf(["admin", "staff"]))
    active = StrictBoolean()


class LoginSchema(StrictSchema):
    email = fields.String(required=True, validate=validate.Length(min=1, max=254))
    password = fields.String(required=True, validate=validate.Length(min=1, max=256))


class SessionSchema(Schema):
    user = fields.Nested(StaffUserSchema, required=True)
    csrf_token = fields.String(required=True)
    mfa_enrollment_required = StrictBoolean(
        required=True,
        metadata={
            "description": "The firm requires two factors and you have none: enrol before anything else."
        },
    )


class LoginAnswerSchema(Schema):
    """Either a session (as /auth/me), or the second step when two factors are on."""

    user = fields.Nested(StaffUserSchema)
    csrf_token = fields.String()
    mfa_enrollment_required = StrictBoolean()
    mfa_required = StrictBoolean(metadata={"description": "Send a code to POST /auth/login/mfa."})
    mfa_token = fields.String(metadata={"description": "Single use, valid for 5 minutes."})


class LoginMfaSchema(StrictSchema):
    mfa_token = fields.String(required=True, validate=validate.Length(min=1, max=500))
    code = fields.String(
        required=True,
        validate=validate.Length(min=1, max=64),
        metadata={"description": "The app's 6-digit code, or a recovery code."},
    )


class MfaCodeSchema(StrictSchema):
    code = fields.String(required=True, validate=validate.Length(min=1, max=64))


class MfaPasswordCodeSchema(StrictSchema):
    password = fields.String(required=True, validate=validate.Length(min=1, max=256))
    code = fields.String(required=True, validate=validate.Length(min=1, max=64))


class MfaSetupSchema(Schema):
    otpauth_uri = fields.String(required=True)
    secret = fields.String(required=True, metadata={"description": "Base32, for typing into an app."})
    qr_svg = fields.String(
        required=True, metadata={"description": "The otpauth URI as an inline SVG QR code."}
    )


class RecoveryCodesSchema(Schema):
    recovery_codes = fields.List(fields.String(), required=True, metadata={"description": "Shown once."})
    csrf_token = fields.String(metadata={"description": "The new session's token (session calls)."})


# --- personal API tokens --------------------------------------------------------------------


class ApiTokenSchema(Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    staff_id = fields.String(required=True)
    staff_email = fields.String(required=True)
    created_at = fields.DateTime(required=True)
    last_used_at = fields.DateTime(required=True, allow_none=True)
    revoked_at = fields.DateTime(required=True, allow_none=True)


class ApiTokenListSchema(Schema):
    items = fields.List(fields.Nested(ApiTokenSchema), required=True)


class ApiTokenListArgsSchema(StrictSchema):
    staff_id = fields.String(
        validate=validate.Length(min=1, max=20),
        metadata={"description": "Admins only: the tokens of one staff user."},
    )


class ApiTokenCreateSchema(StrictSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    staff_id = fields.String(
        validate=validate.Length(min=1, max=20),
        metadata={"description": "Whose token; defaults to the caller. Only admins name someone else."},
    )


class ApiTokenCreatedSchema(Schema):
    token = fields.Nested(ApiTokenSchema, required=True)
    secret = fields.String(
        required=True, metadata={"description": "The bearer token. Shown once; only a digest is stored."}
    )


class StaffListSchema(Schema):
    items = fields.List(fields.Nested(StaffUserSchema), required=True)
