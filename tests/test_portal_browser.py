"""The client portal in a real browser: Playwright drives Debian's Chromium against a live server
on PostgreSQL, with emails through a real SMTP server (issue 5, R-POR-1..5, R-LOG-7).

A client with three accounts activates from the email, switches with the picker, follows the
"other accounts" links, and loses an account when staff turn its login off mid-session: with
JavaScript (htmx swaps) and without (forms and redirects), in English and in German. axe-core
checks every page the walk shows: no serious or critical accessibility violation.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from werkzeug.serving import make_server

from tests.conftest import REQUIRE_SERVICES, free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
AXE_SOURCE = "(() => {" + AXE.read_text(encoding="utf-8") + "\n})()" if AXE.exists() else ""
PASSWORD = "maple river lantern 42"
LINK = re.compile(r"https?://\S+/portal/activate/\S+")

TEXT = {
    "en": SimpleNamespace(
        welcome="Welcome to the Harbor & Finch CPA client portal",
        new_password="New password",
        again="New password, again",
        activate="Activate my login",
        others="To-dos in your other accounts",
        one="1 to-do",
        two="2 to-dos",
        picker="Account",
        switch="Switch",
        profile="Profile",
        back="Back to my account",
        sign="Documents to sign",
        not_found="Page not found",
        no_access="No portal access right now",
        log_out="Log out",
        subject="Harbor & Finch CPA invites you to your client portal",
    ),
    "de": SimpleNamespace(
        welcome="Willkommen im Mandantenportal von Harbor & Finch CPA",
        new_password="Neues Passwort",
        again="Neues Passwort wiederholen",
        activate="Zugang aktivieren",
        others="Aufgaben in Ihren anderen Mandaten",
        one="1 Aufgabe",
        two="2 Aufgaben",
        picker="Mandat",
        switch="Wechseln",
        profile="Profil",
        back="Zurück zu meinem Mandat",
        sign="Dokumente zur Unterschrift",
        not_found="Seite nicht gefunden",
        no_access="Derzeit kein Portalzugang",
        log_out="Abmelden",
        subject="Harbor & Finch CPA lädt Sie in Ihr Mandantenportal ein",
    ),
}


# --- the browser, the server, the firm -----------------------------------------------------------


def require_chromium() -> None:
    """Debian's Chromium, or a skip (a failure where services are required)."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: apt-get install chromium (Debian's package; never a download)"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        chromium.close()


@pytest.fixture
def live(app, smtp) -> Iterator[SimpleNamespace]:
    """The app served over HTTP on a free port; its emails go to the SMTP sink and link here."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    app.config.update(MAIL_URL=smtp.url, BASE_URL=url)
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield SimpleNamespace(url=url, app=app)
    server.shutdown()
    thread.join(timeout=10)


# The English walks run on a laptop-sized window, the German ones on a phone.
VIEWPORTS = {"en": {"width": 1280, "height": 800}, "de": {"width": 390, "height": 844}}


def open_page(browser: Any, *, javascript: bool, language: str) -> Any:
    context = browser.new_context(
        java_script_enabled=javascript,
        locale={"en": "en-US", "de": "de-DE"}[language],
        viewport=VIEWPORTS[language],
        has_touch=language == "de",
    )
    context.set_default_timeout(10_000)
    return watch_csp(context.new_page())


def watch_csp(page: Any) -> Any:
    """Collect every Content-Security-Policy violation the page reports (R-SEC-14); the walks
    fail on any."""
    page.csp_violations = []
    page.on(
        "console",
        lambda message: (
            page.csp_violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    return page


def assert_no_csp_violations(*pages: Any) -> None:
    found = [text for page in pages for text in page.csp_violations]
    assert not found, "CSP violations:\n" + "\n".join(found)


def firm_with_a_client_of_three_accounts(make, smtp, *, invitation_language: str | None) -> SimpleNamespace:
    firm = make.firm("Harbor & Finch CPA")
    family = make.account(firm.id, "Berger Family")
    person = family.contacts[0]
    email = person.emails[0]
    design = make.account(firm.id, "Berger Design GmbH", contacts=[person])
    trust = make.account(firm.id, "Zeta Trust", contacts=[person])

    def settings(account: Any) -> str:
        return f"/accounts/{account.id}/contact-settings/{email.id}"

    for account in (design, trust):
        assert firm.api.patch(settings(account), json={"login": True}).status_code == 200
    todos = [
        (family, "documents_signature", "Sign the 2025 return", "2026-12-15"),
        (family, "documents_upload", "Upload your W-2", None),
        (design, "invoices_payments", "Pay invoice 17", None),
        (trust, "documents_approval", "Approve the trust accounts", None),
        (trust, "organizers", "Answer the 2025 organizer", None),
    ]
    for account, kind, title, due in todos:
        body = {"kind": kind, "title": title, **({"due_date": due} if due else {})}
        assert firm.api.post(f"/accounts/{account.id}/todos", json=body).status_code == 201
    invite = {"login": True, "send_invitation": True}
    if invitation_language:
        invite["invitation_language"] = invitation_language
    assert firm.api.patch(settings(family), json=invite).status_code == 200
    [mail] = smtp.wait_for(1)
    match = LINK.search(mail.get_body(("plain",)).get_content())
    assert match, "the invitation email holds no activation link"
    return SimpleNamespace(
        firm=firm,
        family=family,
        design=design,
        trust=trust,
        mail=mail,
        link=match.group(0),
        settings=settings,
    )


# --- accessibility -------------------------------------------------------------------------------


def assert_accessible(page: Any, seen: list[str]) -> None:
    """axe-core on the page as it is now: no serious or critical violation."""
    # evaluated through the DevTools protocol, not as an inline <script>: the page's CSP forbids
    # those, and a violation would fail the walk
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE_SOURCE)
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    bad = [v for v in result["violations"] if v["impact"] in ("serious", "critical")]
    summary = [
        {
            "rule": v["id"],
            "impact": v["impact"],
            "help": v["help"],
            "nodes": [n["html"] for n in v["nodes"][:3]],
        }
        for v in bad
    ]
    assert not bad, f"axe on {page.url}:\n{json.dumps(summary, indent=2, ensure_ascii=False)}"
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{page.url} scrolls sideways by {overflow}px at {page.viewport_size}"
    seen.append(page.url)


def axe_page(browser: Any, *, language: str) -> Any:
    """axe needs JavaScript; the no-JavaScript walks are checked with it on the same pages."""
    return open_page(browser, javascript=True, language=language)


# --- the walk ------------------------------------------------------------------------------------


def heading(page: Any) -> str:
    return page.locator("h1").first.inner_text().strip()


def others_section(page: Any) -> Any:
    return page.locator("section.others")


def walk(
    page: Any, world: SimpleNamespace, live: SimpleNamespace, *, javascript: bool, text: Any
) -> list[str]:
    """Activation → home → picker → other-account link → login off mid-session → no access."""
    from playwright.sync_api import expect

    checker = axe_page(page.context.browser, language="de" if text is TEXT["de"] else "en")
    checked: list[str] = []

    def check_here() -> None:
        if javascript:
            assert_accessible(page, checked)  # the page as htmx left it
            return
        # axe is a script: without JavaScript, a second tab with this one's cookies loads the page
        checker.context.add_cookies(page.context.cookies())
        checker.goto(page.url)
        assert_accessible(checker, checked)

    # activation from the received email
    page.goto(world.link)
    expect(page.locator("h1")).to_have_text(text.welcome)
    check_here()
    page.get_by_label(text.new_password, exact=True).fill(PASSWORD)
    page.get_by_label(text.again, exact=True).fill(PASSWORD)
    page.get_by_role("button", name=text.activate).click()

    # home: the current account's to-dos, the other accounts with their counts
    expect(page).to_have_url(f"{live.url}/portal/a/{world.family.id}/")
    expect(page.locator("h1")).to_have_text("Berger Family")
    expect(page.get_by_role("heading", name=text.sign)).to_be_visible()
    expect(page.get_by_text("Sign the 2025 return")).to_be_visible()
    others = others_section(page)
    expect(others.get_by_role("heading", name=text.others)).to_be_visible()
    expect(others.locator("li", has_text="Berger Design GmbH")).to_contain_text(text.one)
    expect(others.locator("li", has_text="Zeta Trust")).to_contain_text(text.two)
    check_here()

    # switch with the picker
    picker = page.get_by_label(text.picker, exact=True)
    expect(picker.locator("option")).to_have_count(3)
    if javascript:
        page.evaluate("window.__sameDocument = true")
        picker.select_option(label="Zeta Trust")
        expect(page.locator("h1")).to_have_text("Zeta Trust")
        expect(page).to_have_url(f"{live.url}/portal/a/{world.trust.id}/")  # HX-Push-Url
        assert page.evaluate("window.__sameDocument === true"), "htmx should swap, not reload the page"
        expect(page.get_by_role("button", name=text.switch)).to_have_count(0)
    else:
        picker.select_option(label="Zeta Trust")
        page.get_by_role("button", name=text.switch).click()
        expect(page).to_have_url(f"{live.url}/portal/a/{world.trust.id}/")
        expect(page.locator("h1")).to_have_text("Zeta Trust")
    expect(page.get_by_text("Approve the trust accounts")).to_be_visible()
    expect(page.get_by_text("Sign the 2025 return")).to_have_count(0)
    expect(page).to_have_title("Zeta Trust · Harbor & Finch CPA")  # swapped by htmx too
    expect(page.locator("label[for=account-picker]")).to_be_visible()  # a visible label
    others = others_section(page)
    expect(others.locator("li", has_text="Berger Family")).to_contain_text(text.two)
    expect(others.locator("li", has_text="Berger Design GmbH")).to_contain_text(text.one)
    check_here()

    # the other account's link switches to it
    others.get_by_role("link", name="Berger Design GmbH").click()
    expect(page).to_have_url(f"{live.url}/portal/a/{world.design.id}/")
    expect(page.locator("h1")).to_have_text("Berger Design GmbH")
    expect(page.get_by_text("Pay invoice 17")).to_be_visible()
    expect(page.get_by_label(text.picker, exact=True)).to_have_value(str(world.design.id))

    # staff turn login off for the account on screen: the next navigation loses it
    assert world.firm.api.patch(world.settings(world.design), json={"login": False}).status_code == 200
    page.get_by_role("link", name=text.profile).click()
    expect(page.locator("h1")).to_have_text(text.profile)
    check_here()
    page.get_by_role("link", name=text.back).click()
    expect(page).to_have_url(f"{live.url}/portal/a/{world.family.id}/")
    expect(page.locator("h1")).to_have_text("Berger Family")
    expect(page.get_by_label(text.picker, exact=True).locator("option")).to_have_text(
        ["Berger Family", "Zeta Trust"]
    )
    expect(page.get_by_text("Berger Design GmbH")).to_have_count(0)
    expect(page.get_by_text("Pay invoice 17")).to_have_count(0)

    # a stale picker cannot reach an account that is gone
    assert world.firm.api.patch(world.settings(world.trust), json={"login": False}).status_code == 200
    picker = page.get_by_label(text.picker, exact=True)
    picker.select_option(label="Zeta Trust")
    if javascript:
        # htmx is told to load the page afresh: the current account, without Zeta Trust
        expect(page).to_have_url(f"{live.url}/portal/a/{world.family.id}/")
        expect(page.get_by_label(text.picker, exact=True)).to_have_count(0)  # one account left
        expect(page.get_by_text("Zeta Trust")).to_have_count(0)
    else:
        page.get_by_role("button", name=text.switch).click()
        expect(page.locator("h1")).to_have_text(text.not_found)
    page.goto(f"{live.url}/portal/a/{world.design.id}/")
    expect(page.locator("h1")).to_have_text(text.not_found)
    check_here()

    # and with login off everywhere: a clear "no access" page, not an error
    assert world.firm.api.patch(world.settings(world.family), json={"login": False}).status_code == 200
    page.goto(f"{live.url}/portal/")
    expect(page.locator("h1")).to_have_text(text.no_access)
    expect(page.get_by_role("button", name=text.log_out)).to_be_visible()
    check_here()
    assert_no_csp_violations(page, checker)
    checker.context.close()
    return checked


@pytest.mark.parametrize("javascript", [True, False], ids=["javascript", "no-javascript"])
@pytest.mark.parametrize("language", ["en", "de"])
def test_r_por_client_with_three_accounts_activates_switches_and_loses_an_account(
    browser, live, make, smtp, javascript, language
):
    world = firm_with_a_client_of_three_accounts(
        make, smtp, invitation_language=language if language == "de" else None
    )
    assert world.mail["Subject"] == TEXT[language].subject
    page = open_page(browser, javascript=javascript, language=language)
    try:
        checked = walk(page, world, live, javascript=javascript, text=TEXT[language])
    finally:
        page.context.close()
    assert len(checked) >= 6


def test_r_por_every_signed_out_page_passes_axe(browser, live, make, smtp):
    """The pages around the portal (start, login with an error, forgot password, a broken link,
    a reset link, an unknown page), in both languages: no serious or critical violation."""
    from playwright.sync_api import expect

    world = firm_with_a_client_of_three_accounts(make, smtp, invitation_language=None)
    for language, text in TEXT.items():
        page = axe_page(browser, language=language)
        checked: list[str] = []
        for path in ("/", "/portal/login", "/portal/password/forgot", "/portal/no-such-page"):
            page.goto(live.url + path)
            assert_accessible(page, checked)
        page.goto(live.url + "/portal/login")
        page.get_by_label("Email" if language == "en" else "E-Mail", exact=True).fill("nobody@example.com")
        page.get_by_label("Password" if language == "en" else "Passwort", exact=True).fill("wrong password 1")
        page.get_by_role("button", name="Log in" if language == "en" else "Anmelden").click()
        expect(page.get_by_role("alert")).to_be_visible()
        assert_accessible(page, checked)
        page.goto(world.link + "x")  # a tampered link
        expect(page.locator("[data-problem]")).to_be_visible()
        assert_accessible(page, checked)
        page.goto(world.link)
        expect(page.locator("h1")).to_have_text(text.welcome)
        page.get_by_role("button", name=text.activate).click()  # empty: the errors show
        expect(page.get_by_role("alert")).to_be_visible()
        assert_accessible(page, checked)
        assert_no_csp_violations(page)
        page.context.close()
        assert len(checked) == 7


# --- acting on to-dos (R-POR-6, R-SIG-1) ---------------------------------------------------------

ACT = {
    "en": SimpleNamespace(
        sign="Sign: Sign the 2025 return",
        sign_now="Sign now",
        statement="I have read the document above. I, Anna Berger, sign it for Berger Family.",
        read_first="Read the document before you sign:",
        done_heading="Done",
        signed="Thank you. You signed “Sign the 2025 return”.",
        mark_done="Mark as done: Upload your W-2",
        done="Thank you. “Upload your W-2” is done.",
        nothing="Nothing to do right now.",
        approve="Approve: Approve the trust accounts",
        approved="Thank you. You approved “Approve the trust accounts”.",
        only="Only authorised signers can sign this.",
    ),
    "de": SimpleNamespace(
        sign="Unterschreiben: Sign the 2025 return",
        sign_now="Jetzt unterschreiben",
        statement="Ich habe das Dokument oben gelesen. Ich, Anna Berger, unterschreibe es für Berger Family.",
        read_first="Lesen Sie das Dokument, bevor Sie unterschreiben:",
        done_heading="Erledigt",
        signed="Vielen Dank. Sie haben „Sign the 2025 return“ unterschrieben.",
        mark_done="Als erledigt markieren: Upload your W-2",
        done="Vielen Dank. „Upload your W-2“ ist erledigt.",
        nothing="Im Moment ist nichts zu tun.",
        approve="Freigeben: Approve the trust accounts",
        approved="Vielen Dank. Sie haben „Approve the trust accounts“ freigegeben.",
        only="Nur Zeichnungsberechtigte können dies unterschreiben.",
    ),
}


@pytest.mark.parametrize("javascript", [True, False], ids=["javascript", "no-javascript"])
@pytest.mark.parametrize("language", ["en", "de"])
def test_r_por_6_and_r_sig_1_client_signs_approves_and_completes_in_the_browser(
    browser, live, make, smtp, javascript, language
):
    from playwright.sync_api import expect

    world = firm_with_a_client_of_three_accounts(
        make, smtp, invitation_language=language if language == "de" else None
    )
    act, text = ACT[language], TEXT[language]
    # the return to sign is attached to the to-do: the client reads it before signing
    import io

    uploaded = world.firm.api.post(
        f"/accounts/{world.family.id}/documents",
        data={"file": (io.BytesIO(b"%PDF-1.4 the 2025 return"), "2025 return.pdf", "application/pdf")},
        content_type="multipart/form-data",
    ).get_json()
    [sign_todo] = [
        t
        for t in world.firm.api.get(f"/accounts/{world.family.id}/todos").get_json()["items"]
        if t["kind"] == "documents_signature"
    ]
    attached = world.firm.api.patch(f"/todos/{sign_todo['id']}", json={"document_ids": [uploaded["id"]]})
    assert attached.status_code == 200
    page = open_page(browser, javascript=javascript, language=language)
    checker = axe_page(browser, language=language)
    checked: list[str] = []

    def check_here() -> None:
        target = page if javascript else checker
        if not javascript:
            checker.context.add_cookies(page.context.cookies())
            checker.goto(page.url)
        assert_accessible(target, checked)

    try:
        page.goto(world.link)
        page.get_by_label(text.new_password, exact=True).fill(PASSWORD)
        page.get_by_label(text.again, exact=True).fill(PASSWORD)
        page.get_by_role("button", name=text.activate).click()
        expect(page.locator("h1")).to_have_text("Berger Family")
        if javascript:
            page.evaluate("window.__sameDocument = true")

        # sign: the document first, then the confirmation step naming the signer; then the
        # to-do leaves the open list for the "Done" list
        expect(page.get_by_text(act.read_first)).to_be_visible()
        document = page.get_by_role("link", name="2025 return.pdf")
        expect(document).to_be_visible()
        assert document.get_attribute("href").startswith(f"/portal/a/{world.family.id}/todos/")
        page.get_by_role("link", name=act.sign).click()
        expect(page.get_by_text(act.statement)).to_be_visible()
        expect(page.get_by_role("link", name="2025 return.pdf")).to_be_visible()
        if not javascript:
            expect(page).to_have_url(re.compile(r"/todos/\d+/sign$"))
        check_here()
        page.get_by_role("button", name=act.sign_now).click()
        expect(page.get_by_role("status")).to_have_text(act.signed)
        expect(page.get_by_role("link", name=act.sign)).to_have_count(0)
        expect(page.locator("section.done-list")).to_contain_text("Sign the 2025 return")
        expect(page.get_by_role("heading", name=act.done_heading)).to_be_visible()
        check_here()

        # mark done: one click
        page.get_by_role("button", name=act.mark_done).click()
        expect(page.get_by_role("status")).to_have_text(act.done)
        expect(page.get_by_text(act.nothing)).to_be_visible()
        if javascript:
            assert page.evaluate("window.__sameDocument === true"), "htmx should swap, not reload the page"

        # approve, on another account
        page.goto(f"{live.url}/portal/a/{world.trust.id}/")
        page.get_by_role("button", name=act.approve).click()
        expect(page.get_by_role("status")).to_have_text(act.approved)

        # not a signatory on this account: the to-do shows, without a sign button
        email_id = world.settings(world.design).rsplit("/", 1)[1]
        assert (
            world.firm.api.patch(world.settings(world.design), json={"signatory": False}).status_code == 200
        )
        body = {"kind": "proposals", "title": "Engagement letter 2026"}
        assert world.firm.api.post(f"/accounts/{world.design.id}/todos", json=body).status_code == 201
        page.goto(f"{live.url}/portal/a/{world.design.id}/")
        item = page.locator("li.todo", has_text="Engagement letter 2026")
        expect(item).to_contain_text(act.only)
        expect(item.get_by_role("link")).to_have_count(0)
        check_here()
        assert_no_csp_violations(page, checker)
    finally:
        page.context.close()
        checker.context.close()

    family = world.firm.api.get(f"/accounts/{world.family.id}/todos?state=done").get_json()["items"]
    assert {t["title"]: t["done_by"]["action"] for t in family} == {
        "Sign the 2025 return": "signed",
        "Upload your W-2": "done",
    }
    assert all(t["done_by"]["email"] == world.mail["To"] for t in family)
    assert email_id and len(checked) == 3


# --- two-step sign-in (R-SEC-13) -----------------------------------------------------------------

MFA = {
    "en": SimpleNamespace(
        gate="asks every client to sign in with a second step",
        set_up_app="Set up an app",
        code_label="Enter the six-digit code the app shows",
        turn_on="Turn on",
        enabled="Two-step sign-in is on",
        continue_="Continue to my account",
        email="Email",
        password="Password",
        log_in="Log in",
        code="Code",
        next="Continue",
        email_me="Email me a code",
        code_subject="Your sign-in code",
    ),
    "de": SimpleNamespace(
        gate="bittet alle Mandanten, sich mit einem zweiten Schritt anzumelden",
        set_up_app="App einrichten",
        code_label="Geben Sie den sechsstelligen Code aus der App ein",
        turn_on="Einschalten",
        enabled="Die Anmeldung in zwei Schritten ist an",
        continue_="Weiter zu meinem Mandat",
        email="E-Mail",
        password="Passwort",
        log_in="Anmelden",
        code="Code",
        next="Weiter",
        email_me="Code per E-Mail senden",
        code_subject="Ihr Anmeldecode",
    ),
}
SIX_DIGITS = re.compile(r"^\s*(\d{6})\s*$", re.M)


@pytest.mark.parametrize("javascript", [True, False], ids=["javascript", "no-javascript"])
@pytest.mark.parametrize("language", ["en", "de"])
def test_r_sec_13_client_enrols_and_signs_in_with_app_recovery_and_emailed_codes(
    browser, live, make, smtp, javascript, language
):
    """A firm that requires two factors: the client activates and is led to enrol before any
    account data, scans (reads) the key, computes the codes, signs in with a code and with a
    recovery code; after staff reset the factor, enrols codes by email and signs in with one."""
    import time

    import pyotp
    from playwright.sync_api import expect

    world = firm_with_a_client_of_three_accounts(
        make, smtp, invitation_language=language if language == "de" else None
    )
    assert world.firm.api.patch("/firm", json={"require_mfa_clients": True}).status_code == 200
    text, words = TEXT[language], MFA[language]
    address = world.mail["To"]
    page = open_page(browser, javascript=javascript, language=language)
    checker = axe_page(browser, language=language)
    checked: list[str] = []

    def check_here() -> None:
        target = page
        if not javascript:
            checker.context.add_cookies(page.context.cookies())
            checker.goto(page.url)
            target = checker
        assert_accessible(target, checked)

    def log_in() -> None:
        page.goto(f"{live.url}/portal/login")
        page.get_by_label(words.email, exact=True).fill(address)
        page.get_by_label(words.password, exact=True).fill(PASSWORD)
        page.get_by_role("button", name=words.log_in).click()
        expect(page).to_have_url(f"{live.url}/portal/login/code")

    def enter(code: str) -> None:
        page.get_by_label(words.code, exact=True).fill(code)
        page.get_by_role("button", name=words.next, exact=True).click()

    try:
        page.goto(world.link)
        page.get_by_label(text.new_password, exact=True).fill(PASSWORD)
        page.get_by_label(text.again, exact=True).fill(PASSWORD)
        page.get_by_role("button", name=text.activate).click()
        # the gate: enrolment first, nothing of the accounts
        expect(page).to_have_url(f"{live.url}/portal/mfa")
        expect(page.get_by_text(words.gate)).to_be_visible()
        assert "Berger Family" not in page.content()
        check_here()

        page.get_by_role("button", name=words.set_up_app).click()
        expect(page.locator("svg")).to_be_visible()
        key = page.locator("#totp-key").inner_text().strip()
        totp = pyotp.TOTP(key)
        check_here()
        page.get_by_label(words.code_label).fill(totp.now())
        page.get_by_role("button", name=words.turn_on).click()
        expect(page.locator("h1")).to_have_text(words.enabled)
        codes = [c.strip() for c in page.locator(".recovery-codes code").all_inner_texts()]
        assert len(codes) == 10
        check_here()
        page.get_by_role("link", name=words.continue_).click()
        expect(page.locator("h1")).to_have_text("Berger Family")
        page.context.clear_cookies()

        # sign in with the app's next code, then with a recovery code
        log_in()
        assert "Berger Family" not in page.content()
        check_here()
        enter(totp.at(time.time() + 30))
        expect(page.locator("h1")).to_have_text("Berger Family")
        page.context.clear_cookies()
        log_in()
        enter(codes[0])
        expect(page.locator("h1")).to_have_text("Berger Family")
        page.context.clear_cookies()

        # staff reset the factor; the client enrols codes by email instead
        assert world.firm.api.delete(world.settings(world.family) + "/mfa").status_code == 204
        page.goto(f"{live.url}/portal/login")
        page.get_by_label(words.email, exact=True).fill(address)
        page.get_by_label(words.password, exact=True).fill(PASSWORD)
        page.get_by_role("button", name=words.log_in).click()
        expect(page).to_have_url(f"{live.url}/portal/mfa")
        before = len(smtp.messages)
        page.get_by_role("button", name=words.email_me).click()
        mail = next(m for m in smtp.wait_for(before + 2)[before:] if m["Subject"] == words.code_subject)
        code = SIX_DIGITS.search(mail.get_body(("plain",)).get_content()).group(1)
        check_here()
        page.get_by_label(words.code, exact=True).fill(code)
        page.get_by_role("button", name=words.turn_on).click()
        expect(page.locator("h1")).to_have_text(words.enabled)
        page.context.clear_cookies()
        before = len(smtp.messages)
        log_in()
        mail = smtp.wait_for(before + 1)[-1]
        assert mail["Subject"] == words.code_subject
        enter(SIX_DIGITS.search(mail.get_body(("plain",)).get_content()).group(1))
        expect(page.locator("h1")).to_have_text("Berger Family")
        assert_no_csp_violations(page, checker)
    finally:
        page.context.close()
        checker.context.close()
    assert len(checked) == 5


# --- the staff API reference and the invitation card (issue: what a new user hits first) -------


def test_staff_api_reference_renders_and_calls_the_api_with_a_pasted_token(browser, live, make):
    """/api/v1/docs: the vendored Swagger UI draws every resource with no CSP violation, and a
    token pasted into Authorize calls the API from the page."""
    from playwright.sync_api import expect

    firm = make.firm("Harbor & Finch CPA")
    page = open_page(browser, javascript=True, language="en")
    try:
        page.goto(f"{live.url}/api/v1/docs")
        expect(page.locator(".opblock-tag", has_text="auth").first).to_be_visible()
        expect(page.locator(".opblock").first).to_be_visible()
        page.get_by_role("button", name="Authorize").first.click()
        dialog = page.locator(".auth-container", has_text="bearerToken")
        dialog.locator("input").first.fill(firm.token)
        dialog.locator("button.authorize").click()
        page.locator(".modal-ux .btn-done").first.click()
        me = page.locator("#operations-auth-get_api_v1_auth_me")
        me.locator(".opblock-summary").click()
        me.get_by_role("button", name="Try it out").click()
        me.get_by_role("button", name="Execute").click()
        expect(me.locator(".response .response-col_status").first).to_have_text("200")
        expect(me.locator(".responses-inner")).to_contain_text(firm.staff_email)
        assert_no_csp_violations(page)
    finally:
        page.context.close()


@pytest.mark.parametrize("language", ["en", "de"])
def test_the_invitation_card_fits_a_phone_and_wraps_its_link(browser, make, smtp, app, language):
    """The invitation's HTML at 390 px: nothing scrolls sideways, the long link wraps."""
    app.config["MAIL_URL"] = smtp.url
    world = firm_with_a_client_of_three_accounts(
        make, smtp, invitation_language=language if language == "de" else None
    )
    html = world.mail.get_body(("html",)).get_content()
    page = browser.new_page(viewport={"width": 390, "height": 844}, java_script_enabled=True)
    try:
        page.set_content(html)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the invitation scrolls sideways by {overflow}px at 390 px"
        link = page.locator("a[href*='/portal/activate/']").last
        assert link.evaluate("e => e.getClientRects().length") > 1  # the raw link wraps over lines
    finally:
        page.close()


# --- documents and client requests (R-DOC-1/2, R-REQ-1) ------------------------------------------

DOCS = {
    "en": SimpleNamespace(
        nav="Documents", choose="Choose files", upload="Upload", uploaded="2 documents uploaded",
        done="Uploaded", open_request="Open request", answer="Your answer", save="Save answer",
        submit="Submit to your firm",
    ),
    "de": SimpleNamespace(
        nav="Dokumente", choose="Dateien auswählen", upload="Hochladen", uploaded="2 Dokumente hochgeladen",
        done="Hochgeladen", open_request="Anfrage öffnen", answer="Ihre Antwort", save="Antwort speichern",
        submit="An Ihre Kanzlei senden",
    ),
}


@pytest.mark.parametrize(
    "javascript,language", [(True, "en"), (False, "de")], ids=["javascript-en", "no-javascript-de-390px"]
)
def test_r_doc_2_and_r_req_1_client_uploads_documents_and_completes_a_request_in_the_browser(
    browser, live, make, smtp, tmp_path, javascript, language
):
    from playwright.sync_api import expect

    world = firm_with_a_client_of_three_accounts(
        make, smtp, invitation_language=language if language == "de" else None
    )
    made = world.firm.api.post(
        f"/accounts/{world.family.id}/todos",
        json={
            "kind": "client_requests",
            "title": "Year-end documents",
            "items": [
                {"label": "Bank statement", "type": "upload"},
                {"label": "New address?", "type": "answer"},
            ],
        },
    )
    assert made.status_code == 201
    text, docs = TEXT[language], DOCS[language]
    files = [tmp_path / "W-2 2025.pdf", tmp_path / "Kontoauszug.csv"]
    files[0].write_bytes(b"%PDF-1.4 w2")
    files[1].write_bytes(b"date;amount\n2025-12-01;10\n")
    page = open_page(browser, javascript=javascript, language=language)
    checker = axe_page(browser, language=language)
    checked: list[str] = []

    def check_here() -> None:
        target = page if javascript else checker
        if not javascript:
            checker.context.add_cookies(page.context.cookies())
            checker.goto(page.url)
        assert_accessible(target, checked)

    try:
        page.goto(world.link)
        page.get_by_label(text.new_password, exact=True).fill(PASSWORD)
        page.get_by_label(text.again, exact=True).fill(PASSWORD)
        page.get_by_role("button", name=text.activate).click()
        expect(page.locator("h1")).to_have_text("Berger Family")
        page.get_by_role("link", name=docs.nav, exact=True).click()
        expect(page).to_have_url(re.compile(rf"/portal/a/{world.family.id}/documents"))
        check_here()
        page.get_by_label(re.compile(docs.choose)).set_input_files([str(f) for f in files])
        page.get_by_role("button", name=docs.upload, exact=True).click()
        if javascript:  # a progress bar per file, then the page lists them
            expect(page.get_by_role("progressbar", name="W-2 2025.pdf")).to_be_visible()
        else:
            expect(page.get_by_role("status")).to_contain_text(docs.uploaded)
        expect(page.get_by_role("link", name="W-2 2025.pdf")).to_be_visible()
        expect(page.get_by_role("link", name="Kontoauszug.csv")).to_be_visible()
        check_here()
        listed = world.firm.api.get(f"/accounts/{world.family.id}/documents").get_json()["items"]
        assert {d["name"] for d in listed} == {"W-2 2025.pdf", "Kontoauszug.csv"}
        assert all(d["source"] == "client" for d in listed)

        # the request: a file for the upload item, an answer, then submit
        page.goto(f"{live.url}/portal/a/{world.family.id}/")
        page.get_by_role("link", name=re.compile(docs.open_request)).click()
        expect(page.locator("h1")).to_have_text("Year-end documents")
        check_here()
        page.locator("input[type=file]").set_input_files(str(files[1]))
        page.locator("form[data-upload] button[type=submit]").click()
        upload_item = page.locator("#item-" + made.get_json()["items"][0]["id"])
        expect(upload_item).to_have_class(re.compile("complete"))
        page.get_by_label(docs.answer).fill("Same as before.")
        page.get_by_role("button", name=docs.save).click()
        expect(page.get_by_role("button", name=docs.submit)).to_be_enabled()
        page.get_by_role("button", name=docs.submit).click()
        expect(page.locator("h1")).to_have_text("Berger Family")
        todo = world.firm.api.get(f"/accounts/{world.family.id}/todos?state=done").get_json()["items"]
        assert [t["title"] for t in todo] == ["Year-end documents"]
        assert_no_csp_violations(page, checker)
    finally:
        page.context.close()
        checker.context.close()
