"""The interactive API reference at /api/v1/docs: Swagger UI (vendored under static/, pinned)
reading the same OpenAPI document the schemas produce. The page holds no data; calls made from it
carry the staff session (with its CSRF token) or the token pasted into its Authorize field."""

from __future__ import annotations

from flask import Blueprint, render_template

bp = Blueprint("api-reference", __name__)

SWAGGER_UI = "vendor/swagger-ui-5.35.0"


@bp.get("/api/v1/docs")
def page() -> str:
    return render_template("api/reference.html", swagger_ui=SWAGGER_UI)
