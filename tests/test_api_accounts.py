"""Staff API: accounts (SPEC §11, R-ACC-1, R-STA-*, R-REL-3)."""

from __future__ import annotations

from sqlalchemy import func, select

from portal_app.models import Account, Contact
from tests.conftest import in_app


def test_create_account_with_new_and_existing_contacts(make):
    firm = make.firm()
    existing = make.contact(firm.id, "Paul", "Berger")
    response = firm.api.post(
        "/accounts",
        json={
            "name": "Berger Family",
            "tags": ["family"],
            "custom_fields": {"Tax ID": "123"},
            "contacts": [
                {
                    "first_name": "Anna",
                    "last_name": "Berger",
                    "emails": [{"address": "Anna@Example.com"}],
                    "description": "Main contact",
                    "signer_priority": 1,
                },
                {"contact_id": str(existing.id), "description": "Spouse"},
            ],
        },
    )
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert (
        body["name"] == "Berger Family" and body["tags"] == ["family"] and body["status"] == "not_activated"
    )
    assert body["custom_fields"] == {"Tax ID": "123"} and isinstance(body["id"], str)
    fetched = firm.api.get(f"/accounts/{body['id']}").get_json()
    assert fetched == body


def test_r_acc_1_company_fields_refused_on_individual_accounts(make):
    firm = make.firm()
    response = firm.api.post(
        "/accounts", json={"name": "Anna", "type": "individual", "company_name": "Anna GmbH"}
    )
    assert response.status_code == 422
    assert "company_name" in response.get_json()["error"]["fields"]


def test_create_account_is_all_or_nothing_when_a_contact_email_is_taken(app, make):
    firm = make.firm()
    make.contact(firm.id, emails=["taken@example.com"])
    response = firm.api.post(
        "/accounts",
        json={"name": "New", "contacts": [{"first_name": "X", "emails": [{"address": "TAKEN@example.com"}]}]},
    )
    assert response.status_code == 409
    with in_app(app) as session:
        assert session.scalar(select(func.count()).select_from(Account)) == 0
        assert session.scalar(select(func.count()).select_from(Contact)) == 1


def test_account_list_filters_sorts_and_pages(make):
    firm = make.firm()
    for name in ["Zeta LLC", "alpha family", "Mid Corp"]:
        make.account(firm.id, name, type="company" if "LLC" in name or "Corp" in name else "individual")
    first = firm.api.get("/accounts?limit=2").get_json()
    assert [a["name"] for a in first["items"]] == ["alpha family", "Mid Corp"]
    second = firm.api.get(f"/accounts?limit=2&cursor={first['next_cursor']}").get_json()
    assert [a["name"] for a in second["items"]] == ["Zeta LLC"] and second["next_cursor"] is None
    assert [a["name"] for a in firm.api.get("/accounts?type=individual").get_json()["items"]] == [
        "alpha family"
    ]
    assert [a["name"] for a in firm.api.get("/accounts?q=ZETA").get_json()["items"]] == ["Zeta LLC"]


def test_patch_account_changes_only_what_is_sent(make):
    firm = make.firm()
    account = make.account(firm.id, "Old name", tags=["a"])
    response = firm.api.patch(f"/accounts/{account.id}", json={"name": "New name"})
    assert response.status_code == 200
    assert (response.get_json()["name"], response.get_json()["tags"]) == ("New name", ["a"])
    response = firm.api.patch(f"/accounts/{account.id}", json={"tags": []})
    assert response.get_json()["tags"] == []


def test_only_admins_delete_accounts(make):
    firm = make.firm()
    member = make.staff(firm.id, role="staff")
    account = make.account(firm.id)
    refused = member.api.delete(f"/accounts/{account.id}")
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "forbidden"
    assert firm.api.delete(f"/accounts/{account.id}").status_code == 204
    assert firm.api.get(f"/accounts/{account.id}").status_code == 404


def test_r_rel_3_bad_account_input_gets_4xx_never_500(make):
    firm = make.firm()
    bad = [
        ("post", "/accounts", {"data": "{broken", "content_type": "application/json"}),
        ("post", "/accounts", {"json": {"name": 5}}),
        ("post", "/accounts", {"json": {"name": "x", "tags": "not-a-list"}}),
        ("post", "/accounts", {"json": {"name": "x", "unknown": True}}),
        ("post", "/accounts", {"json": {"name": "x", "contacts": [{"contact_id": "nope"}]}}),
        ("post", "/accounts", {"json": {"name": "x", "contacts": [{"first_name": "No emails"}]}}),
        ("post", "/accounts", {"json": {"name": "x" * 201}}),
        ("post", "/accounts", {"data": "x" * (11 * 1024 * 1024), "content_type": "application/json"}),
        ("get", "/accounts?status=green", {}),
        ("get", "/accounts?cursor=%%%", {}),
        ("get", "/accounts?limit=abc", {}),
        ("get", "/accounts/abc", {}),
        ("patch", "/accounts/1", {"json": []}),
    ]
    for method, path, kwargs in bad:
        response = getattr(firm.api, method)(path, **kwargs)
        assert 400 <= response.status_code < 500, (method, path, response.status_code)
        assert set(response.get_json()["error"]) == {"code", "message", "fields"}, (method, path)
