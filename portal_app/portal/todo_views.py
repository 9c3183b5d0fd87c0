"""Clients act on their to-dos (R-POR-6): read the documents, then sign (R-SIG-1), approve or
mark done. Inline with htmx, whole pages without JavaScript."""

from __future__ import annotations

from typing import Any

from flask import abort, redirect, render_template, request, url_for
from flask_babel import gettext as _

from portal_app.extensions import db
from portal_app.models import Contact, PortalUser
from portal_app.portal.accounts import account_or_404, render_account
from portal_app.portal.base import bp, client_page, refuse_expired_form
from portal_app.portal.documents import serve_document
from portal_app.portal.forms import ConfirmForm
from portal_app.services import todos
from portal_app.services.errors import Conflict, Forbidden, NotFound, ValidationFailed


def _signer_name(user: PortalUser) -> str:
    contact = db.session.get(Contact, user.email.contact_id)
    return contact.display_name if contact is not None else user.email.address


def signed_in_client(user: PortalUser) -> todos.ClientDone:
    return todos.ClientDone(email_id=user.email_id, address=user.email.address, via="portal")


def _client_todo(user: PortalUser, account_id: int, todo_id: int) -> todos.ClientTodo:
    try:
        return todos.client_todo(user, account_id, todo_id)
    except NotFound:
        abort(404)


@bp.get("/portal/a/<int:account_id>/todos/<int:todo_id>/sign")
@client_page
def sign_todo(user: PortalUser, account_id: int, todo_id: int) -> Any:
    """The signing step: the documents to read, "I, <name>, sign …" and a button."""
    accounts, current = account_or_404(user, account_id)
    view = _client_todo(user, current.id, todo_id)
    if view.todo.state != "open":
        return redirect(
            url_for("portal.account_home", account_id=current.id, completed=view.todo.id), code=303
        )
    if view.action != "sign":
        abort(404)
    if not view.allowed:
        abort(403, _("Only authorised signers can sign this."))
    context = {
        "item": view.todo,
        "documents": todos.documents_of([view.todo.id]).get(view.todo.id, []),
        "current": current,
        "accounts": accounts,
        "signer_name": _signer_name(user),
        "address": user.email.address,
        "firm_name": user.firm.name,
        "form": ConfirmForm(),
    }
    template = "portal/_sign_confirm.html" if request.headers.get("HX-Request") else "portal/sign.html"
    return render_template(template, **context)


@bp.get("/portal/a/<int:account_id>/todos/<int:todo_id>/documents/<int:document_id>")
@client_page
def todo_document(user: PortalUser, account_id: int, todo_id: int, document_id: int) -> Any:
    """A document the to-do asks the client to read; only that to-do's, on an account the client
    may see (404 otherwise), as a download (R-DOC-4)."""
    _accounts, current = account_or_404(user, account_id)
    view = _client_todo(user, current.id, todo_id)
    try:
        document = todos.todo_document(view.todo, document_id)
    except NotFound:
        abort(404)
    return serve_document(document)


@bp.post("/portal/a/<int:account_id>/todos/<int:todo_id>/<any(sign, approve, done):action>")
@client_page
def complete_todo(user: PortalUser, account_id: int, todo_id: int, action: str) -> Any:
    """Sign, approve or mark done (R-POR-6); signing needs ``signatory`` (R-SIG-1: 403, and
    nothing changes) and the confirmation step."""
    form = ConfirmForm()
    if not form.validate_on_submit():
        refuse_expired_form()
    accounts, current = account_or_404(user, account_id)
    view = _client_todo(user, current.id, todo_id)
    if action == "sign" and view.action == "sign" and view.allowed and request.form.get("confirm") != "yes":
        return redirect(url_for("portal.sign_todo", account_id=current.id, todo_id=todo_id), code=303)
    try:
        todo = todos.complete_by_client(signed_in_client(user), view, action)
    except Forbidden:
        db.session.rollback()
        abort(403, _("Only authorised signers can sign this."))
    except ValidationFailed:
        db.session.rollback()
        abort(400, _("This to-do cannot be completed that way."))
    except Conflict:
        db.session.rollback()
        return redirect(url_for("portal.account_home", account_id=current.id, completed=todo_id), code=303)
    if request.headers.get("HX-Request"):
        response = render_account(user, accounts, current, completed=todo)
        response.headers["HX-Push-Url"] = url_for("portal.account_home", account_id=current.id)
        return response
    return redirect(url_for("portal.account_home", account_id=current.id, completed=todo.id), code=303)
