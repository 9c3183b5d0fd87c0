"""The client portal blueprint (views grow with the invitations and portal issues)."""

from __future__ import annotations

from flask import Blueprint, render_template

bp = Blueprint("portal", __name__)


@bp.get("/")
def index() -> str:
    return render_template("index.html")
