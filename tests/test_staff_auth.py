"""Staff sessions, CSRF on cookie calls, bearer tokens (issue 2 §4, R-SEC-2, R-SEC-5)."""

from __future__ import annotations

import hashlib

from sqlalchemy import select, text

from portal_app.extensions import db
from portal_app.models import ApiToken, StaffUser
from portal_app.services.staff import revoke_api_token
from tests.conftest import in_app
from tests.factories import STAFF_PASSWORD


def _login(client, email: str, password: str = STAFF_PASSWORD):
    return client.post("/api/v1/auth/login", json={"email": email, "password": password})


def test_staff_login_returns_user_and_csrf_token(client, make):
    firm = make.firm()
    response = _login(client, firm.staff_email.upper())
    assert response.status_code == 200
    body = response.get_json()
    assert body["user"]["email"] == firm.staff_email and body["user"]["firm"]["name"] == firm.name
    assert body["csrf_token"]
    me = client.get("/api/v1/auth/me")
    assert me.status_code == 200 and me.get_json()["user"]["id"] == str(firm.staff_id)


def test_r_sec_4_wrong_password_and_unknown_email_answer_the_same(client, make):
    firm = make.firm()
    wrong = _login(client, firm.staff_email, "not the password at all")
    unknown = _login(client, "nobody@nowhere.example", "not the password at all")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.get_json() == unknown.get_json()
    assert wrong.get_json()["error"]["code"] == "invalid_credentials"
    assert client.get("/api/v1/auth/me").status_code == 401


def test_staff_passwords_are_argon2id_hashes(app, make):
    make.firm()
    with in_app(app) as session:
        assert session.scalar(select(StaffUser.password_hash)).startswith("$argon2id$")


def test_r_sec_2_cookie_session_unsafe_call_needs_csrf_header(client, make):
    firm = make.firm()
    token = _login(client, firm.staff_email).get_json()["csrf_token"]
    refused = client.post("/api/v1/auth/logout")
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "csrf_failed"
    assert client.get("/api/v1/auth/me").status_code == 200  # still logged in
    assert client.post("/api/v1/auth/logout", headers={"X-CSRFToken": token}).status_code == 204
    assert client.get("/api/v1/auth/me").status_code == 401


def test_r_sec_5_logout_ends_the_staff_users_other_sessions(app, make):
    firm = make.firm()
    laptop, phone = app.test_client(), app.test_client()
    token = _login(laptop, firm.staff_email).get_json()["csrf_token"]
    _login(phone, firm.staff_email)
    assert phone.get("/api/v1/auth/me").status_code == 200
    laptop.post("/api/v1/auth/logout", headers={"X-CSRFToken": token})
    assert phone.get("/api/v1/auth/me").status_code == 401


def test_r_sec_5_login_sets_a_fresh_httponly_lax_cookie(client, make):
    firm = make.firm()
    client.set_cookie("portico_session", "attacker-chosen")
    response = _login(client, firm.staff_email)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "attacker-chosen" not in cookie


def test_bearer_token_needs_no_csrf_and_is_stored_only_as_digest(app, make):
    firm = make.firm()
    response = firm.api.post("/auth/logout")
    assert response.status_code == 204  # no CSRF header needed for bearer calls
    with in_app(app) as session:
        stored = session.scalar(select(ApiToken.token_digest))
        assert stored == hashlib.sha256(firm.token.encode()).hexdigest()
        dump = " ".join(str(v) for row in session.execute(text("SELECT * FROM api_tokens")) for v in row)
        assert firm.token not in dump


def test_revoked_or_malformed_bearer_token_is_refused(app, make):
    firm = make.firm()
    assert firm.api.get("/auth/me").status_code == 200
    with in_app(app) as session:
        revoke_api_token(session.scalar(select(ApiToken)))
        db.session.commit()
    response = firm.api.get("/auth/me")
    assert response.status_code == 401 and response.get_json()["error"]["code"] == "unauthorized"
    client = app.test_client()
    assert client.get("/api/v1/auth/me", headers={"Authorization": "Bearer garbage"}).status_code == 401
    assert client.get("/api/v1/auth/me", headers={"Authorization": "Basic abc"}).status_code == 401


def test_login_requires_a_json_body(client, make):
    firm = make.firm()
    response = client.post("/api/v1/auth/login", data={"email": firm.staff_email, "password": STAFF_PASSWORD})
    assert response.status_code in (415, 422)
    assert "error" in response.get_json()


def test_r_rel_3_malformed_login_bodies_get_a_4xx_in_the_error_shape(client):
    for body, content_type in [
        ("{not json", "application/json"),
        ('{"email": 5, "password": []}', "application/json"),
        ('{"email": "a@b.c", "password": "x", "admin": true}', "application/json"),
    ]:
        response = client.post("/api/v1/auth/login", data=body, content_type=content_type)
        assert 400 <= response.status_code < 500, body
        assert set(response.get_json()["error"]) == {"code", "message", "fields"}
