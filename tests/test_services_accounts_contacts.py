"""Accounts, contacts, emails and links through the services (R-ACC-1, R-CON-1, R-LNK-*)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from portal_app.models import Account, Contact, ContactEmail, ContactSettings
from portal_app.services import accounts, contacts, links, settings
from portal_app.services.errors import Conflict, ValidationFailed


def _settings_count(session, **where) -> int:
    query = select(func.count()).select_from(ContactSettings)
    for key, value in where.items():
        query = query.where(getattr(ContactSettings, key) == value)
    return session.scalar(query)


def test_r_acc_1_company_fields_only_on_company_accounts(ctx, make):
    firm = make.firm()
    with pytest.raises(ValidationFailed) as error:
        accounts.create_account(firm.id, name="Anna", type="individual", company_name="Anna GmbH")
    assert "company_name" in error.value.fields
    company = accounts.create_account(
        firm.id, name="Acme", type="company", company_name="Acme Ltd", company_address="1 Road"
    )
    accounts.update_account(company, type="individual")
    assert (company.company_name, company.company_address) == (None, None)


def test_r_con_1_email_stored_normalised_and_unique_in_any_case(ctx, make):
    firm = make.firm()
    anna = contacts.create_contact(
        firm.id, first_name="Anna", emails=[{"address": "  Anna.Berger@Example.COM "}]
    )
    assert anna.emails[0].address == "anna.berger@example.com"
    with pytest.raises(Conflict):
        contacts.create_contact(firm.id, first_name="Other", emails=[{"address": "ANNA.BERGER@example.com"}])
    with pytest.raises(Conflict):
        contacts.add_email(anna, address="anna.berger@EXAMPLE.com")


def test_r_con_1_invalid_address_is_refused(ctx, make):
    firm = make.firm()
    with pytest.raises(ValidationFailed):
        contacts.create_contact(firm.id, first_name="Anna", emails=[{"address": "not an email"}])


def test_settings_row_created_for_every_email_on_link_and_on_email_add(ctx, make):
    firm = make.firm()
    anna = contacts.create_contact(
        firm.id, first_name="Anna", emails=[{"address": "a1@example.com"}, {"address": "a2@example.com"}]
    )
    family = accounts.create_account(firm.id, name="Family")
    company = accounts.create_account(firm.id, name="Company", type="company")
    links.link_contact(family, anna)
    links.link_contact(company, anna)
    assert _settings_count(ctx, contact_id=anna.id) == 4
    third = contacts.add_email(anna, address="a3@example.com", label="Work")
    assert _settings_count(ctx, email_id=third.id) == 2
    contacts.remove_email(third)
    assert _settings_count(ctx, contact_id=anna.id) == 4


def test_only_one_primary_email_per_contact(ctx, make):
    firm = make.firm()
    anna = contacts.create_contact(
        firm.id, first_name="Anna", emails=[{"address": "a1@example.com"}, {"address": "a2@example.com"}]
    )
    second = anna.emails[1]
    contacts.update_email(second, is_primary=True)
    primaries = ctx.scalars(
        select(ContactEmail.address).where(ContactEmail.contact_id == anna.id, ContactEmail.is_primary)
    ).all()
    assert primaries == ["a2@example.com"]


def test_a_contact_keeps_at_least_one_email(ctx, make):
    firm = make.firm()
    anna = contacts.create_contact(firm.id, first_name="Anna", emails=[{"address": "a1@example.com"}])
    with pytest.raises(Conflict):
        contacts.remove_email(anna.emails[0])


def test_r_lnk_1_contacts_listed_alphabetically_with_link_description(ctx, make):
    firm = make.firm()
    account = accounts.create_account(firm.id, name="Garcia Law")
    for first, last, description in [
        ("Ruth", "Ito", "Associate"),
        ("Nina", "Garcia", "Partner"),
        ("Omar", "Haddad", ""),
    ]:
        person = contacts.create_contact(
            firm.id, first_name=first, last_name=last, emails=[{"address": f"{first}@x.example"}]
        )
        links.link_contact(account, person, description=description)
    rows = settings.list_account_settings(account)
    assert [(contact.last_name, link.description) for link, contact, _, _ in rows] == [
        ("Garcia", "Partner"),
        ("Haddad", ""),
        ("Ito", "Associate"),
    ]


def test_r_lnk_1_description_applies_to_one_account_only(ctx, make):
    firm = make.firm()
    anna = contacts.create_contact(firm.id, first_name="Anna", emails=[{"address": "a@example.com"}])
    family = accounts.create_account(firm.id, name="Family")
    company = accounts.create_account(firm.id, name="Company", type="company")
    links.link_contact(family, anna, description="Main contact")
    company_link = links.link_contact(company, anna, description="Managing director", signer_priority=1)
    links.update_link(company_link, description="Owner")
    assert links.get_link(family, anna.id).description == "Main contact"
    assert links.get_link(company, anna.id).description == "Owner"


def test_r_lnk_2_last_contact_cannot_be_unlinked(ctx, make):
    firm = make.firm()
    anna = contacts.create_contact(firm.id, first_name="Anna", emails=[{"address": "a@example.com"}])
    paul = contacts.create_contact(firm.id, first_name="Paul", emails=[{"address": "p@example.com"}])
    account = accounts.create_account(firm.id, name="Family")
    links.link_contact(account, anna)
    links.link_contact(account, paul)
    links.unlink_contact(links.get_link(account, paul.id))
    assert _settings_count(ctx, account_id=account.id) == 1
    with pytest.raises(Conflict) as error:
        links.unlink_contact(links.get_link(account, anna.id))
    assert error.value.status == 409 and "last contact" in error.value.message
    with pytest.raises(Conflict):
        contacts.delete_contact(ctx.get(Contact, anna.id))


def test_linking_twice_is_a_conflict(ctx, make):
    firm = make.firm()
    anna = contacts.create_contact(firm.id, first_name="Anna", emails=[{"address": "a@example.com"}])
    account = accounts.create_account(firm.id, name="Family")
    links.link_contact(account, anna)
    with pytest.raises(Conflict):
        links.link_contact(account, anna)


def test_tags_are_trimmed_and_deduplicated(ctx, make):
    firm = make.firm()
    account = accounts.create_account(firm.id, name="Family", tags=[" family ", "Family", "1040"])
    ctx.expire_all()
    assert ctx.get(Account, account.id).tag_names == ["1040", "family"]
