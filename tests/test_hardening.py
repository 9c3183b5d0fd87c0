"""Findings of probing the running product (bad input, bounded loads, timing): each a test that
fails without its fix. CPU time of the bounded-time tests is printed, not asserted."""

from __future__ import annotations

import time

import pytest

DEEP = b"[" * 990 + b"]" * 990


@pytest.mark.parametrize(
    "path",
    ["/api/v1/auth/login", "/api/v1/accounts", "/api/v1/bulk/contact-settings", "/api/v1/auth/login/mfa"],
)
def test_r_rel_3_deeply_nested_json_is_a_400_not_a_500(client, make, path):
    firm = make.firm()
    headers = {"Content-Type": "application/json"}
    if not path.startswith("/api/v1/auth/"):
        headers["Authorization"] = f"Bearer {firm.token}"
    started = time.process_time()
    response = client.post(path, data=DEEP, headers=headers)
    print(f"{path}: {1000 * (time.process_time() - started):.1f} ms CPU")
    assert response.status_code == 400, response.data[:300]
    assert response.get_json()["error"]["code"] in ("bad_request", "validation_failed")


def test_r_rel_3_deeply_nested_json_in_a_note_is_a_400(client, make):
    firm = make.firm()
    account = make.account(firm.id)
    response = firm.api.post(
        f"/accounts/{account.id}/notes", data=DEEP, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
