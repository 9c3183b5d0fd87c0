"""The portal home: to-dos, switching accounts (htmx and plain forms), access re-checked on
every request, the profile (R-POR-*, R-LOG-7, R-SEC-12)."""

from __future__ import annotations

from types import SimpleNamespace

from tests.portal_helpers import GOOD_PASSWORD, activate, csrf_from, home, login, setup_invite


def three_accounts(app, make, smtp) -> SimpleNamespace:
    world = setup_invite(make, smtp, app)
    client = app.test_client()
    activate(client, world.link)
    person = world.account.contacts[0]
    extra = [
        make.account(world.firm.id, name, contacts=[person]) for name in ("Berger Design GmbH", "Zeta Trust")
    ]
    for account in extra:
        path = f"/accounts/{account.id}/contact-settings/{world.email.id}"
        assert world.firm.api.patch(path, json={"login": True}).status_code == 200
    api = world.firm.api
    api.post(
        f"/accounts/{world.account.id}/todos",
        json={"kind": "documents_signature", "title": "Sign the 2025 return", "due_date": "2026-12-15"},
    )
    api.post(
        f"/accounts/{world.account.id}/todos", json={"kind": "documents_upload", "title": "Upload your W-2"}
    )
    done = api.post(
        f"/accounts/{world.account.id}/todos", json={"kind": "proposals", "title": "Old"}
    ).get_json()
    api.patch(f"/todos/{done['id']}", json={"state": "done"})
    api.post(f"/accounts/{extra[0].id}/todos", json={"kind": "invoices_payments", "title": "Pay invoice 17"})
    return SimpleNamespace(world=world, client=client, first=world.account, design=extra[0], trust=extra[1])


def test_r_por_home_shows_open_todos_by_kind_and_other_accounts_with_counts(app, make, smtp):
    s = three_accounts(app, make, smtp)
    s.world.firm.api.post(
        f"/accounts/{s.first.id}/todos",
        json={"kind": "documents_signature", "title": "Sign the engagement letter", "due_date": "2020-01-31"},
    )
    page = home(s.client)
    body = page.data.decode()
    assert "Overdue since Jan 31, 2020" in body  # said in words, not only in red
    assert page.status_code == 200 and "Berger Family" in body
    assert "Documents to sign" in body and "Sign the 2025 return" in body and "Upload your W-2" in body
    open_part, done_part = body.split('id="done-heading"')
    assert "Old" not in open_part  # done to-dos leave the open list for the "Done" list
    assert "Old" in done_part.split("To-dos in your other accounts")[0]
    assert "Dec 15, 2026" in body
    others = body.split("To-dos in your other accounts")[1]
    assert (
        "Berger Design GmbH" in others
        and "1 to-do" in others
        and "Zeta Trust" in others
        and "0 to-dos" in others
    )
    assert f'href="/portal/a/{s.design.id}/"' in others
    assert '<select id="account-picker"' in body and body.count("<option") == 3
    assert "htmx-2.0.11.min.js" in body and "https://" not in body.split("<body")[0]  # no CDN


def test_r_por_switching_without_javascript_is_a_form_post_and_a_redirect(app, make, smtp):
    s = three_accounts(app, make, smtp)
    page = home(s.client)
    switched = s.client.post(
        "/portal/switch", data={"account_id": str(s.design.id), "csrf_token": csrf_from(page.data)}
    )
    assert switched.status_code == 303 and switched.headers["Location"] == f"/portal/a/{s.design.id}/"
    after = home(s.client)  # remembered as the current account
    assert b'<h1 id="account-name">Berger Design GmbH</h1>' in after.data and b"Pay invoice 17" in after.data


def test_r_por_htmx_gets_the_fragment_and_plain_requests_the_page(app, make, smtp):
    s = three_accounts(app, make, smtp)
    page = home(s.client)
    token = csrf_from(page.data)
    fragment = s.client.post(
        "/portal/switch",
        data={"account_id": str(s.trust.id), "csrf_token": token},
        headers={"HX-Request": "true"},
    )
    assert fragment.status_code == 200 and b"<html" not in fragment.data and b'id="portal"' in fragment.data
    assert fragment.headers["HX-Push-Url"] == f"/portal/a/{s.trust.id}/"
    assert "HX-Request" in fragment.headers["Vary"]
    full = s.client.get(f"/portal/a/{s.first.id}/")
    partial = s.client.get(f"/portal/a/{s.first.id}/", headers={"HX-Request": "true"})
    assert b"<html" in full.data and b"<html" not in partial.data
    assert "HX-Request" in full.headers["Vary"] and b"Sign the 2025 return" in partial.data


def test_r_por_3_htmx_never_swaps_a_refusal_or_a_login_page_into_the_portal(app, make, smtp):
    s = three_accounts(app, make, smtp)
    token = csrf_from(home(s.client).data)
    s.world.firm.api.patch(
        f"/accounts/{s.trust.id}/contact-settings/{s.world.email.id}", json={"login": False}
    )
    stale = s.client.post(
        "/portal/switch",
        data={"account_id": str(s.trust.id), "csrf_token": token},
        headers={"HX-Request": "true"},
    )
    # still a 404 (R-POR-3), and htmx loads the home afresh instead of leaving a stale picker
    assert stale.status_code == 404 and stale.headers["HX-Redirect"] == "/portal/"
    assert b"Zeta Trust" not in home(s.client).data
    s.client.post("/portal/logout", data={"csrf_token": token})
    expired = s.client.get(f"/portal/a/{s.first.id}/", headers={"HX-Request": "true"})
    assert expired.status_code == 200 and expired.data == b""
    assert expired.headers["HX-Redirect"].startswith("/portal/login")
    assert s.client.get(f"/portal/a/{s.first.id}/").status_code == 302  # plain requests: a redirect


def test_r_por_3_accounts_out_of_reach_answer_404(app, make, smtp):
    s = three_accounts(app, make, smtp)
    stranger = make.account(s.world.firm.id, "Not Yours")
    theirs = make.firm()
    foreign = make.account(theirs.id, "Other Firm")
    for account_id in (stranger.id, foreign.id, 999999):
        assert s.client.get(f"/portal/a/{account_id}/").status_code == 404
        page = home(s.client)
        assert (
            s.client.post(
                "/portal/switch", data={"account_id": str(account_id), "csrf_token": csrf_from(page.data)}
            ).status_code
            == 404
        )


def test_r_log_7_login_off_on_the_current_account_moves_the_user_to_another(app, make, smtp):
    s = three_accounts(app, make, smtp)
    assert b"Berger Family" in home(s.client).data
    s.world.firm.api.patch(s.world.settings_path, json={"login": False})
    page = home(s.client)
    assert page.status_code == 200 and b'<h1 id="account-name">Berger Design GmbH</h1>' in page.data
    assert b"Berger Family" not in page.data and page.data.count(b"<option") == 2
    assert s.client.get(f"/portal/a/{s.first.id}/").status_code == 404


def test_one_account_users_see_no_picker(app, make, smtp):
    world = setup_invite(make, smtp, app)
    client = app.test_client()
    activate(client, world.link)
    page = home(client)
    assert (
        page.status_code == 200 and b"account-picker" not in page.data and b"other accounts" not in page.data
    )


def test_profile_saves_time_zone_and_language_and_never_staff_fields(app, make, smtp):
    s = three_accounts(app, make, smtp)
    page = s.client.get("/portal/profile")
    saved = s.client.post(
        "/portal/profile",
        data={
            "profile-csrf_token": csrf_from(page.data),
            "profile-timezone": "Europe/Berlin",
            "profile-language": "en",
            "profile-submit": "1",
            "login": "false",
            "notify": "false",
            "signatory": "false",
            "email_sync": "true",
        },
    )
    assert saved.status_code == 303
    again = s.client.get("/portal/profile")
    assert (
        b'<option selected value="Europe/Berlin">' in again.data
        or b'value="Europe/Berlin" selected' in again.data
    )
    settings = s.world.firm.api.get(f"/accounts/{s.first.id}/contact-settings").get_json()
    row = settings["contacts"][0]["emails"][0]
    assert row["login"] is True and row["signatory"] is True and row["email_sync"] is False  # R-SEC-12
    bad = s.client.post(
        "/portal/profile",
        data={
            "profile-csrf_token": csrf_from(again.data),
            "profile-timezone": "Mars/Olympus",
            "profile-submit": "1",
        },
    )
    assert bad.status_code == 422


def test_profile_password_change_ends_other_sessions_but_not_this_one(app, make, smtp):
    s = three_accounts(app, make, smtp)
    other = app.test_client()
    login(other, s.world.email.address)
    page = s.client.get("/portal/profile")
    new = "tulip harbor seventy 9"
    changed = s.client.post(
        "/portal/profile",
        data={
            "pw-csrf_token": csrf_from(page.data),
            "pw-current": GOOD_PASSWORD,
            "pw-password": new,
            "pw-confirm": new,
        },
    )
    assert changed.status_code == 303
    assert home(s.client).status_code == 200
    assert other.get("/portal/").status_code == 302
    assert login(app.test_client(), s.world.email.address, new).status_code == 302
    wrong = s.client.get("/portal/profile")
    refused = s.client.post(
        "/portal/profile",
        data={
            "pw-csrf_token": csrf_from(wrong.data),
            "pw-current": "nope nope nope",
            "pw-password": new,
            "pw-confirm": new,
        },
    )
    assert refused.status_code == 422 and b"current password is not correct" in refused.data
