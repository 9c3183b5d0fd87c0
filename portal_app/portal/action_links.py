"""Acting from an email without logging in (R-LFA-2..4): the pages under /portal/link/<token>.

A GET shows the link's one item and changes nothing (mail scanners open links); each POST
(CSRF-protected) performs one action through the services the signed-in portal uses. Nobody is
signed in here: the token in the path is the credential for its item alone, and the session
cookie these pages leave holds nothing but the CSRF secret, so the portal home, other to-dos and
the account switcher still ask for a login. Rate limited per IP and per link; Referrer-Policy
no-referrer and no-store (portal/base); the paths are redacted in the access log (redact.py).
"""

from __future__ import annotations

from typing import Any

import flask_babel
from flask import abort, current_app, g, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext

from portal_app.extensions import db, limiter
from portal_app.portal.base import bp, link_key, per_ip, refuse_expired_form
from portal_app.portal.documents import (
    incoming_files,
    report_upload,
    serve_document,
    upload_allowed,
    wants_json,
)
from portal_app.portal.forms import ConfirmForm
from portal_app.services import action_links, client_requests, documents, todos
from portal_app.services.action_links import ActionLink, LinkProblem
from portal_app.services.errors import Conflict, Forbidden, NotFound, ValidationFailed


def per_link() -> str:
    return current_app.config["LIMIT_PER_LINK"]


def _upload_limit() -> str:
    return current_app.config["LIMIT_UPLOADS"]


link_ip = limiter.limit(per_ip, scope="portal-link-ip")
link_token = limiter.limit(per_link, key_func=link_key, scope="portal-link-token")
link_uploads = limiter.limit(_upload_limit, key_func=link_key, methods=["POST"], scope="portal-link-uploads")

PROBLEMS = {
    "tampered": (400, _l("This link is not valid. Please use the link exactly as it is in the email.")),
    "link_expired": (
        410,
        _l("This link has expired. Please log in to your client portal, or ask your firm."),
    ),
    "todo_done": (410, _l("This to-do is already done. Nothing more is needed from you.")),
    "item_gone": (410, _l("What this link was for has been withdrawn by your firm.")),
    "link_dead": (410, _l("This link no longer works for your email address. Please ask your firm.")),
    "action_off": (410, _l("Your firm now asks you to log in to the client portal for this.")),
    "link_stale": (
        410,
        _l(
            "This link is from an earlier email. Please use the link in the most recent email from your firm."
        ),
    ),
}
assert set(PROBLEMS) == set(action_links.PROBLEMS)


def _problem_page(problem: LinkProblem) -> tuple[str, int]:
    status, message = PROBLEMS[problem.problem]
    extra = {"firm_name": problem.firm.name} if problem.firm is not None else {}
    return render_template(
        "portal/link_dead.html",
        problem=problem.problem,
        message=message,
        has_login=problem.has_login,
        **extra,
    ), status


def _link(token: str, *, done_here: bool = False) -> ActionLink | tuple[str, int]:
    try:
        link = action_links.check(token, done_here=done_here)
    except LinkProblem as problem:
        return _problem_page(problem)
    if link.language:  # the page speaks the email's language, as the activation page does
        g.language_hint = link.language
        flask_babel.refresh()
    return link


def render_link(link: ActionLink, *, errors: dict[Any, str] | None = None, status: int = 200) -> Any:
    items = client_requests.items_of([link.todo.id]).get(link.todo.id, []) if link.is_request else []
    context = {
        "link": link,
        "token": link.token,
        "firm_name": link.firm.name,
        "items": items,
        "files": client_requests.documents_of_items([i.id for i in items]) if items else {},
        "all_complete": all(i.complete for i in items),
        "errors": errors or {},
        "form": ConfirmForm(),
        "max_mb": current_app.config["UPLOAD_MAX_MB"],
        "max_files": current_app.config["UPLOAD_MAX_FILES"],
        "uploaded": request.args.get("uploaded", type=int),
        "sent": action_links.sent_by_link_email(link)
        if link.todo is None and "upload_documents" in link.actions
        else [],
    }
    return render_template("portal/link.html", **context), status


def _done_page(link: ActionLink) -> Any:
    """After acting: a redirect to the thank-you page, so a reload does not post again."""
    return redirect(url_for("portal.action_link_done", token=link.token), code=303)


def _posted(token: str) -> ActionLink | tuple[str, int]:
    if not ConfirmForm().validate_on_submit():
        refuse_expired_form()
    return _link(token)


@bp.get("/portal/link/<token>")
@link_ip
@link_token
def action_link(token: str) -> Any:
    """The link's one item and the actions the firm allows on it; nothing changes (R-LFA-3)."""
    link = _link(token)
    if not isinstance(link, ActionLink):
        return link
    return render_link(link)


@bp.get("/portal/link/<token>/done")
@link_ip
@link_token
def action_link_done(token: str) -> Any:
    """The thank-you page of a to-do this email completed from its link."""
    link = _link(token, done_here=True)
    if not isinstance(link, ActionLink):
        return link
    if link.todo is None or link.todo.state == "open":
        return redirect(url_for("portal.action_link", token=token), code=303)
    return render_template("portal/link_done.html", link=link, todo=link.todo, firm_name=link.firm.name)


@bp.get("/portal/link/<token>/documents/<int:document_id>")
@link_ip
@link_token
def action_link_document(token: str, document_id: int) -> Any:
    """A document of the link's item only, as the portal serves it (R-DOC-4)."""
    link = _link(token)
    if not isinstance(link, ActionLink):
        return link
    document = action_links.link_document(link, document_id)
    if document is None:
        abort(404)
    return serve_document(document)


@bp.post("/portal/link/<token>/<any(sign, approve):action>")
@link_ip
@link_token
def action_link_complete(token: str, action: str) -> Any:
    """Sign (only a signatory, R-SIG-1, having confirmed the statement) or approve the to-do."""
    link = _posted(token)
    if not isinstance(link, ActionLink):
        return link
    if link.view is None or link.todo is None:
        abort(404)
    if action == "sign" and request.form.get("confirm") != "yes":
        return render_link(link, errors={"sign": _("Tick the box to confirm your signature.")}, status=422)
    try:
        todo = todos.complete_by_client(link.client, link.view, action)
    except Forbidden:
        db.session.rollback()
        abort(403, _("Only authorised signers can sign this."))
    except ValidationFailed:
        db.session.rollback()
        abort(400, _("This to-do cannot be completed that way."))
    except Conflict:
        db.session.rollback()
        return _problem_page(LinkProblem("todo_done", firm=link.firm, has_login=link.has_login))
    action_links.audit(link, f"todo.{todo.done_action}", {"todo_id": str(todo.id), "title": todo.title})
    return _done_page(link)


def _request_item(link: ActionLink, item_id: int) -> Any:
    if not link.is_request or link.todo is None:
        abort(404)
    try:
        return client_requests.get_item(link.todo, item_id)
    except NotFound:
        abort(404)


def _back(link: ActionLink, **args: Any) -> Any:
    return redirect(url_for("portal.action_link", token=link.token, **args), code=303)


@bp.post("/portal/link/<token>/items/<int:item_id>/answer")
@link_ip
@link_token
def action_link_answer(token: str, item_id: int) -> Any:
    link = _posted(token)
    if not isinstance(link, ActionLink):
        return link
    item = _request_item(link, item_id)
    assert link.todo is not None
    try:
        client_requests.answer(link.todo, item, request.form.get("answer", ""))
    except ValidationFailed:
        db.session.rollback()
        return render_link(link, errors={item_id: _("At most 5 000 characters.")}, status=422)
    return _back(link)


def _save_files(
    link: ActionLink, files: list[documents.Incoming], batch: str, *, request_item_id: int | None = None
) -> list[documents.Saved]:
    saved = documents.save_many(
        link.account,
        files,
        source="client",
        client=link.uploader,
        visible_to_client=True,
        request_item_id=request_item_id,
    )
    report_upload(link.uploader, link.account, saved, batch or link.key())
    new = [s.document.name for s in saved if s.document is not None and s.skipped_reason is None]
    if new:
        action_links.audit(link, "documents.uploaded", {"names": new})
    return saved


def _upload_refused(link: ActionLink, key: Any, message: str) -> Any:
    if wants_json():
        return jsonify({"error": {"code": "validation_failed", "message": message}}), 422
    return render_link(link, errors={key: message}, status=422)


@bp.post("/portal/link/<token>/items/<int:item_id>/files")
@link_ip
@link_token
@link_uploads
def action_link_item_files(token: str, item_id: int) -> Any:
    """Files for an upload item of the link's client request (R-REQ-1, R-DOC-2/4)."""
    upload_allowed()
    link = _link(token)
    if not isinstance(link, ActionLink):
        return link
    item = _request_item(link, item_id)
    assert link.todo is not None
    if item.type != "upload":
        return _upload_refused(link, item_id, _("This item asks for an answer."))
    files, batch = incoming_files()
    if not files:
        return _upload_refused(link, item_id, _("Choose at least one file to upload."))
    saved = _save_files(link, files, batch, request_item_id=item.id)
    client_requests.files_added(link.todo, item, [s.document for s in saved if s.document is not None])
    if wants_json():
        return jsonify({"saved": sum(1 for s in saved if s.skipped_reason is None)}), 201
    return _back(link)


@bp.post("/portal/link/<token>/submit")
@link_ip
@link_token
def action_link_submit(token: str) -> Any:
    link = _posted(token)
    if not isinstance(link, ActionLink):
        return link
    if not link.is_request or link.todo is None:
        abort(404)
    try:
        todo = client_requests.submit(link.client, link.todo, link.name)
    except ValidationFailed:
        db.session.rollback()
        return render_link(
            link, errors={"submit": _("Complete every item to submit the request.")}, status=422
        )
    except Conflict:
        db.session.rollback()
        return _problem_page(LinkProblem("todo_done", firm=link.firm, has_login=link.has_login))
    action_links.audit(link, "todo.done", {"todo_id": str(todo.id), "title": todo.title})
    return _done_page(link)


@bp.post("/portal/link/<token>/upload")
@link_ip
@link_token
@link_uploads
def action_link_upload(token: str) -> Any:
    """Files sent to the firm from a documents email, with ``upload_documents`` allowed."""
    upload_allowed()
    link = _link(token)
    if not isinstance(link, ActionLink):
        return link
    if link.todo is not None or "upload_documents" not in link.actions:
        abort(404)
    files, batch = incoming_files()
    if not files:
        return _upload_refused(link, "upload", _("Choose at least one file to upload."))
    saved = _save_files(link, files, batch)
    new = sum(1 for s in saved if s.skipped_reason is None)
    if wants_json():
        message = (
            ngettext("%(num)d document uploaded.", "%(num)d documents uploaded.", new)
            if new
            else _("This file is already there.")
        )
        return jsonify({"saved": new, "skipped": len(saved) - new, "message": message}), 201
    return _back(link, uploaded=new)
