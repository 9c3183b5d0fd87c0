"""Configuration (SPEC §1.2) and the operations commands (SPEC §14)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from portal_app.config import ConfigError, load_config
from portal_app.models import Account, ApiToken, Contact, Firm, PortalUser, StaffUser
from portal_app.services.account_list import list_accounts
from tests.conftest import in_app

PRODUCTION = {
    "PORTICO_ENV": "production",
    "DATABASE_URL": "postgresql://u@h/db",
    "REDIS_URL": "redis://h:6379/0",
}


@pytest.mark.parametrize("key", [None, "", "dev", "changeme", "short-but-random"])
def test_production_refuses_a_missing_default_or_short_secret_key(tmp_path, key):
    env = dict(PRODUCTION) | ({"SECRET_KEY": key} if key is not None else {})
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        load_config(str(tmp_path), env)


def test_production_requires_database_and_redis(tmp_path):
    env = dict(PRODUCTION, SECRET_KEY="k" * 48)
    assert load_config(str(tmp_path), env)["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@h/db"
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        load_config(str(tmp_path), {k: v for k, v in env.items() if k != "DATABASE_URL"})
    with pytest.raises(ConfigError, match="REDIS_URL"):
        load_config(str(tmp_path), {k: v for k, v in env.items() if k != "REDIS_URL"})


def test_production_cookies_are_secure_and_host_prefixed(tmp_path):
    config = load_config(str(tmp_path), dict(PRODUCTION, SECRET_KEY="k" * 48))
    assert config["SESSION_COOKIE_SECURE"] is True
    assert config["SESSION_COOKIE_NAME"].startswith("__Host-")


def test_development_defaults_to_sqlite_inline_jobs_and_a_kept_key(tmp_path):
    config = load_config(str(tmp_path), {"PORTICO_ENV": "development"})
    assert config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///")
    assert config["JOBS_INLINE"] is True
    assert load_config(str(tmp_path), {"PORTICO_ENV": "development"})["SECRET_KEY"] == config["SECRET_KEY"]


def test_environment_defaults_to_production(tmp_path):
    with pytest.raises(ConfigError):
        load_config(str(tmp_path), {})


def test_firm_create_and_staff_token_commands(app):
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=[
            "firm",
            "create",
            "--name",
            "Acme CPA",
            "--admin-email",
            "Boss@Acme.example",
            "--admin-password",
            "a long enough password",
        ]
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(args=["staff", "token", "boss@acme.example"])
    assert result.exit_code == 0, result.output
    token = result.output.strip().splitlines()[-1]
    me = app.test_client().get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200 and me.get_json()["user"]["role"] == "admin"


def test_firm_create_refuses_a_short_password_and_a_taken_email(app):
    runner = app.test_cli_runner()
    short = runner.invoke(
        args=["firm", "create", "--name", "A", "--admin-email", "a@a.example", "--admin-password", "short"]
    )
    assert short.exit_code != 0 and "12 characters" in short.output
    ok = [
        "firm",
        "create",
        "--name",
        "A",
        "--admin-email",
        "a@a.example",
        "--admin-password",
        "a long enough password",
    ]
    assert runner.invoke(args=ok).exit_code == 0
    again = runner.invoke(args=ok)
    assert again.exit_code != 0 and "already exists" in again.output
    with in_app(app) as session:
        assert session.scalar(select(func.count()).select_from(Firm)) == 1


def test_firm_create_takes_an_iana_timezone_and_refuses_others(app):
    runner = app.test_cli_runner()
    base = ["firm", "create", "--admin-password", "a long enough password"]
    bad = runner.invoke(
        args=[*base, "--name", "Mars", "--admin-email", "m@m.example", "--timezone", "Mars/Olympus"]
    )
    assert bad.exit_code != 0 and "not a time zone" in bad.output
    good = runner.invoke(
        args=[*base, "--name", "Berlin", "--admin-email", "b@b.example", "--timezone", "Europe/Berlin"]
    )
    assert good.exit_code == 0, good.output
    with in_app(app) as session:
        assert session.scalars(select(Firm.timezone)).all() == ["Europe/Berlin"]


def test_staff_token_for_unknown_user_fails_clearly(app):
    result = app.test_cli_runner().invoke(args=["staff", "token", "ghost@example.com"])
    assert result.exit_code != 0 and "No staff user" in result.output


def test_demo_load_twice_creates_the_firm_once_with_all_three_statuses(app):
    runner = app.test_cli_runner()
    first = runner.invoke(args=["demo", "load"])
    second = runner.invoke(args=["demo", "load"])
    assert first.exit_code == second.exit_code == 0, first.output + second.output
    assert "(created)" in first.output and "(already there)" in second.output
    with in_app(app) as session:
        assert session.scalar(select(func.count()).select_from(Firm)) == 1
        assert session.scalar(select(func.count()).select_from(StaffUser)) == 2
        assert session.scalar(select(func.count()).select_from(ApiToken)) == 2
        firm_id = session.scalar(select(Firm.id))
        page = list_accounts(firm_id, limit=100)
        assert 10 <= len(page.rows) <= 15
        assert {row.status for row in page.rows} == {"activated", "pending_activation", "not_activated"}
        assert {row.type for row in page.rows} == {"individual", "company"}
        shared = session.scalars(select(Contact)).all()
        assert any(len(c.links) >= 2 for c in shared) and any(len(c.emails) == 2 for c in shared)
        assert session.scalar(select(func.count()).select_from(PortalUser)) >= 1
        assert session.scalar(select(func.count()).select_from(Account)) == len(page.rows)
    token = second.output.split("API token:")[1].split()[0]
    assert (
        app.test_client().get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code
        == 200
    )


def test_demo_load_prints_a_working_invitation_link_and_a_rerun_replaces_it(app):
    from tests.portal_helpers import activate, home

    runner = app.test_cli_runner()
    first = runner.invoke(args=["demo", "load"]).output.split("Invitation:")[1].split()[0]
    second = runner.invoke(args=["demo", "load"]).output.split("Invitation:")[1].split()[0]
    assert first.startswith("http://127.0.0.1:5000/portal/activate/") and first != second
    old, new = first.split("5000", 1)[1], second.split("5000", 1)[1]
    assert app.test_client().get(old).status_code == 410  # replaced by the rerun
    client = app.test_client()
    page = client.get(new)
    assert page.status_code == 200 and b"mia.chen@example.com" in page.data
    assert activate(client, new).status_code == 302
    body = home(client).data.decode()
    # the demo client has three accounts with to-dos: the picker and the other accounts show
    assert '<h1 id="account-name">Mia Chen</h1>' in body and "Sign your 2025 tax return" in body
    assert body.count("<option") == 3 and "Chen Studio LLC" in body and "3 to-dos" in body


def test_demo_load_is_safe_to_repeat_after_the_demo_client_activated(app):
    """A second `make run` once the demo client activated used to crash with "already activated"."""
    from tests.portal_helpers import activate

    runner = app.test_cli_runner()
    link = runner.invoke(args=["demo", "load"]).output.split("Invitation:")[1].split()[0]
    assert activate(app.test_client(), link.split("5000", 1)[1]).status_code == 302
    again = runner.invoke(args=["demo", "load"])
    assert again.exit_code == 0, again.output
    assert "Invitation:" not in again.output and "API token:" in again.output
    assert "mia.chen@example.com with the password you chose" in again.output
    assert "make reset-demo" in again.output
    third = runner.invoke(args=["demo", "load"])
    assert third.exit_code == 0, third.output
