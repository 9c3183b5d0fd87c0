"""Domain errors; the API turns them into its error shape, the portal into pages."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, fields: dict[str, Any] | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
        if code:
            self.code = code


class NotFound(DomainError):
    status = 404
    code = "not_found"


class Gone(DomainError):
    status = 410
    code = "gone"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"


class Conflict(DomainError):
    status = 409
    code = "conflict"


class ValidationFailed(DomainError):
    status = 422
    code = "validation_failed"


class UnsupportedMediaType(DomainError):
    status = 415
    code = "unsupported_media_type"
