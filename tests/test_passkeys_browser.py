"""Passkeys (R-SEC-15) in Chromium with its virtual authenticator (CDP `WebAuthn.*`), against
production gunicorn over HTTPS on https://localhost:<port> (WebAuthn refuses IP addresses).

The certificate is self-signed for `localhost`; Chromium trusts it through
`--ignore-certificate-errors-spki-list` (WebAuthn is refused on a page with a certificate error,
so `ignore_https_errors` alone would not do).
"""

from __future__ import annotations

import base64
import hashlib
import re
import subprocess
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select

from portal_app.extensions import db
from portal_app.models import Firm, InboxItem, Passkey, PortalUser, utcnow
from portal_app.passwords import hash_password
from portal_app.services import settings
from portal_app.services.audit import Actor
from tests.conftest import free_port
from tests.factories import STAFF_PASSWORD
from tests.portal_helpers import GOOD_PASSWORD
from tests.test_portal_browser import CHROMIUM, CHROMIUM_ARGS, assert_accessible, require_chromium, watch_csp
from tests.test_production_gunicorn import assert_no_csp_violations, start_gunicorn, stop

STAFF = Actor("staff", None, "test")


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],  # fmt: skip
        check=True,
        capture_output=True,
    )
    public = subprocess.run(
        ["openssl", "x509", "-in", str(cert), "-pubkey", "-noout"], check=True, capture_output=True
    ).stdout
    der = subprocess.run(
        ["openssl", "pkey", "-pubin", "-outform", "der"], input=public, check=True, capture_output=True
    ).stdout
    spki = base64.b64encode(hashlib.sha256(der).digest()).decode()
    return SimpleNamespace(cert=cert, key=key, spki=spki)


@pytest.fixture(scope="module")
def chromium(tls: SimpleNamespace) -> Iterator[Any]:
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[*CHROMIUM_ARGS, f"--ignore-certificate-errors-spki-list={tls.spki}"],
            headless=True,
        )
        yield browser
        browser.close()


def _serve(app, database_url, redis_url, tmp_path, tls, *, base_url: str, port: int) -> Any:
    proc, _, _ = start_gunicorn(
        app,
        database_url,
        redis_url,
        tmp_path,
        extra_env={"BASE_URL": base_url},
        args=["--certfile", str(tls.cert), "--keyfile", str(tls.key)],
        port=port,
    )
    return proc


@pytest.fixture
def site(app, make, smtp, redis_url, database_url, tmp_path, tls) -> Iterator[SimpleNamespace]:
    """Production gunicorn on https://localhost:<port>, a firm, and an activated client."""
    app.config["MAIL_URL"] = smtp.url
    firm = make.firm("Harbor & Finch CPA")
    account = make.account(firm.id, "Berger Family")
    email = account.contacts[0].emails[0]
    with app.app_context():
        from portal_app.models import Account

        row = settings.get_settings(db.session.get(Account, account.id), email.id)
        settings.update_settings(row, {"login": True}, actor=STAFF)
        db.session.add(
            PortalUser(
                firm_id=firm.id,
                email_id=email.id,
                password_hash=hash_password(GOOD_PASSWORD),
                activated_at=utcnow(),
            )
        )
        db.session.commit()
    port = free_port()
    url = f"https://localhost:{port}"
    proc = _serve(app, database_url, redis_url, tmp_path, tls, base_url=url, port=port)
    try:
        yield SimpleNamespace(
            firm=firm, account=account, email=email, url=url, port=port, smtp=smtp, tmp_path=tmp_path
        )
    finally:
        stop(proc)


def _authenticator(context: Any, page: Any) -> SimpleNamespace:
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    added = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return SimpleNamespace(cdp=cdp, id=added["authenticatorId"])


def _presence(auth: SimpleNamespace, enabled: bool) -> None:
    """Whether the virtual authenticator answers by itself (the user touching it)."""
    auth.cdp.send("WebAuthn.setAutomaticPresenceSimulation", {"authenticatorId": auth.id, "enabled": enabled})


def _button_only(context: Any) -> Any:
    """A browser without passkey autofill: the "Sign in with a passkey" button is the way in
    (with autofill, the virtual authenticator would answer the page's conditional request)."""
    context.add_init_script(
        "if (window.PublicKeyCredential) PublicKeyCredential.isConditionalMediationAvailable = "
        "async () => false;"
    )
    return context


def _credentials(auth: SimpleNamespace) -> list[dict[str, Any]]:
    return auth.cdp.send("WebAuthn.getCredentials", {"authenticatorId": auth.id})["credentials"]


def _set_back_counter(auth: SimpleNamespace, to: int = 0) -> None:
    """A copy of the authenticator, made before its last uses: the same key, an older counter."""
    [credential] = _credentials(auth)
    auth.cdp.send(
        "WebAuthn.removeCredential", {"authenticatorId": auth.id, "credentialId": credential["credentialId"]}
    )
    auth.cdp.send(
        "WebAuthn.addCredential",
        {"authenticatorId": auth.id, "credential": {**credential, "signCount": to}},
    )


def _password_login(page: Any, site: SimpleNamespace) -> None:
    page.goto(site.url + "/portal/login")
    page.get_by_label("Email").fill(site.email.address)
    page.get_by_label("Password").fill(GOOD_PASSWORD)
    page.get_by_role("button", name="Log in", exact=True).click()
    page.wait_for_load_state()


def _add_passkey(page: Any, site: SimpleNamespace, name: str) -> None:
    page.goto(site.url + "/portal/passkeys")
    page.get_by_label("Name it, so you know it again later (optional)").fill(name)
    page.get_by_role("button", name="Add a passkey").click()
    page.wait_for_url(re.compile(r"/portal/passkeys\?added=1"))


def _log_out(page: Any) -> None:
    page.get_by_role("button", name="Log out").first.click()
    page.wait_for_url(re.compile(r"/portal/login"))


def _passkey_sign_in(page: Any, site: SimpleNamespace) -> None:
    page.goto(site.url + "/portal/login")
    page.get_by_role("button", name="Sign in with a passkey").click()


def _stored(app: Any, site: SimpleNamespace) -> list[Passkey]:
    with app.app_context():
        user = db.session.scalar(select(PortalUser).where(PortalUser.email_id == site.email.id))
        rows = list(db.session.scalars(select(Passkey).where(Passkey.portal_user_id == user.id)))
        db.session.expunge_all()
        return rows


def test_r_sec_15_client_adds_a_passkey_and_it_meets_the_firms_two_factor_rule_without_a_code(
    app, site, chromium
):
    context = chromium.new_context()
    page = watch_csp(context.new_page())
    auth = _authenticator(context, page)
    _password_login(page, site)
    _add_passkey(page, site, "My laptop")
    [row] = _stored(app, site)
    assert row.name == "My laptop" and row.sign_count >= 0 and row.last_used_at is None
    assert row.public_key and row.credential_id == base64.b64decode(_credentials(auth)[0]["credentialId"])
    with app.app_context():
        user = db.session.scalar(select(PortalUser).where(PortalUser.email_id == site.email.id))
        # the user handle the authenticator keeps is random, not the user's id
        assert base64.b64decode(_credentials(auth)[0]["userHandle"]) != str(user.id).encode()
        assert len(base64.b64decode(_credentials(auth)[0]["userHandle"])) == 32
    page.goto(site.url + "/portal/passkeys")
    assert "My laptop" in page.content()
    assert_accessible(page, [])
    with app.app_context():
        db.session.get(Firm, site.firm.id).require_mfa_clients = True
        db.session.commit()
    _presence(auth, False)  # the autofill below would sign in with the passkey at once
    _log_out(page)
    # a password sign-in must enrol a second factor first; a passkey sign-in goes straight in
    _password_login(page, site)
    page.goto(f"{site.url}/portal/a/{site.account.id}/")
    assert "/portal/mfa" in page.url
    _log_out(page)
    assert_accessible(page, [])
    # the browser's autofill (mediation "conditional"): choosing the passkey signs in, no code
    _presence(auth, True)
    page.goto(site.url + "/portal/login")
    page.wait_for_url(re.compile(r"/portal/a/\d+/"))
    assert "Berger Family" in page.content()
    [row] = _stored(app, site)
    assert row.last_used_at is not None
    page.goto(site.url + "/portal/profile")
    assert "You sign in with 1 passkey." in page.content()
    assert_no_csp_violations(page)
    context.close()


def test_r_sec_15_a_replayed_sign_in_answer_is_refused(app, site, chromium):
    context = _button_only(chromium.new_context(ignore_https_errors=True))  # for context.request
    page = watch_csp(context.new_page())
    _authenticator(context, page)
    _password_login(page, site)
    _add_passkey(page, site, "Phone")
    _log_out(page)
    sent: list[str] = []
    page.on(
        "request",
        lambda r: sent.append(r.post_data or "") if r.url.endswith("/passkeys/login/verify") else None,
    )
    _passkey_sign_in(page, site)
    page.wait_for_url(re.compile(r"/portal/a/\d+/"))
    [answer] = sent
    page.goto(site.url + "/portal/login")  # this session's CSRF token, for the replay
    token = page.input_value("input[name=csrf_token]")
    replay = context.request.post(
        site.url + "/portal/passkeys/login/verify",
        data=answer,
        headers={
            "Content-Type": "application/json",
            "X-CSRFToken": token,
            "Referer": site.url + "/portal/login",
        },
    )
    assert replay.status == 401, replay.text()
    assert replay.json()["error"]["code"] == "invalid_challenge"
    context.close()


def test_r_sec_15_a_sign_in_from_another_origin_is_refused(
    app, site, chromium, database_url, redis_url, tls, tmp_path
):
    """The same server, reached on another port: the browser signs for that origin, which is not
    BASE_URL's, and the answer is refused."""
    context = _button_only(chromium.new_context())
    page = watch_csp(context.new_page())
    _authenticator(context, page)
    _password_login(page, site)
    _add_passkey(page, site, "Phone")
    _log_out(page)
    other_port = free_port()
    other = _serve(app, database_url, redis_url, tmp_path, tls, base_url=site.url, port=other_port)
    try:
        answers: list[Any] = []
        page.on("response", lambda r: answers.append(r) if r.url.endswith("/login/verify") else None)
        page.goto(f"https://localhost:{other_port}/portal/login")
        page.get_by_role("button", name="Sign in with a passkey").click()
        page.get_by_text("That passkey did not work here.").wait_for()
        assert answers[-1].status == 401 and answers[-1].json()["error"]["code"] == "passkey_refused"
        assert "/portal/login" in page.url
    finally:
        stop(other)
    context.close()


def test_r_sec_15_a_cloned_authenticator_is_refused_blocked_and_the_client_emailed(app, site, chromium):
    context = _button_only(chromium.new_context())
    page = watch_csp(context.new_page())
    auth = _authenticator(context, page)
    _password_login(page, site)
    _add_passkey(page, site, "Old phone")
    _log_out(page)
    _passkey_sign_in(page, site)
    page.wait_for_url(re.compile(r"/portal/a/\d+/"))
    [row] = _stored(app, site)
    assert row.sign_count > 0  # the virtual authenticator counts its signatures
    _log_out(page)
    _set_back_counter(auth)
    _passkey_sign_in(page, site)
    page.get_by_text("This passkey was blocked because it looks like a copy.").wait_for()
    assert "/portal/login" in page.url
    [row] = _stored(app, site)
    assert row.blocked_at is not None
    from tests.conftest import run_worker

    run_worker(app)
    mails = [m for m in site.smtp.wait_for(1) if m["To"] == site.email.address]
    assert any("A passkey of yours was blocked" in m["Subject"] for m in mails)
    # blocked for good: even with its counter moving on again, it signs no one in
    _set_back_counter(auth, to=10_000)
    _passkey_sign_in(page, site)
    page.get_by_text("That passkey is blocked.").wait_for()
    # the client removes it after a password sign-in; the password always worked
    _password_login(page, site)
    page.goto(site.url + "/portal/passkeys")
    assert "Blocked: it looked like a copy" in page.content()
    page.get_by_role("button", name="Remove the passkey Old phone").click()
    page.wait_for_url(re.compile(r"removed=1"))
    assert _stored(app, site) == []
    context.close()


def test_r_sec_15_without_javascript_the_password_form_is_all_and_removing_still_works(app, site, chromium):
    with app.app_context():
        user = db.session.scalar(select(PortalUser).where(PortalUser.email_id == site.email.id))
        db.session.add(
            Passkey(
                portal_user_id=user.id, name="Tablet", credential_id=b"\x01" * 16, public_key=b"\x02" * 77
            )
        )
        db.session.commit()
    context = chromium.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(site.url + "/portal/login")
    assert not page.get_by_role("button", name="Sign in with a passkey").is_visible()
    _password_login(page, site)
    page.wait_for_url(re.compile(r"/portal/a/\d+/"))
    page.goto(site.url + "/portal/passkeys")
    assert "Tablet" in page.content() and "Adding a passkey needs JavaScript" in page.content()
    assert not page.get_by_role("button", name="Add a passkey").is_visible()
    page.get_by_role("button", name="Remove the passkey Tablet").click()
    page.wait_for_url(re.compile(r"removed=1"))
    assert _stored(app, site) == []
    context.close()


STAFF_FLOW = """
async ([password, email, name]) => {
  const b64 = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf)))
    .replace(/\\+/g, "-").replace(/\\//g, "_").replace(/=+$/, "");
  const bytes = (s) => Uint8Array.from(atob(s.replace(/-/g, "+").replace(/_/g, "/")), c => c.charCodeAt(0));
  const call = async (method, path, body, csrf) => {
    const r = await fetch("/api/v1" + path, {
      method, credentials: "same-origin", referrerPolicy: "same-origin",
      headers: {"Content-Type": "application/json", ...(csrf ? {"X-CSRFToken": csrf} : {})},
      body: body === undefined ? undefined : JSON.stringify(body)});
    return {status: r.status, json: r.status === 204 ? null : await r.json()};
  };
  window.portico = {call, b64, bytes};
  if (!password) return null;
  const login = await call("POST", "/auth/login", {email, password});
  const options = await call("POST", "/auth/passkeys/register/options", {}, login.json.csrf_token);
  if (options.status !== 200) return {added: options, login};
  const pk = options.json.publicKey;
  pk.challenge = bytes(pk.challenge);
  pk.user.id = bytes(pk.user.id);
  pk.excludeCredentials = [];
  const made = await navigator.credentials.create({publicKey: pk});
  const added = await call("POST", "/auth/passkeys/register/verify",
    {credential: made.toJSON(), name}, login.json.csrf_token);
  const listed = await call("GET", "/auth/passkeys");
  await call("POST", "/auth/logout", {}, login.json.csrf_token);
  return {added, listed, rp: options.json.publicKey.rp};
}
"""

STAFF_SIGN_IN = """
async () => {
  const {call, bytes} = window.portico;
  const options = await call("POST", "/auth/passkeys/login/options", {});
  const pk = options.json.publicKey;
  pk.challenge = bytes(pk.challenge);
  const got = await navigator.credentials.get({publicKey: pk});
  const answer = await call("POST", "/auth/passkeys/login/verify", {credential: got.toJSON()});
  return {answer, options: options.json.publicKey};
}
"""


def test_r_sec_15_staff_api_passkeys_sign_in_like_the_two_step_login_and_a_clone_goes_to_inbox(
    app, site, chromium
):
    context = chromium.new_context()
    page = watch_csp(context.new_page())
    auth = _authenticator(context, page)
    page.goto(site.url + "/portal/login")  # any page of the origin
    made = page.evaluate(STAFF_FLOW, [STAFF_PASSWORD, site.firm.staff_email, "Work laptop"])
    with app.app_context():
        db.session.get(Firm, site.firm.id).require_mfa_staff = True
        db.session.commit()
    assert made["added"]["status"] == 201, made
    assert made["rp"]["id"] == "localhost"  # BASE_URL's host
    assert made["added"]["json"]["name"] == "Work laptop"
    [listed] = made["listed"]["json"]["passkeys"]
    assert listed["last_used_at"] is None and listed["blocked"] is False
    signed = page.evaluate(STAFF_SIGN_IN)
    assert signed["options"]["userVerification"] == "required"
    assert signed["answer"]["status"] == 200, signed
    session = signed["answer"]["json"]
    assert session["user"]["email"] == site.firm.staff_email and session["csrf_token"]
    # a passkey is two factors: the firm's requirement is met and its data is open
    assert session["mfa_enrollment_required"] is False
    opened = page.evaluate("async () => await window.portico.call('GET', '/accounts')")
    assert opened["status"] == 200, opened
    # removing needs a recent sign-in: this one is
    listed = page.evaluate("async () => await window.portico.call('GET', '/auth/passkeys')")
    [passkey] = listed["json"]["passkeys"]
    assert passkey["last_used_at"] is not None
    page.evaluate(
        "async (csrf) => await window.portico.call('POST', '/auth/logout', {}, csrf)", session["csrf_token"]
    )
    _set_back_counter(auth)
    cloned = page.evaluate(STAFF_SIGN_IN)
    assert cloned["answer"]["status"] == 401 and cloned["answer"]["json"]["error"]["code"] == "passkey_cloned"
    with app.app_context():
        [item] = db.session.scalars(select(InboxItem).where(InboxItem.kind == "passkey_blocked")).all()
        assert item.firm_id == site.firm.id and site.firm.staff_email in item.title
        assert db.session.scalar(select(Passkey.blocked_at)) is not None
    context.close()
