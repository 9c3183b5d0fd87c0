"""Passkeys (R-SEC-15) through the Flask test client: the rules around the browser's ceremony —
challenges (single use, 5 minutes), the relying party from BASE_URL, who may add and remove
passkeys and when, and staff removing a client's. The ceremonies themselves run in Chromium
(tests/test_passkeys_browser.py)."""

from __future__ import annotations

import base64
import json
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from portal_app.extensions import db
from portal_app.models import AuditEntry, Passkey, PasskeyChallenge, PortalUser, StaffUser, utcnow
from portal_app.services import passkeys
from tests.conftest import in_app
from tests.portal_helpers import activate, csrf_from, setup_invite
from tests.test_mfa_staff import Session

LOCALHOST = pytest.mark.settings(ENV={"BASE_URL": "https://localhost:8443"})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _answer(challenge: str, credential_id: bytes = b"\x07" * 16) -> dict[str, Any]:
    """A sign-in answer as a browser shapes it, for a passkey that is not registered here."""
    client_data = {"type": "webauthn.get", "challenge": challenge, "origin": "https://localhost:8443"}
    return {
        "id": _b64(credential_id),
        "rawId": _b64(credential_id),
        "type": "public-key",
        "response": {
            "clientDataJSON": _b64(json.dumps(client_data).encode()),
            "authenticatorData": _b64(b"\x00" * 37),
            "signature": _b64(b"\x00" * 70),
        },
        "clientExtensionResults": {},
    }


def _client(app: Any, make: Any, smtp: Any) -> Any:
    world = setup_invite(make, smtp, app)
    world.client = app.test_client()
    assert activate(world.client, world.link).status_code == 302
    with in_app(app) as session:
        world.user_id = session.scalar(select(PortalUser.id).where(PortalUser.email_id == world.email.id))
    return world


def _add_row(app: Any, name: str, **owner: int) -> int:
    with app.app_context():
        row = Passkey(name=name, credential_id=name.encode() * 4, public_key=b"\x02" * 77, **owner)
        db.session.add(row)
        db.session.commit()
        return row.id


@LOCALHOST
def test_r_sec_15_a_challenge_works_once_and_expires_after_five_minutes(app, make):
    client = app.test_client()
    first = client.post("/api/v1/auth/passkeys/login/options", json={})
    assert first.status_code == 200
    options = first.get_json()["publicKey"]
    assert options["rpId"] == "localhost" and options["userVerification"] == "required"
    assert options["timeout"] == 300_000 and not options.get("allowCredentials")
    with app.app_context():
        [row] = db.session.scalars(select(PasskeyChallenge)).all()
        assert row.purpose == "login-staff" and row.digest != options["challenge"]  # a digest only
        assert timedelta(minutes=4, seconds=50) < row.expires_at - utcnow() <= timedelta(minutes=5)
    # an answer from a passkey that is not registered here is refused as such
    verify = client.post(
        "/api/v1/auth/passkeys/login/verify", json={"credential": _answer(options["challenge"])}
    )
    assert verify.status_code == 401 and verify.get_json()["error"]["code"] == "unknown_passkey"
    # after 5 minutes the challenge is dead (a replay of a successful answer: the browser test)
    later = client.post("/api/v1/auth/passkeys/login/options", json={}).get_json()["publicKey"]
    with app.app_context():
        db.session.execute(update(PasskeyChallenge).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    expired = client.post(
        "/api/v1/auth/passkeys/login/verify", json={"credential": _answer(later["challenge"])}
    )
    assert expired.status_code == 401 and expired.get_json()["error"]["code"] == "invalid_challenge"
    # a staff challenge does not sign in to the portal, nor the other way round
    staff_one = client.post("/api/v1/auth/passkeys/login/options", json={}).get_json()["publicKey"]
    with app.app_context():
        with pytest.raises(passkeys.PasskeyRefused) as refused:
            passkeys.authenticate("client", _answer(staff_one["challenge"]))
        assert refused.value.code == "invalid_challenge"
    # an answer that is not one at all is a clear 401 or 422, never a 500
    for garbage in ({}, {"id": "x"}, {"response": {"clientDataJSON": "%%%"}}):
        bad = client.post("/api/v1/auth/passkeys/login/verify", json={"credential": garbage})
        assert bad.status_code in (401, 422), (garbage, bad.get_json())


@LOCALHOST
def test_r_sec_15_registration_options_name_the_firm_and_a_random_handle(app, make):
    firm = make.firm("Harbor & Finch CPA")
    session = Session(app, firm.staff_email)
    assert session.login().status_code == 200
    answer = session.call("POST", "/auth/passkeys/register/options")
    assert answer.status_code == 200, answer.get_json()
    options = answer.get_json()["publicKey"]
    assert options["rp"] == {"id": "localhost", "name": "Harbor & Finch CPA"}
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert options["authenticatorSelection"]["userVerification"] == "required"
    assert options["attestation"] == "none"
    with app.app_context():
        staff = db.session.scalar(select(StaffUser).where(StaffUser.email == firm.staff_email))
        assert options["user"]["id"] == staff.passkey_handle and options["user"]["name"] == staff.email
        assert len(base64.urlsafe_b64decode(staff.passkey_handle + "=")) == 32
    # the same handle for every passkey of the user
    again = session.call("POST", "/auth/passkeys/register/options").get_json()["publicKey"]
    assert again["user"]["id"] == options["user"]["id"] and again["challenge"] != options["challenge"]


@pytest.mark.settings(ENV={"BASE_URL": "http://127.0.0.1:5000"})
def test_r_sec_15_an_ip_address_base_url_offers_no_passkeys(app, make):
    firm = make.firm()
    session = Session(app, firm.staff_email)
    session.login()
    refused = session.call("POST", "/auth/passkeys/register/options")
    assert refused.status_code == 409 and refused.get_json()["error"]["code"] == "passkeys_unavailable"
    assert "BASE_URL" in refused.get_json()["error"]["message"]
    page = app.test_client().get("/portal/login").data.decode()
    assert "Sign in with a passkey" not in page and "passkeys.js" not in page
    assert 'autocomplete="username"' in page


@LOCALHOST
def test_r_sec_15_an_api_token_never_adds_or_removes_passkeys(app, make):
    firm = make.firm()
    with app.app_context():
        staff_id = db.session.scalar(select(StaffUser.id).where(StaffUser.email == firm.staff_email))
    passkey_id = _add_row(app, "Desk key", staff_user_id=staff_id)
    options = firm.api.post("/auth/passkeys/register/options")
    assert options.status_code == 403 and options.get_json()["error"]["code"] == "recent_sign_in_required"
    removed = firm.api.delete(f"/auth/passkeys/{passkey_id}")
    assert removed.status_code == 403
    listed = firm.api.get("/auth/passkeys").get_json()["passkeys"]
    assert [p["name"] for p in listed] == ["Desk key"]  # listing is fine; nothing was removed


@LOCALHOST
def test_r_sec_15_removing_a_passkey_needs_a_sign_in_of_the_last_10_minutes(app, make, smtp):
    firm = make.firm()
    with app.app_context():
        staff_id = db.session.scalar(select(StaffUser.id).where(StaffUser.email == firm.staff_email))
    passkey_id = _add_row(app, "Old key", staff_user_id=staff_id)
    session = Session(app, firm.staff_email)
    session.login()
    with session.client.session_transaction() as cookie:
        cookie["auth_at"] = int(time.time()) - 11 * 60
        cookie["seen_at"] = int(time.time())
    stale = session.call("DELETE", f"/auth/passkeys/{passkey_id}")
    assert stale.status_code == 403 and stale.get_json()["error"]["code"] == "recent_sign_in_required"
    session.login()
    assert session.call("DELETE", f"/auth/passkeys/{passkey_id}").status_code == 204
    assert session.call("DELETE", f"/auth/passkeys/{passkey_id}").status_code == 404
    # the portal: a stale sign-in is sent to log in again, and the passkey stays
    world = _client(app, make, smtp)
    client_key = _add_row(app, "Phone", portal_user_id=world.user_id)
    with world.client.session_transaction() as cookie:
        cookie["auth_at"] = int(time.time()) - 11 * 60
    page = world.client.get("/portal/passkeys").data.decode()
    assert "Log in again to add a passkey" in page
    refused = world.client.post(f"/portal/passkeys/{client_key}/remove", data={"csrf_token": csrf_from(page)})
    assert refused.status_code == 303 and "again=1" in refused.headers["Location"]
    with in_app(app) as check:
        assert check.get(Passkey, client_key) is not None
    # someone else's passkey is not found, never removed
    other = world.client.post(f"/portal/passkeys/{passkey_id}/remove", data={"csrf_token": csrf_from(page)})
    assert other.status_code == 303


@LOCALHOST
def test_r_sec_15_staff_see_a_clients_passkeys_and_remove_them_audited_and_emailed(app, make, smtp):
    world = _client(app, make, smtp)
    _add_row(app, "Phone", portal_user_id=world.user_id)
    _add_row(app, "Laptop", portal_user_id=world.user_id)
    path = world.settings_path + "/passkeys"
    seen = world.firm.api.get(path)
    assert seen.status_code == 200 and seen.get_json() == {"count": 2}  # a count, never the keys
    before = len(smtp.messages)
    assert world.firm.api.delete(path).status_code == 204
    mail = smtp.wait_for(before + 1)[-1]
    assert mail["Subject"] == "Your passkeys were removed" and mail["To"] == world.email.address
    assert world.firm.api.get(path).get_json() == {"count": 0}
    with in_app(app) as session:
        entry = session.scalars(select(AuditEntry).where(AuditEntry.field == "passkeys")).one()
        assert (entry.old_value, entry.new_value, entry.actor_type) == (2, 0, "staff")
    again = world.firm.api.delete(path)
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "no_passkeys"
    assert make.firm().api.get(path).status_code == 404  # another firm sees nothing
    profile = world.client.get("/portal/profile").data.decode()
    assert "Add a passkey" in profile
