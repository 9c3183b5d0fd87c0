"""Rate limits on login, activation, reset and "ask for a new invitation" (R-SEC-3), in
Redis when configured, failing closed when it is down (R-SEC-11)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from portal_app.models import Invitation, utcnow
from tests.conftest import in_app
from tests.factories import STAFF_PASSWORD
from tests.portal_helpers import csrf_from, setup_invite

LOW = {"LIMIT_PER_EMAIL": "2 per minute", "LIMIT_PER_IP": "4 per minute", "LIMIT_NEW_INVITATION": "1 per day"}


def _post_login(client, email: str):
    page = client.get("/portal/login")
    return client.post(
        "/portal/login",
        data={"email": email, "password": "not the password 1", "csrf_token": csrf_from(page.data)},
    )


@pytest.mark.settings(**LOW)
def test_r_sec_3_portal_login_is_limited_per_email_then_per_ip_in_redis(app, redis_url):
    from redis import Redis

    client = app.test_client()
    assert [_post_login(client, "anna@example.com").status_code for _ in range(3)] == [401, 401, 429]
    limited = _post_login(client, "ANNA@example.com")
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
    assert b"Too many attempts" in limited.data
    # other emails from the same IP run into the per-IP limit (4 per minute)
    others = [_post_login(client, f"person{n}@example.com").status_code for n in range(4)]
    assert 429 in others and others[0] == 401
    assert any(b"portico-limits" in key for key in Redis.from_url(redis_url).scan_iter())


@pytest.mark.settings(**LOW)
def test_r_sec_3_staff_api_login_is_limited_per_email(client):
    statuses = [
        client.post(
            "/api/v1/auth/login", json={"email": "a@firm.example", "password": STAFF_PASSWORD}
        ).status_code
        for _ in range(3)
    ]
    assert statuses == [401, 401, 429]
    limited = client.post("/api/v1/auth/login", json={"email": "a@firm.example", "password": "x"})
    assert limited.get_json()["error"]["code"] == "rate_limited" and limited.headers["Retry-After"]


@pytest.mark.settings(**LOW)
def test_r_sec_3_activation_and_reset_links_are_limited_per_link(app, make, smtp):
    world = setup_invite(make, smtp, app)
    client = app.test_client()
    page = client.get(world.link)
    bad = {"password": "short", "confirm": "short", "csrf_token": csrf_from(page.data)}
    assert [client.post(world.link, data=bad).status_code for _ in range(3)] == [422, 422, 429]
    forgot = client.get("/portal/password/forgot")
    data = {"email": world.email.address, "csrf_token": csrf_from(forgot.data)}
    assert [client.post("/portal/password/forgot", data=data).status_code for _ in range(3)] == [
        200,
        200,
        429,
    ]


@pytest.mark.settings(**LOW)
def test_r_sec_3_asking_for_a_new_invitation_is_limited(app, make, smtp):
    world = setup_invite(make, smtp, app)
    with in_app(app) as session:
        session.execute(update(Invitation).values(expires_at=utcnow() - timedelta(hours=1)))
        session.commit()
    client = app.test_client()
    token = csrf_from(client.get(world.link).data)
    first = client.post(world.link + "/request-new", data={"csrf_token": token})
    second = client.post(world.link + "/request-new", data={"csrf_token": token})
    assert (first.status_code, second.status_code) == (200, 429)


@pytest.mark.settings(ENV={"REDIS_URL": "redis://127.0.0.1:1/0"})
def test_r_sec_11_rate_limited_forms_fail_closed_when_redis_is_down(app):
    client = app.test_client()
    page = client.get("/portal/login")
    assert page.status_code == 200  # reading the form needs no limit
    response = client.post(
        "/portal/login",
        data={"email": "a@example.com", "password": "whatever pass 1", "csrf_token": csrf_from(page.data)},
    )
    assert response.status_code == 503 and b"Temporarily unavailable" in response.data
    api = client.post("/api/v1/auth/login", json={"email": "a@example.com", "password": "x"})
    assert api.status_code == 503 and api.get_json()["error"]["code"] == "unavailable"


@pytest.mark.settings(**LOW)
def test_r_sec_3_successful_portal_logins_are_never_refused_and_clear_failures(app, make, smtp):
    """Seven good logins from a desktop, a phone and German used to give 429 for minutes."""
    from tests.portal_helpers import GOOD_PASSWORD, activate, login

    app.config["LIMIT_PER_IP"] = "100 per minute"
    world = setup_invite(make, smtp, app)
    assert activate(app.test_client(), world.link).status_code == 302
    address = world.email.address
    assert [login(app.test_client(), address).status_code for _ in range(20)] == [302] * 20
    # a typo, then a success clears it: two more typos are allowed (the limit is 2 per minute)
    assert _post_login(app.test_client(), address).status_code == 401
    assert login(app.test_client(), address, GOOD_PASSWORD).status_code == 302
    assert [_post_login(app.test_client(), address).status_code for _ in range(3)] == [401, 401, 429]
    # guessing is still stopped, and once stopped even the right password waits
    assert login(app.test_client(), address, GOOD_PASSWORD).status_code == 429


@pytest.mark.settings(**LOW)
def test_r_sec_3_successful_staff_api_logins_are_never_refused(app, make, redis_url):
    app.config["LIMIT_PER_IP"] = "100 per minute"
    firm = make.firm()
    good = {"email": firm.staff_email, "password": STAFF_PASSWORD}
    statuses = [app.test_client().post("/api/v1/auth/login", json=good).status_code for _ in range(20)]
    assert statuses == [200] * 20
    client = app.test_client()
    bad = {"email": firm.staff_email, "password": "not it"}
    assert [client.post("/api/v1/auth/login", json=bad).status_code for _ in range(3)] == [401, 401, 429]


@pytest.mark.settings(LIMIT_PER_EMAIL="100 per minute", LIMIT_PER_IP="5 per minute")
def test_r_sec_3_every_attempt_counts_per_ip(client, redis_url):
    statuses = [
        client.post("/api/v1/auth/login", json={"email": f"p{n}@x.example", "password": "x"}).status_code
        for n in range(6)
    ]
    assert statuses == [401] * 5 + [429]
