"""Personal API tokens, and the firm's staff they belong to."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from portal_app.extensions import db
from portal_app.models import ApiToken, StaffUser
from portal_app.services import mfa, staff_users
from portal_app.services import staff as staff_service
from portal_app.services.errors import Forbidden
from staff_api.auth import current_staff, passed_two_factors, staff_payload
from staff_api.schemas import ErrorSchema
from staff_api.staff_schemas import (
    ApiTokenCreatedSchema,
    ApiTokenCreateSchema,
    ApiTokenListArgsSchema,
    ApiTokenListSchema,
    StaffCreateSchema,
    StaffListSchema,
    StaffPatchSchema,
    StaffUserSchema,
)

blp = Blueprint(
    "api_tokens",
    __name__,
    description="Personal API tokens. Everyone manages their own; admins manage the whole firm's.",
)
staff_blp = Blueprint("staff", __name__, description="The firm's staff users.")


def token_payload(token: ApiToken, owner: StaffUser) -> dict[str, Any]:
    return {
        "id": str(token.id),
        "name": token.name,
        "staff_id": str(owner.id),
        "staff_email": owner.email,
        "created_at": token.created_at,
        "last_used_at": token.last_used_at,
        "revoked_at": token.revoked_at,
    }


@blp.route("")
class ApiTokens(MethodView):
    @blp.arguments(ApiTokenListArgsSchema, location="query")
    @blp.response(200, ApiTokenListSchema)
    @blp.alt_response(401, schema=ErrorSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Your tokens, newest first; admins see every token of the firm (filter with staff_id)."""
        actor = current_staff()
        staff_id = None
        if "staff_id" in args:
            staff_id = staff_service.get_staff_user(actor.firm_id, args["staff_id"]).id
        tokens = staff_service.list_api_tokens(actor, staff_id=staff_id)
        owners = {
            u.id: u for u in db.session.scalars(select(StaffUser).where(StaffUser.firm_id == actor.firm_id))
        }
        return {"items": [token_payload(t, owners[t.staff_user_id]) for t in tokens]}

    @blp.arguments(ApiTokenCreateSchema)
    @blp.response(201, ApiTokenCreatedSchema)
    @blp.alt_response(401, schema=ErrorSchema)
    @blp.alt_response(
        403,
        schema=ErrorSchema,
        description="A non-admin asked for someone else's token, or two factors are on and this "
        "session did not sign in with them.",
    )
    @blp.alt_response(404, schema=ErrorSchema, description="No such staff user in this firm.")
    @blp.alt_response(422, schema=ErrorSchema, description="The staff user is deactivated.")
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Create a token; the secret is in this answer only."""
        actor = current_staff()
        if mfa.enrolled(actor) and not passed_two_factors():
            raise Forbidden(
                "Create API tokens from a session that signed in with two factors.", code="mfa_required"
            )
        owner = staff_service.get_staff_user(actor.firm_id, data["staff_id"]) if "staff_id" in data else actor
        token, secret = staff_service.create_api_token_for(actor, owner, name=data["name"].strip())
        return {"token": token_payload(token, owner), "secret": secret}


@blp.route("/<token_id>")
class ApiTokenDetail(MethodView):
    @blp.response(204)
    @blp.alt_response(401, schema=ErrorSchema)
    @blp.alt_response(
        403, schema=ErrorSchema, description="A non-admin tried to revoke someone else's token."
    )
    @blp.alt_response(404, schema=ErrorSchema)
    def delete(self, token_id: str) -> None:
        """Revoke a token at once; calls with it answer 401 from now on."""
        staff_service.revoke_api_token_as(current_staff(), token_id)


@staff_blp.route("")
class StaffList(MethodView):
    @staff_blp.response(200, StaffListSchema)
    @staff_blp.alt_response(401, schema=ErrorSchema)
    def get(self) -> dict[str, Any]:
        """Every staff user of the firm, by name."""
        firm_id = current_staff().firm_id
        users = db.session.scalars(
            select(StaffUser).where(StaffUser.firm_id == firm_id).order_by(StaffUser.name, StaffUser.id)
        )
        return {"items": [staff_payload(u) for u in users]}

    @staff_blp.arguments(StaffCreateSchema)
    @staff_blp.response(201, StaffUserSchema)
    @staff_blp.alt_response(403, schema=ErrorSchema, description="Admins only.")
    @staff_blp.alt_response(409, schema=ErrorSchema, description="A staff user with this email exists.")
    @staff_blp.alt_response(422, schema=ErrorSchema)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Add a colleague (admins): the staff user is created without a password and emailed a
        link to choose one (single use, expires after INVITATION_MAX_AGE_DAYS). Audited."""
        user = staff_users.invite_staff_user(current_staff(), **data)
        return staff_payload(user)


@staff_blp.route("/<staff_id>")
class StaffDetail(MethodView):
    @staff_blp.arguments(StaffPatchSchema)
    @staff_blp.response(200, StaffUserSchema)
    @staff_blp.alt_response(403, schema=ErrorSchema, description="Admins only.")
    @staff_blp.alt_response(404, schema=ErrorSchema)
    @staff_blp.alt_response(409, schema=ErrorSchema, description="The firm's last active admin.")
    def patch(self, changes: dict[str, Any], staff_id: str) -> dict[str, Any]:
        """Change a staff user's `role` or `active` (admins). A deactivated user's sessions and
        API tokens stop at their next request; the last active admin cannot be demoted or
        deactivated (409). Audited."""
        actor = current_staff()
        user = staff_users.update_staff_user(
            actor, staff_users.get_staff_user(actor.firm_id, staff_id), changes
        )
        return staff_payload(user)
