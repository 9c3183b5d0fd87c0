"""Fuzzing the staff API from its own OpenAPI document (schemathesis).

Every operation gets generated requests, valid and invalid, with a bearer token of one firm
while a second firm's data sits in the same database. Path ids rotate through an id of the
caller's firm, an id of the other firm and whatever schemathesis generates, so the cases
reach real rows, tenant checks and not-found paths. The checks: no server error, every status
code, content type and body as documented.
"""

from __future__ import annotations

import itertools

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.test_api_contacts_settings import _mail_ids


@schemathesis.serializer("message/rfc822")
def _raw_message(ctx, value) -> bytes:
    """The inbound endpoint takes raw mail: whatever was generated, as bytes (mostly not a valid
    message, which is the point)."""
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8", "surrogatepass")


def build_world(make) -> dict:
    """Two firms' data; the caller holds the first firm's token."""
    mine, theirs = make.firm(), make.firm()
    own = make.account(mine.id, "Own Account", tags=["vip"])
    make.account(mine.id, "Second Own", type="company", company_name="Second Own LLC")
    other = make.account(theirs.id, "Their Account")
    ids = {
        "account_id": [str(own.id), str(other.id)],
        "contact_id": [str(own.contacts[0].id), str(other.contacts[0].id)],
        "email_id": [str(own.contacts[0].emails[0].id), str(other.contacts[0].emails[0].id)],
        "token_id": [str(mine.token_id + 1000), str(theirs.token_id)],  # never revoke our own
        "todo_id": [
            mine.api.post(
                f"/accounts/{own.id}/todos", json={"kind": "proposals", "title": "Sign"}
            ).get_json()["id"],
            theirs.api.post(
                f"/accounts/{other.id}/todos", json={"kind": "proposals", "title": "X"}
            ).get_json()["id"],
        ],
    }
    for name, (own_id, their_id) in zip_ids(_mail_ids(mine, own), _mail_ids(theirs, other)):
        ids[name] = [own_id, their_id]
    return {"headers": {"Authorization": f"Bearer {mine.token}"}, "ids": ids}


def zip_ids(own: dict[str, str], theirs: dict[str, str]) -> list[tuple[str, tuple[str, str]]]:
    return [(name, (own[name], theirs[name])) for name in own]


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
FUZZ_SETTINGS = settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def _fuzz_operation(operation, world: dict, turn: itertools.count) -> None:
    @FUZZ_SETTINGS
    @given(case=operation.as_strategy())
    def fuzz(case):
        which = next(turn) % 3  # own id, other firm's id, generated value
        for name in list(case.path_parameters or {}):
            if which < 2 and name in world["ids"]:
                case.path_parameters[name] = world["ids"][name][which]
        case.call_and_validate(headers=world["headers"], checks=CHECKS)

    fuzz()


def test_r_rel_3_fuzzed_api_calls_never_500_and_match_the_document(app, make):
    # schemathesis's own pytest plugin does not load under pytest 9 yet, so the test walks
    # the operations itself and runs a hypothesis test per operation.
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    turn = itertools.count()
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        world = build_world(make)  # fresh rows per operation: a DELETE cannot starve the next

        _fuzz_operation(operation, world, turn)
    assert operations >= 20


def test_fuzzing_left_the_other_firm_alone(app, make):
    """The same calls as the fuzzer's, aimed at another firm, change nothing there."""
    mine, theirs = make.firm(), make.firm()
    other = make.account(theirs.id, "Their Account")
    for method, path in [
        ("DELETE", f"/accounts/{other.id}"),
        ("PATCH", f"/accounts/{other.id}"),
        ("DELETE", f"/contacts/{other.contacts[0].id}"),
    ]:
        assert mine.api._call(method, path, json={"name": "Hacked"}).status_code == 404
    assert theirs.api.get(f"/accounts/{other.id}").get_json()["name"] == "Their Account"


def test_r_rel_3_text_no_database_can_store_is_422_and_changes_nothing(make):
    firm = make.firm()
    account = make.account(firm.id, "Keeps Its Name")
    for body in ({"name": "Bad\x00Name"}, {"custom_fields": {"k\x00": "v"}}):
        response = firm.api.patch(f"/accounts/{account.id}", json=body)
        assert response.status_code == 422, body
        assert response.get_json()["error"]["fields"]
    surrogate = firm.api.patch(
        f"/accounts/{account.id}",
        data='{"name": "\\udace"}',
        headers={"Content-Type": "application/json"},
    )
    assert surrogate.status_code == 422
    assert firm.api.get(f"/accounts/{account.id}").get_json()["name"] == "Keeps Its Name"
    assert firm.api.get("/accounts", query_string={"q": "a\x00b"}).status_code == 422
