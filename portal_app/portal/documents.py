"""The client's Documents page (R-DOC-1, R-DOC-2): what the firm shared and what the client
uploaded on the current account, downloads, uploads of many files at once (a plain form; with
JavaScript drag-and-drop and a progress bar per file, static/js/uploads.js), and deleting one's
own upload within 10 minutes. Every request re-checks which accounts the client may see."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import unquote

from flask import Response, abort, current_app, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_wtf.csrf import validate_csrf
from sqlalchemy import select
from wtforms.validators import ValidationError

from portal_app.downloads import file_download
from portal_app.extensions import db, limiter
from portal_app.models import Account, Contact, Document, InboxItem, PortalUser, utcnow
from portal_app.portal.accounts import account_or_404
from portal_app.portal.base import bp, client_page, portal_user, refuse_expired_form
from portal_app.portal.forms import ConfirmForm
from portal_app.services import client_accounts, documents
from portal_app.services.errors import DomainError, NotFound
from portal_app.upload_stream import receive_raw_file, streamed


def _upload_key() -> str:
    user = portal_user()
    return f"uploads:{user.id if user else request.remote_addr}"


limit_uploads = limiter.limit(
    lambda: current_app.config["LIMIT_UPLOADS"],
    key_func=_upload_key,
    methods=["POST"],
    scope="portal-uploads",
)


def serve_document(document: Document) -> Response:
    """A document to a client: never one clamd has not passed (409 page while pending, 410 when
    it was infected), always as an attachment (R-DOC-4)."""
    try:
        path = documents.file_of(document)
    except DomainError as exc:
        abort(exc.status if exc.status in (404, 409, 410) else 404, exc.message)
    return file_download(path, name=document.name, mimetype=document.content_type)


def client_name(user: PortalUser) -> str:
    contact = db.session.get(Contact, user.email.contact_id)
    return (contact.display_name if contact is not None else "") or user.email.address


def uploader(user: PortalUser) -> documents.ClientUploader:
    return documents.ClientUploader(
        email_id=user.email_id, name=client_name(user), address=user.email.address
    )


def raw_upload() -> bool:
    """The page's JavaScript sends each file as the request body itself (``X-File-Name``)."""
    return request.mimetype == "application/octet-stream"


def upload_allowed() -> None:
    """CSRF (R-SEC-2) for both shapes: the form's token, or the same session-bound token in the
    JavaScript's ``X-CSRFToken`` header (the portal's pages send no Referer, so, as for its
    forms, the token is the check)."""
    if raw_upload():
        try:
            validate_csrf(request.headers.get("X-CSRFToken", ""))
        except ValidationError:
            refuse_expired_form()
    elif not ConfirmForm().validate_on_submit():
        refuse_expired_form()


def incoming_files() -> tuple[list[documents.Incoming], str]:
    """This upload's files and its batch id: the files of a multipart form (field ``file``,
    many), or the one file of a raw body."""
    if raw_upload():
        name = unquote(request.headers.get("X-File-Name", "")) or "upload"
        batch = request.headers.get("X-Upload-Batch", "")
        return [documents.Incoming(name, streamed=receive_raw_file())], batch[:40]
    files = [f for f in request.files.getlist("file") if f.filename]
    batch = request.form.get("batch") or ""
    return [documents.Incoming(f.filename, streamed=streamed(f)) for f in files], batch[:40]


def report_upload(
    client: documents.ClientUploader, account: Account, saved: list[documents.Saved], batch: str
) -> None:
    """One Inbox+ item per upload, not per file (R-DOC-2): the files a page sends one request
    each (JavaScript) share a batch id and so one item, whose count grows."""
    new = [s.document for s in saved if s.document is not None and s.skipped_reason is None]
    if not new:
        return
    name = client.name
    recent = db.session.scalars(
        select(InboxItem).where(
            InboxItem.firm_id == account.firm_id,
            InboxItem.account_id == account.id,
            InboxItem.kind == "client_upload",
            InboxItem.created_at > utcnow() - timedelta(hours=1),
        )
    ).all()
    item = next(
        (
            i
            for i in recent
            if batch and i.data.get("batch") == batch and i.data.get("email_id") == client.email_id
        ),
        None,
    )
    ids = ([*item.data.get("document_ids", [])] if item else []) + [str(d.id) for d in new]
    title = f"{name} uploaded {len(ids)} document{'s' if len(ids) != 1 else ''} to {account.name}"[:300]
    body = "\n".join(d.name for d in new)
    if item is None:
        db.session.add(
            InboxItem(
                firm_id=account.firm_id,
                account_id=account.id,
                kind="client_upload",
                title=title,
                body=body,
                data={"batch": batch, "email_id": client.email_id, "document_ids": ids},
                created_at=utcnow(),
            )
        )
    else:
        item.title, item.body = title, (item.body + "\n" + body).strip()
        item.data = {**item.data, "document_ids": ids}


def wants_json() -> bool:
    return request.headers.get("X-Upload") == "xhr"


@bp.get("/portal/documents")
@client_page
def documents_home(user: PortalUser) -> Any:
    """The Documents page of the current account."""
    accounts = client_accounts.accessible_accounts(user)
    if not accounts:
        return redirect(url_for("portal.home"))
    current = next((a for a in accounts if a.id == user.current_account_id), accounts[0])
    return redirect(url_for("portal.account_documents", account_id=current.id))


def render_documents(
    user: PortalUser, account_id: int, *, errors: list[str] | None = None, status: int = 200
) -> Any:
    accounts, current = account_or_404(user, account_id)
    if user.current_account_id != current.id:
        user.current_account_id = current.id
    items = documents.client_documents(current.id)
    context = {
        "accounts": accounts,
        "current": current,
        "items": items,
        "deletable": {d.id for d in items if documents.deletable_by(d, user.email_id)},
        "uploaded": request.args.get("uploaded", type=int),
        "skipped": request.args.get("skipped", type=int),
        "errors": errors or [],
        "form": ConfirmForm(),
        "address": user.email.address,
        "max_mb": current_app.config["UPLOAD_MAX_MB"],
        "max_files": current_app.config["UPLOAD_MAX_FILES"],
    }
    return render_template("portal/documents.html", **context), status


@bp.get("/portal/a/<int:account_id>/documents")
@client_page
def account_documents(user: PortalUser, account_id: int) -> Any:
    return render_documents(user, account_id)


@bp.post("/portal/a/<int:account_id>/documents")
@limit_uploads
@client_page
def upload_documents(user: PortalUser, account_id: int) -> Any:
    """Many files in one form (field ``file``), each streamed to disk (R-DOC-2)."""
    _accounts, current = account_or_404(user, account_id)
    upload_allowed()
    files, batch = incoming_files()
    if not files:
        message = _("Choose at least one file to upload.")
        if wants_json():
            return jsonify({"error": {"code": "validation_failed", "message": message}}), 422
        return render_documents(user, current.id, errors=[message], status=422)
    client = uploader(user)
    saved = documents.save_many(current, files, source="client", client=client, visible_to_client=True)
    report_upload(client, current, saved, batch)
    new = sum(1 for s in saved if s.skipped_reason is None)
    if wants_json():
        return jsonify(
            {
                "saved": new,
                "skipped": len(saved) - new,
                "message": ngettext("%(num)d document uploaded.", "%(num)d documents uploaded.", new)
                if new
                else _("This file is already there."),
            }
        ), 201
    return redirect(
        url_for("portal.account_documents", account_id=current.id, uploaded=new, skipped=len(saved) - new),
        code=303,
    )


def _visible_document(user: PortalUser, document_id: int) -> Document:
    """A visible document of any account the client may see; 404 otherwise (R-POR-3)."""
    document = db.session.get(Document, document_id)
    allowed = {a.id for a in client_accounts.accessible_accounts(user)}
    if document is None or document.account_id not in allowed:
        abort(404)
    try:
        return documents.client_document(document.account_id, document.id)
    except NotFound:
        abort(404)


@bp.get("/portal/documents/<int:document_id>")
@client_page
def download_document(user: PortalUser, document_id: int) -> Any:
    return serve_document(_visible_document(user, document_id))


@bp.post("/portal/documents/<int:document_id>/delete")
@client_page
def delete_document(user: PortalUser, document_id: int) -> Any:
    """A client's own upload, within 10 minutes of it (R-DOC-2)."""
    form = ConfirmForm()
    if not form.validate_on_submit():
        refuse_expired_form()
    document = _visible_document(user, document_id)
    account_id = document.account_id
    if not documents.deletable_by(document, user.email_id):
        return render_documents(
            user,
            account_id,
            errors=[_("You can delete your own uploads only, within 10 minutes of uploading them.")],
            status=403,
        )
    documents.delete_client_upload(document, user.email_id)
    return redirect(url_for("portal.account_documents", account_id=account_id), code=303)
