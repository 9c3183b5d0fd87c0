"""Rules the database itself enforces, proved with raw SQL that bypasses the services."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from portal_app.extensions import db
from portal_app.models import AccountContact, ContactSettings


def _raw(sql: str, **params: object) -> None:
    db.session.execute(text(sql), params)
    db.session.flush()


def test_r_con_1_database_refuses_an_email_differing_only_in_case(app, make):
    firm = make.firm()
    person = make.contact(firm.id, emails=["anna@example.com"])
    with app.app_context():
        with pytest.raises(IntegrityError):
            _raw(
                "INSERT INTO contact_emails (firm_id, contact_id, address, label, is_primary, created_at) "
                "VALUES (:f, :c, 'ANNA@example.com', '', false, CURRENT_TIMESTAMP)",
                f=firm.id,
                c=person.id,
            )
        db.session.rollback()
        with pytest.raises(IntegrityError):
            _raw(
                "INSERT INTO contact_emails (firm_id, contact_id, address, label, is_primary, created_at) "
                "VALUES (:f, :c, 'anna@example.com', '', false, CURRENT_TIMESTAMP)",
                f=firm.id,
                c=person.id,
            )


def test_r_con_1_same_address_is_allowed_in_another_firm(make):
    first, second = make.firm(), make.firm()
    make.contact(first.id, emails=["shared@example.com"])
    other = make.contact(second.id, emails=["Shared@Example.com"])
    assert other.emails[0].address == "shared@example.com"


def test_r_ten_1_database_refuses_a_link_across_firms(app, make):
    first, second = make.firm(), make.firm()
    account = make.account(first.id)
    stranger = make.contact(second.id)
    with app.app_context():
        with pytest.raises(IntegrityError):
            _raw(
                "INSERT INTO account_contacts (account_id, contact_id, firm_id, description, created_at) "
                "VALUES (:a, :c, :f, '', CURRENT_TIMESTAMP)",
                a=account.id,
                c=stranger.id,
                f=first.id,
            )


def test_settings_row_must_pair_an_email_with_its_own_contact(app, make):
    firm = make.firm()
    anna, paul = make.contact(firm.id, "Anna"), make.contact(firm.id, "Paul")
    account = make.account(firm.id, contacts=[anna])
    with app.app_context():
        with pytest.raises(IntegrityError):
            # Paul's email on Anna's link: the composite foreign keys refuse it.
            _raw(
                "INSERT INTO contact_settings (firm_id, account_id, contact_id, email_id, login, "
                "notify, notification_preferences, email_sync, auto_save_attachments, signatory, "
                "created_at, updated_at) VALUES (:f, :a, :c, :e, false, false, '{}', false, false, "
                "false, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
                f=firm.id,
                a=account.id,
                c=anna.id,
                e=paul.emails[0].id,
            )


def test_one_settings_row_per_account_and_email(app, make):
    firm = make.firm()
    anna = make.contact(firm.id)
    account = make.account(firm.id, contacts=[anna])
    with app.app_context():
        with pytest.raises(IntegrityError):
            db.session.add(
                ContactSettings(
                    firm_id=firm.id, account_id=account.id, contact_id=anna.id, email_id=anna.emails[0].id
                )
            )
            db.session.flush()


def test_unlink_in_sql_removes_the_settings_rows_by_cascade(app, make):
    firm = make.firm()
    anna = make.contact(firm.id, emails=["a1@example.com", "a2@example.com"])
    account = make.account(firm.id, contacts=[anna])
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(ContactSettings)) == 2
        _raw("DELETE FROM account_contacts WHERE account_id = :a", a=account.id)
        assert db.session.scalar(select(func.count()).select_from(ContactSettings)) == 0


def test_r_acc_1_database_refuses_company_fields_on_an_individual(app, make):
    firm = make.firm()
    with app.app_context():
        with pytest.raises(IntegrityError):
            _raw(
                "INSERT INTO accounts (firm_id, name, type, company_name, custom_fields, created_at, "
                "updated_at) VALUES (:f, 'Anna', 'individual', 'Anna GmbH', '{}', CURRENT_TIMESTAMP, "
                "CURRENT_TIMESTAMP)",
                f=firm.id,
            )


def test_deleting_an_account_keeps_the_contact_and_drops_links(app, make):
    firm = make.firm()
    anna = make.contact(firm.id)
    account = make.account(firm.id, contacts=[anna])
    with app.app_context():
        _raw("DELETE FROM accounts WHERE id = :a", a=account.id)
        assert db.session.scalar(select(func.count()).select_from(AccountContact)) == 0
        assert db.session.scalar(text("SELECT count(*) FROM contacts")) == 1


def test_migrations_build_the_schema_the_models_describe(app):
    """Alembic's comparison of the migrated database with the models finds nothing missing."""
    import warnings

    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from portal_app.orm import include_in_schema_compare

    with app.app_context(), db.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": False, "include_name": include_in_schema_compare}
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # expression indexes are reported as skipped
            diff = compare_metadata(context, db.metadata)
    assert diff == []
