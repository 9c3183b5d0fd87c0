"""Two-factor sign-in for staff through the API (R-SEC-13)."""

from __future__ import annotations

import re
import time
from typing import Any

import pyotp
import pytest
from sqlalchemy import select

from portal_app.models import StaffUser
from tests.conftest import in_app
from tests.factories import STAFF_PASSWORD

LOW = {"LIMIT_PER_EMAIL": "3 per minute", "LIMIT_PER_IP": "20 per minute"}


class Session:
    """A browser-like staff session: cookie, CSRF token on unsafe calls."""

    def __init__(self, app: Any, email: str) -> None:
        self.client = app.test_client()
        self.email = email
        self.csrf = ""

    def login(self, password: str = STAFF_PASSWORD) -> Any:
        response = self.client.post("/api/v1/auth/login", json={"email": self.email, "password": password})
        self.csrf = (response.get_json() or {}).get("csrf_token", self.csrf)
        return response

    def second_step(self, token: str, code: str) -> Any:
        response = self.client.post("/api/v1/auth/login/mfa", json={"mfa_token": token, "code": code})
        self.csrf = (response.get_json() or {}).get("csrf_token", self.csrf)
        return response

    def call(self, method: str, path: str, **kw: Any) -> Any:
        return self.client.open(f"/api/v1{path}", method=method, headers={"X-CSRFToken": self.csrf}, **kw)


def enrol(session: Session) -> tuple[pyotp.TOTP, list[str]]:
    setup = session.call("POST", "/auth/mfa/setup")
    assert setup.status_code == 200, setup.get_json()
    body = setup.get_json()
    totp = pyotp.TOTP(body["secret"])
    confirmed = session.call("POST", "/auth/mfa/confirm", json={"code": totp.now()})
    assert confirmed.status_code == 200, confirmed.get_json()
    session.csrf = confirmed.get_json()["csrf_token"]
    return totp, confirmed.get_json()["recovery_codes"]


def next_code(totp: pyotp.TOTP) -> str:
    """The code of the next time step: still accepted (±1 step) and newer than the last one used."""
    return totp.at(time.time() + 30)


def test_r_sec_13_staff_enrol_with_an_app_and_sign_in_with_a_code(app, make):
    firm = make.firm("Harbor & Finch CPA")
    me = Session(app, firm.staff_email)
    assert me.login().get_json()["user"]["mfa_enabled"] is False
    setup = me.call("POST", "/auth/mfa/setup").get_json()
    assert setup["otpauth_uri"].startswith("otpauth://totp/Harbor%20%26%20Finch%20CPA:")
    assert f"secret={setup['secret']}" in setup["otpauth_uri"] and "issuer=Harbor" in setup["otpauth_uri"]
    assert setup["qr_svg"].startswith("<svg") and "<script" not in setup["qr_svg"]
    assert me.call("POST", "/auth/mfa/confirm", json={"code": "000000"}).status_code == 422
    totp = pyotp.TOTP(setup["secret"])
    confirming_code = totp.now()  # the replay check below uses this one, whatever the clock says then
    confirmed = me.call("POST", "/auth/mfa/confirm", json={"code": confirming_code})
    codes = confirmed.get_json()["recovery_codes"]
    assert len(codes) == 10 and len(set(codes)) == 10
    assert all(re.fullmatch(r"[a-z2-9]{5}-[a-z2-9]{5}", c) for c in codes)
    me.csrf = confirmed.get_json()["csrf_token"]
    assert me.call("GET", "/auth/me").get_json()["user"]["mfa_enabled"] is True
    assert me.call("POST", "/auth/mfa/setup").status_code == 409  # on already

    # the secret is stored encrypted, never as the base32 key
    with in_app(app) as session:
        stored = session.scalar(select(StaffUser.totp_secret).where(StaffUser.id == firm.staff_id))
        assert stored and setup["secret"] not in stored

    laptop = Session(app, firm.staff_email)
    first = laptop.login()
    assert first.status_code == 200 and first.get_json() == {"mfa_required": True, "mfa_token": ANY_TOKEN}
    assert laptop.client.get("/api/v1/auth/me").status_code == 401  # no session before the code
    token = first.get_json()["mfa_token"]
    assert laptop.second_step(token, "123456").get_json()["error"]["code"] == "invalid_code"
    # replay: the code that confirmed enrolment (same time step) does not work again
    assert laptop.second_step(token, confirming_code).status_code == 401
    signed_in = laptop.second_step(token, next_code(totp))
    assert signed_in.status_code == 200 and signed_in.get_json()["user"]["email"] == firm.staff_email
    assert laptop.client.get("/api/v1/auth/me").status_code == 200
    # the mfa_token is single use
    assert Session(app, firm.staff_email).second_step(token, next_code(totp)).get_json()["error"]["code"] == (
        "invalid_mfa_token"
    )


class _AnyToken:
    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and len(other) > 40


ANY_TOKEN = _AnyToken()


def test_r_sec_13_recovery_codes_work_once_and_can_be_replaced(app, make):
    firm = make.firm()
    me = Session(app, firm.staff_email)
    me.login()
    totp, codes = enrol(me)
    other = Session(app, firm.staff_email)
    token = other.login().get_json()["mfa_token"]
    assert other.second_step(token, codes[0].upper().replace("-", " ")).status_code == 200  # typed loosely
    again = Session(app, firm.staff_email)
    token = again.login().get_json()["mfa_token"]
    assert again.second_step(token, codes[0]).status_code == 401  # used
    wrong = me.call(
        "POST", "/auth/mfa/recovery-codes", json={"password": "not it at all", "code": next_code(totp)}
    )
    assert wrong.status_code == 422
    fresh = me.call("POST", "/auth/mfa/recovery-codes", json={"password": STAFF_PASSWORD, "code": codes[1]})
    assert fresh.status_code == 200 and set(fresh.get_json()["recovery_codes"]).isdisjoint(codes)
    assert again.second_step(token, codes[2]).status_code == 401  # the old set is gone
    assert again.second_step(token, fresh.get_json()["recovery_codes"][0]).status_code == 200


def test_r_sec_13_the_mfa_token_is_purpose_salted_and_short_lived(app, make, monkeypatch):
    firm = make.firm()
    me = Session(app, firm.staff_email)
    me.login()
    _totp, codes = enrol(me)
    token = Session(app, firm.staff_email).login().get_json()["mfa_token"]
    with app.app_context():
        from portal_app import tokens

        payload = tokens.read(tokens.MFA_LOGIN, token)
        as_reset = tokens.mint(tokens.PASSWORD_RESET, payload)  # right payload, wrong purpose
    late = Session(app, firm.staff_email)
    assert late.second_step(as_reset, codes[0]).get_json()["error"]["code"] == "invalid_mfa_token"
    assert late.second_step(token + "x", codes[0]).get_json()["error"]["code"] == "invalid_mfa_token"
    real_time = time.time
    monkeypatch.setattr("itsdangerous.timed.time.time", lambda: real_time() + 301)
    assert late.second_step(token, codes[0]).get_json()["error"]["code"] == "invalid_mfa_token"
    monkeypatch.undo()
    # a newer login replaces the challenge: the older token no longer works
    newer = Session(app, firm.staff_email).login().get_json()["mfa_token"]
    assert late.second_step(token, codes[0]).get_json()["error"]["code"] == "invalid_mfa_token"
    assert late.second_step(newer, codes[0]).status_code == 200


def test_r_sec_13_disabling_needs_the_password_and_a_code(app, make):
    firm = make.firm()
    me = Session(app, firm.staff_email)
    me.login()
    totp, codes = enrol(me)
    assert (
        me.call("DELETE", "/auth/mfa", json={"password": STAFF_PASSWORD, "code": "000000"}).status_code == 422
    )
    assert (
        me.call("DELETE", "/auth/mfa", json={"password": "wrong password!", "code": codes[0]}).status_code
        == 422
    )
    assert me.call("DELETE", "/auth/mfa", json={"password": STAFF_PASSWORD}).status_code == 422
    assert (
        me.call("DELETE", "/auth/mfa", json={"password": STAFF_PASSWORD, "code": codes[1]}).status_code == 204
    )
    plain = Session(app, firm.staff_email)
    assert plain.login().get_json()["user"]["mfa_enabled"] is False


def test_r_sec_13_api_tokens_need_a_session_that_passed_two_factors(app, make):
    firm = make.firm()
    # without two factors: a plain session and a bearer token both create tokens, as before
    assert firm.api.post("/api-tokens", json={"name": "ci"}).status_code == 201
    me = Session(app, firm.staff_email)
    me.login()
    assert me.call("POST", "/api-tokens", json={"name": "laptop"}).status_code == 201
    totp, codes = enrol(me)
    # with two factors: a bearer token cannot mint more tokens, a two-factor session can
    refused = firm.api.post("/api-tokens", json={"name": "ci 2"})
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "mfa_required"
    assert me.call("POST", "/api-tokens", json={"name": "after enrolment"}).status_code == 201
    fresh = Session(app, firm.staff_email)
    token = fresh.login().get_json()["mfa_token"]
    fresh.second_step(token, codes[0])
    assert fresh.call("POST", "/api-tokens", json={"name": "new laptop"}).status_code == 201
    # tokens stay separate credentials: the existing one still reads data
    assert firm.api.get("/accounts").status_code == 200


def _concrete(rule: str) -> str:
    return re.sub(r"<(?:\w+:)?(\w+)>", "1", rule)


def test_r_sec_13_required_firm_gates_every_api_route_until_enrolment(app, make):
    firm = make.firm()
    clerk = make.staff(firm.id)
    assert firm.api.patch("/firm", json={"require_mfa_staff": True}).status_code == 200
    # the admin who switched it on has no factor either: enrolment only, for them too
    refused = firm.api.get("/accounts")
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "mfa_enrollment_required"
    session = Session(app, clerk.email)
    assert session.login().get_json()["mfa_enrollment_required"] is True
    # enrolment itself, the sign-in steps, and inbound mail (its own secret, no staff user)
    allowed = {
        "auth.Me",
        "auth.Logout",
        "auth.MfaSetup",
        "auth.MfaConfirm",
        "auth.Login",
        "auth.LoginMfa",
        "passkeys.LoginOptions",  # a passkey sign-in is a sign-in step too (R-SEC-15)
        "passkeys.LoginVerify",
        "mail.InboundEmail",
        "api-reference.page",  # the reference page holds no data; its calls pass this gate
    }
    checked = 0
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/") or rule.endpoint in allowed or "openapi" in rule.endpoint:
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            for caller in ("session", "token"):
                if caller == "session":
                    response = session.call(method, _concrete(rule.rule)[len("/api/v1") :], json={})
                else:
                    response = clerk.api._call(method, _concrete(rule.rule)[len("/api/v1") :], json={})
                assert response.status_code == 403, (caller, method, rule.rule, response.status_code)
                assert response.get_json()["error"]["code"] == "mfa_enrollment_required"
                checked += 1
    assert checked >= 60
    assert session.call("GET", "/auth/me").status_code == 200
    totp, codes = enrol(session)
    assert session.call("GET", "/accounts").status_code == 200
    assert clerk.api.get("/accounts").status_code == 200
    assert session.call("GET", "/auth/me").get_json()["mfa_enrollment_required"] is False
    # and while the firm requires it, it cannot be turned off
    off = session.call("DELETE", "/auth/mfa", json={"password": STAFF_PASSWORD, "code": codes[0]})
    assert off.status_code == 409 and off.get_json()["error"]["code"] == "mfa_required"


@pytest.mark.settings(**LOW)
def test_r_sec_13_code_entry_is_rate_limited_per_user(app, make, redis_url):
    firm = make.firm()
    me = Session(app, firm.staff_email)
    me.login()
    _totp, codes = enrol(me)
    attacker = Session(app, firm.staff_email)
    token = attacker.login().get_json()["mfa_token"]
    statuses = [attacker.second_step(token, f"{n:06d}").status_code for n in range(4)]
    assert statuses == [401, 401, 401, 429]
    limited = attacker.second_step(token, codes[0])
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0


@pytest.mark.settings(ENV={"REDIS_URL": "redis://127.0.0.1:1/0"})
def test_r_sec_13_code_entry_fails_closed_when_redis_is_down(app):
    client = app.test_client()
    response = client.post("/api/v1/auth/login/mfa", json={"mfa_token": "x" * 50, "code": "123456"})
    assert response.status_code == 503 and response.get_json()["error"]["code"] == "unavailable"


def test_r_sec_13_totp_secrets_survive_secret_key_rotation(app, make):
    firm = make.firm()
    me = Session(app, firm.staff_email)
    me.login()
    totp, _codes = enrol(me)
    old_key = app.config["SECRET_KEY"]
    app.config["SECRET_KEY"], app.config["SECRET_KEY_FALLBACKS"] = "n" * 48, [old_key]
    rotated = Session(app, firm.staff_email)
    token = rotated.login().get_json()["mfa_token"]
    assert rotated.second_step(token, next_code(totp)).status_code == 200
    with in_app(app) as session:
        from portal_app.services import mfa

        user = session.get(StaffUser, firm.staff_id)
        before = user.totp_secret
        mfa.reencrypt(user)
        session.commit()
        assert user.totp_secret != before
    app.config["SECRET_KEY_FALLBACKS"] = []  # the old key retired: the re-encrypted secret still works
    with in_app(app) as session:
        from portal_app.services import mfa

        assert mfa._decrypt(session.get(StaffUser, firm.staff_id).totp_secret) == totp.secret


def test_r_sec_13_a_bearer_token_cannot_enrol_disable_or_regenerate_two_factors(app, make):
    """A stolen API token must not lock its owner out behind a secret the thief holds."""
    firm = make.firm("Harbor & Finch CPA")
    for method, path, body in (
        ("POST", "/auth/mfa/setup", None),
        ("POST", "/auth/mfa/confirm", {"code": "123456"}),
        ("DELETE", "/auth/mfa", {"password": STAFF_PASSWORD, "code": "123456"}),
        ("POST", "/auth/mfa/recovery-codes", {"password": STAFF_PASSWORD, "code": "123456"}),
    ):
        refused = firm.api._call(method, path, json=body)
        assert refused.status_code == 403, (path, refused.get_json())
        assert refused.get_json()["error"]["code"] == "recent_sign_in_required"
    with in_app(app) as session:
        user = session.get(StaffUser, firm.staff_id)
        assert user.totp_secret is None and user.mfa_method is None  # nothing was started
    # a session signed in with the password may, for 10 minutes
    me = Session(app, firm.staff_email)
    assert me.login().status_code == 200
    with me.client.session_transaction() as cookie:
        cookie["auth_at"] = int(time.time()) - 11 * 60
    stale = me.call("POST", "/auth/mfa/setup")
    assert stale.status_code == 403 and "Sign in again" in stale.get_json()["error"]["message"]
    assert me.login().status_code == 200
    totp, codes = enrol(me)
    assert len(codes) == 10 and totp.now()
