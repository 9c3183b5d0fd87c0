"""The client portal: activation, login, password reset and the home page (R-LOG-*)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("portal", __name__)

from portal_app.portal import mfa_views, todo_views, views  # noqa: E402,F401  (registers the routes)
