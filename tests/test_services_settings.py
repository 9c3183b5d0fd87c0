"""Contact settings and their audit trail (R-SET-1, R-SEC-7, SPEC §3)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from portal_app.models import NOTIFICATION_CATEGORIES, AuditEntry
from portal_app.services import accounts, contacts, links, settings
from portal_app.services.audit import Actor
from portal_app.services.errors import ValidationFailed

STAFF = Actor("staff", 1, "staff@example.com")


@pytest.fixture
def family(ctx, make):
    firm = make.firm()
    anna = contacts.create_contact(
        firm.id, first_name="Anna", emails=[{"address": "anna@example.com"}, {"address": "anna@work.example"}]
    )
    paul = contacts.create_contact(firm.id, first_name="Paul", emails=[{"address": "paul@example.com"}])
    home = accounts.create_account(firm.id, name="Berger Family")
    company = accounts.create_account(firm.id, name="Berger Design", type="company")
    links.link_contact(home, anna)
    links.link_contact(home, paul)
    links.link_contact(company, anna)
    return home, company, anna, paul


def test_new_settings_are_off_with_every_notification_category_on(family):
    home, _, anna, _ = family
    row = settings.get_settings(home, anna.emails[0].id)
    assert (row.login, row.notify, row.email_sync, row.auto_save_attachments, row.signatory) == (False,) * 5
    assert row.notification_preferences == {c: True for c in NOTIFICATION_CATEGORIES}


def test_r_set_1_settings_of_one_email_never_change_another(family):
    home, company, anna, paul = family
    anna_home = settings.get_settings(home, anna.emails[0].id)
    settings.update_settings(anna_home, {"login": True, "notify": True}, actor=STAFF)
    others = [
        settings.get_settings(home, anna.emails[1].id),  # same contact, other email
        settings.get_settings(home, paul.emails[0].id),  # other contact, same account
        settings.get_settings(company, anna.emails[0].id),  # same email, other account
    ]
    assert [(o.login, o.notify) for o in others] == [(False, False)] * 3


def test_r_sec_7_every_setting_change_is_audited_old_to_new(family, ctx):
    home, _, anna, _ = family
    row = settings.get_settings(home, anna.emails[0].id)
    changed = settings.update_settings(
        row,
        {"notify": True, "notification_preferences": {"proposals": False}, "email_sync": False},
        actor=STAFF,
    )
    assert changed == ["notify", "notification_preferences"]  # email_sync did not change: no entry
    entries = ctx.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
    assert [(e.field, e.actor_type, e.actor_id, e.address) for e in entries] == [
        ("notify", "staff", 1, "anna@example.com"),
        ("notification_preferences", "staff", 1, "anna@example.com"),
    ]
    assert (entries[0].old_value, entries[0].new_value) == (False, True)
    assert entries[1].new_value["proposals"] is False and entries[1].old_value["proposals"] is True


def test_signatory_turns_on_with_the_first_login_only(family):
    home, _, anna, _ = family
    row = settings.get_settings(home, anna.emails[0].id)
    settings.update_settings(row, {"login": True}, actor=STAFF)
    assert row.signatory is True
    settings.update_settings(row, {"login": False, "signatory": False}, actor=STAFF)
    settings.update_settings(row, {"login": True}, actor=STAFF)
    assert row.signatory is False  # a staff choice is not undone by turning login on again


def test_login_with_explicit_signatory_false_is_respected(family):
    home, _, anna, _ = family
    row = settings.get_settings(home, anna.emails[0].id)
    settings.update_settings(row, {"login": True, "signatory": False}, actor=STAFF)
    assert (row.login, row.signatory) == (True, False)


@pytest.mark.parametrize(
    "changes",
    [
        {"login": "yes"},
        {"notification_preferences": {"horoscopes": True}},
        {"notification_preferences": {"proposals": 1}},
        {"password": "x"},
    ],
)
def test_invalid_setting_changes_are_refused_and_change_nothing(family, ctx, changes):
    home, _, anna, _ = family
    row = settings.get_settings(home, anna.emails[0].id)
    with pytest.raises(ValidationFailed):
        settings.update_settings(row, changes, actor=STAFF)
    assert row.login is False and row.notification_preferences["proposals"] is True
    assert ctx.scalars(select(AuditEntry)).all() == []
