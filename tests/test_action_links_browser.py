"""Acting from an email without logging in, in a real browser (R-LFA-2, R-LFA-3): Chromium opens
the "Open without logging in" links of emails read from the SMTP sink, signs and completes a
client request — with JavaScript in English on a laptop, without it in German on a 390 px phone —
axe-clean, with no CSP violation; a plain HTTP client opening the same link changes nothing; and
the browser that used the links still cannot open the portal."""

from __future__ import annotations

import io
import re
import urllib.request
from typing import Any

import pytest

from tests.test_action_links import action_link_in, allow
from tests.test_notifications import set_settings
from tests.test_portal_browser import (  # noqa: F401 - the fixtures
    assert_accessible,
    assert_no_csp_violations,
    axe_page,
    browser,
    live,
    open_page,
)

WORDS = {
    "en": {
        "confirm": "I, Anna Berger, sign this for Berger Family.",
        "sign": "Sign now",
        "thanks": "Thank you",
        "answer": "Your answer",
        "save": "Save answer",
        "submit": "Submit to your firm",
        "choose": "Choose files for “Bank statement”",
        "upload": "Upload",
    },
    "de": {
        "confirm": "Ich, Anna Berger, unterschreibe dies für Berger Family.",
        "sign": "Jetzt unterschreiben",
        "thanks": "Vielen Dank",
        "answer": "Ihre Antwort",
        "save": "Antwort speichern",
        "submit": "An Ihre Kanzlei senden",
        "choose": "Dateien für „Bank statement“ auswählen",
        "upload": "Hochladen",
    },
}


def todos_of(firm: Any, account_id: int) -> dict[str, dict[str, Any]]:
    return {t["title"]: t for t in firm.api.get(f"/accounts/{account_id}/todos").get_json()["items"]}


@pytest.mark.parametrize(
    "javascript,language", [(True, "en"), (False, "de")], ids=["javascript-en", "no-javascript-de-390px"]
)
def test_r_lfa_3_client_signs_and_completes_a_request_from_email_links_in_the_browser(
    browser,  # noqa: F811 - the fixture
    live,  # noqa: F811
    make,
    smtp,
    tmp_path,
    javascript,
    language,
):
    from playwright.sync_api import expect

    firm = make.firm("Harbor & Finch CPA")
    account = make.account(firm.id, "Berger Family")
    email = account.contacts[0].emails[0]
    allow(firm, "sign", "complete_client_requests", "view_documents", "upload_documents")
    settings = {"notify": True, "signatory": True}
    if language == "de":  # invited in German: the emails, and so the link pages, speak it
        settings |= {"login": True, "send_invitation": True, "invitation_language": "de"}
    set_settings(firm, account.id, email.id, **settings)
    sent = len(smtp.wait_for(1 if language == "de" else 0))
    firm.api.post(f"/accounts/{account.id}/todos", json={"kind": "documents_signature", "title": "Form 8879"})
    firm.api.post(
        f"/accounts/{account.id}/todos",
        json={
            "kind": "client_requests",
            "title": "Year-end documents",
            "items": [
                {"label": "Bank statement", "type": "upload"},
                {"label": "New address?", "type": "answer"},
            ],
        },
    )
    shared = firm.api.post(
        f"/accounts/{account.id}/documents",
        data={"file": (io.BytesIO(b"%PDF-1.4 letter"), "Engagement letter.pdf"), "notify_client": "true"},
        content_type="multipart/form-data",
    )
    assert shared.status_code == 201
    links = {}
    for mail in smtp.wait_for(sent + 3)[sent:]:
        body = mail.get_body(("plain",)).get_content()
        link = action_link_in(mail)
        assert link, body
        kind = "sign" if "8879" in body else "documents" if "Engagement letter" in body else "request"
        links[kind] = live.url + link
    # a plain HTTP client (a mail scanner) opens the link: a page, and nothing changes
    with urllib.request.urlopen(links["sign"]) as answer:  # noqa: S310 - our own live server
        assert answer.status == 200 and answer.headers["Referrer-Policy"] == "no-referrer"
        assert "Form 8879" in answer.read().decode()
    assert todos_of(firm, account.id)["Form 8879"]["state"] == "open"

    words = WORDS[language]
    statement = tmp_path / "statement.csv"
    statement.write_bytes(b"date;amount\n2025-12-01;10\n")
    receipts = tmp_path / "receipts.csv"
    receipts.write_bytes(b"date;receipt\n2025-12-02;coffee\n")
    page = open_page(browser, javascript=javascript, language=language)
    checker = axe_page(browser, language=language)
    checked: list[str] = []

    def check_here() -> None:
        if javascript:
            assert_accessible(page, checked)
            return
        checker.context.add_cookies(page.context.cookies())
        checker.goto(page.url)
        assert_accessible(checker, checked)

    try:
        page.goto(links["sign"])
        expect(page.locator("h1")).to_have_text("Form 8879")
        check_here()
        page.get_by_label(words["confirm"]).check()
        page.get_by_role("button", name=words["sign"]).click()
        expect(page.locator("h1")).to_have_text(words["thanks"])
        check_here()

        page.goto(links["request"])
        expect(page.locator("h1")).to_have_text("Year-end documents")
        check_here()
        page.get_by_label(words["choose"]).set_input_files(str(statement))
        page.locator("form[data-upload] button[type=submit]").click()
        expect(page.locator(".request-item").first).to_have_class(re.compile("complete"))
        page.get_by_label(words["answer"]).fill("Same as before.")
        page.get_by_role("button", name=words["save"]).click()
        expect(page.get_by_role("button", name=words["submit"])).to_be_enabled()
        check_here()
        page.get_by_role("button", name=words["submit"]).click()
        expect(page.locator("h1")).to_have_text(words["thanks"])

        done = todos_of(firm, account.id)
        for title in ("Form 8879", "Year-end documents"):
            assert done[title]["done_by"] == {
                "email": email.address,
                "action": "signed" if title == "Form 8879" else "done",
                "via": "email_link",
            }
        # a spent link says so, plainly
        page.goto(links["sign"])
        expect(page.locator("[data-problem=todo_done]")).to_be_visible()
        check_here()
        # the shared document: read it, and send the firm one back
        page.goto(links["documents"])
        expect(page.get_by_role("link", name="Engagement letter.pdf")).to_be_visible()
        check_here()
        page.locator("#upload-files").set_input_files(str(receipts))
        page.locator("form[data-upload] button[type=submit]").click()
        expect(page.locator(".sent-by-you")).to_contain_text("receipts.csv")
        check_here()
        names = {d["name"] for d in firm.api.get(f"/accounts/{account.id}/documents").get_json()["items"]}
        assert "receipts.csv" in names
        # what the links left in this browser opens nothing of the portal
        page.goto(f"{live.url}/portal/")
        expect(page).to_have_url(re.compile(r"/portal/login"))
        page.goto(f"{live.url}/portal/a/{account.id}/documents")
        expect(page).to_have_url(re.compile(r"/portal/login"))
        assert_no_csp_violations(page, checker)
    finally:
        page.context.close()
        checker.context.close()
