"""An account's contacts (links) and their contact settings."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from portal_app.models import AccountContact, Contact, ContactEmail, ContactSettings
from portal_app.services import (
    accounts,
    client_passwords,
    contacts,
    invitations,
    links,
    mfa,
    passkey_reports,
    settings,
)
from portal_app.services.audit import Actor
from portal_app.services.errors import Conflict
from portal_app.services.invitation_state import invitation_states
from staff_api.auth import current_staff
from staff_api.schemas import (
    ContactSettingsListSchema,
    ErrorSchema,
    InvitationSendSchema,
    LinkCreateSchema,
    LinkPatchSchema,
    LinkSchema,
    SettingsPatchSchema,
    SettingsSchema,
)

blp = Blueprint("account_contacts", __name__, description="An account's contacts and their contact settings.")


def staff_actor() -> Actor:
    staff = current_staff()
    return Actor("staff", staff.id, staff.email)


def link_payload(link: AccountContact, contact: Contact) -> dict[str, Any]:
    return {
        "account_id": str(link.account_id),
        "contact_id": str(link.contact_id),
        "contact_name": contact.display_name,
        "description": link.description,
        "signer_priority": link.signer_priority,
    }


def settings_payload(
    row: ContactSettings, contact: Contact, email: ContactEmail, invitation: dict[str, Any]
) -> dict[str, Any]:
    return {
        "account_id": str(row.account_id),
        "contact_id": str(row.contact_id),
        "contact_name": contact.display_name,
        "email_id": str(row.email_id),
        "address": email.address,
        "login": row.login,
        "notify": row.notify,
        "notification_preferences": row.notification_preferences,
        "email_sync": row.email_sync,
        "auto_save_attachments": row.auto_save_attachments,
        "signatory": row.signatory,
        "invitation": invitation,
    }


@blp.route("/<account_id>/contacts")
class AccountContacts(MethodView):
    @blp.arguments(LinkCreateSchema)
    @blp.response(201, LinkSchema)
    @blp.alt_response(404, schema=ErrorSchema)
    @blp.alt_response(409, schema=ErrorSchema, description="Already linked.")
    def post(self, data: dict[str, Any], account_id: str) -> dict[str, Any]:
        """Link a contact, with a description and signer priority for this account."""
        firm_id = current_staff().firm_id
        account = accounts.get_account(firm_id, account_id)
        contact = contacts.get_contact(firm_id, data["contact_id"])
        link = links.link_contact(
            account, contact, description=data["description"], signer_priority=data.get("signer_priority")
        )
        return link_payload(link, contact)


@blp.route("/<account_id>/contacts/<contact_id>")
class AccountContactDetail(MethodView):
    @blp.arguments(LinkPatchSchema)
    @blp.response(200, LinkSchema)
    @blp.alt_response(404, schema=ErrorSchema)
    def patch(self, data: dict[str, Any], account_id: str, contact_id: str) -> dict[str, Any]:
        """Edit the link's description or signer priority."""
        account = accounts.get_account(current_staff().firm_id, account_id)
        link = links.get_link(account, contact_id)
        links.update_link(link, **data)
        return link_payload(link, link.contact)

    @blp.response(204)
    @blp.alt_response(404, schema=ErrorSchema)
    @blp.alt_response(409, schema=ErrorSchema, description="The account's last contact (R-LNK-2).")
    def delete(self, account_id: str, contact_id: str) -> None:
        """Unlink a contact; its settings on this account go with the link."""
        account = accounts.get_account(current_staff().firm_id, account_id)
        links.unlink_contact(links.get_link(account, contact_id))


@blp.route("/<account_id>/contact-settings")
class AccountContactSettings(MethodView):
    @blp.response(200, ContactSettingsListSchema)
    @blp.alt_response(404, schema=ErrorSchema)
    def get(self, account_id: str) -> dict[str, Any]:
        """Every linked contact (alphabetically) with every email, its settings and invitation state."""
        account = accounts.get_account(current_staff().firm_id, account_id)
        rows = settings.list_account_settings(account)
        states = invitation_states(account.id, [email.id for _, _, email, _ in rows])
        groups: list[dict[str, Any]] = []
        for link, contact, email, row in rows:
            if not groups or groups[-1]["contact_id"] != str(contact.id):
                groups.append(
                    {
                        "contact_id": str(contact.id),
                        "contact_name": contact.display_name,
                        "description": link.description,
                        "signer_priority": link.signer_priority,
                        "emails": [],
                    }
                )
            groups[-1]["emails"].append(settings_payload(row, contact, email, states[email.id]))
        return {"contacts": groups}


@blp.route("/<account_id>/contact-settings/<email_id>")
class ContactSettingsDetail(MethodView):
    @blp.arguments(SettingsPatchSchema)
    @blp.response(200, SettingsSchema)
    @blp.alt_response(404, schema=ErrorSchema)
    def patch(self, changes: dict[str, Any], account_id: str, email_id: str) -> dict[str, Any]:
        """Change login, notify (+ preferences), email sync, attachments, signatory; audited.

        `login: true` with `send_invitation: true` invites at once; if the email already has an
        activated portal login, access is granted at once and an "access granted" email goes
        out instead (R-LOG-6). `login: false` revokes outstanding invitations (R-LOG-7)."""
        account = accounts.get_account(current_staff().firm_id, account_id)
        row = settings.get_settings(account, email_id)
        send = changes.pop("send_invitation", False)
        settings.apply_settings_change(
            [row],
            changes,
            actor=staff_actor(),
            sent_by=current_staff(),
            invite=settings.INVITE_ALWAYS if send else settings.INVITE_NONE,
            message=changes.pop("invitation_message", ""),
            language=changes.pop("invitation_language", None),
        )
        return _settings_answer(account.id, row)


def _settings_answer(account_id: int, row: ContactSettings) -> dict[str, Any]:
    state = invitation_states(account_id, [row.email_id])[row.email_id]
    return settings_payload(row, row.contact, row.email, state)


@blp.route("/<account_id>/contact-settings/<email_id>/invitation")
class ContactInvitation(MethodView):
    @blp.arguments(InvitationSendSchema)
    @blp.response(200, SettingsSchema)
    @blp.alt_response(404, schema=ErrorSchema)
    @blp.alt_response(409, schema=ErrorSchema, description="Login is off, or the email is already activated.")
    def post(self, data: dict[str, Any], account_id: str, email_id: str) -> dict[str, Any]:
        """Send or resend the invitation; a resend invalidates every earlier link (R-LOG-5)."""
        account = accounts.get_account(current_staff().firm_id, account_id)
        row = settings.get_settings(account, email_id)
        invitations.send_invitation(
            row,
            sent_by=current_staff(),
            message=data.get("invitation_message", ""),
            language=data.get("invitation_language"),
        )
        return _settings_answer(account.id, row)

    @blp.response(204)
    @blp.alt_response(404, schema=ErrorSchema)
    @blp.alt_response(409, schema=ErrorSchema, description="No outstanding invitation.")
    def delete(self, account_id: str, email_id: str) -> None:
        """Revoke the outstanding invitation: its link stops working at once."""
        account = accounts.get_account(current_staff().firm_id, account_id)
        invitations.revoke_invitation(settings.get_settings(account, email_id))


@blp.route("/<account_id>/contact-settings/<email_id>/password-reset")
class ContactPasswordReset(MethodView):
    @blp.response(202)
    @blp.alt_response(404, schema=ErrorSchema)
    @blp.alt_response(409, schema=ErrorSchema, description="The email has no activated portal login.")
    def post(self, account_id: str, email_id: str) -> None:
        """Email the client a password-reset link (R-LOG-9); staff never see the password."""
        account = accounts.get_account(current_staff().firm_id, account_id)
        row = settings.get_settings(account, email_id)
        user = invitations.activated_user(row.email_id)
        if user is None:
            raise Conflict("This email has no activated portal login; send an invitation instead.")
        client_passwords.queue_password_reset(user)


@blp.route("/<account_id>/contact-settings/<email_id>/mfa")
class ContactMfaReset(MethodView):
    @blp.response(204)
    @blp.alt_response(404, schema=ErrorSchema)
    @blp.alt_response(409, schema=ErrorSchema, description="The client has no second factor.")
    def delete(self, account_id: str, email_id: str) -> None:
        """Reset the client's second factor (R-SEC-13): it is removed, never shown. Audited; the
        client is emailed, signed out, and enrols again at the next sign-in if the firm requires it."""
        staff = current_staff()
        account = accounts.get_account(staff.firm_id, account_id)
        row = settings.get_settings(account, email_id)
        if not mfa.reset_client(row, staff):
            raise Conflict("This client has no second factor to reset.", code="mfa_not_enabled")


class ClientPasskeysSchema(Schema):
    count = fields.Integer(required=True, metadata={"description": "How many passkeys the client has."})


@blp.route("/<account_id>/contact-settings/<email_id>/passkeys")
class ContactPasskeys(MethodView):
    @blp.response(200, ClientPasskeysSchema)
    @blp.alt_response(404, schema=ErrorSchema)
    def get(self, account_id: str, email_id: str) -> dict[str, int]:
        """How many passkeys the client signs in with (R-SEC-15); staff never see them."""
        account = accounts.get_account(current_staff().firm_id, account_id)
        return {"count": passkey_reports.client_passkey_count(settings.get_settings(account, email_id))}

    @blp.response(204)
    @blp.alt_response(404, schema=ErrorSchema)
    @blp.alt_response(409, schema=ErrorSchema, description="The client has no passkeys.")
    def delete(self, account_id: str, email_id: str) -> None:
        """Remove every passkey of the client, for a lost phone or a copied key. Audited; the
        client is emailed and signs in with the password (and second step) again."""
        staff = current_staff()
        account = accounts.get_account(staff.firm_id, account_id)
        if not passkey_reports.remove_client_passkeys(settings.get_settings(account, email_id), staff):
            raise Conflict("This client has no passkeys to remove.", code="no_passkeys")
