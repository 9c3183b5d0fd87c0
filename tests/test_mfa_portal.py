"""Two-step sign-in in the client portal (R-SEC-13), without JavaScript (the Flask client posts
the forms as a browser without scripts does); the browser walk is in test_portal_browser."""

from __future__ import annotations

import re
import time
from typing import Any

import pyotp
import pytest
from sqlalchemy import select, text

from portal_app.models import AuditEntry, EmailCode
from tests.conftest import in_app
from tests.portal_helpers import (
    GOOD_PASSWORD,
    activate,
    csrf_from,
    home,
    login,
    setup_invite,
    submit,
)

RESET_LINK = re.compile(r"https?://[^/\s]+(/portal/password/reset/\S+)")
CODE = re.compile(r"^\s*(\d{6})\s*$", re.M)


def signed_in(app: Any, make: Any, smtp: Any) -> Any:
    world = setup_invite(make, smtp, app)
    world.client = app.test_client()
    assert activate(world.client, world.link).status_code == 302
    return world


def enrol_app(client: Any) -> tuple[pyotp.TOTP, list[str], Any]:
    started = submit(client, "/portal/mfa/app", {}, page="/portal/mfa")
    assert started.status_code == 303 and started.headers["Location"].endswith("/portal/mfa/app")
    page = client.get("/portal/mfa/app").data.decode()
    assert "<svg" in page and "otpauth" not in page.split("<svg")[0]
    key = re.search(r'<code class="secret" id="totp-key">([A-Z2-7]+)</code>', page).group(1)
    totp = pyotp.TOTP(key)
    # the very code that confirmed it: a replay check must use this one, not a later now(),
    # which a step boundary would turn into a fresh, valid code
    totp.confirmed_with = totp.now()  # type: ignore[attr-defined]
    done = client.post(
        "/portal/mfa/app/confirm", data={"code": totp.confirmed_with, "csrf_token": csrf_from(page)}
    )
    assert done.status_code == 200, done.data[:2000]
    body = done.data.decode()
    codes = re.findall(r"<li><code>([a-z2-9]{5}-[a-z2-9]{5})</code></li>", body)
    assert len(codes) == 10 and done.headers["Cache-Control"] == "no-store"
    return totp, codes, done


def next_code(totp: pyotp.TOTP) -> str:
    return totp.at(time.time() + 30)


def sign_in(app: Any, address: str) -> Any:
    client = app.test_client()
    response = login(client, address)
    return client, response


def enter_code(client: Any, code: str) -> Any:
    return submit(client, "/portal/login/code", {"code": code})


def test_r_sec_13_client_enrols_an_app_and_signs_in_with_a_code_then_a_recovery_code(app, make, smtp):
    world = signed_in(app, make, smtp)
    profile = world.client.get("/portal/profile").data.decode()
    assert "Set up two-step sign-in" in profile
    totp, codes, shown = enrol_app(world.client)
    # the codes as a text file: posted back from the page, checked against the database
    download = world.client.post(
        "/portal/mfa/recovery-codes.txt", data={"code": codes, "csrf_token": csrf_from(shown.data)}
    )
    assert download.status_code == 200 and download.mimetype == "text/plain"
    assert 'attachment; filename="portico-recovery-codes.txt"' == download.headers["Content-Disposition"]
    assert all(code in download.data.decode() for code in codes)
    forged = world.client.post(
        "/portal/mfa/recovery-codes.txt", data={"code": ["aaaaa-bbbbb"], "csrf_token": csrf_from(shown.data)}
    )
    assert forged.status_code == 400
    assert "On." in world.client.get("/portal/profile").data.decode()

    # sign in: the password alone shows no account data
    client, first = sign_in(app, world.email.address)
    assert first.status_code == 303 and first.headers["Location"].endswith("/portal/login/code")
    assert home(client).status_code == 302  # not signed in yet
    code_page = client.get("/portal/login/code")
    assert b"authenticator app" in code_page.data and b"Berger Family" not in code_page.data
    assert enter_code(client, "000000").status_code == 401
    assert enter_code(client, totp.confirmed_with).status_code == 401  # used to confirm: no replay
    done = enter_code(client, next_code(totp))
    assert done.status_code == 303
    assert home(client).status_code == 200 and b"Berger Family" in home(client).data

    # a recovery code, once
    client2, _ = sign_in(app, world.email.address)
    assert enter_code(client2, codes[3]).status_code == 303
    client3, _ = sign_in(app, world.email.address)
    assert enter_code(client3, codes[3]).status_code == 401
    assert "9 recovery codes left." in world.client.get("/portal/mfa").data.decode()


def test_r_sec_13_client_chooses_codes_by_email(app, make, smtp):
    world = signed_in(app, make, smtp)
    before = len(smtp.messages)
    started = submit(world.client, "/portal/mfa/email", {}, page="/portal/mfa")
    assert started.status_code == 303
    mail = smtp.wait_for(before + 1)[-1]
    assert mail["Subject"] == "Your sign-in code" and mail["To"] == world.email.address
    code = CODE.search(mail.get_body(("plain",)).get_content()).group(1)
    with in_app(app) as session:  # only a digest is kept, and nothing of it in the outbox
        assert code not in str(session.execute(text("SELECT context FROM outbox_emails")).all())
        assert session.scalar(select(EmailCode.code_digest)) != code
    page = world.client.get("/portal/mfa/email")
    assert (
        world.client.post(
            "/portal/mfa/email/confirm", data={"code": "000000", "csrf_token": csrf_from(page.data)}
        ).status_code
        == 422
    )
    confirmed = world.client.post(
        "/portal/mfa/email/confirm", data={"code": code, "csrf_token": csrf_from(page.data)}
    )
    assert confirmed.status_code == 200 and b"Two-step sign-in is on" in confirmed.data

    # at sign-in a code is emailed at once
    client, first = sign_in(app, world.email.address)
    assert first.headers["Location"].endswith("/portal/login/code")
    mail = smtp.wait_for(before + 2)[-1]
    login_code = CODE.search(mail.get_body(("plain",)).get_content()).group(1)
    assert b"We emailed you a six-digit code" in client.get("/portal/login/code").data
    # "email me a new code": the earlier one stops working
    resent = submit(client, "/portal/login/code/email", {}, page="/portal/login/code")
    assert resent.status_code == 303
    newest = CODE.search(smtp.wait_for(before + 3)[-1].get_body(("plain",)).get_content()).group(1)
    if newest != login_code:
        assert enter_code(client, login_code).status_code == 401
    assert enter_code(client, newest).status_code == 303
    assert home(client).status_code == 200
    # single use, and 10 minutes
    client2, _ = sign_in(app, world.email.address)
    assert enter_code(client2, newest).status_code == 401
    latest = CODE.search(smtp.wait_for(before + 4)[-1].get_body(("plain",)).get_content()).group(1)
    with in_app(app) as session:
        session.execute(
            text("UPDATE email_codes SET expires_at = expires_at - interval '11 minutes'")
            if session.get_bind().dialect.name == "postgresql"
            else text("UPDATE email_codes SET expires_at = datetime(expires_at, '-11 minutes')")
        )
        session.commit()
    assert enter_code(client2, latest).status_code == 401


def test_r_sec_13_a_password_reset_never_skips_the_second_step(app, make, smtp):
    world = signed_in(app, make, smtp)
    totp, _codes, _ = enrol_app(world.client)
    before = len(smtp.messages)
    assert world.firm.api.post(world.settings_path + "/password-reset").status_code == 202
    link = RESET_LINK.search(smtp.wait_for(before + 1)[-1].get_body(("plain",)).get_content()).group(1)
    client = app.test_client()
    reset = submit(client, link, {"password": "a brand new password 7", "confirm": "a brand new password 7"})
    assert reset.status_code == 303 and reset.headers["Location"].endswith("/portal/login/code")
    assert home(client).status_code == 302  # the new password alone does not sign in
    assert enter_code(client, next_code(totp)).status_code == 303
    assert home(client).status_code == 200


def test_r_sec_13_turning_off_needs_the_password_and_a_code(app, make, smtp):
    world = signed_in(app, make, smtp)
    _totp, codes, _ = enrol_app(world.client)
    wrong = submit(
        world.client,
        "/portal/mfa/disable",
        {"password": "not my password", "code": codes[0]},
        page="/portal/mfa",
    )
    assert wrong.status_code == 422
    off = submit(
        world.client, "/portal/mfa/disable", {"password": GOOD_PASSWORD, "code": codes[1]}, page="/portal/mfa"
    )
    assert off.status_code == 303
    client, response = sign_in(app, world.email.address)
    assert response.status_code == 302 and home(client).status_code == 200  # password alone again


def _portal_paths(app: Any, world: Any) -> list[tuple[str, str]]:
    ids = {"account_id": str(world.account.id), "todo_id": "1", "token": "x", "filename": "a"}
    paths = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/portal/") or rule.endpoint.startswith("portal.mfa"):
            continue
        if rule.endpoint in ("portal.logout", "portal.login_code", "portal.login_code_email"):
            continue
        path = re.sub(r"<(?:\w+(?:\([^)]*\))?:)?(\w+)>", lambda m: ids.get(m.group(1), "done"), rule.rule)
        for method in sorted(rule.methods & {"GET", "POST"}):
            paths.append((method, path))
    return paths


def test_r_sec_13_required_for_clients_leads_to_enrolment_before_any_account_data(app, make, smtp):
    world = setup_invite(make, smtp, app)
    assert world.firm.api.patch("/firm", json={"require_mfa_clients": True}).status_code == 200
    client = app.test_client()
    activated = activate(client, world.link)
    assert activated.status_code == 302
    landing = client.get(activated.headers["Location"])
    assert landing.status_code == 303 and landing.headers["Location"].endswith("/portal/mfa")
    page = client.get("/portal/mfa")
    assert page.status_code == 200 and b"Berger Family" not in page.data
    assert b"asks every client to sign in with a second step" in page.data
    token = csrf_from(page.data)
    checked = 0
    for method, path in _portal_paths(app, world):
        if path.startswith(("/portal/login", "/portal/password", "/portal/activate", "/portal/unsubscribe")):
            continue  # pages for signed-out visitors: nothing of the account there
        if path.startswith("/portal/link/"):
            continue  # an emailed action link signs nobody in and shows only its item (test_action_links)
        response = client.open(path, method=method, data={"csrf_token": token})
        assert response.status_code == 303 and response.headers["Location"].endswith("/portal/mfa"), (
            method,
            path,
        )
        checked += 1
    assert checked >= 5
    totp, _codes, _ = enrol_app(client)
    assert home(client).status_code == 200
    # while the firm requires it, it cannot be turned off
    off = submit(
        client,
        "/portal/mfa/disable",
        {"password": GOOD_PASSWORD, "code": next_code(totp)},
        page="/portal/mfa",
    )
    assert off.status_code == 422 and b"Your firm requires two-step sign-in" in off.data


def test_r_sec_13_staff_reset_a_clients_second_factor_audited_and_emailed(app, make, smtp):
    world = signed_in(app, make, smtp)
    enrol_app(world.client)
    path = world.settings_path + "/mfa"
    before = len(smtp.messages)
    assert world.firm.api.delete(path).status_code == 204
    mail = smtp.wait_for(before + 1)[-1]
    assert mail["Subject"] == "Your two-step sign-in was reset" and mail["To"] == world.email.address
    assert home(world.client).status_code == 302  # signed out everywhere
    client, response = sign_in(app, world.email.address)
    assert response.status_code == 302 and home(client).status_code == 200  # no code asked
    with in_app(app) as session:
        entry = session.scalars(select(AuditEntry).where(AuditEntry.field == "mfa")).one()
        assert (entry.old_value, entry.new_value, entry.actor_type) == ("totp", None, "staff")
    again = world.firm.api.delete(path)
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "mfa_not_enabled"
    other = make.firm()
    assert other.api.delete(path).status_code == 404


@pytest.mark.settings(LIMIT_PER_EMAIL="3 per minute", LIMIT_PER_IP="50 per minute")
def test_r_sec_13_portal_code_entry_is_rate_limited(app, make, smtp):
    world = signed_in(app, make, smtp)
    _totp, codes, _ = enrol_app(world.client)
    client, _ = sign_in(app, world.email.address)
    token = csrf_from(client.get("/portal/login/code").data)
    statuses = [
        client.post("/portal/login/code", data={"code": f"{n:06d}", "csrf_token": token}).status_code
        for n in range(4)
    ]
    assert statuses == [401, 401, 401, 429]
    limited = client.post("/portal/login/code", data={"code": codes[0], "csrf_token": token})
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
