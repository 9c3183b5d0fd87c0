"""Commands for firms, staff users, API tokens and the demo firm."""

from __future__ import annotations

from urllib.parse import urlsplit

import click
from flask.cli import AppGroup
from sqlalchemy import select

from portal_app.extensions import db
from portal_app.models import StaffUser
from portal_app.services.errors import DomainError
from portal_app.services.staff import create_firm, create_staff_user, issue_api_token
from portal_app.transaction import commit

firm_cli = AppGroup("firm", help="Manage firms.")
staff_cli = AppGroup("staff", help="Manage staff users.")
demo_cli = AppGroup("demo", help="The demo firm.")


@firm_cli.command("create")
@click.option("--name", required=True, help="The firm's name.")
@click.option("--admin-email", required=True, help="Email of the firm's first admin.")
@click.option("--admin-password", help="The admin's password (prompted for when omitted).")
@click.option("--timezone", default="UTC", show_default=True)
def firm_create(name: str, admin_email: str, admin_password: str | None, timezone: str) -> None:
    """Create a firm and its first admin."""
    if admin_password is None:
        admin_password = click.prompt("Admin password", hide_input=True, confirmation_prompt=True)
    try:
        firm = create_firm(name, timezone=timezone)
        admin = create_staff_user(
            firm, email=admin_email, password=admin_password, name="Admin", role="admin"
        )
        commit()
    except DomainError as exc:
        db.session.rollback()
        raise click.ClickException(exc.message) from exc
    click.echo(f"Created firm {firm.name!r} (id {firm.id}) with admin {admin.email}.")


@staff_cli.command("token")
@click.argument("email")
@click.option("--name", default="cli", show_default=True, help="A label for the token.")
def staff_token(email: str, name: str) -> None:
    """Print a new personal API token for staff user EMAIL (alone on the last line)."""
    user = db.session.scalar(select(StaffUser).where(StaffUser.email == email.strip().lower()))
    if user is None:
        raise click.ClickException(f"No staff user with email {email}.")
    _, raw = issue_api_token(user, name=name)
    commit()
    click.echo(f"New API token for {user.email} (shown once; send as 'Authorization: Bearer <token>'):")
    click.echo(raw)


@demo_cli.command("load")
def demo_load() -> None:
    """Load the demo firm (idempotent) and print how to use it."""
    from portal_app.demo import DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD, load_demo

    summary = load_demo()
    base = summary["base_url"]
    click.echo("")
    click.echo(
        "Portico demo firm ready: "
        + summary["firm_name"]
        + (" (created)" if summary["created"] else " (already there)")
    )
    click.echo(f"  Staff login:  {DEMO_ADMIN_EMAIL} / {DEMO_ADMIN_PASSWORD}  (POST {base}/api/v1/auth/login)")
    click.echo(f"  API token:    {summary['api_token']}")
    click.echo(
        f"  Try:          curl -H 'Authorization: Bearer {summary['api_token']}' {base}/api/v1/auth/me"
    )
    click.echo(f"  Dev mail:     {base}/dev/mail")
    click.echo(f"  API docs:     {base}/api/v1/docs  (sign in as staff, or paste the API token)")
    state = summary["invitee_state"]
    if summary.get("invitation_link"):
        click.echo(f"  Invitation:   {summary['invitation_link']}")
        click.echo(f"                (for the demo client {summary['invitee']}; choose a password there)")
    elif state == "activated":
        click.echo(
            f"  Client login: {base}/portal/login as {summary['invitee']} with the password you chose"
            " (she has activated; `make reset-demo` starts the demo over)"
        )
    elif state in ("login_off", "missing"):
        click.echo(
            f"  Invitation:   none sent: {summary['invitee']} has no portal login on any account now"
            " (`make reset-demo` starts the demo over)"
        )
    if urlsplit(base).hostname == "localhost":
        click.echo(f"  Passkeys:     after signing in, {base}/portal/passkeys adds one (Chromium, or any")
        click.echo("                browser with a fingerprint, face or phone unlock); then log out and")
        click.echo("                choose \"Sign in with a passkey\". WebAuthn needs a name, not 127.0.0.1.")
    click.echo("")
