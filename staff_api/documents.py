"""An account's documents (R-SYN-3, R-DOC-1..4): the list, staff uploads streamed to disk,
renaming and showing or hiding a document from the client, and the content."""

from __future__ import annotations

from typing import Any

from flask import Response, request
from flask.views import MethodView
from flask_smorest import Blueprint

from portal_app.downloads import file_download
from portal_app.models import Document
from portal_app.services import accounts, documents, notifications
from portal_app.services.errors import UnsupportedMediaType, ValidationFailed
from portal_app.upload_stream import streamed
from staff_api.auth import current_staff
from staff_api.mail_schemas import (
    DocumentPageSchema,
    DocumentPatchSchema,
    DocumentSchema,
    DocumentUploadedSchema,
    PageArgs,
)
from staff_api.paging import id_page
from staff_api.schemas import ErrorSchema

blp = Blueprint("documents", __name__, description="Documents › Files on the account, uploads.")


def uploaded_by(document: Document) -> dict[str, Any] | None:
    if document.source == "client":
        return {"kind": "client", "name": document.uploaded_by_name, "email": document.uploaded_by_address}
    if document.uploaded_by_id is not None or document.uploaded_by_name:
        return {"kind": "staff", "name": document.uploaded_by_name, "email": document.uploaded_by_address}
    return None


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
        "visible_to_client": document.visible_to_client,
        "uploaded_by": uploaded_by(document),
        "request_item_id": str(document.request_item_id) if document.request_item_id else None,
        "scan": document.scan,
        "scan_signature": document.scan_signature,
        "created_at": document.created_at,
    }


DOCUMENT_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {
                    "file": {"type": "string", "format": "binary"},
                    "visible_to_client": {"type": "boolean", "default": True},
                    "notify_client": {"type": "boolean", "default": True},
                },
                "required": ["file"],
            }
        }
    },
}


def _flag(name: str, default: bool) -> bool:
    value = request.form.get(name)
    if value is None or value == "":
        return default
    if value.lower() in ("true", "1", "yes", "on"):
        return True
    if value.lower() in ("false", "0", "no", "off"):
        return False
    raise ValidationFailed(f"`{name}` is true or false.", fields={name: ["true or false."]})


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
    @blp.alt_response(413, schema=ErrorSchema, description="Over UPLOAD_MAX_MB (default 2048 MiB).")
    @blp.alt_response(415, schema=ErrorSchema)
    @blp.doc(requestBody=DOCUMENT_BODY)
    def post(self, account_id: str) -> Any:
        """Upload a file (multipart, field `file`, at most `UPLOAD_MAX_MB` MiB, streamed to disk).
        `visible_to_client` (default true) puts it on the client's Documents page and
        `notify_client` (default true) emails the account's recipients of `documents_upload`
        (R-DOC-3). The type is sniffed from the bytes. A file with the same name and size as one
        already there is skipped (200, the existing one); the same name with another size is
        saved as "name (2).ext". With scanning on, `scan` is `pending` until clamd passes it."""
        staff = current_staff()
        account = accounts.get_account(staff.firm_id, account_id)
        if request.mimetype != "multipart/form-data":
            raise UnsupportedMediaType("Send the file as multipart/form-data in the field `file`.")
        upload = request.files.get("file")
        if upload is None:
            raise ValidationFailed("Send the file in the form field `file`.", fields={"file": ["Required."]})
        visible, notify = _flag("visible_to_client", True), _flag("notify_client", True)
        saved = documents.save(
            account,
            documents.Incoming(upload.filename or "upload", streamed=streamed(upload)),
            source="upload",
            uploaded_by=staff,
            visible_to_client=visible,
        )
        assert saved.document is not None
        if saved.skipped_reason is None and visible and notify:
            notifications.notify_new_document(saved.document)
        body = {**document_payload(saved.document), "skipped_reason": saved.skipped_reason}
        return body, (200 if saved.skipped_reason else 201)


@blp.route("/documents/<document_id>")
class DocumentDetail(MethodView):
    @blp.arguments(DocumentPatchSchema)
    @blp.response(200, DocumentSchema)
    @blp.alt_response(404, schema=ErrorSchema)
    def patch(self, changes: dict[str, Any], document_id: str) -> dict[str, Any]:
        """Rename a document or show or hide it from the account's clients (R-DOC-1)."""
        document = documents.get_document(current_staff().firm_id, document_id)
        return document_payload(documents.update_document(document, changes))


@blp.route("/documents/<document_id>/content")
class DocumentContent(MethodView):
    @blp.response(200, content_type="application/octet-stream")
    @blp.alt_response(404, schema=ErrorSchema)
    @blp.alt_response(409, schema=ErrorSchema, description="Still being scanned (scan_pending).")
    @blp.alt_response(410, schema=ErrorSchema, description="Infected: deleted.")
    def get(self, document_id: str) -> Response:
        """The file, always as a download with its name (never rendered in the app's origin);
        opening it clears NEW."""
        document = documents.get_document(current_staff().firm_id, document_id)
        path = documents.open_document(document)
        return file_download(path, name=document.name, mimetype=document.content_type)
