"""What a new client or firm meets in the first ten minutes: emails from the firm, the start and
error pages, the favicon, the account picker and title, the profile's time zones, the staff API
reference, and the invitation state staff read."""

from __future__ import annotations

import re
from email.utils import parseaddr
from pathlib import Path

import pytest

from tests.portal_helpers import activate, home, invitation_block, setup_invite

ROOT = Path(__file__).resolve().parents[1]


def test_r_log_3_an_activated_invitation_keeps_when_it_was_sent(app, make, smtp):
    world = setup_invite(make, smtp, app)
    before = invitation_block(world.firm, world.account.id, world.email.id)
    assert before["state"] == "invited" and before["sent_at"]
    assert activate(app.test_client(), world.link).status_code == 302
    after = invitation_block(world.firm, world.account.id, world.email.id)
    assert after["state"] == "activated" and after["sent_at"] == before["sent_at"]


def test_r_not_7_emails_come_from_the_firm_and_answers_go_to_its_reply_to(app, make, smtp):
    world = setup_invite(make, smtp, app)
    name, address = parseaddr(world.mail["From"])
    assert name == "Harbor & Finch CPA" and address == parseaddr(app.config["MAIL_FROM"])[1]
    assert world.mail["Reply-To"] is None  # none set: answers go to MAIL_FROM
    firm = world.firm
    bad = firm.api.patch("/firm", json={"reply_to": "not an address"})
    assert bad.status_code == 422 and "reply_to" in bad.get_json()["error"]["fields"]
    set_it = firm.api.patch("/firm", json={"reply_to": " Office@HarborFinch.example "})
    assert set_it.status_code == 200 and set_it.get_json()["reply_to"] == "office@harborfinch.example"
    assert firm.api.get("/firm").get_json()["reply_to"] == "office@harborfinch.example"
    before = len(smtp.messages)
    assert firm.api.post(f"{world.settings_path}/invitation", json={}).status_code in (200, 201, 202)
    [mail] = smtp.wait_for(before + 1)[before:]
    assert mail["Reply-To"] == "office@harborfinch.example"
    assert parseaddr(mail["From"])[0] == "Harbor & Finch CPA"
    assert firm.api.patch("/firm", json={"reply_to": None}).get_json()["reply_to"] is None


def test_r_not_7_the_invitation_card_wraps_its_long_link(app, make, smtp):
    world = setup_invite(make, smtp, app)
    html = world.mail.get_body(("html",)).get_content()
    link_anchor = re.search(r'<a href="[^"]+/portal/activate/[^"]+" style="([^"]+)">https?://', html)
    assert link_anchor and "word-break:break-all" in link_anchor.group(1)
    assert "table-layout:fixed" in html


def test_favicon_ico_exists(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 200 and response.data[:4] == b"\x00\x00\x01\x00"  # an ICO file
    assert "max-age" in response.headers["Cache-Control"]


def test_r_por_a_404_keeps_the_signed_in_clients_header_and_logout(app, make, smtp):
    world = setup_invite(make, smtp, app)
    client = app.test_client()
    assert activate(client, world.link).status_code == 302
    page = client.get("/portal/no-such-page")
    body = page.data.decode()
    assert page.status_code == 404 and "Page not found" in body
    assert world.email.address in body and 'action="/portal/logout"' in body and "Back to your to-dos" in body
    anonymous = app.test_client().get("/portal/no-such-page").data.decode()
    assert 'action="/portal/logout"' not in anonymous and "Back to the start page" in anonymous


def test_r_por_the_start_page_shows_clients_only_what_is_for_clients(app, client):
    app.config["DEVELOPMENT"] = False
    body = client.get("/").data.decode()
    assert "/portal/login" in body and "/api/v1" not in body and "/dev/mail" not in body
    assert "messages" not in body  # the portal has no messaging: it promises none
    app.config["DEVELOPMENT"] = True
    assert "/dev/mail" in app.test_client().get("/").data.decode()  # for developers, in development


def test_r_por_2_the_picker_has_a_visible_label_and_the_title_follows_the_account(app, make, smtp):
    world = setup_invite(make, smtp, app)
    other = make.account(world.firm.id, "Berger Design GmbH")
    response = world.firm.api.post(
        f"/accounts/{other.id}/contacts", json={"contact_id": str(world.account.contacts[0].id)}
    )
    assert response.status_code == 201
    settings = f"/accounts/{other.id}/contact-settings/{world.email.id}"
    assert world.firm.api.patch(settings, json={"login": True}).status_code == 200
    client = app.test_client()
    assert activate(client, world.link).status_code == 302
    body = home(client).data.decode()
    assert '<label for="account-picker" class="picker-label">Account</label>' in body
    assert "<title>Berger Family · Harbor &amp; Finch CPA</title>" in body
    css = (ROOT / "static/css/portico.css").read_text()
    assert ".picker-label" in css and "visually-hidden" not in body.split('for="account-picker"')[0][-80:]
    swapped = client.get(f"/portal/a/{other.id}/", headers={"HX-Request": "true"}).data.decode()
    assert swapped.startswith("<title>Berger Design GmbH · Harbor &amp; Finch CPA</title>")


@pytest.mark.parametrize(
    ("firm_zone", "country", "first"),
    [
        ("America/New_York", "United States", "America/New_York"),
        ("Europe/Berlin", "Germany", "Europe/Berlin"),
    ],
)
def test_r_por_5_profile_offers_the_firms_country_zones_first(app, make, smtp, firm_zone, country, first):
    world = setup_invite(make, smtp, app)
    assert world.firm.api.patch("/firm", json={"timezone": firm_zone}).status_code == 200
    client = app.test_client()
    assert activate(client, world.link).status_code == 302  # activation takes the firm's zone
    body = client.get("/portal/profile").data.decode()
    select = body[body.index('<select id="profile-timezone"') :]
    first_group = re.search(r'<optgroup label="([^"]+)">\s*<option[^>]*value="([^"]+)"', select)
    assert first_group and first_group.groups() == (country, first)
    zone = re.escape(firm_zone)
    assert re.search(rf'<option selected value="{zone}"|<option value="{zone}" selected', select)
    assert '<optgroup label="All time zones">' in select


def test_staff_api_reference_is_served_from_vendored_files_without_inline_script(client):
    page = client.get("/api/v1/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    html = page.data.decode()
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
    assert scripts and all('src="/static/' in attrs and not body.strip() for attrs, body in scripts)
    for path in re.findall(r'(?:src|href)="(/static/[^"]+)"', html):
        assert (ROOT / path.lstrip("/")).is_file(), path  # vendored, not fetched from elsewhere
    assert "cdn" not in html.lower() and "https://" not in html
