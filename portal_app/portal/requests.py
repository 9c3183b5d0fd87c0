"""A client request on the portal (R-REQ-1): its items, files uploaded to an upload item, an
answer typed to an answer item, and submitting it once every item is complete. Plain forms,
each answered with the request page again (htmx swaps it in; without JavaScript a redirect)."""

from __future__ import annotations

from typing import Any

from flask import abort, current_app, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _

from portal_app.extensions import db
from portal_app.models import PortalUser, Todo
from portal_app.portal.accounts import account_or_404
from portal_app.portal.base import bp, client_page, refuse_expired_form
from portal_app.portal.documents import (
    client_name,
    incoming_files,
    limit_uploads,
    report_upload,
    upload_allowed,
    uploader,
    wants_json,
)
from portal_app.portal.forms import ConfirmForm
from portal_app.services import client_requests, documents
from portal_app.services.errors import Conflict, NotFound, ValidationFailed
from portal_app.services.todo_done import ClientDone


def _request(user: PortalUser, account_id: int, todo_id: int) -> tuple[list[Any], Any, Todo]:
    accounts, current = account_or_404(user, account_id)
    todo = db.session.get(Todo, todo_id)
    if todo is None or todo.account_id != current.id or not todo.item_count:
        abort(404)
    return accounts, current, todo


def render_request(
    user: PortalUser,
    account_id: int,
    todo_id: int,
    *,
    errors: dict[int, str] | None = None,
    status: int = 200,
) -> Any:
    accounts, current, todo = _request(user, account_id, todo_id)
    items = client_requests.items_of([todo.id]).get(todo.id, [])
    context = {
        "accounts": accounts,
        "current": current,
        "todo": todo,
        "items": items,
        "files": client_requests.documents_of_items([i.id for i in items]),
        "errors": errors or {},
        "all_complete": all(i.complete for i in items),
        "form": ConfirmForm(),
        "address": user.email.address,
        "max_mb": current_app.config["UPLOAD_MAX_MB"],
        "submitted": request.args.get("submitted") == "1",
    }
    return render_template("portal/request.html", **context), status


def _back(account_id: int, todo_id: int, user: PortalUser, **args: Any) -> Any:
    if request.headers.get("HX-Request"):
        return render_request(user, account_id, todo_id)
    return redirect(
        url_for("portal.client_request", account_id=account_id, todo_id=todo_id, **args), code=303
    )


@bp.get("/portal/a/<int:account_id>/requests/<int:todo_id>")
@client_page
def client_request(user: PortalUser, account_id: int, todo_id: int) -> Any:
    return render_request(user, account_id, todo_id)


def _item(todo: Todo, item_id: int) -> Any:
    try:
        return client_requests.get_item(todo, item_id)
    except NotFound:
        abort(404)


@bp.post("/portal/a/<int:account_id>/requests/<int:todo_id>/items/<int:item_id>/answer")
@client_page
def answer_request_item(user: PortalUser, account_id: int, todo_id: int, item_id: int) -> Any:
    if not ConfirmForm().validate_on_submit():
        refuse_expired_form()
    _accounts, _current, todo = _request(user, account_id, todo_id)
    item = _item(todo, item_id)
    try:
        client_requests.answer(todo, item, request.form.get("answer", ""))
    except ValidationFailed:
        db.session.rollback()
        return render_request(
            user, account_id, todo_id, errors={item_id: _("At most 5 000 characters.")}, status=422
        )
    except Conflict:
        db.session.rollback()
        return render_request(user, account_id, todo_id, status=409)
    return _back(account_id, todo_id, user)


@bp.post("/portal/a/<int:account_id>/requests/<int:todo_id>/items/<int:item_id>/files")
@limit_uploads
@client_page
def upload_request_files(user: PortalUser, account_id: int, todo_id: int, item_id: int) -> Any:
    """Files for an upload item: documents of the account with the item's id (R-REQ-1)."""
    upload_allowed()
    _accounts, current, todo = _request(user, account_id, todo_id)
    item = _item(todo, item_id)
    files, batch = incoming_files()
    problem = None
    if item.type != "upload":
        problem = _("This item asks for an answer.")
    elif todo.state != "open":
        problem = _("This request was already submitted.")
    elif not files:
        problem = _("Choose at least one file to upload.")
    if problem:
        if wants_json():
            return jsonify({"error": {"code": "validation_failed", "message": problem}}), 422
        return render_request(user, account_id, todo_id, errors={item_id: problem}, status=422)
    client = uploader(user)
    saved = documents.save_many(
        current, files, source="client", client=client, visible_to_client=True, request_item_id=item.id
    )
    client_requests.files_added(todo, item, [s.document for s in saved if s.document is not None])
    report_upload(client, current, saved, batch)
    if wants_json():
        return jsonify({"saved": sum(1 for s in saved if s.skipped_reason is None)}), 201
    return _back(account_id, todo_id, user)


@bp.post("/portal/a/<int:account_id>/requests/<int:todo_id>/submit")
@client_page
def submit_request(user: PortalUser, account_id: int, todo_id: int) -> Any:
    if not ConfirmForm().validate_on_submit():
        refuse_expired_form()
    _accounts, current, todo = _request(user, account_id, todo_id)
    try:
        client_requests.submit(
            ClientDone(email_id=user.email_id, address=user.email.address), todo, client_name(user)
        )
    except ValidationFailed:
        db.session.rollback()
        return render_request(user, account_id, todo_id, status=422)
    except Conflict:
        db.session.rollback()
    return redirect(url_for("portal.account_home", account_id=current.id, completed=todo.id), code=303)
