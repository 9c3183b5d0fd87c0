"""The account photo (R-PHO-1): served at one URL to the firm's staff (session or API token)
and to the account's portal users only; set and removed by a client from the profile page."""

from __future__ import annotations

from typing import Any

from flask import Response, abort, redirect, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from portal_app.extensions import db
from portal_app.models import Account, PortalUser, StaffUser
from portal_app.portal.accounts import account_or_404
from portal_app.portal.base import bp, client_page, refuse_expired_form
from portal_app.portal.documents import limit_uploads
from portal_app.portal.forms import ConfirmForm
from portal_app.services import client_accounts, photos
from portal_app.services.errors import ValidationFailed
from portal_app.services.staff import staff_for_api_token
from portal_app.upload_stream import streamed


def _may_see(account: Account) -> bool:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        staff = staff_for_api_token(header.partition(" ")[2].strip())
        return staff is not None and staff.firm_id == account.firm_id
    user = current_user._get_current_object() if current_user.is_authenticated else None
    if isinstance(user, StaffUser):
        return user.firm_id == account.firm_id
    if isinstance(user, PortalUser):
        return any(a.id == account.id for a in client_accounts.accessible_accounts(user))
    return False


@bp.get("/photos/<int:account_id>/<digest>.jpg")
def account_photo(account_id: int, digest: str) -> Response:
    """The 256-pixel photo (``?size=64``: the small one); 404 to anyone else (R-SEC-1)."""
    account = db.session.get(Account, account_id)
    if account is None or not _may_see(account):
        abort(404)
    path = photos.current_photo(account, digest, request.args.get("size", 256, type=int))
    if path is None:
        abort(404)
    response = Response(path.read_bytes(), mimetype="image/jpeg")  # a few kilobytes
    response.headers["Cache-Control"] = "private, max-age=86400, immutable"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.post("/portal/a/<int:account_id>/photo")
@limit_uploads
@client_page
def upload_photo(user: PortalUser, account_id: int) -> Any:
    if not ConfirmForm().validate_on_submit():
        refuse_expired_form()
    _accounts, current = account_or_404(user, account_id)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return redirect(url_for("portal.profile", photo_error="missing"), code=303)
    try:
        photos.set_photo(current, streamed(upload).path)
    except ValidationFailed:
        db.session.rollback()
        return redirect(url_for("portal.profile", photo_error="invalid"), code=303)
    return redirect(url_for("portal.profile", photo="saved"), code=303)


@bp.post("/portal/a/<int:account_id>/photo/delete")
@client_page
def delete_photo(user: PortalUser, account_id: int) -> Any:
    if not ConfirmForm().validate_on_submit():
        refuse_expired_form()
    _accounts, current = account_or_404(user, account_id)
    photos.remove_photo(current)
    return redirect(url_for("portal.profile", photo="removed"), code=303)


PHOTO_MESSAGES = {
    "saved": lambda: _("The account photo was saved."),
    "removed": lambda: _("The account photo was removed."),
    "missing": lambda: _("Choose an image first."),
    "invalid": lambda: _("This image could not be used. Choose a JPEG, PNG or WebP image of at most 10 MB."),
}
