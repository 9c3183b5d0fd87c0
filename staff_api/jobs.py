"""Bulk updates of contact settings, CSV imports, the jobs that run them, and Inbox+."""

from __future__ import annotations

from typing import Any

from flask import Response, request
from flask.views import MethodView
from flask_smorest import Blueprint

from portal_app.models import InboxItem, Job
from portal_app.services import bulk, csv_files, imports, inbox
from portal_app.services.errors import NotFound, UnsupportedMediaType, ValidationFailed
from staff_api.auth import current_staff
from staff_api.job_schemas import (
    BulkSettingsSchema,
    DryRunArgsSchema,
    InboxArgsSchema,
    InboxItemSchema,
    InboxPageSchema,
    JobPageSchema,
    JobSchema,
    PageArgsSchema,
)
from staff_api.paging import id_page
from staff_api.schemas import ErrorSchema
from staff_api.uploads import allow_body

blp = Blueprint("jobs", __name__, description="Bulk updates, imports and the background jobs that run them.")
inbox_blp = Blueprint("inbox", __name__, description="Inbox+: job reports and notices for staff.")

IDEMPOTENCY_HEADER = "Idempotency-Key"


def job_payload(job: Job) -> dict[str, Any]:
    done = job.cursor if job.state != "done" else job.progress_total
    return {
        "id": str(job.id),
        "kind": job.kind,
        "state": job.state,
        "progress": {"done": min(done, job.progress_total), "total": job.progress_total},
        "result": job.result or {},
        "errors": job.errors or [],
        "created_at": job.created_at,
        "finished_at": job.finished_at,
    }


def inbox_payload(item: InboxItem, read: bool) -> dict[str, Any]:
    return {
        "id": str(item.id),
        "kind": item.kind,
        "title": item.title,
        "body": item.body,
        "account_id": str(item.account_id) if item.account_id else None,
        "job_id": str(item.job_id) if item.job_id else None,
        "thread_id": (item.data or {}).get("thread_id"),
        "read": read,
        "created_at": item.created_at,
    }


def _idempotency_key() -> str | None:
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > 200 or not key.isprintable():
        raise ValidationFailed(
            "Idempotency-Key must be 1 to 200 printable characters.",
            fields={IDEMPOTENCY_HEADER: ["1 to 200 printable characters."]},
        )
    return key


@blp.route("/bulk/contact-settings")
class BulkContactSettings(MethodView):
    @blp.arguments(DryRunArgsSchema, location="query")
    @blp.arguments(BulkSettingsSchema)
    @blp.response(202, JobSchema)
    @blp.alt_response(422, schema=ErrorSchema, description="Not valid, or a filter that matches no account.")
    def post(self, args: dict[str, Any], data: dict[str, Any]) -> Any:
        """Change login, notify and email sync on many accounts in the background (R-BLK-*).

        Send an `Idempotency-Key` header to make a retried POST return the job it started
        instead of starting a second one. `?dry_run=true` starts the same job as a check, like
        an import's dry run: its `result` (`dry_run: true`) and `errors` report what would change
        (accounts, emails per setting, invitations, access grants), and nothing changes."""
        job, _new = bulk.start(
            current_staff(), data, idempotency_key=_idempotency_key(), dry_run=args["dry_run"]
        )
        return job_payload(job)


CSV_TYPES = ("text/csv", "application/csv", "text/plain", "application/vnd.ms-excel")


def _uploaded_file() -> tuple[bytes, str]:
    """The file from a multipart form (field `file`) or a text/csv body, size-checked first."""
    # the file plus the multipart envelope
    allow_body(csv_files.MAX_BYTES + 1024 * 1024, "The file is over 50 MB; split it into smaller files.")
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None:
            raise ValidationFailed(
                "Send the CSV file in the form field `file`.", fields={"file": ["Required."]}
            )
        try:
            return upload.read(csv_files.MAX_BYTES + 1), upload.filename or "upload.csv"
        finally:
            upload.close()  # large uploads are spooled to a temporary file
    if request.mimetype in CSV_TYPES:
        return request.get_data(cache=False), "upload.csv"
    raise UnsupportedMediaType("Send the file as multipart/form-data (field `file`) or as a text/csv body.")


IMPORT_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {"file": {"type": "string", "format": "binary"}},
                "required": ["file"],
            }
        },
        "text/csv": {"schema": {"type": "string"}},
    },
}


@blp.route("/imports")
class Imports(MethodView):
    @blp.arguments(DryRunArgsSchema, location="query")
    @blp.response(202, JobSchema)
    @blp.alt_response(413, schema=ErrorSchema, description="Over 50 MB or 100 000 rows.")
    @blp.alt_response(415, schema=ErrorSchema)
    @blp.alt_response(422, schema=ErrorSchema, description="Empty, binary, no header, unknown columns.")
    @blp.doc(requestBody=IMPORT_BODY)
    def post(self, args: dict[str, Any]) -> dict[str, Any]:
        """Import accounts, contacts and contact settings from a CSV file (R-IMP-*), in the
        background. `?dry_run=true` runs every check and reports what would be created, updated
        and refused, changing nothing. The columns are in docs/import.md."""
        data, filename = _uploaded_file()
        job = imports.start_import(current_staff(), data, filename=filename, dry_run=args["dry_run"])
        return job_payload(job)


@blp.route("/jobs/<job_id>/errors.csv")
class JobErrorsCsv(MethodView):
    @blp.response(200, content_type="text/csv")
    @blp.alt_response(404, schema=ErrorSchema)
    def get(self, job_id: str) -> Response:
        """An import's refused rows as uploaded, plus an `error` column: fix them, upload again."""
        job = inbox.get_job(current_staff().firm_id, job_id)
        if job.kind != imports.KIND:
            raise NotFound("Only imports have an errors.csv.")
        response = Response(imports.errors_csv(job), mimetype="text/csv")
        response.headers["Content-Disposition"] = f'attachment; filename="import-{job.id}-errors.csv"'
        return response


@blp.route("/jobs")
class Jobs(MethodView):
    @blp.arguments(PageArgsSchema, location="query")
    @blp.response(200, JobPageSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """The firm's jobs, newest first."""
        firm_id = current_staff().firm_id
        return id_page(
            args, lambda limit, before: inbox.list_jobs(firm_id, limit=limit, before_id=before), job_payload
        )


@blp.route("/jobs/<job_id>")
class JobDetail(MethodView):
    @blp.response(200, JobSchema)
    @blp.alt_response(404, schema=ErrorSchema)
    def get(self, job_id: str) -> dict[str, Any]:
        """A job's state, progress, result and every error."""
        return job_payload(inbox.get_job(current_staff().firm_id, job_id))


@inbox_blp.route("")
class Inbox(MethodView):
    @inbox_blp.arguments(InboxArgsSchema, location="query")
    @inbox_blp.response(200, InboxPageSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """The caller's Inbox+: items addressed to them and to the whole firm, newest first."""
        staff, unread = current_staff(), args["unread"]
        return id_page(
            args,
            lambda limit, before: inbox.list_items(staff, unread=unread, limit=limit, before_id=before),
            lambda row: inbox_payload(*row),
            row_id=lambda row: row[0].id,
        )


@inbox_blp.route("/<item_id>/read")
class InboxRead(MethodView):
    @inbox_blp.response(200, InboxItemSchema)
    @inbox_blp.alt_response(404, schema=ErrorSchema)
    def post(self, item_id: str) -> dict[str, Any]:
        """Mark an item read for the caller (other staff keep their own read state)."""
        item = inbox.mark_read(current_staff(), item_id)
        return inbox_payload(item, True)
