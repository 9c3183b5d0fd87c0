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


def test_r_sec_9_every_route_that_takes_a_token_is_redacted_in_access_logs(app):
    """One list of token paths, walked against every route with a `<token>` in its path: a new
    emailed-link route cannot reach the access log with its token."""
    import logging

    from portal_app.redact import RedactTokens

    secret = "eyJpIjo0Mn0.SECRETPART-xyz_1"
    routes = [rule for rule in app.url_map.iter_rules() if "token" in rule.arguments]
    assert {r.endpoint for r in routes} >= {"portal.activate", "portal.reset_password", "portal.unsubscribe"}
    for rule in routes:
        with app.test_request_context():
            from flask import url_for

            values = {name: (secret if name == "token" else 1) for name in rule.arguments}
            path = url_for(rule.endpoint, **values)
        record = logging.LogRecord("gunicorn.access", logging.INFO, __file__, 1, "%(r)s", None, None)
        record.args = {"r": f"POST {path}?List-Unsubscribe=One-Click HTTP/1.1", "U": path}
        RedactTokens().filter(record)
        line = record.getMessage()
        assert "SECRETPART" not in line and "[redacted]" in line, (rule.rule, line)
        assert "SECRETPART" not in record.args["U"]


def test_r_doc_file_names_are_kept_to_255_bytes_not_characters():
    from portal_app.mail.parse import safe_filename

    long_name = "é" * 255 + ".pdf"
    kept = safe_filename(long_name)
    assert len(kept.encode()) <= 255 and kept.endswith(".pdf") and set(kept[:-4]) == {"é"}
    no_extension = safe_filename("ü" * 300)
    assert len(no_extension.encode()) <= 255 and set(no_extension) == {"ü"}
    assert safe_filename("short name.txt") == "short name.txt"
