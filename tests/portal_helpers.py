"""Helpers for portal tests: invite through the staff API, read links out of real emails,
fill portal forms with their CSRF tokens."""

from __future__ import annotations

import re
from email.message import EmailMessage
from types import SimpleNamespace
from typing import Any

from flask.testing import FlaskClient

GOOD_PASSWORD = "maple river lantern 42"
_CSRF = re.compile(r'name="(?:[\w-]+-)?csrf_token" type="hidden" value="([^"]+)"')
_LINK = re.compile(r"https?://[^/\s]+(/portal/(?:activate|password/reset)/[^\s\"<]+)")


def csrf_from(html: bytes | str) -> str:
    text = html.decode() if isinstance(html, bytes) else html
    match = _CSRF.search(text)
    assert match, "no CSRF token on the page"
    return match.group(1)


def link_in(message: EmailMessage) -> str:
    """The portal path of the link in an email, from its plain-text part."""
    text = message.get_body(("plain",)).get_content()
    match = _LINK.search(text)
    assert match, text
    return match.group(1)


def submit(client: FlaskClient, path: str, data: dict[str, Any], *, page: str | None = None) -> Any:
    """GET the form page (or ``page``), then POST ``data`` with its CSRF token."""
    form_page = client.get(page or path)
    return client.post(path, data={**data, "csrf_token": csrf_from(form_page.data)})


def activate(client: FlaskClient, path: str, password: str = GOOD_PASSWORD) -> Any:
    return submit(client, path, {"password": password, "confirm": password})


def login(client: FlaskClient, email: str, password: str = GOOD_PASSWORD) -> Any:
    return submit(client, "/portal/login", {"email": email, "password": password})


def setup_invite(make: Any, smtp: Any, app: Any, *, message: str = "") -> SimpleNamespace:
    """A firm, an account with one contact, login on and an invitation delivered to the sink."""
    app.config["MAIL_URL"] = smtp.url
    firm = make.firm("Harbor & Finch CPA")
    account = make.account(firm.id, "Berger Family")
    email = account.contacts[0].emails[0]
    before = len(smtp.messages)
    response = firm.api.patch(
        f"/accounts/{account.id}/contact-settings/{email.id}",
        json={"login": True, "send_invitation": True, "invitation_message": message},
    )
    assert response.status_code == 200, response.get_json()
    [*_, mail] = smtp.wait_for(before + 1)
    return SimpleNamespace(
        firm=firm,
        account=account,
        email=email,
        mail=mail,
        link=link_in(mail),
        settings_path=f"/accounts/{account.id}/contact-settings/{email.id}",
    )


def invitation_block(firm: Any, account_id: int, email_id: int) -> dict[str, Any]:
    body = firm.api.get(f"/accounts/{account_id}/contact-settings").get_json()
    for group in body["contacts"]:
        for row in group["emails"]:
            if row["email_id"] == str(email_id):
                return row["invitation"]
    raise AssertionError("email not on the account")


def home(client: FlaskClient) -> Any:
    """The portal home as a user reaches it: /portal/ forwards to the current account's page;
    any other answer (a login redirect, no access) is returned as it is."""
    response = client.get("/portal/")
    if response.status_code == 302 and "/portal/a/" in response.headers["Location"]:
        return client.get(response.headers["Location"])
    return response
