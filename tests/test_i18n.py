"""English and German: every portal page and every client email, in the user's language, else
the browser's (R-POR, issue 5)."""

from __future__ import annotations

import re
from configparser import ConfigParser
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from babel.support import Translations

from tests.portal_helpers import activate, csrf_from, home, link_in, submit
from tests.test_portal_home import three_accounts

ROOT = Path(__file__).resolve().parent.parent
CATALOGUES = ROOT / "portal_app" / "translations"
GERMAN = {"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"}
ENGLISH = {"Accept-Language": "en-US,en;q=0.9"}
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")


def choose_language(client, language: str) -> None:
    page = client.get("/portal/profile")
    saved = client.post(
        "/portal/profile",
        data={
            "profile-csrf_token": csrf_from(page.data),
            "profile-timezone": "Europe/Berlin",
            "profile-language": language,
            "profile-submit": "1",
        },
    )
    assert saved.status_code == 303


def test_r_por_language_follows_the_browser_when_the_user_has_not_chosen(app, make):
    make.firm("Harbor & Finch CPA")
    german = app.test_client().get("/portal/login", headers=GERMAN).data.decode()
    english = app.test_client().get("/portal/login", headers=ENGLISH).data.decode()
    assert '<html lang="de">' in german and "Beim Mandantenportal anmelden" in german
    assert "Passwort vergessen?" in german and "Log in" not in german
    assert '<html lang="en">' in english and "Forgot your password?" in english
    # the firm's name is on the page even before anyone logs in
    assert "Harbor &amp; Finch CPA" in german


def test_r_por_users_own_language_beats_the_browser_on_pages_and_fragments(app, make, smtp):
    s = three_accounts(app, make, smtp)
    choose_language(s.client, "de")
    page = home(s.client)
    body = page.data.decode()
    assert '<html lang="de">' in body
    assert "Ihre Aufgaben" in body and "Dokumente zur Unterschrift" in body
    assert "Fällig am 15.12.2026" in body
    others = body.split("Aufgaben in Ihren anderen Mandaten")[1]
    assert "1 Aufgabe" in others and "0 Aufgaben" in others
    assert "Abmelden" in body and "Profil" in body
    fragment = s.client.post(
        "/portal/switch",
        data={"account_id": str(s.design.id), "csrf_token": csrf_from(page.data)},
        headers={"HX-Request": "true", **ENGLISH},
    )
    assert fragment.status_code == 200 and "Rechnungen und Zahlungen" in fragment.data.decode()
    missing = s.client.get("/portal/a/999999999/", headers=ENGLISH)
    assert missing.status_code == 404 and "Seite nicht gefunden" in missing.data.decode()
    choose_language(s.client, "en")
    assert "Your to-dos" in home(s.client).data.decode()


def test_r_log_2_invitation_in_german_when_staff_choose_it_and_the_portal_follows(app, make, smtp):
    app.config["MAIL_URL"] = smtp.url
    firm = make.firm("Harbor & Finch CPA")
    account = make.account(firm.id, "Berger Family")
    email = account.contacts[0].emails[0]
    path = f"/accounts/{account.id}/contact-settings/{email.id}"
    refused = firm.api.patch(path, json={"login": True, "send_invitation": True, "invitation_language": "fr"})
    assert refused.status_code == 422 and "invitation_language" in refused.get_json()["error"]["fields"]
    assert (
        firm.api.get(f"/accounts/{account.id}/contact-settings").get_json()["contacts"][0]["emails"][0][
            "login"
        ]
        is False
    )  # nothing half-changed
    sent = firm.api.patch(path, json={"login": True, "send_invitation": True, "invitation_language": "de"})
    assert sent.status_code == 200
    [mail] = smtp.wait_for(1)
    assert mail["Subject"] == "Harbor & Finch CPA lädt Sie in Ihr Mandantenportal ein"
    assert mail["Content-Language"] == "de"
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    assert text.startswith("Guten Tag,")
    assert re.search(
        r"Der Link funktioniert einmal und läuft am \d{1,2}\. \w+ \d{4}, \d{2}:\d{2} \(UTC\) ab", text
    )
    assert '<html lang="de">' in html and "Zugang aktivieren" in html
    client = app.test_client()
    page = client.get(link_in(mail), headers=ENGLISH).data.decode()  # an English browser still
    assert "Willkommen im Mandantenportal von Harbor &amp; Finch CPA" in page
    activate(client, link_in(mail))
    assert "Ihre Aufgaben" in home(client).data.decode()  # the invitation's language became theirs


def test_r_log_9_password_reset_email_in_the_users_language(app, make, smtp):
    s = three_accounts(app, make, smtp)
    choose_language(s.client, "de")
    before = len(smtp.messages)
    submit(app.test_client(), "/portal/password/forgot", {"email": s.world.email.address})
    [*_, mail] = smtp.wait_for(before + 1)
    assert mail["Subject"] == "Passwort für das Portal von Harbor & Finch CPA zurücksetzen"
    minutes = app.config["PASSWORD_RESET_MAX_AGE_MINUTES"]
    assert f"{minutes} Minuten lang" in mail.get_body(("plain",)).get_content()
    # English stays the default for everyone else
    assert "Log in to your client portal" in app.test_client().get("/portal/login").data.decode()


def test_r_por_german_catalogue_translates_every_portal_and_email_string():
    """Every string the portal or an email can show (extracted as `make messages` does) has a
    reviewed German translation with the same placeholders, and the compiled catalogue that the
    app loads says the same as the source."""
    config = ConfigParser()
    config.read(ROOT / "babel.cfg")
    method_map = [
        (section.split(":", 1)[1].strip(), section.split(":", 1)[0]) for section in config.sections()
    ]
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "_l": None, "lazy_gettext": None}
    extracted = {
        message if isinstance(message, str) else tuple(message)
        for _, _, message, _, _ in extract_from_dir(str(ROOT), method_map, keywords=keywords)
    }
    assert len(extracted) > 100
    with open(CATALOGUES / "de" / "LC_MESSAGES" / "messages.po", "rb") as handle:
        catalogue = read_po(handle, locale="de")
    compiled = Translations.load(str(CATALOGUES), ["de"])
    problems = []
    for message in extracted:
        key = message[0] if isinstance(message, tuple) else message
        entry = catalogue.get(key)
        if entry is None or not entry.string or entry.fuzzy:
            problems.append(f"untranslated: {key!r}")
            continue
        translations = entry.string if isinstance(entry.string, tuple) else (entry.string,)
        for text in translations:
            if not text or set(PLACEHOLDER.findall(text)) != set(PLACEHOLDER.findall(key)):
                problems.append(f"placeholders differ: {key!r} -> {text!r}")
        if isinstance(message, str) and compiled.gettext(key) != entry.string:
            problems.append(f"stale compiled catalogue (run make translations): {key!r}")
    assert not problems, "\n".join(sorted(problems))


def test_emails_say_utc_and_their_own_language_even_inside_a_portal_users_request(app, make, smtp):
    """In-process jobs may render an email during someone's request: the email keeps its
    recipient's language and UTC times, and the page keeps the user's own afterwards."""
    import flask_babel
    from flask_login import login_user
    from sqlalchemy import select

    from portal_app.extensions import db
    from portal_app.i18n import email_locale
    from portal_app.models import PortalUser

    s = three_accounts(app, make, smtp)
    choose_language(s.client, "de")  # and the time zone Europe/Berlin
    with app.test_request_context("/portal/"):
        login_user(db.session.scalar(select(PortalUser)))
        assert str(flask_babel.get_timezone()) == "Europe/Berlin"
        assert str(flask_babel.get_locale()) == "de"
        with email_locale("en"):
            assert str(flask_babel.get_timezone()) == "UTC" and str(flask_babel.get_locale()) == "en"
        assert str(flask_babel.get_timezone()) == "Europe/Berlin"
        assert str(flask_babel.get_locale()) == "de"
