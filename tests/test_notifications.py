"""Notifications (R-NOT-1..7): new to-dos, reminders, the weekly transactions email, exactly once,
and one-click unsubscribe."""

from __future__ import annotations

import itertools
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from portal_app.models import AuditEntry, ContactSettings, Notification, OutboxEmail, PortalUser, utcnow
from portal_app.passwords import hash_password
from tests.conftest import REQUIRE_SERVICES, in_app, run_worker, worker_env
from tests.portal_helpers import GOOD_PASSWORD, activate, csrf_from, link_in, login, setup_invite

ROOT = Path(__file__).resolve().parents[1]


# --- helpers ---------------------------------------------------------------------------------------


def set_settings(firm: Any, account_id: int, email_id: int, **changes: Any) -> None:
    response = firm.api.patch(f"/accounts/{account_id}/contact-settings/{email_id}", json=changes)
    assert response.status_code == 200, response.get_json()


def add_person(make: Any, firm: Any, account_id: int, first: str, *, address: str | None = None) -> Any:
    """A new contact with one email, linked to the account; returns the email."""
    person = make.contact(firm.id, first, "Client", emails=[address] if address else None)
    assert (
        firm.api.post(f"/accounts/{account_id}/contacts", json={"contact_id": str(person.id)}).status_code
        == 201
    )
    return person.emails[0]


def activated(
    app: Any, firm_id: int, email_id: int, *, language: str | None = None, timezone: str = "UTC"
) -> None:
    """A portal user that has activated its login (as activation leaves it)."""
    with in_app(app) as session:
        session.add(
            PortalUser(
                firm_id=firm_id,
                email_id=email_id,
                password_hash=hash_password(GOOD_PASSWORD),
                activated_at=utcnow(),
                language=language,
                timezone=timezone,
            )
        )
        session.commit()


def new_todo(firm: Any, account_id: int, **body: Any) -> dict[str, Any]:
    response = firm.api.post(
        f"/accounts/{account_id}/todos", json={"kind": "proposals", "title": "Sign", **body}
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def run_due(app: Any, at: datetime) -> str:
    result = app.test_cli_runner().invoke(args=["cron", "run-due", "--at", at.isoformat()])
    assert result.exit_code == 0, result.output
    return result.output


def outbox(app: Any, template: str | None = None) -> list[OutboxEmail]:
    with in_app(app) as session:
        query = select(OutboxEmail).order_by(OutboxEmail.id)
        if template:
            query = query.where(OutboxEmail.template == template)
        rows = list(session.scalars(query))
        session.expunge_all()
        return rows


def created(todo: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(todo["created_at"])


def text_of(message: EmailMessage) -> str:
    return message.get_body(("plain",)).get_content()


def html_of(message: EmailMessage) -> str:
    return message.get_body(("html",)).get_content()


# --- R-NOT-1: who gets it ----------------------------------------------------------------------------


def test_r_not_1_recipient_rule_matrix_notify_category_and_login_states(app, make, smtp):
    """Every combination of notify on/off x category on/off x login off / invited / activated:
    exactly the emails with notify and the category on get the new to-do, whatever their login."""
    app.config["MAIL_URL"] = smtp.url
    firm = make.firm()
    account = make.account(firm.id, "Matrix Household")
    other = make.account(firm.id, "Other Household")
    expected: set[str] = set()
    for n, (notify, category, login_state) in enumerate(
        itertools.product([True, False], [True, False], ["off", "invited", "activated"])
    ):
        email = add_person(make, firm, account.id, f"P{n}", address=f"p{n}@matrix.example")
        changes: dict[str, Any] = {"notify": notify, "notification_preferences": {"proposals": category}}
        if login_state != "off":
            changes |= {"login": True, "send_invitation": login_state == "invited"}
        set_settings(firm, account.id, email.id, **changes)
        if login_state == "activated":
            activated(app, firm.id, email.id)
        if notify and category:
            expected.add(email.address)
    # on another account with everything on: not a recipient of this account's events
    stranger = add_person(make, firm, other.id, "Stranger", address="stranger@matrix.example")
    set_settings(firm, other.id, stranger.id, notify=True)
    with in_app(app):
        from portal_app.services.notifications import recipients

        assert {r.address for r in recipients("proposals", [account.id])} == expected
        assert {r.address for r in recipients("organizers", [account.id])} == {
            f"p{n}@matrix.example"
            for n in range(6)  # notify on; organizers left on
        }
    before = len(smtp.messages)
    new_todo(firm, account.id, kind="proposals", title="Engagement letter 2026")
    messages = smtp.wait_for(before + len(expected))[before:]
    assert sorted(m["To"] for m in messages) == sorted(expected)
    assert all(m["Subject"] == f"{firm.name}: new to-do for Matrix Household" for m in messages)
    with in_app(app) as session:
        assert session.scalar(select(func.count()).select_from(Notification)) == len(expected)


def test_r_not_1_and_7_new_todo_says_why_links_the_account_and_speaks_the_recipients_language(
    app, make, smtp
):
    app.config["MAIL_URL"] = smtp.url
    firm = make.firm("Harbor & Finch CPA")
    account = make.account(firm.id, "Berger Family")
    english = account.contacts[0].emails[0]
    german = add_person(make, firm, account.id, "Greta", address="greta@berger.example")
    for email in (english, german):
        set_settings(firm, account.id, email.id, notify=True)
    activated(app, firm.id, german.id, language="de")
    new_todo(
        firm, account.id, kind="documents_signature", title="Sign the 2025 return", due_date="2026-12-15"
    )
    by_to = {m["To"]: m for m in smtp.wait_for(2)}
    en, de = by_to[english.address], by_to["greta@berger.example"]
    assert en["Subject"] == "Harbor & Finch CPA: new to-do for Berger Family"
    body = text_of(en)
    assert "Sign the 2025 return" in body and "December 15, 2026" in body
    assert app.config["BASE_URL"] + f"/portal/a/{account.id}/" in body
    assert (
        "because Harbor & Finch CPA sends" in body and "documents to sign" in body and "Berger Family" in body
    )
    assert "Harbor & Finch CPA manages these settings" in body
    assert "Harbor &amp; Finch CPA manages these settings" in html_of(en)
    assert de["Subject"] == "Harbor & Finch CPA: neue Aufgabe für Berger Family"
    assert de["Content-Language"] == "de"
    assert "15. Dezember 2026" in text_of(de) and "verwaltet diese Einstellungen" in text_of(de)
    # a new signature request is not a list: no unsubscribe header
    assert en["List-Unsubscribe"] is None and de["List-Unsubscribe"] is None


# --- R-NOT-2: the activation banner ------------------------------------------------------------------


def test_r_not_2_banner_with_a_fresh_invitation_link_until_activation_and_none_without_login(app, make, smtp):
    world = setup_invite(make, smtp, app)
    firm, account = world.firm, world.account
    set_settings(firm, account.id, world.email.id, notify=True)
    no_login = add_person(make, firm, account.id, "Otto", address="otto@berger.example")
    set_settings(firm, account.id, no_login.id, notify=True)
    new_todo(firm, account.id, title="Approve the proposal")
    messages = {m["To"]: m for m in smtp.wait_for(3)[1:]}
    invited, plain = messages[world.email.address], messages["otto@berger.example"]
    assert "not activated yet" in text_of(invited) and "Activate my login" in html_of(invited)
    assert "not activated yet" not in text_of(plain) and "Activate" not in html_of(plain)
    banner_link = link_in(invited)
    assert banner_link != world.link
    client = app.test_client()
    assert client.get(world.link).status_code == 200  # the invitation email's link still works
    assert b"Activate my login" in client.get(banner_link).data
    assert activate(client, banner_link).status_code == 302  # the banner's link activates
    assert client.get(world.link).status_code == 410  # and, used, both links are spent
    new_todo(firm, account.id, title="Upload the W-2")
    after = {m["To"]: m for m in smtp.wait_for(5)[3:]}
    assert "not activated yet" not in text_of(after[world.email.address])


def test_r_not_2_a_to_do_raised_with_the_invitation_carries_its_link_not_ask_for_a_new_one(app, make, smtp):
    """The demo's case: to-dos and the invitation in one transaction, the to-do emails rendered
    first. With an invitation outstanding the banner links to it; "ask for a new invitation"
    only when none is live."""
    from portal_app.extensions import db
    from portal_app.models import Account
    from portal_app.services import invitations, settings, todos
    from portal_app.services.audit import Actor
    from portal_app.transaction import commit

    app.config["MAIL_URL"] = smtp.url
    firm = make.firm("Harbor & Finch CPA")
    account = make.account(firm.id, "Chen Household")
    lone = make.account(firm.id, "Lone Household")
    email, lone_email = account.contacts[0].emails[0], lone.contacts[0].emails[0]
    with app.app_context():
        for account_id, email_id in ((account.id, email.id), (lone.id, lone_email.id)):
            row = settings.get_settings(db.session.get(Account, account_id), email_id)
            settings.update_settings(row, {"login": True, "notify": True}, actor=Actor.system("test"))
        signing = db.session.get(Account, account.id)
        todos.create_todo(signing, kind="documents_signature", title="Sign the 8879")
        todos.create_todo(db.session.get(Account, lone.id), kind="documents_upload", title="Upload the W-2")
        row = settings.get_settings(db.session.get(Account, account.id), email.id)
        invitations.send_invitation(row, sent_by=None)
        commit()
        db.session.remove()
    messages = smtp.wait_for(3)
    todo_mail = next(m for m in messages if "Sign the 8879" in text_of(m))
    assert "Activate it to see and complete your to-dos online" in text_of(todo_mail)
    assert "new invitation" not in text_of(todo_mail) and "Activate my login" in html_of(todo_mail)
    assert b"Activate my login" in app.test_client().get(link_in(todo_mail)).data
    lone_mail = next(m for m in messages if "Upload the W-2" in text_of(m))  # login on, never invited
    assert "Ask Harbor &amp; Finch CPA for a new invitation" in html_of(lone_mail)
    assert "Activate my login" not in html_of(lone_mail)


def test_r_not_2_the_banner_link_cannot_be_forged_for_another_invitation(app, make, smtp):
    world = setup_invite(make, smtp, app)
    set_settings(world.firm, world.account.id, world.email.id, notify=True)
    new_todo(world.firm, world.account.id)
    banner_link = link_in(smtp.wait_for(2)[1])
    with in_app(app):
        from portal_app import tokens

        payload = tokens.read(tokens.INVITATION, banner_link.rsplit("/", 1)[1])
        forged = tokens.mint(tokens.INVITATION, {"i": payload["i"], "n": payload["n"] + 999})
        unsigned = banner_link.rsplit("/", 1)[1][:-3] + "abc"
    assert app.test_client().get(f"/portal/activate/{forged}").status_code == 400
    assert app.test_client().get(f"/portal/activate/{unsigned}").status_code == 400


# --- R-NOT-3: reminders ------------------------------------------------------------------------------


def test_r_not_3_reminders_follow_every_days_and_max_then_stop_when_done(app, make, smtp):
    app.config["MAIL_URL"] = smtp.url
    firm = make.firm()
    account = make.account(firm.id, "Reminder Household")
    email = account.contacts[0].emails[0]
    set_settings(firm, account.id, email.id, notify=True)
    todo = new_todo(firm, account.id, title="Sign the letter", reminder_every_days=2, reminder_max=2)
    quiet = new_todo(firm, account.id, title="No reminders", reminder_every_days=0)
    finished = new_todo(firm, account.id, title="Done soon", reminder_every_days=1)
    t0 = created(todo)

    def reminders() -> list[str]:
        return [row.context["title"] for row in outbox(app, "todo_reminder")]

    # done before its first reminder (due at +1 day): no reminder, ever
    assert firm.api.patch(f"/todos/{finished['id']}", json={"state": "done"}).status_code == 200
    run_due(app, t0 + timedelta(days=1, hours=23))
    assert reminders() == []
    run_due(app, t0 + timedelta(days=2, minutes=1))
    assert sorted(reminders()) == ["Sign the letter"]
    run_due(app, t0 + timedelta(days=2, minutes=2))  # a second run at the same moment: nothing new
    run_due(app, t0 + timedelta(days=3))
    assert reminders() == ["Sign the letter"]
    run_due(app, t0 + timedelta(days=4, minutes=1))
    assert reminders() == ["Sign the letter", "Sign the letter"]
    run_due(app, t0 + timedelta(days=30))  # reminder_max reached
    assert reminders() == ["Sign the letter", "Sign the letter"]
    assert quiet["reminder_every_days"] == 0
    messages = [m for m in smtp.wait_for(4) if m["Subject"].startswith("Reminder")]
    assert [m["Subject"] for m in messages] == ["Reminder: Sign the letter (Reminder Household)"] * 2
    assert "still open" in text_of(messages[0])


def test_r_not_3_a_todo_done_before_its_reminder_is_delivered_sends_nothing(app, make, smtp, redis_url):
    """Decided while open, done before the worker renders it: the reminder is not sent."""
    app.config["MAIL_URL"] = smtp.url
    firm = make.firm()
    account = make.account(firm.id)
    email = account.contacts[0].emails[0]
    set_settings(firm, account.id, email.id, notify=True)
    todo = new_todo(firm, account.id, title="Pay invoice 17", kind="invoices_payments", reminder_every_days=1)
    run_worker(app)  # the new-to-do email
    assert len(smtp.wait_for(1)) == 1
    run_due(app, created(todo) + timedelta(days=1, minutes=1))
    assert len(outbox(app, "todo_reminder")) == 1
    firm.api.patch(f"/todos/{todo['id']}", json={"state": "done"})
    run_worker(app)
    assert len(smtp.messages) == 1
    [row] = outbox(app, "todo_reminder")
    assert (row.state, row.last_error) == ("failed", "no longer valid; not sent")


def test_r_not_3_late_scheduler_sends_the_latest_reminder_once(app, make):
    firm = make.firm()
    account = make.account(firm.id)
    set_settings(firm, account.id, account.contacts[0].emails[0].id, notify=True)
    todo = new_todo(firm, account.id, reminder_every_days=1, reminder_max=3)
    run_due(app, created(todo) + timedelta(days=10))
    rows = outbox(app, "todo_reminder")
    assert [row.context["reminder_number"] for row in rows] == [3]
    run_due(app, created(todo) + timedelta(days=11))
    assert len(outbox(app, "todo_reminder")) == 1


# --- R-NOT-6: the weekly transactions email ----------------------------------------------------------

# Mondays after the clocks change, and 09:00 local time on each of them, in UTC.
DST_MONDAYS = [
    ("Europe/Berlin", datetime(2026, 3, 30, 7, 0, tzinfo=UTC)),  # spring forward the day before: CEST
    ("Europe/Berlin", datetime(2026, 10, 26, 8, 0, tzinfo=UTC)),  # fall back the day before: CET
    ("America/New_York", datetime(2026, 3, 9, 13, 0, tzinfo=UTC)),  # EDT since Sunday
    ("America/New_York", datetime(2026, 11, 2, 14, 0, tzinfo=UTC)),  # EST since Sunday
]


@pytest.mark.parametrize(("timezone", "nine_local"), DST_MONDAYS)
def test_r_not_6_weekly_email_on_monday_0900_local_across_dst_changes(app, make, timezone, nine_local):
    firm = make.firm()
    assert firm.api.patch("/firm", json={"timezone": timezone}).status_code == 200
    first = make.account(firm.id, "Alpha Household")
    email = first.contacts[0].emails[0]
    second = make.account(firm.id, "Beta Holdings", contacts=first.contacts)
    for account in (first, second):
        set_settings(firm, account.id, email.id, notify=True)
    new_todo(firm, first.id, kind="transactions", title="What is the 120.00 payment to ACME?")
    new_todo(firm, second.id, kind="transactions", title="Receipt for the March rent")
    new_todo(firm, second.id, kind="proposals", title="Not a transaction")

    run_due(app, nine_local - timedelta(minutes=1))  # 08:59 local: not yet
    run_due(app, nine_local - timedelta(days=1))  # Sunday: never
    run_due(app, nine_local - timedelta(hours=1, minutes=1))  # 09:00 at the other offset: not yet
    assert outbox(app, "weekly_transactions") == []
    run_due(app, nine_local)
    run_due(app, nine_local + timedelta(minutes=10))
    [row] = outbox(app, "weekly_transactions")
    assert row.to_address == email.address
    assert [a["name"] for a in row.context["accounts"]] == ["Alpha Household", "Beta Holdings"]
    assert [t["title"] for a in row.context["accounts"] for t in a["todos"]] == [
        "What is the 120.00 payment to ACME?",
        "Receipt for the March rent",
    ]
    assert (
        row.context["week_of"]
        == nine_local.astimezone(__import__("zoneinfo").ZoneInfo(timezone)).date().isoformat()
    )
    run_due(app, nine_local + timedelta(days=7))  # the next Monday: another one
    assert len(outbox(app, "weekly_transactions")) == 2


def test_r_not_6_portal_users_time_zone_wins_and_nothing_is_sent_without_open_questions(app, make):
    firm = make.firm()
    firm.api.patch("/firm", json={"timezone": "America/New_York"})
    account = make.account(firm.id, "Tokyo Trading")
    email = account.contacts[0].emails[0]
    set_settings(firm, account.id, email.id, notify=True, login=True)
    activated(app, firm.id, email.id, timezone="Asia/Tokyo")
    lonely = make.account(firm.id, "No Questions")
    set_settings(firm, lonely.id, lonely.contacts[0].emails[0].id, notify=True)
    new_todo(firm, account.id, kind="transactions", title="Explain the wire")
    new_todo(firm, lonely.id, kind="proposals", title="Not weekly material")
    monday_nine_tokyo = datetime(2026, 12, 7, 0, 0, tzinfo=UTC)  # 09:00 JST
    run_due(app, monday_nine_tokyo)
    assert [r.to_address for r in outbox(app, "weekly_transactions")] == [email.address]
    # done questions: next Monday, nothing
    for item in firm.api.get(f"/accounts/{account.id}/todos?state=open").get_json()["items"]:
        firm.api.patch(f"/todos/{item['id']}", json={"state": "done"})
    run_due(app, monday_nine_tokyo + timedelta(days=7))
    assert len(outbox(app, "weekly_transactions")) == 1


def test_r_not_6_the_weekly_email_respects_notify_and_the_transactions_category(app, make):
    firm = make.firm()
    account = make.account(firm.id)
    on, off, no_notify = account.contacts[0].emails[0], None, None
    off = add_person(make, firm, account.id, "Off")
    no_notify = add_person(make, firm, account.id, "Quiet")
    set_settings(firm, account.id, on.id, notify=True)
    set_settings(firm, account.id, off.id, notify=True, notification_preferences={"transactions": False})
    set_settings(firm, account.id, no_notify.id, notify=False)
    new_todo(firm, account.id, kind="transactions", title="Q")
    run_due(app, datetime(2026, 12, 7, 9, 30, tzinfo=UTC))
    assert [r.to_address for r in outbox(app, "weekly_transactions")] == [on.address]


def test_cron_run_due_refuses_an_instant_without_offset(app):
    result = app.test_cli_runner().invoke(args=["cron", "run-due", "--at", "2026-12-07T09:00:00"])
    assert result.exit_code != 0 and "offset" in result.output


# --- R-NOT-5: exactly once -----------------------------------------------------------------------------


def _cron_process(app: Any, database_url: str, redis_url: str, at: datetime) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "cron", "run-due", "--at", at.isoformat()],
        cwd=ROOT,
        env=worker_env(app, database_url, redis_url, None),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _a_monday_morning_a_day_from_now() -> datetime:
    """A Monday 09:30 UTC at least a day after now (a fixed date stops being that once the calendar
    reaches it: to-dos made that morning with a daily reminder are not due yet)."""
    earliest = utcnow() + timedelta(days=1)
    day = earliest.replace(hour=9, minute=30, second=0, microsecond=0)
    while day.weekday() != 0 or day < earliest:
        day += timedelta(days=1)
    return day


def test_r_not_5_two_cron_processes_racing_send_each_reminder_and_weekly_email_once(
    app, make, database_url, redis_url
):
    if not database_url.startswith("postgresql"):
        message = "the race is proven on PostgreSQL (set TEST_DATABASE_URL)"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)
    firm = make.firm()
    accounts = [make.account(firm.id, f"Race {n}") for n in range(30)]
    for account in accounts:
        second = add_person(make, firm, account.id, "Second")
        for email in (account.contacts[0].emails[0], second):
            set_settings(firm, account.id, email.id, notify=True)
        for n in range(4):
            new_todo(firm, account.id, title=f"Reminder {n}", reminder_every_days=1)
        new_todo(firm, account.id, kind="transactions", title="Weekly question", reminder_every_days=0)
    at = _a_monday_morning_a_day_from_now()  # every daily reminder created now is due by then
    processes = [_cron_process(app, database_url, redis_url, at) for _ in range(2)]
    outputs = [p.communicate(timeout=120)[0].decode() for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    rows = outbox(app)
    reminders = [r for r in rows if r.template == "todo_reminder"]
    weekly = [r for r in rows if r.template == "weekly_transactions"]
    assert len(reminders) == 30 * 4 * 2  # one per to-do and recipient
    assert len({(r.to_address, r.context["todo_id"]) for r in reminders}) == len(reminders)
    assert len(weekly) == 60 and len({r.to_address for r in weekly}) == 60
    # both processes did work or waited; neither failed, and together they decided each once
    assert sum(int(o.split("Reminders: ")[1].split(" ")[0]) for o in outputs) == 240


def test_r_not_5_a_retried_run_and_a_crash_between_deciding_and_sending_never_duplicate(
    app, make, smtp, redis_url, monkeypatch
):
    app.config["MAIL_URL"] = smtp.url
    firm = make.firm()
    account = make.account(firm.id)
    email = account.contacts[0].emails[0]
    set_settings(firm, account.id, email.id, notify=True)
    todo = new_todo(firm, account.id, title="Sign it", reminder_every_days=1)
    run_worker(app)
    assert len(smtp.wait_for(1)) == 1
    at = created(todo) + timedelta(days=1, minutes=5)

    # a crash after the notifications are recorded but before the transaction commits
    from portal_app.services import notifications

    real = notifications.insert_with_ids

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("worker killed")

    monkeypatch.setattr(notifications, "insert_with_ids", crash)
    result = app.test_cli_runner().invoke(args=["cron", "run-due", "--at", at.isoformat()])
    assert result.exit_code != 0
    with in_app(app) as session:
        assert session.scalar(select(func.count()).select_from(Notification)) == 1  # the new to-do's only
    monkeypatch.setattr(notifications, "insert_with_ids", real)
    # the retry decides again, once; a retried job (same instant) and a later run add nothing
    run_due(app, at)
    run_due(app, at)
    run_due(app, at + timedelta(hours=1))
    from portal_app.jobs.periodic import run_due as run_due_job

    with app.app_context():
        run_due_job(at.isoformat())  # the job rq runs, retried
    run_worker(app)
    run_worker(app)
    messages = smtp.wait_for(2)
    assert [m["Subject"] for m in messages].count("Reminder: Sign it (" + account.name + ")") == 1
    assert len(outbox(app, "todo_reminder")) == 1


# --- one-click unsubscribe (RFC 8058) ----------------------------------------------------------------


def test_unsubscribe_headers_one_click_post_get_changes_nothing_and_staff_see_it(app, make, smtp):
    world = setup_invite(make, smtp, app)
    firm, account = world.firm, world.account
    other = make.account(firm.id, "Second Account", contacts=[account.contacts[0]])
    for target in (account, other):
        set_settings(firm, target.id, world.email.id, notify=True)
    todo = new_todo(firm, account.id, title="Sign the proposal")
    run_due(app, created(todo) + timedelta(days=3, minutes=1))
    reminder = next(m for m in smtp.wait_for(3) if m["Subject"].startswith("Reminder"))
    assert world.mail["List-Unsubscribe"] is None  # the invitation is not a list
    header = reminder["List-Unsubscribe"]
    assert header.startswith("<" + app.config["BASE_URL"] + "/portal/unsubscribe/") and header.endswith(">")
    assert reminder["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    path = header[1:-1].removeprefix(app.config["BASE_URL"])
    assert path in text_of(reminder)

    page = app.test_client().get(path)
    assert page.status_code == 200 and b"Stop these emails?" in page.data
    assert page.headers["Cache-Control"] == "no-store"

    def proposals_on(account_id: int) -> bool:
        body = firm.api.get(f"/accounts/{account_id}/contact-settings").get_json()
        [row] = [e for c in body["contacts"] for e in c["emails"] if e["email_id"] == str(world.email.id)]
        return row["notification_preferences"]["proposals"]

    assert proposals_on(account.id)  # the GET changed nothing
    # what a mail provider sends: no cookie, no CSRF token, the RFC 8058 body
    done = app.test_client().post(path, data={"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200 and b"You are unsubscribed" in done.data
    assert not proposals_on(account.id) and proposals_on(other.id)  # that account only
    audit = firm.api.get(f"/audit?account_id={account.id}").get_json()["items"][0]
    assert audit["field"] == "notification_preferences"
    assert audit["actor"]["type"] == "portal" and audit["actor"]["label"] == world.email.address
    assert (
        app.test_client().post(path, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    )  # again: fine
    # the next reminder of that category for that account does not come
    run_due(app, created(todo) + timedelta(days=6, minutes=1))
    assert outbox(app, "todo_reminder")[-1].context["reminder_number"] == 1
    # a tampered link changes nothing and says so
    assert app.test_client().post(path[:-4] + "AAAA", data={}).status_code == 400


def test_unsubscribe_from_the_weekly_email_switches_transactions_off_on_every_listed_account(app, make, smtp):
    app.config["MAIL_URL"] = smtp.url
    firm = make.firm()
    first = make.account(firm.id, "One")
    email = first.contacts[0].emails[0]
    second = make.account(firm.id, "Two", contacts=first.contacts)
    for account in (first, second):
        set_settings(firm, account.id, email.id, notify=True)
        new_todo(firm, account.id, kind="transactions", title="Q", reminder_every_days=0)
    run_due(app, datetime(2026, 12, 7, 9, 0, tzinfo=UTC))
    weekly = next(m for m in smtp.wait_for(3) if "transaction" in m["Subject"])
    assert weekly["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    path = weekly["List-Unsubscribe"][1:-1].removeprefix(app.config["BASE_URL"])
    assert app.test_client().post(path, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    with in_app(app) as session:
        prefs = session.scalars(select(ContactSettings.notification_preferences)).all()
        assert [p["transactions"] for p in prefs] == [False, False]
        assert (
            session.scalar(
                select(func.count()).select_from(AuditEntry).where(AuditEntry.actor_type == "portal")
            )
            == 2
        )
    run_due(app, datetime(2026, 12, 14, 9, 0, tzinfo=UTC))
    assert len(outbox(app, "weekly_transactions")) == 1


def test_new_todo_for_a_logged_in_client_links_straight_to_the_account(app, make, smtp):
    """The link in a notification opens the right account for a client with several."""
    world = setup_invite(make, smtp, app)
    client = app.test_client()
    activate(client, world.link)
    second = make.account(world.firm.id, "Second Account", contacts=[world.account.contacts[0]])
    set_settings(world.firm, second.id, world.email.id, login=True, notify=True)
    new_todo(world.firm, second.id, title="Approve the budget")
    message = smtp.wait_for(3)[-1]
    link = next(
        line.strip() for line in text_of(message).splitlines() if f"/portal/a/{second.id}/" in line
    ).removeprefix(app.config["BASE_URL"])
    anonymous = app.test_client()
    to_login = anonymous.get(link)
    assert to_login.status_code == 302 and "/portal/login" in to_login.headers["Location"]
    assert login(anonymous, world.email.address).status_code == 302
    page = anonymous.get(link)
    assert page.status_code == 200 and b"Approve the budget" in page.data
    assert csrf_from(page.data)
