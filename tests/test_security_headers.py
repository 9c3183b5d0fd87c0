"""Browser security headers (R-SEC-14): every HTML page has the CSP and cannot be framed; JSON has
nosniff and, when it is someone's data, no-store. HSTS in production (test_production_gunicorn
checks it over real TLS)."""

from __future__ import annotations

import re
from pathlib import Path

from portal_app.headers import CSP
from tests.factories import STAFF_PASSWORD
from tests.portal_helpers import activate, home, setup_invite

SPEC_CSP = (
    "default-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'; "
    "base-uri 'none'; object-src 'none'"
)
TEMPLATES = Path(__file__).resolve().parents[1] / "templates"


def assert_html_headers(response) -> None:
    assert response.mimetype == "text/html"
    assert response.headers["Content-Security-Policy"] == SPEC_CSP
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "unsafe-inline" not in response.headers["Content-Security-Policy"]


def test_r_sec_14_every_html_page_carries_the_csp_and_cannot_be_framed(app, make, smtp):
    assert CSP == SPEC_CSP
    world = setup_invite(make, smtp, app)
    client = app.test_client()
    for path in (
        "/",
        "/portal/login",
        "/portal/password/forgot",
        "/portal/no-such-page",
        world.link,
        world.link + "x",
    ):
        assert_html_headers(client.get(path))
    activate(client, world.link)
    for response in (home(client), client.get("/portal/profile"), client.get("/portal/mfa")):
        assert response.status_code == 200
        assert_html_headers(response)
    # htmx partials too
    partial = client.get(f"/portal/a/{world.account.id}/", headers={"HX-Request": "true"})
    assert_html_headers(partial)


def test_r_sec_14_json_is_nosniff_and_no_store_when_it_is_someones_data(app, make):
    firm = make.firm()
    public = app.test_client().get("/api/v1/openapi.json")
    assert public.headers["X-Content-Type-Options"] == "nosniff"
    assert "no-store" not in public.headers.get("Cache-Control", "")
    token = firm.api.get("/accounts")
    assert (
        token.headers["X-Content-Type-Options"] == "nosniff" and token.headers["Cache-Control"] == "no-store"
    )
    client = app.test_client()
    session = client.post("/api/v1/auth/login", json={"email": firm.staff_email, "password": STAFF_PASSWORD})
    assert session.headers["Cache-Control"] == "no-store"
    assert client.get("/api/v1/auth/me").headers["Cache-Control"] == "no-store"
    refused = app.test_client().get("/api/v1/accounts", headers={"Authorization": "Bearer nope"})
    assert refused.status_code == 401 and refused.headers["X-Content-Type-Options"] == "nosniff"
    assert "Strict-Transport-Security" not in token.headers  # development serves plain HTTP


def test_r_sec_14_templates_hold_no_inline_script_style_or_handler():
    """The CSP forbids them; catch one before a browser does."""
    inline = re.compile(r"<script(?![^>]*\bsrc=)|\son[a-z]+\s*=|\sstyle\s*=|<style", re.I)
    offenders = [
        str(path.relative_to(TEMPLATES))
        for path in TEMPLATES.rglob("*.html")
        if not path.relative_to(TEMPLATES).parts[0] == "emails"  # emails are not served as pages
        and inline.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []
