"""Factory fixtures: callables that build committed rows and return plain ids."""

from __future__ import annotations

import itertools
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from portal_app.extensions import db
from portal_app.services import accounts, contacts, links
from portal_app.services.staff import create_firm, create_staff_user, issue_api_token
from portal_app.transaction import commit

STAFF_PASSWORD = "correct horse battery staple"
_seq = itertools.count(1)


class ApiClient:
    """The test client with a staff bearer token, for /api/v1 calls."""

    def __init__(self, client: FlaskClient, token: str):
        self.client, self.token = client, token

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return self.client.open(f"/api/v1{path}", method=method, headers=headers, **kwargs)

    def get(self, path: str, **kw: Any) -> Any:
        return self._call("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Any:
        return self._call("POST", path, **kw)

    def patch(self, path: str, **kw: Any) -> Any:
        return self._call("PATCH", path, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self._call("DELETE", path, **kw)


class Factory:
    def __init__(self, app: Flask):
        self.app = app

    def firm(self, name: str | None = None, *, role: str = "admin") -> SimpleNamespace:
        """A firm with one staff user and that user's API token."""
        n = next(_seq)
        with self.app.app_context():
            firm = create_firm(name or f"Firm {n}")
            staff = create_staff_user(
                firm, email=f"staff{n}@firm{n}.example", password=STAFF_PASSWORD, role=role
            )
            api_token, token = issue_api_token(staff)
            commit()
            made = SimpleNamespace(
                id=firm.id,
                name=firm.name,
                staff_id=staff.id,
                staff_email=staff.email,
                token=token,
                token_id=api_token.id,
            )
            db.session.remove()
        made.api = ApiClient(self.app.test_client(), token)
        return made

    def staff(self, firm_id: int, *, role: str = "staff") -> SimpleNamespace:
        n = next(_seq)
        with self.app.app_context():
            from portal_app.models import Firm

            firm = db.session.get(Firm, firm_id)
            staff = create_staff_user(
                firm, email=f"member{n}@example.com", password=STAFF_PASSWORD, role=role
            )
            api_token, token = issue_api_token(staff)
            commit()
            made = SimpleNamespace(id=staff.id, email=staff.email, token=token, token_id=api_token.id)
            db.session.remove()
        made.api = ApiClient(self.app.test_client(), token)
        return made

    def contact(
        self, firm_id: int, first: str = "Anna", last: str = "Berger", emails: list[str] | None = None
    ) -> SimpleNamespace:
        n = next(_seq)
        addresses = emails or [f"{first.lower()}.{last.lower()}{n}@example.com"]
        with self.app.app_context():
            contact = contacts.create_contact(
                firm_id, first_name=first, last_name=last, emails=[{"address": a} for a in addresses]
            )
            commit()
            made = SimpleNamespace(
                id=contact.id,
                first=first,
                last=last,
                emails=[SimpleNamespace(id=e.id, address=e.address) for e in contact.emails],
            )
            db.session.remove()
        return made

    def account(
        self,
        firm_id: int,
        name: str | None = None,
        *,
        type: str = "individual",
        tags: list[str] | None = None,
        contacts: list[SimpleNamespace] | None = None,
        **fields: Any,
    ) -> SimpleNamespace:
        n = next(_seq)
        linked = contacts if contacts is not None else [self.contact(firm_id)]
        with self.app.app_context():
            account = accounts.create_account(
                firm_id, name=name or f"Account {n}", type=type, tags=tags or [], **fields
            )
            from portal_app.models import Contact

            for person in linked:
                links.link_contact(account, db.session.get(Contact, person.id))
            commit()
            made = SimpleNamespace(id=account.id, name=account.name, contacts=linked)
            db.session.remove()
        return made


@pytest.fixture
def make(app: Flask) -> Factory:
    return Factory(app)
