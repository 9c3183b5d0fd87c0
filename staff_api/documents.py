"""An account's documents (R-SYN-3): the list, staff uploads (virus-free, de-duplicated by name
and size) and the content."""

from __future__ import annotations

from typing import Any

from flask import Response, request
from flask.views import MethodView
from flask_smorest import Blueprint

from portal_app.downloads import file_download
from portal_app.models import Document
from portal_app.services import accounts, documents
from portal_app.services.csv_files import FileTooLarge
from portal_app.services.errors import NotFound, UnsupportedMediaType, ValidationFailed
from staff_api.auth import current_staff
from staff_api.mail_schemas import (
    DocumentPageSchema,
    DocumentUploadedSchema,
    PageArgs,
)
from staff_api.paging import id_page
from staff_api.schemas import ErrorSchema
from staff_api.uploads import allow_body

blp = Blueprint("documents", __name__, description="Documents › Files on the account, uploads.")


def document_payload(document: Document) -> dict[str, Any]:
    return {
        "id": str(document.id),
        "account_id": str(document.account_id),
        "name": document.name,
        "size": document.size,
        "content_type": document.content_type,
        "sha256": document.sha256,
        "source": document.source,
        "new": document.opened_at is None,
        "created_at": document.created_at,
    }


DOCUMENT_BODY = {
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


@blp.route("/accounts/<account_id>/documents")
class AccountDocuments(MethodView):
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, DocumentPageSchema)
    @blp.alt_response(404, schema=ErrorSchema)
    def get(self, args: dict[str, Any], account_id: str) -> dict[str, Any]:
        """The account's documents, newest first; `new` until a staff user opens one."""
        account = accounts.get_account(current_staff().firm_id, account_id)
        return id_page(
            args,
            lambda limit, before: documents.list_documents(account.id, limit=limit, before_id=before),
            document_payload,
        )

    @blp.response(201, DocumentUploadedSchema)
    @blp.alt_response(200, schema=DocumentUploadedSchema, description="Skipped: same name and size.")
    @blp.alt_response(404, schema=ErrorSchema)
    @blp.alt_response(413, schema=ErrorSchema, description="Over 25 MB.")
    @blp.alt_response(415, schema=ErrorSchema)
    @blp.doc(requestBody=DOCUMENT_BODY)
    def post(self, account_id: str) -> Any:
        """Upload a file (multipart, field `file`, at most 25 MB). A file with the same name and
        size as one already there is skipped (200, the existing one); the same name with another
        size is saved as "name (2).ext"."""
        staff = current_staff()
        account = accounts.get_account(staff.firm_id, account_id)
        allow_body(documents.MAX_BYTES + 1024 * 1024, "The file is over 25 MB.")
        if request.mimetype != "multipart/form-data":
            raise UnsupportedMediaType("Send the file as multipart/form-data in the field `file`.")
        upload = request.files.get("file")
        if upload is None:
            raise ValidationFailed("Send the file in the form field `file`.", fields={"file": ["Required."]})
        try:
            data = upload.read(documents.MAX_BYTES + 1)
        finally:
            upload.close()
        if len(data) > documents.MAX_BYTES:
            raise FileTooLarge("The file is over 25 MB.")
        saved = documents.save(
            account,
            name=upload.filename or "upload",
            data=data,
            content_type=upload.mimetype or "application/octet-stream",
            source="upload",
            uploaded_by=staff,
        )
        assert saved.document is not None
        body = {**document_payload(saved.document), "skipped_reason": saved.skipped_reason}
        return body, (200 if saved.skipped_reason else 201)


@blp.route("/documents/<document_id>/content")
class DocumentContent(MethodView):
    @blp.response(200, content_type="application/octet-stream")
    @blp.alt_response(404, schema=ErrorSchema)
    def get(self, document_id: str) -> Response:
        """The file, always as a download with its name (never rendered in the app's origin);
        opening it clears NEW."""
        document = documents.get_document(current_staff().firm_id, document_id)
        path = documents.open_document(document)
        if not path.exists():
            raise NotFound("The file of this document is missing.")
        return file_download(
            path, mimetype=document.content_type or "application/octet-stream", name=document.name
        )
