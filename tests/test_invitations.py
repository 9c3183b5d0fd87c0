"""Invitations, activation and access (R-LOG-1..8), with emails received by a real SMTP
server and their links followed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from portal_app.models import InboxItem, Invitation, PortalUser, utcnow
from tests.conftest import in_app
from tests.portal_helpers import (
    GOOD_PASSWORD,
    activate,
    csrf_from,
    home,
    invitation_block,
    link_in,
    login,
    setup_invite,
)


def test_r_log_1_login_on_without_invitation_is_not_invited_and_pending(make):
    firm = make.firm()
    account = make.account(firm.id)
    email = account.contacts[0].emails[0]
    firm.api.patch(f"/accounts/{account.id}/contact-settings/{email.id}", json={"login": True})
    assert invitation_block(firm, account.id, email.id)["state"] == "not_invited"
    assert firm.api.get(f"/accounts/{account.id}").get_json()["status"] == "pending_activation"


def test_r_log_2_invitation_email_has_firm_message_escaped_and_an_absolute_single_use_link(app, make, smtp):
    world = setup_invite(make, smtp, app, message="Hi Anna, <b>welcome</b> & see you soon")
    mail = world.mail
    assert mail["To"] == world.email.address
    assert "Harbor & Finch CPA" in mail["Subject"]
    html = mail.get_body(("html",)).get_content()
    text = mail.get_body(("plain",)).get_content()
    assert "&lt;b&gt;welcome&lt;/b&gt; &amp; see you soon" in html and "<b>welcome</b>" not in html
    assert "Hi Anna, <b>welcome</b> & see you soon" in text
    assert "http://127.0.0.1:5000/portal/activate/" in text
    block = invitation_block(world.firm, world.account.id, world.email.id)
    assert block["state"] == "invited" and block["delivery"] == "sent"
    assert block["expires_at"] > block["sent_at"]
    with in_app(app) as session:
        invitation = session.scalar(select(Invitation))
        assert (invitation.expires_at - invitation.sent_at) == timedelta(days=7)


def test_r_log_3_get_changes_nothing_post_activates_logs_in_and_lands_home(app, make, smtp):
    world = setup_invite(make, smtp, app)
    client = app.test_client()
    for _ in range(2):  # a mail scanner, then the person
        page = client.get(world.link)
        assert page.status_code == 200
        assert b"Harbor &amp; Finch CPA" in page.data and world.email.address.encode() in page.data
        assert page.headers["Referrer-Policy"] == "no-referrer"
    assert invitation_block(world.firm, world.account.id, world.email.id)["state"] == "invited"
    done = activate(client, world.link)
    assert done.status_code == 302 and done.headers["Location"] == "/portal/"
    landing = home(client)
    assert landing.status_code == 200 and b"Berger Family" in landing.data
    assert invitation_block(world.firm, world.account.id, world.email.id)["state"] == "activated"
    assert world.firm.api.get(f"/accounts/{world.account.id}").get_json()["status"] == "activated"
    again = app.test_client().get(world.link)
    assert again.status_code == 410 and b'data-problem="used"' in again.data


def _problem(app, link: str) -> tuple[int, str]:
    page = app.test_client().get(link)
    import re

    match = re.search(rb'data-problem="(\w+)"', page.data)
    return page.status_code, match.group(1).decode() if match else ""


def test_r_log_4_tampered_link_is_refused_and_nothing_changes(app, make, smtp):
    world = setup_invite(make, smtp, app)
    prefix, _, tail = world.link.rpartition("/")
    tampered = f"{prefix}/{tail[:-3]}{'A' if tail[-3] != 'A' else 'B'}{tail[-2:]}"
    assert _problem(app, tampered) == (400, "tampered")
    client = app.test_client()
    page = client.get(world.link)
    posted = client.post(
        tampered,
        data={"password": GOOD_PASSWORD, "confirm": GOOD_PASSWORD, "csrf_token": csrf_from(page.data)},
    )
    assert posted.status_code == 400
    assert invitation_block(world.firm, world.account.id, world.email.id)["state"] == "invited"


def test_r_log_4_revoked_and_login_off_links_say_so(app, make, smtp):
    world = setup_invite(make, smtp, app)
    assert world.firm.api.delete(world.settings_path + "/invitation").status_code == 204
    assert _problem(app, world.link) == (410, "revoked")
    assert invitation_block(world.firm, world.account.id, world.email.id)["state"] == "not_invited"
    assert world.firm.api.delete(world.settings_path + "/invitation").status_code == 409

    second = world.firm.api.post(world.settings_path + "/invitation", json={})
    assert second.status_code == 200 and second.get_json()["invitation"]["state"] == "invited"
    link = link_in(smtp.wait_for(2)[-1])
    world.firm.api.patch(world.settings_path, json={"login": False})  # R-LOG-7 revokes
    assert _problem(app, link) == (410, "login_off")


@pytest.mark.parametrize(
    "offset, expected", [(timedelta(seconds=5), None), (timedelta(seconds=-1), "expired")]
)
def test_r_log_4_expiry_boundary(app, make, smtp, offset, expected):
    world = setup_invite(make, smtp, app)
    with in_app(app) as session:
        session.execute(update(Invitation).values(expires_at=utcnow() + offset))
        session.commit()
    status, problem = _problem(app, world.link)
    if expected is None:
        assert status == 200 and problem == ""
        assert activate(app.test_client(), world.link).status_code == 302
    else:
        assert (status, problem) == (410, "expired")
        assert invitation_block(world.firm, world.account.id, world.email.id)["state"] == "expired"


def test_r_log_4_expired_link_asks_for_a_new_invitation_which_reaches_staff_inbox(app, make, smtp):
    world = setup_invite(make, smtp, app)
    with in_app(app) as session:
        session.execute(update(Invitation).values(expires_at=utcnow() - timedelta(days=1)))
        session.commit()
    client = app.test_client()
    page = client.get(world.link)
    assert b"Ask for a new invitation" in page.data
    asked = client.post(world.link + "/request-new", data={"csrf_token": csrf_from(page.data)})
    assert asked.status_code == 200 and b"Harbor &amp; Finch CPA" in asked.data
    with in_app(app) as session:
        [item] = session.scalars(select(InboxItem)).all()
        assert item.kind == "invitation_request" and world.email.address in item.title
        assert item.account_id == world.account.id


def test_r_log_5_resend_invalidates_earlier_links(app, make, smtp):
    world = setup_invite(make, smtp, app)
    resent = world.firm.api.post(world.settings_path + "/invitation", json={"invitation_message": "Again"})
    assert resent.status_code == 200
    new_link = link_in(smtp.wait_for(2)[-1])
    assert new_link != world.link
    assert _problem(app, world.link) == (410, "replaced")
    assert activate(app.test_client(), new_link).status_code == 302


def test_r_log_6_activated_email_gets_access_at_once_with_an_access_granted_email(app, make, smtp):
    world = setup_invite(make, smtp, app)
    client = app.test_client()
    activate(client, world.link)
    second = make.account(world.firm.id, "Berger Design GmbH", contacts=[world.account.contacts[0]])
    response = world.firm.api.patch(
        f"/accounts/{second.id}/contact-settings/{world.email.id}",
        json={"login": True, "send_invitation": True},
    )
    assert response.status_code == 200
    assert response.get_json()["invitation"]["state"] == "activated"
    mail = smtp.wait_for(2)[-1]
    assert "Berger Design GmbH" in mail["Subject"] and "/portal/activate/" not in mail.as_string()
    assert world.firm.api.get(f"/accounts/{second.id}").get_json()["status"] == "activated"
    assert b"Berger Design GmbH" in home(client).data  # no new login needed


def test_r_log_7_login_off_removes_access_at_the_next_request(app, make, smtp):
    world = setup_invite(make, smtp, app)
    client = app.test_client()
    activate(client, world.link)
    assert home(client).status_code == 200
    world.firm.api.patch(world.settings_path, json={"login": False})
    page = home(client)
    assert page.status_code == 403 and b"Berger Family" not in page.data
    assert world.firm.api.get(f"/accounts/{world.account.id}").get_json()["name"] == "Berger Family"


def test_r_log_8_email_change_revokes_invitation_and_invites_the_new_address(app, make, smtp):
    world = setup_invite(make, smtp, app)
    contact_id = world.account.contacts[0].id
    changed = world.firm.api.patch(
        f"/contacts/{contact_id}/emails/{world.email.id}", json={"address": "anna.new@example.com"}
    )
    assert changed.status_code == 200, changed.get_json()
    assert _problem(app, world.link) == (410, "email_changed")
    page = app.test_client().get(world.link)
    assert b"deactivated for security reasons" in page.data
    mail = smtp.wait_for(2)[-1]
    assert mail["To"] == "anna.new@example.com"
    assert activate(app.test_client(), link_in(mail)).status_code == 302


def test_r_log_8_changing_an_activated_address_resets_its_portal_user(app, make, smtp):
    world = setup_invite(make, smtp, app)
    client = app.test_client()
    activate(client, world.link)
    world.firm.api.patch(
        f"/contacts/{world.account.contacts[0].id}/emails/{world.email.id}",
        json={"address": "anna@new.example"},
    )
    assert home(client).status_code == 302  # session ended
    assert login(app.test_client(), world.email.address).status_code == 401
    with in_app(app) as session:
        user = session.scalar(select(PortalUser))
        assert user.password_hash is None and user.activated_at is None
    mail = smtp.wait_for(2)[-1]
    assert mail["To"] == "anna@new.example" and "/portal/activate/" in link_in(mail)
    assert invitation_block(world.firm, world.account.id, world.email.id)["state"] == "invited"


def test_r_log_8_recommended_flow_keeps_access_throughout(app, make, smtp):
    world = setup_invite(make, smtp, app)
    client = app.test_client()
    activate(client, world.link)
    contact_id = world.account.contacts[0].id
    added = world.firm.api.post(f"/contacts/{contact_id}/emails", json={"address": "anna@second.example"})
    new_email_id = added.get_json()["id"]
    world.firm.api.patch(
        f"/accounts/{world.account.id}/contact-settings/{new_email_id}",
        json={"login": True, "send_invitation": True},
    )
    assert home(client).status_code == 200  # still in while the new email is pending
    second_client = app.test_client()
    activate(second_client, link_in(smtp.wait_for(2)[-1]))
    world.firm.api.patch(world.settings_path, json={"login": False})
    assert world.firm.api.delete(f"/contacts/{contact_id}/emails/{world.email.id}").status_code == 204
    assert home(second_client).status_code == 200
