"""Staff API: personal API tokens, where only admins act for other staff users."""

from __future__ import annotations


def test_staff_creates_lists_and_revokes_their_own_token(make):
    firm = make.firm()
    member = make.staff(firm.id, role="staff")
    created = member.api.post("/api-tokens", json={"name": "Zapier"})
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert body["secret"].startswith("pt_") and body["token"]["staff_id"] == str(member.id)
    fresh = type(member.api)(member.api.client, body["secret"])
    assert fresh.get("/auth/me").get_json()["user"]["email"] == member.email
    listed = member.api.get("/api-tokens").get_json()["items"]
    assert {t["name"] for t in listed} == {"", "Zapier"}
    assert all("secret" not in t for t in listed)  # the secret is shown once only
    assert member.api.delete(f"/api-tokens/{body['token']['id']}").status_code == 204
    assert fresh.get("/auth/me").status_code == 401
    revoked = [t for t in member.api.get("/api-tokens").get_json()["items"] if t["name"] == "Zapier"]
    assert revoked[0]["revoked_at"] is not None


def test_only_admins_create_tokens_for_others(make):
    firm = make.firm(role="admin")
    member = make.staff(firm.id, role="staff")
    other = make.staff(firm.id, role="staff")
    refused = member.api.post("/api-tokens", json={"name": "sneaky", "staff_id": str(other.id)})
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "forbidden"
    assert other.api.get("/api-tokens").get_json()["items"][0]["name"] == ""  # nothing new
    assert len(other.api.get("/api-tokens").get_json()["items"]) == 1
    granted = firm.api.post("/api-tokens", json={"name": "for the sync", "staff_id": str(other.id)})
    assert granted.status_code == 201 and granted.get_json()["token"]["staff_email"] == other.email
    assert len(other.api.get("/api-tokens").get_json()["items"]) == 2


def test_members_see_only_their_tokens_and_cannot_revoke_others(make):
    firm = make.firm(role="admin")
    member = make.staff(firm.id, role="staff")
    other = make.staff(firm.id, role="staff")
    assert [t["staff_id"] for t in member.api.get("/api-tokens").get_json()["items"]] == [str(member.id)]
    assert member.api.delete(f"/api-tokens/{other.token_id}").status_code == 403
    assert other.api.get("/auth/me").status_code == 200
    everyone = firm.api.get("/api-tokens").get_json()["items"]
    assert {t["staff_id"] for t in everyone} == {str(firm.staff_id), str(member.id), str(other.id)}
    only_other = firm.api.get(f"/api-tokens?staff_id={other.id}").get_json()["items"]
    assert [t["id"] for t in only_other] == [str(other.token_id)]
    assert firm.api.delete(f"/api-tokens/{other.token_id}").status_code == 204
    assert other.api.get("/auth/me").status_code == 401


def test_token_requests_are_validated_and_scoped_to_the_firm(make):
    firm, theirs = make.firm(), make.firm()
    assert firm.api.post("/api-tokens", json={}).status_code == 422
    assert firm.api.post("/api-tokens", json={"name": "x", "scope": "all"}).status_code == 422
    assert (
        firm.api.post("/api-tokens", json={"name": "x", "staff_id": str(theirs.staff_id)}).status_code == 404
    )
    assert firm.api.post("/api-tokens", json={"name": "x", "staff_id": "1" * 30}).status_code == 422
    assert firm.api.get(f"/api-tokens?staff_id={theirs.staff_id}").status_code == 404
    assert firm.api.delete("/api-tokens/99999999999999999999").status_code == 404


def test_staff_list_shows_the_firm_only(make):
    firm, theirs = make.firm(), make.firm()
    member = make.staff(firm.id)
    emails = {u["email"] for u in member.api.get("/staff").get_json()["items"]}
    assert emails == {firm.staff_email, member.email} and theirs.staff_email not in emails
