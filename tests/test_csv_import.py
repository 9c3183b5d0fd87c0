"""CSV import of accounts, contacts and contact settings (R-IMP-1..5, issue 11), through the real
endpoint and an rq worker, with files as firms have them in tests/data/."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from portal_app.models import Account, AccountTag, ContactEmail, ContactSettings, Invitation, OutboxEmail
from tests.conftest import in_app, run_worker

DATA = Path(__file__).parent / "data"


def upload(
    firm: Any, name: str | None = None, *, data: bytes | None = None, dry_run: bool = False, as_csv_body=False
):
    body = data if data is not None else (DATA / name).read_bytes()
    query = "?dry_run=true" if dry_run else ""
    if as_csv_body:
        return firm.api.post(f"/imports{query}", data=body, headers={"Content-Type": "text/csv"})
    return firm.api.post(
        f"/imports{query}",
        data={"file": (io.BytesIO(body), name or "clients.csv")},
        content_type="multipart/form-data",
    )


def run_import(app: Any, firm: Any, name: str | None = None, **kwargs: Any) -> dict[str, Any]:
    response = upload(firm, name, **kwargs)
    assert response.status_code == 202, response.get_json()
    job = response.get_json()
    assert job["kind"] == "csv_import" and job["state"] == "queued"
    run_worker(app)
    done = firm.api.get(f"/jobs/{job['id']}").get_json()
    assert done["state"] == "done", done
    return done


def test_r_imp_1_utf8_bom_file_creates_accounts_contacts_and_settings(app, make, smtp, redis_url):
    app.config["MAIL_URL"] = smtp.url
    firm = make.firm()
    job = run_import(app, firm, "import_utf8_bom_comma.csv")
    assert job["progress"] == {"done": 4, "total": 4}
    result = job["result"]
    # a row is "created" when it creates its account or its contact
    assert (result["created"], result["updated"], result["unchanged"], result["refused"]) == (4, 0, 0, 0)
    assert (result["accounts_created"], result["contacts_created"], result["invitations_sent"]) == (3, 3, 2)
    with in_app(app) as session:
        accounts = {a.name: a for a in session.scalars(select(Account).where(Account.firm_id == firm.id))}
        assert set(accounts) == {"Berger Family", "Berger Design GmbH", "Okafor & Sons"}
        assert accounts["Berger Family"].external_id == "C-1001"
        assert accounts["Berger Design GmbH"].company_name == "Berger Design GmbH"
        tags = session.scalars(
            select(AccountTag.tag).where(AccountTag.account_id == accounts["Berger Family"].id)
        )
        assert sorted(tags) == ["2026-returns", "vip"]
        anna = session.scalar(select(ContactEmail).where(ContactEmail.address == "anna@berger.example"))
        rows = session.scalars(select(ContactSettings).where(ContactSettings.email_id == anna.id)).all()
        assert len(rows) == 2  # one contact, linked to the family and the company
        family = next(r for r in rows if r.account_id == accounts["Berger Family"].id)
        assert (family.login, family.notify, family.email_sync, family.signatory) == (True, True, False, True)
    assert sorted(m["To"] for m in smtp.wait_for(2)) == ["ada@okafor.example", "anna@berger.example"]
    listed = firm.api.get("/accounts?q=okafor").get_json()["items"]
    assert [a["name"] for a in listed] == ["Okafor & Sons"]  # the search text knows imported rows
    [report] = firm.api.get("/inbox").get_json()["items"]
    assert report["job_id"] == job["id"] and "4 created" in report["title"]


def test_r_imp_1_reimporting_the_same_file_changes_nothing_and_invites_nobody_twice(
    app, make, smtp, redis_url
):
    app.config["MAIL_URL"] = smtp.url
    firm = make.firm()
    run_import(app, firm, "import_utf8_bom_comma.csv")
    again = run_import(app, firm, "import_utf8_bom_comma.csv")["result"]
    assert (again["created"], again["updated"], again["unchanged"], again["invitations_sent"]) == (0, 0, 4, 0)
    with in_app(app) as session:
        assert session.scalar(select(func.count()).select_from(Account)) == 3
        assert session.scalar(select(func.count()).select_from(Invitation)) == 2
    assert len(smtp.wait_for(3, timeout=1)) == 2


def test_r_imp_4_changing_one_cell_changes_exactly_that(app, make, redis_url):
    firm = make.firm()
    run_import(app, firm, "import_utf8_bom_comma.csv")
    text = (DATA / "import_utf8_bom_comma.csv").read_text(encoding="utf-8-sig")
    changed = text.replace(
        "Paul,Berger,paul@berger.example,,,no,yes", "Paul,Berger,paul@berger.example,,,no,no"
    )
    result = run_import(app, firm, data=changed.encode())["result"]
    assert (result["created"], result["updated"], result["unchanged"]) == (0, 1, 3)
    with in_app(app) as session:
        paul = session.scalar(select(ContactEmail).where(ContactEmail.address == "paul@berger.example"))
        row = session.scalar(select(ContactSettings).where(ContactSettings.email_id == paul.id))
        assert row.notify is False


def test_r_imp_4_matching_by_external_id_then_unique_name_else_new(app, make, redis_url):
    firm = make.firm()
    make.account(firm.id, "Twin Name")
    make.account(firm.id, "Twin Name")
    unique = make.account(firm.id, "Unique Name")
    single = make.account(firm.id, "Single Name")
    with in_app(app) as session:
        session.execute(Account.__table__.update().where(Account.id == unique.id).values(external_id="EXT-9"))
        session.commit()
    csv_text = (
        "account_name,external_id,email,first_name\n"
        "Renamed By Number,EXT-9,a@match.example,Al\n"  # external id wins, and renames
        "SINGLE NAME,,b@match.example,Bo\n"  # exactly one account has this name (any case)
        "Twin Name,,c@match.example,Cy\n"  # two accounts have it: a new one
    )
    result = run_import(app, firm, data=csv_text.encode())["result"]
    assert result["accounts_created"] == 1
    with in_app(app) as session:
        renamed = session.get(Account, unique.id)
        assert renamed.name == "Renamed By Number"
        bo = session.scalar(select(ContactEmail).where(ContactEmail.address == "b@match.example"))
        assert [link.account_id for link in bo.contact.links] == [single.id]
        assert (
            session.scalar(select(func.count()).select_from(Account).where(Account.name == "Twin Name")) == 3
        )


@pytest.mark.parametrize(
    ("name", "accounts"),
    [
        ("import_cp1252_semicolon_crlf.csv", {"Müller; Bäckerei", "Weiß Steuerberatung"}),
        ("import_utf8_tab_quoted_newlines.csv", {"Chen Holdings", "Dubois"}),
    ],
)
def test_r_imp_5_files_as_excel_and_other_tools_save_them(app, make, redis_url, name, accounts):
    firm = make.firm()
    result = run_import(app, firm, name, as_csv_body=True)["result"]
    assert result["refused"] == 0, result
    with in_app(app) as session:
        found = {a.name: a for a in session.scalars(select(Account))}
        assert set(found) == accounts
        if "Chen Holdings" in found:
            assert found["Chen Holdings"].company_name == "Chen Holdings Ltd\nSuite 4"
        if "Müller; Bäckerei" in found:
            assert found["Müller; Bäckerei"].company_name == "Bäckerei Müller GmbH"
            juergen = session.scalar(select(ContactEmail).where(ContactEmail.address.like("juergen@%")))
            assert juergen.contact.first_name == "Jürgen"


def test_r_imp_1_refused_rows_are_reported_by_spreadsheet_row_and_errors_csv_gives_them_back(
    app, make, redis_url
):
    firm = make.firm()
    job = run_import(app, firm, "import_with_errors.csv")
    result = job["result"]
    assert (result["created"], result["refused"]) == (1, 5)
    reasons = {e["row"]: e["reason"] for e in job["errors"]}
    assert set(reasons) == {3, 4, 5, 6, 7}
    assert reasons[3].startswith("login:") and "maybe" in reasons[3]
    assert reasons[4].startswith("account_name:")
    assert reasons[5].startswith("email:")
    assert reasons[6].startswith("send_invitation:")
    assert "company" in reasons[7]
    assert all("cells" not in e for e in job["errors"])  # the API shows the documented fields only
    response = firm.api.get(f"/jobs/{job['id']}/errors.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    text = response.data.decode("utf-8")
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    original = list(csv.reader(io.StringIO((DATA / "import_with_errors.csv").read_text())))
    assert rows[0] == [*original[0], "error"]
    assert [r[:-1] for r in rows[1:]] == original[2:]  # exactly as uploaded
    # fixed in Excel and uploaded again: the error column is accepted and ignored
    fixed = text.replace("maybe", "yes")
    again = run_import(app, firm, data=fixed.encode("utf-8"))["result"]
    assert again["created"] == 1 and again["refused"] == 4


def test_r_imp_2_dry_run_reports_the_same_and_changes_nothing(app, make, smtp, redis_url):
    app.config["MAIL_URL"] = smtp.url
    firm = make.firm()
    preview = run_import(app, firm, "import_utf8_bom_comma.csv", dry_run=True)["result"]
    assert preview["dry_run"] is True
    counts = (preview["created"], preview["updated"], preview["refused"], preview["invitations_sent"])
    assert counts == (4, 0, 0, 2)
    with in_app(app) as session:
        for model in (Account, ContactEmail, ContactSettings, Invitation, OutboxEmail):
            assert session.scalar(select(func.count()).select_from(model)) == 0, model
    assert smtp.wait_for(1, timeout=0.5) == []
    real = run_import(app, firm, "import_utf8_bom_comma.csv")["result"]
    assert {k: real[k] for k in ("created", "updated", "unchanged", "refused")} == {
        k: preview[k] for k in ("created", "updated", "unchanged", "refused")
    }


@pytest.mark.parametrize(
    ("data", "status", "says"),
    [
        (b"", 422, "empty"),
        (b"   \n\n", 422, "empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", 422, "binary"),
        (
            b"account_name,email\n\x8d,a@b.example\n",
            422,
            "neither UTF-8 nor Windows-1252",
        ),  # found by the fuzzer
        (b"Berger Family,anna@berger.example\n", 422, "header"),
        (b"account_name,email,colour\nA,a@b.example,red\n", 422, "Known columns"),
        (b"account_name,email\n", 422, "no rows"),
        (b'account_name,email\n"unterminated,a@b.example\n', 422, "not valid CSV"),
    ],
)
def test_r_imp_5_files_that_are_not_imports_are_a_clear_4xx_and_nothing_changes(make, data, status, says):
    firm = make.firm()
    response = upload(firm, data=data)
    assert response.status_code == status, response.get_json()
    assert says.lower() in response.get_json()["error"]["message"].lower()
    assert firm.api.get("/jobs").get_json()["items"] == []


def test_r_imp_5_over_100_000_rows_or_50_mb_is_refused(make):
    firm = make.firm()
    many = "account_name,email\n" + "".join(f"A{n},a{n}@x.example\n" for n in range(100_001))
    response = upload(firm, data=many.encode(), as_csv_body=True)
    assert response.status_code == 413 and "100,000" in response.get_json()["error"]["message"]
    huge = b"account_name,email\n" + b"x" * (50 * 1024 * 1024 + 10)
    response = upload(firm, data=huge, as_csv_body=True)
    assert response.status_code == 413 and "50 MB" in response.get_json()["error"]["message"]
    response = firm.api.post("/imports", data=b"{}", headers={"Content-Type": "application/json"})
    assert response.status_code == 415
    assert firm.api.get("/jobs").get_json()["items"] == []


def test_r_imp_a_killed_worker_resumes_from_the_last_committed_batch_and_imports_nothing_twice(
    app, make, smtp, redis_url, database_url
):
    import os
    import signal
    import time
    from datetime import timedelta

    from portal_app.jobs.staff_jobs import sweep_jobs
    from portal_app.models import Job
    from tests.conftest import spawn_worker

    app.config["MAIL_URL"] = smtp.url
    firm = make.firm()
    rows = "".join(f"Client {n:05d},C-{n},Pat,No{n},pat{n}@example.com,yes,yes\n" for n in range(3000))
    body = ("account_name,external_id,first_name,last_name,email,login,send_invitation\n" + rows).encode()
    job_id = int(upload(firm, data=body, as_csv_body=True).get_json()["id"])

    first = spawn_worker(app, database_url, redis_url, smtp.url, IMPORT_BATCH_ROWS="100")
    cursor, deadline = 0, time.monotonic() + 60
    while time.monotonic() < deadline and cursor < 300:
        with in_app(app) as session:
            cursor = session.scalar(select(Job.cursor).where(Job.id == job_id)) or 0
        time.sleep(0.005)
    os.killpg(first.pid, signal.SIGKILL)  # the worker and its scheduler, as a crash would
    first.communicate(timeout=10)
    with in_app(app) as session:
        done = session.scalar(select(Job.cursor).where(Job.id == job_id))
        assert 300 <= done < 3000, f"the import was not caught mid-way ({done})"
        assert session.scalar(select(func.count()).select_from(Account)) == done  # whole batches only
        assert session.scalar(select(func.count()).select_from(Invitation)) == done
        assert sweep_jobs(stale_after=timedelta(0)) == 1
    rerun = spawn_worker(app, database_url, redis_url, smtp.url, "--burst", IMPORT_BATCH_ROWS="100")
    output = rerun.communicate(timeout=300)[0].decode()
    assert rerun.returncode == 0, output[-3000:]
    job = firm.api.get(f"/jobs/{job_id}").get_json()
    assert job["state"] == "done" and job["result"]["created"] == 3000 and job["result"]["refused"] == 0
    with in_app(app) as session:
        assert session.scalar(select(func.count()).select_from(Account)) == 3000
        assert session.scalar(select(func.count(func.distinct(Account.external_id)))) == 3000
        per_email = session.execute(
            select(Invitation.email_id, func.count()).group_by(Invitation.email_id)
        ).all()
        assert len(per_email) == 3000 and {n for _, n in per_email} == {1}
    delivered = smtp.wait_for(3000, timeout=60)
    assert len(delivered) == 3000 and len({m["To"] for m in delivered}) == 3000


def test_the_sample_file_in_the_docs_imports_cleanly(app, make, redis_url):
    firm = make.firm()
    sample = Path(__file__).resolve().parents[1] / "docs" / "import-sample.csv"
    result = run_import(app, firm, data=sample.read_bytes())["result"]
    assert (result["created"], result["refused"], result["invitations_sent"]) == (4, 0, 2)


def test_embedded_default_imports_in_process(app, make):
    """Without Redis (make run) the job runs in the request, through the same code."""
    firm = make.firm()
    response = upload(firm, "import_utf8_bom_comma.csv")
    assert response.status_code == 202
    job = firm.api.get(f"/jobs/{response.get_json()['id']}").get_json()
    assert job["state"] == "done" and job["result"]["created"] == 4 and job["result"]["refused"] == 0
    again = upload(firm, "import_utf8_bom_comma.csv").get_json()
    assert firm.api.get(f"/jobs/{again['id']}").get_json()["result"]["unchanged"] == 4
    bulk = firm.api.post("/bulk/contact-settings", json={"filter": {}, "email_sync": "enable"}).get_json()
    assert firm.api.get(f"/jobs/{bulk['id']}").get_json()["result"]["accounts_changed"] == 2  # Okafor had it


def test_r_sec_7_a_row_repeated_in_the_file_is_applied_and_audited_once(app, make, smtp, redis_url):
    app.config["MAIL_URL"] = smtp.url
    firm = make.firm()
    row = "Repeat Client,R-1,Rita,Repeat,rita@repeat.example,yes,yes\n"
    body = "account_name,external_id,first_name,last_name,email,login,send_invitation\n" + row + row
    result = run_import(app, firm, data=body.encode())["result"]
    assert (result["created"], result["refused"], result["invitations_sent"]) == (1, 0, 1)
    with in_app(app) as session:
        from portal_app.models import AuditEntry

        fields = sorted(session.scalars(select(AuditEntry.field)))
        assert fields == ["login", "signatory"]
    assert len(smtp.wait_for(2, timeout=1)) == 1


def test_r_imp_3_only_account_name_and_email_are_required_a_nameless_contact_is_named_for_you(
    app, make, redis_url
):
    """A row without first_name and last_name imports (SPEC R-IMP-3 requires only account_name
    and email): the contact of an individual account is named after the account, any other
    after the email's local part (docs/import.md)."""
    firm = make.firm()
    csv_text = (
        "account_name,account_type,email,login\n"
        "Maria Lopez,individual,maria@lopez.example,yes\n"
        "Acme Ltd,company,accounts.payable@acme.example,no\n"
    )
    job = run_import(app, firm, data=csv_text.encode())
    assert (job["result"]["created"], job["result"]["refused"]) == (2, 0), job["errors"]
    with in_app(app) as session:
        names = {
            email.address: (email.contact.first_name, email.contact.last_name, email.contact.display_name)
            for email in session.scalars(select(ContactEmail))
        }
        login = session.scalar(select(ContactSettings.login).where(ContactSettings.login.is_(True)))
    assert names == {
        "maria@lopez.example": ("", "Maria Lopez", "Maria Lopez"),
        "accounts.payable@acme.example": ("", "accounts.payable", "accounts.payable"),
    }
    assert login is True  # the row's settings were applied too
