"""Production as it runs: gunicorn with `gunicorn.conf.py`, production settings, `__Host-`/Secure
cookies, HTTPS, and a real browser sending Origin/Referer — directly over TLS, and behind a
TLS-terminating proxy (PROXY_HOPS). Also the access log: one line per request, token paths
redacted (issue 15).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from portal_app.headers import CSP
from tests.conftest import free_port, run_worker
from tests.factories import STAFF_PASSWORD
from tests.portal_helpers import GOOD_PASSWORD, link_in
from tests.test_portal_browser import CHROMIUM_ARGS, assert_no_csp_violations, browser, watch_csp  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
TOKEN = re.compile(r"/portal/activate/([^\s\"]+)")
ACTION_LINK = re.compile(r"https?://[^/\s]+(/portal/link/[^\s\"<]+)")


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def start_gunicorn(
    app: Any,
    database_url: str,
    redis_url: str,
    tmp_path: Path,
    *,
    extra_env: dict[str, str],
    args: list[str],
    port: int | None = None,
) -> tuple[subprocess.Popen[bytes], int, Path]:
    port = port or free_port()
    log = tmp_path / f"gunicorn-{port}.log"
    env = dict(
        os.environ,
        PORTICO_ENV="production",
        SECRET_KEY=app.config["SECRET_KEY"],  # the worker (run_worker) mints links with it
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        MAIL_URL=app.config["MAIL_URL"],
        PORTICO_INSTANCE_PATH=str(tmp_path),
        WEB_CONCURRENCY="1",
        GUNICORN_BIND=f"127.0.0.1:{port}",
    )
    env.update(extra_env)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", *args, "wsgi:app"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if "Booting worker" in log.read_text(errors="replace"):
            break
        assert proc.poll() is None, log.read_text()
        time.sleep(0.1)
    time.sleep(0.5)
    return proc, port, log


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


class Https:
    """A tiny cookie-keeping client for the staff API over TLS (self-signed certificate)."""

    def __init__(self, port: int, *, tls: bool = True, headers: dict[str, str] | None = None):
        self.port, self.tls, self.cookies, self.headers = port, tls, {}, headers or {}

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        if self.tls:
            context = ssl.create_default_context()
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                "127.0.0.1", self.port, context=context, timeout=10
            )
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        sent = {"Content-Type": "application/json", **self.headers, **(headers or {})}
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=sent)
        response = conn.getresponse()
        data = response.read()
        set_cookies = response.headers.get_all("Set-Cookie") or []
        for raw in set_cookies:
            name, _, rest = raw.partition("=")
            self.cookies[name] = rest.split(";", 1)[0]
        conn.close()
        return SimpleNamespace(
            status=response.status,
            json=json.loads(data) if data[:1] in (b"{", b"[") else None,
            set_cookies=set_cookies,
            headers=response.headers,
        )


@pytest.fixture
def production(app, make, smtp, redis_url, database_url, tmp_path, certificate) -> Iterator[SimpleNamespace]:
    app.config["MAIL_URL"] = smtp.url
    firm = make.firm("Harbor & Finch CPA")
    account = make.account(firm.id, "Berger Family")
    cert, key = certificate
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    proc, port, log = start_gunicorn(
        app,
        database_url,
        redis_url,
        tmp_path,
        extra_env={"BASE_URL": url},
        args=["--certfile", str(cert), "--keyfile", str(key)],
        port=port,
    )
    try:
        yield SimpleNamespace(firm=firm, account=account, port=port, log=log, url=url, smtp=smtp)
    finally:
        stop(proc)


def test_production_walk_over_tls_with_a_real_browser_and_the_staff_api(production, app, browser, tmp_path):  # noqa: F811
    """Staff invite over HTTPS, the client activates in Chromium with `__Host-` Secure cookies, the
    staff SPA's cookie calls pass the CSRF token and HTTPS referrer checks, and the access log
    has one redacted line per request."""
    staff = Https(production.port)
    login = staff.call(
        "POST", "/api/v1/auth/login", {"email": production.firm.staff_email, "password": STAFF_PASSWORD}
    )
    assert login.status == 200, login.json
    # R-SEC-14 in production: HSTS, nosniff, and someone's JSON is not cached
    assert login.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert (
        login.headers["X-Content-Type-Options"] == "nosniff" and login.headers["Cache-Control"] == "no-store"
    )
    [cookie] = [c for c in login.set_cookies if c.startswith("__Host-portico_session=")]
    assert "Secure" in cookie and "HttpOnly" in cookie and "Path=/" in cookie and "Domain" not in cookie
    csrf = login.json["csrf_token"]
    email = production.account.contacts[0].emails[0]
    path = f"/api/v1/accounts/{production.account.id}/contact-settings/{email.id}"
    body = {"login": True, "send_invitation": True}
    # The HTTPS referrer check, and an error that names it.
    missing = staff.call("PATCH", path, body, {"X-CSRFToken": csrf})
    assert missing.status == 403 and "Referer" in missing.json["error"]["message"]
    foreign = staff.call("PATCH", path, body, {"X-CSRFToken": csrf, "Referer": "https://evil.example/x"})
    assert foreign.status == 403 and "another site" in foreign.json["error"]["message"]
    no_token = staff.call("PATCH", path, body, {"Referer": production.url + "/app/"})
    assert no_token.status == 403 and "X-CSRFToken" in no_token.json["error"]["message"]
    ok = staff.call("PATCH", path, body, {"X-CSRFToken": csrf, "Referer": production.url + "/app/"})
    assert ok.status == 200, ok.json
    run_worker(app)  # the production worker class delivers the invitation
    [mail] = [m for m in production.smtp.wait_for(1) if m["To"] == email.address]
    link = production.url + link_in(mail)

    context = browser.new_context(ignore_https_errors=True)
    page = watch_csp(context.new_page())
    opened = page.goto(link)
    assert opened is not None
    assert opened.headers["content-security-policy"] == CSP and opened.headers["x-frame-options"] == "DENY"
    assert opened.headers["strict-transport-security"].startswith("max-age=31536000")
    page.get_by_label("New password", exact=True).fill(GOOD_PASSWORD)
    page.get_by_label("New password, again").fill(GOOD_PASSWORD)
    page.get_by_role("button", name="Activate my login").click()
    page.wait_for_url(re.compile(r"/portal/a/\d+/"))
    assert "Berger Family" in page.content()
    [session] = [c for c in context.cookies() if c["name"] == "__Host-portico_session"]
    assert session["secure"] and session["httpOnly"] and session["sameSite"] == "Lax"
    # a JavaScript upload over HTTPS: the file as the body, the CSRF token in a header, no
    # Referer (the portal sends none), the __Host- cookie; then the page lists it
    page.get_by_role("link", name="Documents", exact=True).click()
    file = tmp_path / "W-2 2025.pdf"
    file.write_bytes(b"%PDF-1.4 production upload")
    page.get_by_label(re.compile("Choose files")).set_input_files(str(file))
    page.get_by_role("button", name="Upload", exact=True).click()
    page.get_by_role("link", name="W-2 2025.pdf").wait_for()
    page.get_by_role("link", name="Profile").click()
    assert page.url.endswith("/portal/profile")
    assert_no_csp_violations(page)
    context.close()

    # R-LFA-3 over HTTPS: a signing link from the email, in a browser nobody signed in to
    headers = {"X-CSRFToken": csrf, "Referer": production.url + "/app/"}
    allowed = staff.call("PATCH", "/api/v1/firm", {"login_free_actions": ["sign"]}, headers)
    assert allowed.status == 200, allowed.json
    assert staff.call("PATCH", path, {"notify": True, "signatory": True}, headers).status == 200
    todo = staff.call(
        "POST",
        f"/api/v1/accounts/{production.account.id}/todos",
        {"kind": "documents_signature", "title": "Form 8879"},
        headers,
    )
    assert todo.status == 201, todo.json
    run_worker(app)
    [todo_mail] = [m for m in production.smtp.wait_for(2) if "8879" in m.get_body(("plain",)).get_content()]
    action_link = production.url + ACTION_LINK.search(todo_mail.get_body(("plain",)).get_content()).group(1)
    context = browser.new_context(ignore_https_errors=True)
    page = watch_csp(context.new_page())
    opened = page.goto(action_link)
    assert opened is not None and opened.headers["referrer-policy"] == "no-referrer"
    page.get_by_label(re.compile("sign this for Berger Family")).check()
    page.get_by_role("button", name="Sign now").click()
    page.get_by_role("heading", name="Thank you").wait_for()
    assert_no_csp_violations(page)
    context.close()
    signed = staff.call("GET", f"/api/v1/accounts/{production.account.id}/todos")
    assert signed.json["items"][0]["done_by"]["via"] == "email_link"

    time.sleep(0.3)
    log = production.log.read_text()
    assert action_link.rsplit("/portal/link/", 1)[1] not in log, "an action link's token reached the log"
    assert re.search(r'"POST /portal/link/\[redacted\]/sign HTTP/1.1" 303', log), log[-3000:]
    token = TOKEN.search(link).group(1)
    assert token not in log, "the invitation token reached gunicorn's access log"
    assert '"GET /portal/activate/[redacted] HTTP/1.1" 200' in log
    assert re.search(r'"POST /portal/activate/\[redacted\] HTTP/1.1" 30[23]', log), log[-3000:]
    assert "Traceback" not in log and "TypeError" not in log, log[-3000:]
    assert len(re.findall(r'"PATCH /api/v1/accounts/\d+/contact-settings/\d+ HTTP/1.1" 403', log)) == 3


def test_behind_a_tls_proxy_forwarded_headers_count_only_with_proxy_hops(
    app, make, smtp, redis_url, database_url, tmp_path
):
    """PROXY_HOPS=1: the app sees HTTPS and the public host from X-Forwarded-*, so the HTTPS
    referrer check runs against the public host; PROXY_HOPS unset: X-Forwarded-Host is ignored
    and the refusal says to set PROXY_HOPS."""
    app.config["MAIL_URL"] = smtp.url
    firm = make.firm()
    account = make.account(firm.id)
    email = account.contacts[0].emails[0]
    path = f"/api/v1/accounts/{account.id}/contact-settings/{email.id}"
    public = "portal.harborfinch.example"
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": public, "X-Forwarded-For": "203.0.113.9"}

    proc, port, _ = start_gunicorn(
        app, database_url, redis_url, tmp_path, extra_env={"PROXY_HOPS": "1"}, args=[]
    )
    try:
        staff = Https(port, tls=False, headers=forwarded)
        login = staff.call(
            "POST", "/api/v1/auth/login", {"email": firm.staff_email, "password": STAFF_PASSWORD}
        )
        assert login.status == 200
        csrf = login.json["csrf_token"]
        wrong = staff.call(
            "PATCH", path, {"notify": False}, {"X-CSRFToken": csrf, "Referer": "https://127.0.0.1/"}
        )
        assert wrong.status == 403 and "another site" in wrong.json["error"]["message"]
        right = staff.call(
            "PATCH", path, {"notify": False}, {"X-CSRFToken": csrf, "Referer": f"https://{public}/app"}
        )
        assert right.status == 200, right.json
    finally:
        stop(proc)

    proc, port, _ = start_gunicorn(app, database_url, redis_url, tmp_path, extra_env={}, args=[])
    try:
        staff = Https(port, tls=False, headers=forwarded)
        login = staff.call(
            "POST", "/api/v1/auth/login", {"email": firm.staff_email, "password": STAFF_PASSWORD}
        )
        assert login.status == 200
        # X-Forwarded-Host is not trusted: the app knows only its own host, so the proxy's public
        # Referer does not match, and the error says what to set.
        spoofed = staff.call(
            "PATCH",
            path,
            {"notify": True},
            {"X-CSRFToken": login.json["csrf_token"], "Referer": f"https://{public}/"},
        )
        assert spoofed.status == 403 and "PROXY_HOPS" in spoofed.json["error"]["message"]
    finally:
        stop(proc)
