"""The account photo (R-PHO-1): set and remove; the photo itself is served at ``photo_url``."""

from __future__ import annotations

from typing import Any

from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint

from portal_app.services import accounts, photos
from portal_app.services.errors import UnsupportedMediaType, ValidationFailed
from portal_app.upload_stream import streamed
from staff_api.accounts import account_payload
from staff_api.auth import current_staff
from staff_api.schemas import AccountSchema, ErrorSchema

blp = Blueprint("photos", __name__, description="Accounts › The account photo.")

PHOTO_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {"file": {"type": "string", "format": "binary"}},
                "required": ["file"],
            }
        }
    },
}


@blp.route("/accounts/<account_id>/photo")
class AccountPhoto(MethodView):
    @blp.response(200, AccountSchema)
    @blp.alt_response(404, schema=ErrorSchema)
    @blp.alt_response(413, schema=ErrorSchema, description="Over 10 MB.")
    @blp.alt_response(
        422, schema=ErrorSchema, description="Not a JPEG, PNG or WebP image, or over 40 megapixels."
    )
    @blp.doc(requestBody=PHOTO_BODY)
    def put(self, account_id: str) -> dict[str, Any]:
        """Set the photo (multipart `file`: JPEG, PNG or WebP, at most 10 MB and 40 megapixels).
        It is re-encoded to squares of 256 and 64 pixels with every metadata block dropped."""
        account = accounts.get_account(current_staff().firm_id, account_id)
        if request.mimetype != "multipart/form-data":
            raise UnsupportedMediaType("Send the image as multipart/form-data in the field `file`.")
        upload = request.files.get("file")
        if upload is None:
            raise ValidationFailed("Send the image in the form field `file`.", fields={"file": ["Required."]})
        return account_payload(photos.set_photo(account, streamed(upload).path))

    @blp.response(200, AccountSchema)
    @blp.alt_response(404, schema=ErrorSchema)
    def delete(self, account_id: str) -> dict[str, Any]:
        """Remove the photo."""
        account = accounts.get_account(current_staff().firm_id, account_id)
        return account_payload(photos.remove_photo(account))
