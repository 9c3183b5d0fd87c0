"""Account status, flags, filters and paging of the account list (R-STA-1..4)."""

from __future__ import annotations

import pytest
from sqlalchemy import event

from portal_app.extensions import db
from portal_app.models import Contact, PortalUser, utcnow
from portal_app.passwords import hash_password
from portal_app.services import accounts, contacts, links, settings
from portal_app.services.account_list import account_flags, list_accounts
from portal_app.services.audit import Actor
from portal_app.services.errors import ValidationFailed

STAFF = Actor("staff", 1, "staff")


def _account(firm_id: int, name: str, *people: Contact, type: str = "individual", tags=()):
    account = accounts.create_account(firm_id, name=name, type=type, tags=list(tags))
    for person in people:
        links.link_contact(account, person)
    return account


def _person(firm_id: int, first: str, last: str, *addresses: str) -> Contact:
    return contacts.create_contact(
        firm_id, first_name=first, last_name=last, emails=[{"address": a} for a in addresses]
    )


def _set(account, person, index=0, **changes):
    settings.update_settings(settings.get_settings(account, person.emails[index].id), changes, actor=STAFF)


def _activate(firm_id: int, email_id: int) -> None:
    db.session.add(
        PortalUser(
            firm_id=firm_id, email_id=email_id, password_hash=hash_password("x" * 12), activated_at=utcnow()
        )
    )
    db.session.flush()


def test_r_sta_1_to_3_status_follows_login_and_activation(ctx, make):
    firm = make.firm()
    anna = _person(firm.id, "Anna", "Berger", "anna@example.com")
    account = _account(firm.id, "Berger Family", anna)
    assert account_flags(account.id)[0] == "not_activated"
    _set(account, anna, login=True)
    assert account_flags(account.id)[0] == "pending_activation"
    _activate(firm.id, anna.emails[0].id)
    assert account_flags(account.id)[0] == "activated"
    _set(account, anna, login=False)
    assert account_flags(account.id)[0] == "not_activated"


def test_r_sta_1_activated_user_without_login_on_this_account_does_not_count(ctx, make):
    firm = make.firm()
    anna = _person(firm.id, "Anna", "Berger", "anna@example.com")
    paul = _person(firm.id, "Paul", "Berger", "paul@example.com")
    home = _account(firm.id, "Home", anna, paul)
    company = _account(firm.id, "Company", anna)
    _set(company, anna, login=True)
    _activate(firm.id, anna.emails[0].id)
    _set(home, paul, login=True)
    assert account_flags(company.id)[0] == "activated"
    assert account_flags(home.id)[0] == "pending_activation"


def test_r_sta_4_notify_and_email_sync_true_when_any_email_has_them(ctx, make):
    firm = make.firm()
    anna = _person(firm.id, "Anna", "Berger", "anna@example.com", "anna@work.example")
    paul = _person(firm.id, "Paul", "Berger", "paul@example.com")
    account = _account(firm.id, "Home", anna, paul)
    assert account_flags(account.id)[1:] == (False, False)
    _set(account, anna, 1, notify=True)
    _set(account, paul, email_sync=True)
    assert account_flags(account.id)[1:] == (True, True)


@pytest.fixture
def firm_with_accounts(ctx, make):
    firm, other = make.firm(), make.firm()
    anna = _person(firm.id, "Anna", "Berger", "anna@bergerdesign.example")
    leo = _person(firm.id, "Leo", "Dubois", "leo@bakery.example")
    mia = _person(firm.id, "Mia", "Chen", "mia_chen@example.com")
    design = _account(firm.id, "berger Design", anna, type="company", tags=["monthly"])
    bakery = _account(firm.id, "Dubois Bakery", leo, type="company", tags=["payroll", "monthly"])
    chen = _account(firm.id, "Chen, Mia", mia, tags=["1040"])
    _set(design, anna, login=True, notify=True)
    _set(bakery, leo, login=True)
    _activate(firm.id, leo.emails[0].id)
    _account(other.id, "Another firm's Berger", _person(other.id, "Anna", "Berger", "anna@elsewhere.example"))
    return firm, {"design": design, "bakery": bakery, "chen": chen}


def _names(page) -> list[str]:
    return [row.name for row in page.rows]


def test_r_sta_4_list_sorted_by_name_case_insensitively_within_the_firm(firm_with_accounts):
    firm, _ = firm_with_accounts
    page = list_accounts(firm.id)
    assert _names(page) == ["berger Design", "Chen, Mia", "Dubois Bakery"]
    assert [(r.status, r.notify, r.tags) for r in page.rows] == [
        ("pending_activation", True, ["monthly"]),
        ("not_activated", False, ["1040"]),
        ("activated", False, ["monthly", "payroll"]),
    ]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"q": "bakery"}, ["Dubois Bakery"]),  # account name
        ({"q": "anna berger"}, ["berger Design"]),  # contact name
        ({"q": "BERGERDESIGN.example"}, ["berger Design"]),  # part of an email
        ({"q": "_chen"}, ["Chen, Mia"]),  # LIKE wildcards are literal
        ({"q": "%"}, []),
        ({"status": "activated"}, ["Dubois Bakery"]),
        ({"status": "pending_activation"}, ["berger Design"]),
        ({"status": "not_activated"}, ["Chen, Mia"]),
        ({"tag": "Monthly"}, ["berger Design", "Dubois Bakery"]),
        ({"type": "individual"}, ["Chen, Mia"]),
        ({"type": "company", "tag": "payroll"}, ["Dubois Bakery"]),
    ],
)
def test_r_sta_4_list_filters(firm_with_accounts, filters, expected):
    firm, _ = firm_with_accounts
    assert _names(list_accounts(firm.id, **filters)) == expected


def test_list_pages_with_a_cursor_without_gaps_or_repeats(ctx, make):
    firm = make.firm()
    person = _person(firm.id, "Anna", "Berger", "anna@example.com")
    names = [f"Client {i:02d}" for i in range(23)] + ["client 05"]  # a duplicate name in other case
    for name in names:
        _account(firm.id, name, person)
    seen, cursor = [], None
    while True:
        page = list_accounts(firm.id, limit=5, cursor=cursor)
        seen.extend(row.id for row in page.rows)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert len(seen) == len(set(seen)) == 24


def test_a_broken_cursor_is_a_validation_error(ctx, make):
    firm = make.firm()
    with pytest.raises(ValidationFailed):
        list_accounts(firm.id, cursor="not-a-cursor")


def test_list_is_one_query_for_any_page_size(ctx, make):
    firm = make.firm()
    people = [_person(firm.id, f"P{i}", "X", f"p{i}@example.com") for i in range(3)]
    for i in range(60):
        account = _account(firm.id, f"Acc {i:02d}", *people[: 1 + i % 3], tags=["t"])
        _set(account, people[0], login=True)
    ctx.commit()

    def count_queries(limit: int) -> int:
        statements: list[str] = []
        listener = lambda *args: statements.append(args[2])  # noqa: E731
        event.listen(db.engine, "before_cursor_execute", listener)
        try:
            page = list_accounts(firm.id, limit=limit)
            [(r.name, r.status, r.tags) for r in page.rows]
        finally:
            event.remove(db.engine, "before_cursor_execute", listener)
        return len(statements)

    assert count_queries(5) == count_queries(50) == 1  # flags and tags come with the page


def test_r_sta_4_search_follows_every_change_of_names_emails_and_links(ctx, make):
    """The search text is kept by the services: renames, emails added, changed and removed,
    contacts linked, unlinked and deleted all show in `q` at once."""
    firm = make.firm()
    anna = _person(firm.id, "Anna", "Berger", "anna@berger.example")
    lena = _person(firm.id, "Lena", "Weber", "lena@weber.example")
    account = _account(firm.id, "Harbor Holdings", anna)

    def found(q: str) -> bool:
        return [row.id for row in list_accounts(firm.id, q=q).rows] == [account.id]

    assert found("harbor") and found("anna berger") and found("@berger.ex") and not found("weber")
    accounts.update_account(account, name="Finch Holdings")
    assert found("finch") and not found("harbor")
    contacts.update_contact(anna, first_name="Annabel")
    assert found("annabel berger") and not found("anna berger")
    extra = contacts.add_email(anna, address="a.berger@work.example")
    assert found("work.example")
    contacts.update_email(extra, address="a.berger@office.example")
    assert found("office.example") and not found("work.example")
    contacts.remove_email(extra)
    assert not found("office.example")
    link = links.link_contact(account, lena)
    assert found("lena weber") and found("weber.example")
    links.unlink_contact(link)
    assert not found("weber")
    links.link_contact(account, lena)
    contacts.delete_contact(anna)
    assert not found("berger") and found("lena")
    assert not found("holdings\nlena")  # a term never spans two parts
