"""Password resets, passwords, sessions, tokens, rate limits and delivery faults
(R-LOG-9, R-LOG-10, R-SEC-2..11, R-REL-1, R-REL-4)."""

from __future__ import annotations

import io
import logging
import time
from datetime import timedelta
from typing import Any

import pytest
from argon2 import PasswordHasher
from itsdangerous import TimestampSigner
from sqlalchemy import inspect, select, text

from portal_app.extensions import db
from portal_app.models import InboxItem, OutboxEmail, PortalUser, utcnow
from tests.conftest import in_app, run_worker
from tests.portal_helpers import (
    GOOD_PASSWORD,
    activate,
    csrf_from,
    home,
    invitation_block,
    link_in,
    login,
    setup_invite,
    submit,
)

NEW_PASSWORD = "otter window copper 77"


def _activated(app, make, smtp):
    world = setup_invite(make, smtp, app)
    client = app.test_client()
    assert activate(client, world.link).status_code == 302
    return world, client


# --- R-LOG-9: resets ------------------------------------------------------------------------------


def test_r_log_9_staff_reset_email_sets_a_new_password_once_and_ends_other_sessions(app, make, smtp):
    world, old_session = _activated(app, make, smtp)
    assert world.firm.api.post(world.settings_path + "/password-reset").status_code == 202
    mail = smtp.wait_for(2)[-1]
    assert "Reset your" in mail["Subject"] and GOOD_PASSWORD not in mail.as_string()
    link = link_in(mail)
    client = app.test_client()
    done = activate(client, link, NEW_PASSWORD)
    assert done.status_code == 302 and home(client).status_code == 200
    assert home(old_session).status_code == 302  # the password change ended it
    again = app.test_client().get(link)
    assert again.status_code == 410  # dies with the password change: single use
    assert login(app.test_client(), world.email.address, NEW_PASSWORD).status_code == 302
    assert login(app.test_client(), world.email.address, GOOD_PASSWORD).status_code == 401


def test_r_log_9_staff_reset_needs_an_activated_login(make):
    firm = make.firm()
    account = make.account(firm.id)
    email = account.contacts[0].emails[0]
    response = firm.api.post(f"/accounts/{account.id}/contact-settings/{email.id}/password-reset")
    assert response.status_code == 409


def test_r_log_9_client_self_service_reset_and_expiry(app, make, smtp, monkeypatch):
    world, _ = _activated(app, make, smtp)
    client = app.test_client()
    sent = submit(client, "/portal/password/forgot", {"email": world.email.address.upper()})
    assert sent.status_code == 200 and b"Check your email" in sent.data
    link = link_in(smtp.wait_for(2)[-1])
    real = TimestampSigner.get_timestamp
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: real(self) + 3601)
    assert app.test_client().get(link).status_code == 410  # older than 60 minutes
    monkeypatch.undo()
    assert activate(app.test_client(), link, NEW_PASSWORD).status_code == 302


# --- R-SEC-4 / R-SEC-10: same answers, upgraded hashes --------------------------------------------


def test_r_sec_4_login_and_reset_answer_the_same_for_unknown_and_known_emails(app, make, smtp):
    world, _ = _activated(app, make, smtp)
    known = login(app.test_client(), world.email.address, "wrong password here")
    unknown = login(app.test_client(), "nobody@example.com", "wrong password here")
    assert known.status_code == unknown.status_code == 401
    strip = lambda body: body.replace(world.email.address.encode(), b"").replace(b"nobody@example.com", b"")  # noqa: E731
    assert strip(_without_csrf(known.data)) == strip(_without_csrf(unknown.data))
    mails = len(smtp.messages)
    a = submit(app.test_client(), "/portal/password/forgot", {"email": world.email.address})
    b = submit(app.test_client(), "/portal/password/forgot", {"email": "nobody@example.com"})
    assert a.status_code == b.status_code == 200 and _without_csrf(a.data) == _without_csrf(b.data)
    assert len(smtp.wait_for(mails + 1)) == mails + 1  # only the known address got mail


def _without_csrf(body: bytes) -> bytes:
    import re

    return re.sub(rb'value="[^"]*"', b"", body)


def test_r_sec_10_weaker_hashes_are_upgraded_at_login(app, make, smtp):
    world, _ = _activated(app, make, smtp)
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(GOOD_PASSWORD)
    with in_app(app) as session:
        user = session.scalar(select(PortalUser))
        user.password_hash = weak
        session.commit()
    assert login(app.test_client(), world.email.address).status_code == 302
    with in_app(app) as session:
        upgraded = session.scalar(select(PortalUser)).password_hash
        assert upgraded != weak and upgraded.startswith("$argon2id$") and "m=65536" in upgraded


# --- R-LOG-10: the password policy -----------------------------------------------------------------


@pytest.mark.parametrize(
    "password, confirm, says",
    [
        ("short pass", "short pass", b"at least 12"),
        ("password1234", "password1234", b"too common"),
        ("aaaaaaaaaaaaaaa", "aaaaaaaaaaaaaaa", b"too common"),
        (GOOD_PASSWORD, GOOD_PASSWORD + "x", b"do not match"),
        ("x" * 257, "x" * 257, b"at most 256"),
    ],
)
def test_r_log_10_weak_passwords_are_refused_and_the_link_stays_usable(
    app, make, smtp, password, confirm, says
):
    world = setup_invite(make, smtp, app)
    client = app.test_client()
    page = client.get(world.link)
    refused = client.post(
        world.link, data={"password": password, "confirm": confirm, "csrf_token": csrf_from(page.data)}
    )
    assert refused.status_code in (200, 422) and says in refused.data.lower()
    assert invitation_block(world.firm, world.account.id, world.email.id)["state"] == "invited"


def test_r_log_10_any_unicode_password_of_twelve_characters_works(app, make, smtp):
    world = setup_invite(make, smtp, app)
    assert activate(app.test_client(), world.link, "Grüße aus Köln 🌧️ daheim").status_code == 302
    assert login(app.test_client(), world.email.address, "Grüße aus Köln 🌧️ daheim").status_code == 302


# --- R-SEC-2 / R-SEC-8: CSRF, redirects ------------------------------------------------------------


def test_r_sec_2_every_portal_form_refuses_a_post_without_csrf(app, make, smtp):
    world = setup_invite(make, smtp, app)
    with in_app(app) as session:
        session.execute(text("UPDATE invitations SET expires_at = :t"), {"t": utcnow() - timedelta(days=1)})
        session.commit()
    expired_link = world.link
    fresh = world.firm.api.post(world.settings_path + "/invitation", json={}).get_json()
    assert fresh["invitation"]["state"] == "invited"
    link = link_in(smtp.wait_for(2)[-1])
    # requests without a CSRF token, against every POST route of the portal
    anonymous = app.test_client()
    posts = {
        "portal.activate": (link, {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD}),
        "portal.request_new_invitation": (expired_link + "/request-new", {}),
        "portal.login": ("/portal/login", {"email": world.email.address, "password": GOOD_PASSWORD}),
        "portal.forgot_password": ("/portal/password/forgot", {"email": world.email.address}),
        # the passkey script's JSON calls carry the page's token in X-CSRFToken (R-SEC-15)
        "portal.passkey_login_options": ("/portal/passkeys/login/options", {}),
        "portal.passkey_login_verify": ("/portal/passkeys/login/verify", {}),
    }
    for path, data in posts.values():
        assert anonymous.post(path, data=data).status_code == 400, path
    assert invitation_block(world.firm, world.account.id, world.email.id)["state"] == "invited"
    client = app.test_client()
    activate(client, link)
    world.firm.api.post(world.settings_path + "/password-reset")
    reset_link = link_in(smtp.wait_for(3)[-1])
    posts["portal.reset_password"] = (reset_link, {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    posts["portal.logout"] = ("/portal/logout", {})
    posts["portal.switch_account"] = ("/portal/switch", {"account_id": str(world.account.id)})
    posts["portal.profile"] = ("/portal/profile", {"profile-language": "de", "profile-submit": "1"})
    todo = world.firm.api.post(
        f"/accounts/{world.account.id}/todos", json={"kind": "documents_upload", "title": "Upload the W-2"}
    ).get_json()
    posts["portal.complete_todo"] = (f"/portal/a/{world.account.id}/todos/{todo['id']}/done", {})
    signed_in = {
        "portal.mfa_app": ("/portal/mfa/app", {}),
        "portal.mfa_app_confirm": ("/portal/mfa/app/confirm", {"code": "123456"}),
        "portal.mfa_email": ("/portal/mfa/email", {}),
        "portal.mfa_email_confirm": ("/portal/mfa/email/confirm", {"code": "123456"}),
        "portal.mfa_recovery_download": ("/portal/mfa/recovery-codes.txt", {"code": "abcde-fghjk"}),
        "portal.mfa_disable": ("/portal/mfa/disable", {"password": GOOD_PASSWORD, "code": "123456"}),
        "portal.login_code": ("/portal/login/code", {"code": "123456"}),
        "portal.login_code_email": ("/portal/login/code/email", {}),
        "portal.passkey_register_options": ("/portal/passkeys/register/options", {}),
        "portal.passkey_register_verify": ("/portal/passkeys/register/verify", {}),
        "portal.passkey_remove": ("/portal/passkeys/1/remove", {}),
    }
    aid = world.account.id
    request_todo = world.firm.api.post(
        f"/accounts/{aid}/todos",
        json={
            "kind": "client_requests",
            "title": "Documents",
            "items": [{"label": "W-2", "type": "upload"}, {"label": "Moved?", "type": "answer"}],
        },
    ).get_json()
    upload_item, answer_item = (i["id"] for i in request_todo["items"])
    document = world.firm.api.post(
        f"/accounts/{aid}/documents",
        data={"file": (io.BytesIO(b"%PDF-1.4 x"), "x.pdf")},
        content_type="multipart/form-data",
    ).get_json()["id"]
    base = f"/portal/a/{aid}/requests/{request_todo['id']}"
    signed_in.update(
        {
            "portal.upload_documents": (f"/portal/a/{aid}/documents", {"file": (io.BytesIO(b"x"), "x.txt")}),
            "portal.delete_document": (f"/portal/documents/{document}/delete", {}),
            "portal.answer_request_item": (f"{base}/items/{answer_item}/answer", {"answer": "No"}),
            "portal.upload_request_files": (
                f"{base}/items/{upload_item}/files",
                {"file": (io.BytesIO(b"x"), "y.txt")},
            ),
            "portal.submit_request": (f"{base}/submit", {}),
            "portal.upload_photo": (f"/portal/a/{aid}/photo", {"file": (io.BytesIO(b"x"), "p.jpg")}),
            "portal.delete_photo": (f"/portal/a/{aid}/photo/delete", {}),
        }
    )
    # the pages of an emailed "Open without logging in" link (R-LFA-3): live links, no CSRF token
    world.firm.api.patch(
        "/firm", json={"login_free_actions": ["sign", "upload_documents", "complete_client_requests"]}
    )
    world.firm.api.patch(world.settings_path, json={"notify": True, "signatory": True})
    sign_todo = world.firm.api.post(
        f"/accounts/{aid}/todos", json={"kind": "documents_signature", "title": "Form 8879"}
    ).get_json()
    with in_app(app) as session:
        from portal_app.models import ContactEmail, Firm, Todo
        from portal_app.services import action_links

        firm_row, email_row = session.get(Firm, world.firm.id), session.get(ContactEmail, world.email.id)

        def minted(**item: Any) -> str:
            return "/portal/link/" + action_links.mint(firm_row, email=email_row, account_id=aid, **item)

        sign_link = minted(todo=session.get(Todo, int(sign_todo["id"])))
        request_link = minted(todo=session.get(Todo, int(request_todo["id"])))
        documents_link = minted(document_ids=[int(document)])
    assert app.test_client().get(sign_link).status_code == 200
    signed_in.update(
        {
            "portal.action_link_complete": (sign_link + "/sign", {"confirm": "yes"}),
            "portal.action_link_answer": (f"{request_link}/items/{answer_item}/answer", {"answer": "No"}),
            "portal.action_link_item_files": (
                f"{request_link}/items/{upload_item}/files",
                {"file": (io.BytesIO(b"x"), "z.txt")},
            ),
            "portal.action_link_submit": (request_link + "/submit", {}),
            "portal.action_link_upload": (documents_link + "/upload", {"file": (io.BytesIO(b"x"), "u.txt")}),
        }
    )
    posts.update(signed_in)
    for endpoint in (
        "portal.reset_password",
        "portal.logout",
        "portal.switch_account",
        "portal.profile",
        "portal.complete_todo",
        *signed_in,
    ):
        path, data = posts[endpoint]
        assert client.post(path, data=data).status_code == 400, path
    portal_posts = {
        r.endpoint
        for r in app.url_map.iter_rules()
        if r.endpoint.startswith("portal.") and "POST" in r.methods
    }
    # One-click unsubscribe is CSRF-exempt by design (RFC 8058: mail providers POST without
    # cookies); its signed link is the credential, tested in test_notifications.
    assert portal_posts - {"portal.unsubscribe"} == set(posts)  # a new POST route must join this test
    assert world.firm.api.get(f"/accounts/{world.account.id}/todos").get_json()["items"][0]["state"] == "open"
    assert home(client).status_code == 200  # logout without CSRF did nothing
    assert (
        login(app.test_client(), world.email.address, GOOD_PASSWORD).status_code == 302
    )  # reset did nothing
    with in_app(app) as session:
        assert session.scalars(select(InboxItem)).all() == []


def test_r_sec_8_next_accepts_only_local_paths(app, make, smtp):
    world = setup_invite(make, smtp, app)
    activate(app.test_client(), world.link)
    for target, expected in [
        ("/portal/?tab=docs", "/portal/?tab=docs"),
        ("https://evil.example/", "/portal/"),
        ("//evil.example/x", "/portal/"),
        ("/\\evil.example", "/portal/"),
    ]:
        client = app.test_client()
        page = client.get("/portal/login", query_string={"next": target})
        done = client.post(
            "/portal/login",
            data={
                "email": world.email.address,
                "password": GOOD_PASSWORD,
                "next": target,
                "csrf_token": csrf_from(page.data),
            },
        )
        assert done.headers["Location"] == expected, target


# --- R-SEC-5 / R-SEC-11: sessions ------------------------------------------------------------------


def test_r_sec_5_login_rotates_the_session_and_sets_safe_cookie_flags(app, make, smtp):
    world, _ = _activated(app, make, smtp)
    client = app.test_client()
    with client.session_transaction() as before:
        before["planted"] = "by an attacker"
    response = login(client, world.email.address)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    with client.session_transaction() as after:
        assert "planted" not in after


def test_r_sec_5_logout_ends_every_session_of_the_user(app, make, smtp):
    world, first = _activated(app, make, smtp)
    second = app.test_client()
    login(second, world.email.address)
    page = home(first)
    assert first.post("/portal/logout", data={"csrf_token": csrf_from(page.data)}).status_code == 302
    assert home(first).status_code == 302
    assert home(second).status_code == 302


@pytest.mark.parametrize(
    "field, age, reason", [("seen_at", 61 * 60, "idle"), ("auth_at", 8 * 3600 + 5, "absolute")]
)
def test_r_sec_11_sessions_end_after_idle_and_absolute_timeouts(app, make, smtp, field, age, reason):
    world, client = _activated(app, make, smtp)
    assert home(client).status_code == 200
    with client.session_transaction() as session:
        session[field] = int(time.time()) - age
    ended = home(client)
    assert ended.status_code == 302 and f"expired={reason}" in ended.headers["Location"]
    assert home(client).status_code == 302  # really logged out


@pytest.mark.settings(ENV={"PORTICO_ENV": "production", "SECRET_KEY": "p" * 40, "REDIS_URL": "redis://x"})
def test_r_sec_11_production_cookie_is_host_prefixed_and_secure(app):
    assert app.config["SESSION_COOKIE_NAME"] == "__Host-portico_session"
    assert app.config["SESSION_COOKIE_SECURE"] is True


# --- R-SEC-6 / R-SEC-9: tokens -------------------------------------------------------------------


def test_r_sec_6_an_invitation_token_does_not_work_as_a_reset_token(app, make, smtp):
    world = setup_invite(make, smtp, app)
    token = world.link.rsplit("/", 1)[1]
    page = app.test_client().get(f"/portal/password/reset/{token}")
    assert page.status_code == 400 and b'data-problem="tampered"' in page.data


def test_r_sec_6_links_survive_secret_key_rotation_through_fallbacks(app, make, smtp):
    world = setup_invite(make, smtp, app)
    old_key = app.config["SECRET_KEY"]
    app.config["SECRET_KEY"] = "a brand new secret key after rotation 0123456789"
    app.config["SECRET_KEY_FALLBACKS"] = []
    assert app.test_client().get(world.link).status_code == 400  # unknown key: refused
    app.config["SECRET_KEY_FALLBACKS"] = [old_key]
    assert app.test_client().get(world.link).status_code == 200
    assert activate(app.test_client(), world.link).status_code == 302


def test_r_sec_9_no_raw_token_in_database_redis_or_job_arguments(app, make, smtp, redis_url):
    from redis import Redis

    world = setup_invite_via_worker(app, make, smtp)
    token = world["link"].rsplit("/", 1)[1]
    secret_part = token.split(".")[0]
    with in_app(app) as session:
        dump = []
        for table in inspect(db.engine).get_table_names():
            for row in session.execute(text(f'SELECT * FROM "{table}"')):
                dump.append(repr(tuple(row)))
        everything = "\n".join(dump)
    assert token not in everything and secret_part not in everything
    conn = Redis.from_url(redis_url)
    for key in conn.scan_iter():
        values = _redis_values(conn, key)
        blob = b"".join(v if isinstance(v, bytes) else str(v).encode() for v in values)
        assert token.encode() not in blob and secret_part.encode() not in blob, key


def _redis_values(conn, key) -> list:
    kind = conn.type(key).decode()
    if kind == "string":
        return [conn.get(key)]
    if kind == "hash":
        return [*conn.hgetall(key).keys(), *conn.hgetall(key).values()]
    if kind == "list":
        return conn.lrange(key, 0, -1)
    if kind == "zset":
        return conn.zrange(key, 0, -1)
    if kind == "set":
        return list(conn.smembers(key))
    return []


def setup_invite_via_worker(app, make, smtp) -> dict:
    app.config["MAIL_URL"] = smtp.url
    firm = make.firm()
    account = make.account(firm.id)
    email = account.contacts[0].emails[0]
    firm.api.patch(
        f"/accounts/{account.id}/contact-settings/{email.id}", json={"login": True, "send_invitation": True}
    )
    run_worker(app)
    [mail] = smtp.wait_for(1)
    return {"firm": firm, "account": account, "email": email, "link": link_in(mail)}


def test_r_sec_9_token_pages_are_redacted_in_access_logs(app, make, smtp, caplog):
    from portal_app.redact import RedactTokens

    world = setup_invite(make, smtp, app)
    record = logging.LogRecord(
        "werkzeug", logging.INFO, __file__, 1, '"%s %s %s" %s', ("GET", world.link, "HTTP/1.1", "200"), None
    )
    RedactTokens().filter(record)
    token = world.link.rsplit("/", 1)[1]
    assert token not in record.getMessage() and "/portal/activate/[redacted]" in record.getMessage()


# --- R-REL-1 / R-REL-4: delivery ----------------------------------------------------------------------


def test_r_rel_4_a_job_for_a_revoked_invitation_sends_nothing_and_a_job_twice_sends_once(
    app, make, smtp, redis_url
):
    from portal_app.jobs.mail import deliver_outbox_email

    app.config["MAIL_URL"] = smtp.url
    firm = make.firm()
    account = make.account(firm.id)
    email = account.contacts[0].emails[0]
    path = f"/accounts/{account.id}/contact-settings/{email.id}"
    firm.api.patch(path, json={"login": True, "send_invitation": True})
    firm.api.delete(path + "/invitation")  # revoked before any worker ran
    run_worker(app)
    assert smtp.wait_for(1, timeout=0.5) == []
    firm.api.post(path + "/invitation", json={})
    run_worker(app)
    assert len(smtp.wait_for(1)) == 1
    with in_app(app):
        outbox_id = db.session.scalar(select(OutboxEmail.id).where(OutboxEmail.state == "sent"))
        assert deliver_outbox_email(outbox_id) == "skipped"  # the same job again
    assert len(smtp.wait_for(2, timeout=0.5)) == 1


def test_r_rel_1_smtp_down_ends_failed_and_shows_on_the_invitation_block(app, make, smtp):
    app.config["MAIL_URL"] = smtp.url
    app.config["MAIL_MAX_ATTEMPTS"] = 1
    smtp.stop()
    firm = make.firm()
    account = make.account(firm.id)
    email = account.contacts[0].emails[0]
    response = firm.api.patch(
        f"/accounts/{account.id}/contact-settings/{email.id}", json={"login": True, "send_invitation": True}
    )
    assert response.status_code == 200
    block = invitation_block(firm, account.id, email.id)
    assert block["delivery"] == "failed" and block["delivery_error"]


def test_r_rel_1_invitation_survives_redis_down_and_the_sweep_delivers_it(app, make, smtp, redis_url):
    from portal_app.jobs.mail import sweep_outbox

    app.config["MAIL_URL"] = smtp.url
    firm = make.firm()
    account = make.account(firm.id)
    email = account.contacts[0].emails[0]
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"  # nothing listens there
    response = firm.api.patch(
        f"/accounts/{account.id}/contact-settings/{email.id}", json={"login": True, "send_invitation": True}
    )
    assert response.status_code == 200
    assert invitation_block(firm, account.id, email.id)["delivery"] == "pending"
    app.config["REDIS_URL"] = redis_url  # Redis is back
    app.extensions.pop("portico.redis")
    app.extensions.pop("portico.queue")
    with in_app(app):
        assert sweep_outbox() == 1
    run_worker(app)
    assert activate(app.test_client(), link_in(smtp.wait_for(1)[0])).status_code == 302
