"""Operations (R-OPS-4, R-OPS-5): probes, Prometheus metrics across gunicorn and rq workers, JSON
logs with a request id that follows the work into the jobs; and staff users (SPEC §11)."""

from __future__ import annotations

import http.client
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import select

from portal_app.models import AuditEntry
from tests.conftest import REQUIRE_SERVICES, in_app, spawn_worker
from tests.factories import STAFF_PASSWORD
from tests.portal_helpers import csrf_from

ROOT = Path(__file__).resolve().parents[1]
METRICS_TOKEN = "metrics-secret-for-tests-0123456789"


def scrape(client, token: str = METRICS_TOKEN) -> str:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.data[:300]
    return response.data.decode()


def value(text: str, name: str, **labels: str) -> float:
    """One sample of the exposition (labels in any order); 0 when it is not there."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0])) if "{" in line else {}
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


# --- probes -------------------------------------------------------------------------------------


def test_r_ops_4_healthz_answers_without_io_or_a_session(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}
    assert "Set-Cookie" not in response.headers


def test_r_ops_4_readyz_checks_the_database(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["status"] == "ok" and body["failed"] == [] and set(body["checks"].values()) == {"ok"}


@pytest.mark.settings(ENV={"REDIS_URL": "redis://127.0.0.1:1/0"})
def test_r_ops_4_readyz_names_redis_when_it_does_not_answer(app):
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["failed"] == ["redis"] and body["checks"]["redis"].startswith("failed")
    assert body["status"] == "unavailable"


def test_r_ops_4_metrics_need_the_token_and_do_not_exist_without_one(app, client):
    assert client.get("/metrics").status_code == 404  # METRICS_TOKEN not configured
    app.config["METRICS_TOKEN"] = METRICS_TOKEN
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert "portico_outbox_emails" in scrape(client)


def test_r_ops_4_metrics_read_the_outbox_and_count_sign_ins(app, make, client):
    from datetime import timedelta

    from sqlalchemy import update

    from portal_app.models import OutboxEmail, utcnow

    app.config["METRICS_TOKEN"] = METRICS_TOKEN
    firm = make.firm()
    account = make.account(firm.id)
    email = account.contacts[0].emails[0]
    app.config["MAIL_URL"] = "smtp://127.0.0.1:1"  # undeliverable: the email stays pending
    path = f"/accounts/{account.id}/contact-settings/{email.id}"
    assert firm.api.patch(path, json={"login": True, "send_invitation": True}).status_code == 200
    with in_app(app) as session:
        session.execute(
            update(OutboxEmail).values(state="pending", created_at=utcnow() - timedelta(minutes=15))
        )
        session.commit()
    before = scrape(client)
    bad = {"email": firm.staff_email, "password": "not the password"}
    assert client.post("/api/v1/auth/login", json=bad).status_code == 401
    good = {"email": firm.staff_email, "password": STAFF_PASSWORD}
    assert app.test_client().post("/api/v1/auth/login", json=good).status_code == 200
    after = scrape(client)
    assert value(after, "portico_outbox_emails", state="pending") == 1
    assert 14 * 60 < value(after, "portico_outbox_oldest_pending_seconds") < 16 * 60
    for outcome in ("failed", "succeeded"):
        grown = value(after, "portico_sign_ins_total", who="staff", outcome=outcome) - value(
            before, "portico_sign_ins_total", who="staff", outcome=outcome
        )
        assert grown == 1, outcome
    assert (
        value(after, "portico_http_requests_total", endpoint="auth.Login", method="POST", status="401") >= 1
    )


def test_r_ops_5_a_request_id_is_returned_and_only_a_trusted_proxy_chooses_it(app, client):
    generated = client.get("/healthz", headers={"X-Request-ID": "chosen-by-anyone"})
    assert re.fullmatch(r"[0-9a-f]{32}", generated.headers["X-Request-ID"])
    app.config["PROXY_HOPS"] = 1
    trusted = client.get("/healthz", headers={"X-Request-ID": "lb-7f3a.42"})
    assert trusted.headers["X-Request-ID"] == "lb-7f3a.42"
    hostile = client.get("/healthz", headers={"X-Request-ID": "x" * 500})
    assert hostile.headers["X-Request-ID"] != "x" * 500


def test_r_ops_4_probes_stay_out_of_the_access_log():
    import logging

    from portal_app.redact import QuietProbes

    def record(path: str) -> logging.LogRecord:
        entry = logging.LogRecord("gunicorn.access", logging.INFO, __file__, 1, "%(r)s", None, None)
        entry.args = {"r": f"GET {path} HTTP/1.1", "U": path}
        return entry

    assert not QuietProbes().filter(record("/healthz"))
    assert not QuietProbes().filter(record("/readyz"))
    assert not QuietProbes().filter(record("/metrics"))
    assert QuietProbes().filter(record("/portal/login"))


def test_r_ops_4_the_example_alert_rules_are_valid():
    rules = ROOT / "deploy/prometheus/portico-alerts.yml"
    promtool = shutil.which("promtool")
    if promtool is None:
        if REQUIRE_SERVICES:
            pytest.fail("promtool is missing: apt-get install prometheus (Debian's package)")
        import yaml

        groups = yaml.safe_load(rules.read_text())["groups"]
        assert all(rule["expr"] and rule["alert"] for group in groups for rule in group["rules"])
        return
    checked = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 8 rules found" in checked.stdout


# --- across processes: gunicorn with two workers, a real rq worker ------------------------------


def test_r_ops_4_and_5_metrics_add_up_across_workers_and_the_request_id_reaches_the_job(
    app, make, smtp, database_url, redis_url, tmp_path
):
    from tests.test_production_gunicorn import start_gunicorn, stop

    app.config["MAIL_URL"] = smtp.url
    firm = make.firm("Harbor & Finch CPA")
    account = make.account(firm.id, "Berger Family")
    email = account.contacts[0].emails[0]
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    shared = {
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "METRICS_TOKEN": METRICS_TOKEN,
        "LOG_FORMAT": "json",
        "PROXY_HOPS": "1",
    }
    proc, port, log = start_gunicorn(
        app, database_url, redis_url, tmp_path, extra_env={**shared, "WEB_CONCURRENCY": "2"}, args=[]
    )
    try:
        workers = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        assert len(workers) == 2

        def call(method: str, path: str, body: dict | None = None, request_id: str | None = None):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            headers = {"Authorization": f"Bearer {firm.token}", "Content-Type": "application/json"}
            if request_id:
                headers["X-Request-ID"] = request_id
            conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
            response = conn.getresponse()
            data = response.read()
            conn.close()  # a new connection each time: both workers answer
            return response.status, response.headers, data

        for _ in range(30):
            assert call("GET", "/api/v1/auth/me")[0] == 200
        for _ in range(5):
            assert call("GET", "/healthz")[0] == 200
        status, headers, _ = call(
            "PATCH",
            f"/api/v1/accounts/{account.id}/contact-settings/{email.id}",
            {"login": True, "send_invitation": True},
            request_id="trace-invite-1",
        )
        assert status == 200 and headers["X-Request-ID"] == "trace-invite-1"
        worker = spawn_worker(app, database_url, redis_url, smtp.url, "--burst", **shared)
        output = worker.communicate(timeout=60)[0].decode()
        assert worker.returncode == 0, output
        [mail] = smtp.wait_for(1)
        assert mail["To"] == email.address
        job_lines = [json.loads(line) for line in output.splitlines() if line.startswith('{"kind": "job"')]
        assert job_lines and all(line["request_id"] == "trace-invite-1" for line in job_lines), output
        assert {line["outcome"] for line in job_lines} == {"finished"}

        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        text = conn.getresponse().read().decode()
        conn.close()
    finally:
        stop(proc)
    # 30 calls, whichever of the two workers answered each: the counters add up
    assert value(text, "portico_http_requests_total", endpoint="auth.Me", method="GET", status="200") == 30
    assert value(text, "portico_http_request_duration_seconds_count", endpoint="auth.Me") == 30
    assert value(text, "portico_rq_jobs_total", outcome="finished") >= 1  # written by the rq worker
    assert value(text, "portico_emails_total", outcome="sent") == 1
    assert value(text, "portico_outbox_emails", state="sent") == 1
    lines = [
        json.loads(line) for line in log.read_text().splitlines() if line.startswith('{"kind": "request"')
    ]
    served_by = {line["path"] for line in lines}
    assert "/api/v1/auth/me" in served_by and "/healthz" not in served_by  # probes are not logged
    [patch] = [line for line in lines if line["method"] == "PATCH"]
    assert patch["request_id"] == "trace-invite-1" and patch["status"] == 200
    assert patch["firm_id"] == firm.id and patch["staff_user_id"] == firm.staff_id


# --- staff users --------------------------------------------------------------------------------


def _set_password_path(mail) -> str:
    text = mail.get_body(("plain",)).get_content()
    match = re.search(r"https?://[^/\s]+(/staff/set-password/\S+)", text)
    assert match, text
    return match.group(1)


def test_staff_users_admins_add_a_colleague_who_sets_a_password_once(app, make, smtp):
    app.config["MAIL_URL"] = smtp.url
    firm = make.firm("Harbor & Finch CPA")
    created = firm.api.post(
        "/staff", json={"email": "Jonas@HarborFinch.example", "name": "Jonas", "role": "staff"}
    )
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert body["email"] == "jonas@harborfinch.example" and body["role"] == "staff" and body["active"]
    [mail] = smtp.wait_for(1)
    assert mail["To"] == "jonas@harborfinch.example" and "set your password" in mail["Subject"]
    link = _set_password_path(mail)
    client = app.test_client()
    page = client.get(link)
    assert page.status_code == 200 and b"jonas@harborfinch.example" in page.data
    assert page.headers["Referrer-Policy"] == "no-referrer"
    token = csrf_from(page.data)
    short = client.post(link, data={"password": "short", "confirm": "short", "csrf_token": token})
    assert short.status_code == 422
    chosen = "a long staff password 42"
    done = client.post(link, data={"password": chosen, "confirm": chosen, "csrf_token": token})
    assert done.status_code == 200 and b"Your password is set" in done.data
    login = app.test_client().post(
        "/api/v1/auth/login", json={"email": "jonas@harborfinch.example", "password": chosen}
    )
    assert login.status_code == 200
    again = app.test_client().get(link)
    assert again.status_code == 410 and b'data-problem="used"' in again.data  # single use
    assert app.test_client().get(link[:-4] + "abcd").status_code == 400  # tampered
    assert firm.api.post("/staff", json={"email": "jonas@harborfinch.example"}).status_code == 409
    with in_app(app) as session:
        fields = session.scalars(
            select(AuditEntry.field).where(AuditEntry.address == "jonas@harborfinch.example")
        )
        assert list(fields) == ["staff.created"]


def test_staff_users_only_admins_manage_them_and_the_last_admin_stays(app, make, smtp):
    app.config["MAIL_URL"] = smtp.url
    firm = make.firm("Harbor & Finch CPA")
    colleague = make.staff(firm.id, role="staff")
    refused = colleague.api.post("/staff", json={"email": "x@harborfinch.example"})
    assert refused.status_code == 403
    assert colleague.api.patch(f"/staff/{colleague.id}", json={"role": "admin"}).status_code == 403
    last = firm.api.patch(f"/staff/{firm.staff_id}", json={"role": "staff"})
    assert last.status_code == 409 and last.get_json()["error"]["code"] == "last_admin"
    assert firm.api.patch(f"/staff/{firm.staff_id}", json={"active": False}).status_code == 409
    other_firm = make.firm()
    assert other_firm.api.patch(f"/staff/{colleague.id}", json={"active": False}).status_code == 404
    promoted = firm.api.patch(f"/staff/{colleague.id}", json={"role": "admin"})
    assert promoted.status_code == 200 and promoted.get_json()["role"] == "admin"
    assert firm.api.patch(f"/staff/{firm.staff_id}", json={"role": "staff"}).status_code == 200  # now fine


def test_staff_users_a_deactivated_users_sessions_and_tokens_stop_at_the_next_request(app, make):
    firm = make.firm("Harbor & Finch CPA")
    colleague = make.staff(firm.id, role="staff")
    session = app.test_client()
    login = session.post("/api/v1/auth/login", json={"email": colleague.email, "password": STAFF_PASSWORD})
    assert login.status_code == 200 and session.get("/api/v1/auth/me").status_code == 200
    assert colleague.api.get("/auth/me").status_code == 200
    off = firm.api.patch(f"/staff/{colleague.id}", json={"active": False})
    assert off.status_code == 200 and off.get_json()["active"] is False
    assert session.get("/api/v1/auth/me").status_code == 401
    assert colleague.api.get("/auth/me").status_code == 401
    again = app.test_client().post(
        "/api/v1/auth/login", json={"email": colleague.email, "password": STAFF_PASSWORD}
    )
    assert again.status_code == 401
    with in_app(app) as db_session:
        entries = db_session.execute(
            select(AuditEntry.field, AuditEntry.old_value, AuditEntry.new_value).where(
                AuditEntry.address == colleague.email
            )
        ).all()
        assert [tuple(e) for e in entries] == [("staff.active", True, False)]


@pytest.mark.settings(LIMIT_PER_EMAIL="1 per minute", LIMIT_PER_IP="100 per minute")
def test_r_ops_4_metrics_count_rate_limit_refusals_and_inbound_messages(app, make, client):
    app.config["METRICS_TOKEN"] = METRICS_TOKEN
    firm = make.firm()
    before = scrape(client)  # counters live as long as the process: compare with before
    bad = {"email": firm.staff_email, "password": "not the password"}
    assert [client.post("/api/v1/auth/login", json=bad).status_code for _ in range(2)] == [401, 429]
    secret = firm.api.get("/firm/inbound-email").get_json()["secret"]
    message = b"From: stranger@example.org\r\nSubject: hi\r\n\r\nhello\r\n"
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "message/rfc822"}
    assert client.post("/api/v1/inbound-email", data=message, headers=headers).status_code == 200
    wrong = {"Authorization": "Bearer pin_wrong", "Content-Type": "message/rfc822"}
    assert client.post("/api/v1/inbound-email", data=message, headers=wrong).status_code == 401
    text = scrape(client)

    def grown(name: str, **labels: str) -> float:
        return value(text, name, **labels) - value(before, name, **labels)

    assert grown("portico_rate_limited_total", endpoint="auth.Login") == 1
    assert grown("portico_inbound_messages_total", outcome="ignored") == 1
    assert grown("portico_inbound_messages_total", outcome="refused") == 1
