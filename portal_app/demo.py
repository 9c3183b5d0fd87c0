"""The demo firm for `make run`: both account types, shared contacts, all three statuses."""

from __future__ import annotations

import re
from datetime import timedelta
from email import message_from_bytes, policy
from typing import Any

from flask import current_app
from sqlalchemy import select

from portal_app.extensions import db
from portal_app.mail.transport import dev_mail_dir
from portal_app.models import (
    LOGIN_FREE_ACTIONS,
    Account,
    ContactEmail,
    ContactSettings,
    Firm,
    OutboxEmail,
    PortalUser,
    StaffUser,
    utcnow,
)
from portal_app.passwords import hash_password
from portal_app.queue import dispatch_ready_jobs
from portal_app.services import accounts, contacts, invitations, links, settings, todos
from portal_app.services.audit import Actor
from portal_app.services.staff import create_firm, create_staff_user, issue_api_token
from portal_app.transaction import commit

DEMO_FIRM_NAME = "Harbor & Finch CPA"
DEMO_ADMIN_EMAIL = "admin@harborfinch.example"
DEMO_ADMIN_PASSWORD = "harbor-finch-demo"
DEMO_CLIENT_PASSWORD = "portico-client-demo"

# (first, last, [emails])
CONTACTS: dict[str, tuple[str, str, list[str]]] = {
    "anna": ("Anna", "Berger", ["anna.berger@example.com", "anna@bergerdesign.example"]),
    "paul": ("Paul", "Berger", ["paul.berger@example.com"]),
    "mia": ("Mia", "Chen", ["mia.chen@example.com"]),
    "leo": ("Leo", "Dubois", ["leo@duboisbakery.example", "leo.dubois@example.net"]),
    "sara": ("Sara", "Evans", ["sara.evans@example.com"]),
    "tom": ("Tom", "Fischer", ["tom.fischer@example.com"]),
    "nina": ("Nina", "Garcia", ["nina@garcialaw.example"]),
    "omar": ("Omar", "Haddad", ["omar.haddad@example.org"]),
    "ruth": ("Ruth", "Ito", ["ruth.ito@example.com"]),
    "ken": ("Ken", "Jansen", ["ken@jansenbuild.example"]),
    "lara": ("Lara", "Klein", ["lara.klein@example.com"]),
}

# (name, type, company fields, tags, [(contact, description, signer priority)], settings)
# settings: {address: {...}}; "active" marks an address whose portal login is activated.
ACCOUNTS: list[dict[str, Any]] = [
    {
        "name": "Berger Family",
        "type": "individual",
        "tags": ["family", "1040"],
        "contacts": [("anna", "Main contact", 1), ("paul", "Spouse", 2)],
        "settings": {
            "anna.berger@example.com": {"login": True, "notify": True, "active": True},
            "paul.berger@example.com": {"notify": True},
        },
    },
    {
        "name": "Berger Design GmbH",
        "type": "company",
        "company_name": "Berger Design GmbH",
        "company_address": "Hafenstraße 12, 20457 Hamburg",
        "tags": ["company", "monthly"],
        "contacts": [("anna", "Managing director", 1)],
        "settings": {
            "anna@bergerdesign.example": {"login": True, "notify": True, "email_sync": True},
            "anna.berger@example.com": {"login": True, "active": True},
        },
    },
    {
        "name": "Mia Chen",
        "type": "individual",
        "tags": ["1040"],
        "contacts": [("mia", "", 1)],
        "settings": {"mia.chen@example.com": {"login": True, "notify": True}},
    },
    {
        "name": "Dubois Bakery LLC",
        "type": "company",
        "company_name": "Dubois Bakery LLC",
        "company_address": "18 Rue du Pain, Montréal",
        "tags": ["company", "payroll"],
        "contacts": [("leo", "Owner", 1), ("sara", "Bookkeeper", 2)],
        "settings": {
            "leo@duboisbakery.example": {"login": True, "notify": True, "email_sync": True, "active": True},
            "sara.evans@example.com": {"notify": True, "email_sync": True},
        },
    },
    {
        "name": "Leo Dubois",
        "type": "individual",
        "tags": ["1040"],
        "contacts": [("leo", "", 1)],
        "settings": {"leo.dubois@example.net": {"notify": True}},
    },
    {
        "name": "Evans Household",
        "type": "individual",
        "tags": ["family"],
        "contacts": [("sara", "Main contact", 1), ("tom", "Partner", 2)],
        "settings": {"sara.evans@example.com": {"login": True}},
    },
    {
        "name": "Fischer Consulting",
        "type": "company",
        "company_name": "Fischer Consulting Ltd",
        "company_address": "4 Market Square, Bristol",
        "tags": ["company"],
        "contacts": [("tom", "Director", 1)],
        "settings": {},
    },
    {
        "name": "Garcia Law Office",
        "type": "company",
        "company_name": "Garcia Law PLLC",
        "company_address": "200 Main St, Austin TX",
        "tags": ["company", "monthly"],
        "contacts": [("nina", "Partner", 1), ("omar", "Office manager", 2), ("ruth", "Associate", 3)],
        "settings": {
            "nina@garcialaw.example": {"login": True, "notify": True, "active": True},
            "omar.haddad@example.org": {"notify": True, "email_sync": True},
        },
    },
    {"name": "Omar Haddad", "type": "individual", "tags": [], "contacts": [("omar", "", 1)], "settings": {}},
    {
        "name": "Ruth Ito",
        "type": "individual",
        "tags": ["1040"],
        "contacts": [("ruth", "", 1)],
        "settings": {"ruth.ito@example.com": {"login": True, "notify": True}},
    },
    {
        "name": "Jansen Construction",
        "type": "company",
        "company_name": "Jansen Construction BV",
        "company_address": "Keizersgracht 1, Amsterdam",
        "tags": ["company", "payroll"],
        "contacts": [("ken", "Owner", 1), ("lara", "Controller", 2)],
        "settings": {"ken@jansenbuild.example": {"login": True, "notify": True}},
    },
    {"name": "Lara Klein", "type": "individual", "tags": [], "contacts": [("lara", "", 1)], "settings": {}},
    # the demo invitee belongs to three accounts: the portal's picker and "other accounts" show
    {
        "name": "Chen Studio LLC",
        "type": "company",
        "company_name": "Chen Studio LLC",
        "company_address": "55 Water St, Brooklyn NY",
        "tags": ["company"],
        "contacts": [("mia", "Owner", 1)],
        "settings": {"mia.chen@example.com": {"login": True, "notify": True}},
    },
    {
        "name": "Chen Family Trust",
        "type": "individual",
        "tags": ["trust"],
        "contacts": [("mia", "Trustee", 1)],
        "settings": {"mia.chen@example.com": {"login": True}},
    },
]

# (account, kind, title, due in days from the load, or None)
TODOS: list[tuple[str, str, str, int | None]] = [
    ("Mia Chen", "documents_signature", "Sign your 2025 tax return (Form 8879)", 14),
    ("Mia Chen", "documents_upload", "Upload your 2025 W-2 and 1099 forms", 7),
    ("Mia Chen", "organizers", "Complete the 2025 tax organizer", None),
    ("Chen Studio LLC", "invoices_payments", "Pay invoice 2026-117 (bookkeeping, October)", 10),
    ("Chen Studio LLC", "documents_upload", "Upload the November bank statements", 5),
    ("Chen Studio LLC", "documents_approval", "Approve the Q3 financial statements", None),
    ("Chen Family Trust", "documents_signature", "Sign the engagement letter for 2026", 21),
    ("Berger Family", "documents_upload", "Upload the childcare receipts", 12),
    ("Berger Design GmbH", "documents_approval", "Approve the VAT return for October", 3),
]


DEMO_INVITEE = "mia.chen@example.com"


def load_demo() -> dict[str, Any]:
    """Create the demo firm unless it exists; always return fresh credentials to print."""
    firm = db.session.scalar(select(Firm).where(Firm.name == DEMO_FIRM_NAME))
    created = firm is None
    if firm is None:
        firm = _create_demo_firm()
    admin = db.session.scalar(select(StaffUser).where(StaffUser.email == DEMO_ADMIN_EMAIL))
    assert admin is not None
    _, raw_token = issue_api_token(admin, name="demo")
    invitee_state, outbox_id = _invite_demo_client(firm, admin)
    commit()
    return {
        "firm_name": firm.name,
        "created": created,
        "api_token": raw_token,
        "base_url": current_app.config["BASE_URL"],
        "invitee": DEMO_INVITEE,
        "invitee_state": invitee_state,
        "invitation_link": _delivered_link(outbox_id) if outbox_id is not None else None,
    }


def _invite_demo_client(firm: Firm, admin: StaffUser) -> tuple[str, int | None]:
    """A fresh invitation for the demo client while she has not activated (an older one is
    replaced); once she has, or when staff changed her email or turned her login off, nothing is
    sent and the state says why, so `make run` is safe to repeat in every state."""
    email = db.session.scalar(
        select(ContactEmail).where(ContactEmail.firm_id == firm.id, ContactEmail.address == DEMO_INVITEE)
    )
    if email is None:
        return "missing", None
    user = db.session.scalar(select(PortalUser).where(PortalUser.email_id == email.id))
    if user is not None and user.is_active:
        return "activated", None
    row = db.session.scalar(
        select(ContactSettings)
        .where(ContactSettings.email_id == email.id, ContactSettings.login.is_(True))
        .order_by(ContactSettings.id)  # her own account first
        .limit(1)
    )
    if row is None:
        return "login_off", None
    invitation = invitations.send_invitation(
        row, sent_by=admin, message="Welcome! Your documents for this year are waiting for you."
    )
    return "invited", db.session.scalar(
        select(OutboxEmail.id).where(OutboxEmail.invitation_id == invitation.id)
    )


def _delivered_link(outbox_id: int) -> str | None:
    """The link in the invitation just delivered to /dev/mail (in-process jobs only)."""
    if not current_app.config["JOBS_INLINE"] or current_app.config["MAIL_URL"]:
        return None  # a worker or a real SMTP server has it
    dispatch_ready_jobs()
    for path in sorted(dev_mail_dir().glob("*.eml"), reverse=True):
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        if message["X-Portico-Outbox-Id"] == str(outbox_id):
            match = re.search(
                r"(https?://\S+/portal/activate/\S+)", message.get_body(("plain",)).get_content()
            )
            return match.group(1) if match else None
    return None


def _create_demo_firm() -> Firm:
    firm = create_firm(DEMO_FIRM_NAME, timezone="Europe/Berlin")
    # every login-free action on (R-LFA-1): the to-do emails in /dev/mail open without a login
    firm.login_free_actions = list(LOGIN_FREE_ACTIONS)
    create_staff_user(
        firm, email=DEMO_ADMIN_EMAIL, password=DEMO_ADMIN_PASSWORD, name="Hanna Finch", role="admin"
    )
    create_staff_user(
        firm, email="staff@harborfinch.example", password=DEMO_ADMIN_PASSWORD, name="Jonas Harbor"
    )
    people = {
        key: contacts.create_contact(
            firm.id, first_name=first, last_name=last, emails=[{"address": a} for a in addresses]
        )
        for key, (first, last, addresses) in CONTACTS.items()
    }
    actor = Actor.system("demo")
    activated: set[str] = set()
    for spec in ACCOUNTS:
        account = accounts.create_account(
            firm.id,
            name=spec["name"],
            type=spec["type"],
            company_name=spec.get("company_name"),
            company_address=spec.get("company_address"),
            tags=spec["tags"],
        )
        for key, description, priority in spec["contacts"]:
            links.link_contact(account, people[key], description=description, signer_priority=priority)
        for address, wanted in spec["settings"].items():
            email = db.session.scalar(
                select(ContactEmail).where(ContactEmail.firm_id == firm.id, ContactEmail.address == address)
            )
            assert email is not None
            row = settings.get_settings(account, email.id)
            settings.update_settings(row, {k: v for k, v in wanted.items() if k != "active"}, actor=actor)
            if wanted.get("active"):
                activated.add(address)
    for address in sorted(activated):
        email = db.session.scalar(
            select(ContactEmail).where(ContactEmail.firm_id == firm.id, ContactEmail.address == address)
        )
        assert email is not None
        db.session.add(
            PortalUser(
                firm_id=firm.id,
                email_id=email.id,
                password_hash=hash_password(DEMO_CLIENT_PASSWORD),
                activated_at=utcnow(),
                timezone=firm.timezone,  # as activation leaves it
            )
        )
    by_name = {a.name: a for a in db.session.scalars(select(Account).where(Account.firm_id == firm.id))}
    today = utcnow().date()
    for account_name, kind, title, due_in in TODOS:
        due = today + timedelta(days=due_in) if due_in is not None else None
        todos.create_todo(by_name[account_name], kind=kind, title=title, due_date=due)
    db.session.flush()
    return firm
