"""The firm's own settings (admins change them): name, time zone, two-factor requirements,
Reply-To, and the inbound-mail secret."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint

from portal_app.extensions import db
from portal_app.models import Firm
from portal_app.services import inbound, staff
from portal_app.services.errors import Forbidden
from staff_api.auth import current_staff
from staff_api.mail_schemas import (
    InboundSecretSchema,
)
from staff_api.schemas import ErrorSchema
from staff_api.todo_schemas import FirmPatchSchema, FirmSchema

blp = Blueprint("firm", __name__, description="The firm's own settings.")


def firm_payload(firm: Firm) -> dict[str, Any]:
    return {
        "id": str(firm.id),
        "name": firm.name,
        "timezone": firm.timezone,
        "require_mfa_staff": firm.require_mfa_staff,
        "require_mfa_clients": firm.require_mfa_clients,
        "reply_to": firm.reply_to,
        "login_free_actions": list(firm.login_free_actions or []),
    }


@blp.route("")
class FirmDetail(MethodView):
    @blp.response(200, FirmSchema)
    def get(self) -> dict[str, Any]:
        """The caller's firm."""
        return firm_payload(db.session.get_one(Firm, current_staff().firm_id))

    @blp.arguments(FirmPatchSchema)
    @blp.response(200, FirmSchema)
    @blp.alt_response(403, schema=ErrorSchema, description="Only admins change the firm.")
    @blp.alt_response(422, schema=ErrorSchema)
    def patch(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Change the firm's name, time zone (IANA; recipients without a portal login of their own
        get the weekly email at 09:00 in it), or require two-factor sign-in for all staff and/or all
        clients (R-SEC-13), or choose what clients may do from a notification email without
        logging in (`login_free_actions`, R-LFA-1). Admins only; every change is audited."""
        user = current_staff()
        firm = staff.update_firm(user, db.session.get_one(Firm, user.firm_id), changes)
        return firm_payload(firm)


def _admin_firm() -> Firm:
    staff = current_staff()
    if not staff.is_admin:
        raise Forbidden("Only admins read or rotate the inbound secret.")
    return db.session.get_one(Firm, staff.firm_id)


def _secret_answer(secret: str) -> dict[str, str]:
    return {"url": current_app.config["BASE_URL"] + "/api/v1/inbound-email", "secret": secret}


@blp.route("/inbound-email")
class FirmInboundEmail(MethodView):
    @blp.response(200, InboundSecretSchema)
    @blp.alt_response(403, schema=ErrorSchema, description="Admins only.")
    def get(self) -> dict[str, str]:
        """Where to send inbound mail, and the secret to send with it (admins)."""
        firm = _admin_firm()
        secret = inbound.read_secret(firm)
        return _secret_answer(secret)


@blp.route("/inbound-email/rotate")
class FirmInboundEmailRotate(MethodView):
    @blp.response(200, InboundSecretSchema)
    @blp.alt_response(403, schema=ErrorSchema, description="Admins only.")
    def post(self) -> dict[str, str]:
        """A new inbound secret; the old one stops working at once (admins)."""
        secret = inbound.rotate_secret(_admin_firm())
        return _secret_answer(secret)
