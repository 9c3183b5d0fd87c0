"""Staff passkeys (R-SEC-15): add them from a session, list, remove, and sign in with one.

A passkey sign-in answers like the two-step login's second step: a new session that passed two
factors. Adding or removing a passkey changes how the owner signs in, so, like the two-factor
settings, it needs a session signed in during the last 10 minutes, never an API token.
"""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, jsonify
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from portal_app import metrics, transaction
from portal_app.extensions import limiter
from portal_app.models import Passkey
from portal_app.services import passkey_reports, passkeys
from staff_api.auth import (
    RECENT_ONLY,
    current_staff,
    require_recent_sign_in,
    session_answer,
    start_two_factor_session,
)
from staff_api.schemas import ErrorSchema, StrictSchema
from staff_api.staff_schemas import SessionSchema

blp = Blueprint("passkeys", __name__, description="Passkeys: sign in with a fingerprint, face or phone.")

CREDENTIAL = fields.Dict(
    required=True,
    metadata={"description": "The PublicKeyCredential as JSON (its `toJSON()`), base64url fields."},
)


class RegisterVerifySchema(StrictSchema):
    credential = CREDENTIAL
    name = fields.String(load_default="", validate=validate.Length(max=passkeys.NAME_LENGTH))


class LoginVerifySchema(StrictSchema):
    credential = CREDENTIAL


class PasskeySchema(Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    created_at = fields.DateTime(required=True)
    last_used_at = fields.DateTime(required=True, allow_none=True)
    blocked = fields.Boolean(
        required=True, metadata={"description": "Its counter went backwards (copied): it signs no one in."}
    )
    synced = fields.Boolean(required=True, metadata={"description": "Backed up to a cloud account."})
    transports = fields.List(fields.String(), required=True)


class PasskeyListSchema(Schema):
    passkeys = fields.List(fields.Nested(PasskeySchema), required=True)


OPTIONS = fields.Dict(metadata={"description": "Pass to navigator.credentials (base64url fields)."})


class OptionsSchema(Schema):
    publicKey = OPTIONS  # noqa: N815 - the name navigator.credentials takes


def passkey_payload(passkey: Passkey) -> dict[str, Any]:
    return {
        "id": str(passkey.id),
        "name": passkey.name,
        "created_at": passkey.created_at,
        "last_used_at": passkey.last_used_at,
        "blocked": passkey.blocked_at is not None,
        "synced": passkey.backed_up,
        "transports": list(passkey.transports or []),
    }


def _per_ip() -> str:
    return current_app.config["LIMIT_PER_IP"]


@blp.route("")
class Passkeys(MethodView):
    @blp.response(200, PasskeyListSchema)
    def get(self) -> dict:
        """The passkeys of the signed-in staff user, with when each was added and last used."""
        return {"passkeys": [passkey_payload(p) for p in passkeys.list_passkeys(current_staff())]}


@blp.route("/<passkey_id>")
class PasskeyItem(MethodView):
    @blp.response(204)
    @blp.alt_response(404, schema=ErrorSchema)
    @blp.alt_response(403, schema=ErrorSchema, description=RECENT_ONLY)
    def delete(self, passkey_id: str) -> None:
        """Remove a passkey: it signs no one in from now on. Needs a sign-in of the last 10 minutes."""
        passkey = passkeys.get_passkey(current_staff(), passkey_id)  # someone else's: 404
        require_recent_sign_in()
        passkeys.remove(current_staff(), passkey.id)


@blp.route("/register/options")
class RegisterOptions(MethodView):
    @blp.response(200, OptionsSchema)
    @blp.alt_response(403, schema=ErrorSchema, description=RECENT_ONLY)
    @blp.alt_response(409, schema=ErrorSchema, description="Too many passkeys, or BASE_URL is an IP address.")
    def post(self) -> dict:
        """Start adding a passkey: options for `navigator.credentials.create` (the challenge works
        once, for 5 minutes)."""
        require_recent_sign_in()
        return {"publicKey": passkeys.registration_options(current_staff())}


@blp.route("/register/verify")
class RegisterVerify(MethodView):
    @blp.arguments(RegisterVerifySchema)
    @blp.response(201, PasskeySchema)
    @blp.alt_response(401, schema=ErrorSchema, description="The answer was not accepted.")
    @blp.alt_response(403, schema=ErrorSchema, description=RECENT_ONLY)
    def post(self, data: dict) -> dict:
        """Finish adding a passkey with the browser's answer, under a name of your choice."""
        require_recent_sign_in()
        return passkey_payload(passkeys.register(current_staff(), data["credential"], data["name"]))


@blp.route("/login/options")
class LoginOptions(MethodView):
    decorators = [limiter.limit(_per_ip, methods=["POST"], scope="staff-passkey-ip")]

    @blp.response(200, OptionsSchema)
    @blp.alt_response(429, schema=ErrorSchema, description="Too many attempts; see Retry-After.")
    @blp.doc(security=[])
    def post(self) -> dict:
        """Options for `navigator.credentials.get` (any of your passkeys; the challenge works once,
        for 5 minutes)."""
        return {"publicKey": passkeys.login_options("staff")}


@blp.route("/login/verify")
class LoginVerify(MethodView):
    decorators = [limiter.limit(_per_ip, methods=["POST"], scope="staff-passkey-ip")]

    @blp.arguments(LoginVerifySchema)
    @blp.response(200, SessionSchema)
    @blp.alt_response(401, schema=ErrorSchema, description="The passkey was not accepted.")
    @blp.alt_response(429, schema=ErrorSchema, description="Too many attempts; see Retry-After.")
    @blp.doc(security=[])
    def post(self, data: dict) -> dict | Response:
        """Sign in with a passkey. Answers like POST /auth/login/mfa: a new session that passed two
        factors, and its CSRF token."""
        try:
            user = passkeys.authenticate("staff", data["credential"])
        except passkeys.ClonedPasskey as cloned:
            return refuse_cloned(cloned)
        except passkeys.PasskeyRefused:
            metrics.SIGN_INS.labels("staff", "failed").inc()
            raise
        metrics.SIGN_INS.labels("staff", "succeeded").inc()
        start_two_factor_session(user)  # type: ignore[arg-type]
        return session_answer(user)  # type: ignore[arg-type]


def refuse_cloned(cloned: passkeys.ClonedPasskey) -> Response:
    """The refusal rolls the request back; the block and its report stay: they are written after
    the rollback and commit with this 401, which is answered here, not raised (an error handler
    would roll them back too)."""
    transaction.keep_refusal_record()
    passkey_reports.block(cloned.passkey_id)
    metrics.SIGN_INS.labels("staff", "failed").inc()
    answer = jsonify(
        {
            "error": {
                "code": "passkey_cloned",
                "message": (
                    "This passkey was refused and blocked: its signature counter went backwards, the "
                    "mark of a copied authenticator. Sign in with your password."
                ),
                "fields": {},
            }
        }
    )
    answer.status_code = 401
    return answer
