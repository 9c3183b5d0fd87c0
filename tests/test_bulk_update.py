"""Bulk update of contact settings as a background job, its progress and report, Inbox+
(R-BLK-1..3, R-REL-2, issue 10)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import func, select

from portal_app.models import AuditEntry, ContactSettings, Invitation, OutboxEmail, PortalUser, utcnow
from portal_app.passwords import hash_password
from tests.conftest import in_app, run_worker, spawn_worker
from tests.portal_helpers import link_in

BULK = "/bulk/contact-settings"


def _firm_with_accounts(make: Any, count: int, *, tags: list[str] | None = None) -> SimpleNamespace:
    firm = make.firm("Harbor & Finch CPA")
    accounts = [make.account(firm.id, f"Client {n:03d}", tags=tags) for n in range(count)]
    return SimpleNamespace(firm=firm, accounts=accounts)


def _job(firm: Any, job_id: str) -> dict[str, Any]:
    response = firm.api.get(f"/jobs/{job_id}")
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def _settings(app: Any, account_id: int) -> list[ContactSettings]:
    with in_app(app) as session:
        rows = session.scalars(select(ContactSettings).where(ContactSettings.account_id == account_id)).all()
        session.expunge_all()
        return rows


def test_r_blk_1_login_on_for_chosen_accounts_invites_with_one_message(app, make, smtp, redis_url):
    app.config["MAIL_URL"] = smtp.url
    world = _firm_with_accounts(make, 3)
    chosen = [str(a.id) for a in world.accounts[:2]]
    response = world.firm.api.post(
        BULK,
        json={
            "account_ids": chosen,
            "login": "enable",
            "notify": "enable",
            "send_invitations": True,
            "invitation_message": "Tax season starts: here is your portal.",
            "notification_preferences": {"proposals": False},
        },
    )
    assert response.status_code == 202, response.get_json()
    job = response.get_json()
    assert job["state"] == "queued" and job["kind"] == "bulk_contact_settings"
    run_worker(app)
    job = _job(world.firm, job["id"])
    assert job["state"] == "done" and job["progress"] == {"done": 2, "total": 2}
    assert job["result"]["accounts"] == 2 and job["result"]["accounts_changed"] == 2
    assert job["result"]["changed"]["login"] == 2 and job["result"]["changed"]["notify"] == 2
    assert job["result"]["invitations_sent"] == 2 and job["errors"] == []
    mails = smtp.wait_for(2)
    addresses = {m["To"] for m in mails}
    assert addresses == {a.contacts[0].emails[0].address for a in world.accounts[:2]}
    for mail in mails:
        assert "Tax season starts: here is your portal." in mail.get_body(("plain",)).get_content()
        assert "/portal/activate/" in link_in(mail)
    first = _settings(app, world.accounts[0].id)[0]
    assert (first.login, first.notify, first.signatory) == (True, True, True)  # signatory on first login
    assert first.notification_preferences["proposals"] is False
    untouched = _settings(app, world.accounts[2].id)[0]
    assert (untouched.login, untouched.notify) == (False, False)


def test_r_blk_1_a_filter_is_resolved_when_the_job_starts(app, make, redis_url):
    firm = make.firm()
    tagged = [make.account(firm.id, f"Returns {n}", tags=["2026-returns"]) for n in range(2)]
    make.account(firm.id, "Other client", tags=["payroll"])
    response = firm.api.post(BULK, json={"filter": {"tag": "2026-returns"}, "notify": "enable"})
    assert response.status_code == 202
    late = make.account(firm.id, "Returns late", tags=["2026-returns"])  # before the worker starts
    run_worker(app)
    job = _job(firm, response.get_json()["id"])
    assert job["state"] == "done" and job["result"]["accounts"] == 3 and job["progress"]["total"] == 3
    for account in [*tagged, late]:
        assert all(row.notify for row in _settings(app, account.id))


def test_r_blk_2_ids_of_another_firm_unknown_or_deleted_are_error_items_and_the_rest_change(
    app, make, redis_url
):
    world = _firm_with_accounts(make, 2)
    other = make.firm()
    theirs = make.account(other.id, "Not yours")
    gone = make.account(world.firm.id, "Deleted soon")
    ids = [
        str(world.accounts[0].id),
        str(theirs.id),
        "999999999",
        "not-an-id",
        str(gone.id),
        str(world.accounts[1].id),
    ]
    response = world.firm.api.post(BULK, json={"account_ids": ids, "email_sync": "enable"})
    assert response.status_code == 202
    assert world.firm.api.delete(f"/accounts/{gone.id}").status_code == 204
    run_worker(app)
    job = _job(world.firm, response.get_json()["id"])
    assert job["state"] == "done"
    assert sorted(e["account_id"] for e in job["errors"]) == sorted(
        [str(theirs.id), "999999999", "not-an-id", str(gone.id)]
    )
    assert all(e["reason"] for e in job["errors"]) and job["result"]["errors"] == 4
    assert job["result"]["accounts_changed"] == 2
    assert all(row.email_sync for a in world.accounts for row in _settings(app, a.id))
    assert not any(row.email_sync for row in _settings(app, theirs.id))  # never another firm's


def test_r_blk_2_the_same_request_twice_changes_nothing_and_invites_nobody_twice(app, make, smtp, redis_url):
    app.config["MAIL_URL"] = smtp.url
    world = _firm_with_accounts(make, 3)
    body = {"account_ids": [str(a.id) for a in world.accounts], "login": "enable", "send_invitations": True}
    first = world.firm.api.post(BULK, json=body).get_json()
    run_worker(app)
    second = world.firm.api.post(BULK, json=body).get_json()
    assert second["id"] != first["id"]  # no Idempotency-Key: a second job, which changes nothing
    run_worker(app)
    assert _job(world.firm, first["id"])["result"]["invitations_sent"] == 3
    again = _job(world.firm, second["id"])["result"]
    assert (again["accounts_changed"], again["emails_changed"], again["invitations_sent"]) == (0, 0, 0)
    assert len(smtp.wait_for(4, timeout=1)) == 3
    with in_app(app) as session:
        assert session.scalar(select(func.count()).select_from(Invitation)) == 3
        assert (
            session.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.field == "login"))
            == 3
        )


def test_idempotency_key_makes_a_retried_post_return_the_same_job(app, make, redis_url):
    world = _firm_with_accounts(make, 1)
    body = {"account_ids": [str(world.accounts[0].id)], "notify": "enable"}
    headers = {"Idempotency-Key": "spa-7f3a"}
    first = world.firm.api.post(BULK, json=body, headers=headers)
    retry = world.firm.api.post(BULK, json=body, headers=headers)
    assert first.status_code == retry.status_code == 202
    assert first.get_json()["id"] == retry.get_json()["id"]
    assert len(world.firm.api.get("/jobs").get_json()["items"]) == 1
    other_key = world.firm.api.post(BULK, json=body, headers={"Idempotency-Key": "spa-other"})
    assert other_key.get_json()["id"] != first.get_json()["id"]


def test_r_blk_1_dry_run_says_what_would_change_and_changes_nothing(app, make, smtp, redis_url):
    app.config["MAIL_URL"] = smtp.url
    world = _firm_with_accounts(make, 3)
    activated = world.accounts[2].contacts[0].emails[0]
    with in_app(app) as session:  # this client already uses the portal for another account
        session.add(
            PortalUser(
                firm_id=world.firm.id,
                email_id=activated.id,
                password_hash=hash_password("a long client password"),
                activated_at=utcnow(),
            )
        )
        session.commit()
    body = {
        "account_ids": [str(a.id) for a in world.accounts] + ["424242"],
        "login": "enable",
        "send_invitations": True,
    }
    response = world.firm.api.post(f"{BULK}?dry_run=true", json=body)
    # the same answer as an import's dry run: a job, whose result says what would change
    assert response.status_code == 202, response.get_json()
    assert response.get_json()["state"] == "queued"
    run_worker(app)
    preview = world.firm.api.get(f"/jobs/{response.get_json()['id']}").get_json()
    assert preview["state"] == "done"
    result = preview["result"]
    assert result["dry_run"] is True
    assert (result["accounts"], result["accounts_changed"], result["changed"]["login"]) == (3, 3, 3)
    assert (result["invitations_sent"], result["access_granted"], result["errors"]) == (2, 1, 1)
    assert [e["account_id"] for e in preview["errors"]] == ["424242"]
    with in_app(app) as session:
        assert session.scalar(select(func.count()).select_from(AuditEntry)) == 0
        assert session.scalar(select(func.count()).select_from(OutboxEmail)) == 0
        assert not any(session.scalars(select(ContactSettings.login)))
    [report] = world.firm.api.get("/inbox").get_json()["items"]
    assert report["title"].startswith("Bulk update check (dry run) done: 3 of 3 accounts would change")
    assert report["title"].endswith("nothing was changed")
    # a real run with an Idempotency-Key is not mistaken for the dry run
    real = world.firm.api.post(BULK, json=body, headers={"Idempotency-Key": "after-check"})
    assert real.status_code == 202 and real.get_json()["id"] != preview["id"]


def test_r_blk_1_a_filter_that_matches_nothing_says_so_and_starts_nothing(app, make, redis_url):
    world = _firm_with_accounts(make, 2, tags=["2026-returns"])
    for query in ("", "?dry_run=true"):
        response = world.firm.api.post(
            f"{BULK}{query}", json={"filter": {"tag": "2025-returns"}, "login": "enable"}
        )
        assert response.status_code == 422, response.get_json()
        error = response.get_json()["error"]
        assert "No account matches this filter" in error["message"] and "filter" in error["fields"]
    assert world.firm.api.get("/jobs").get_json()["items"] == []
    matching = world.firm.api.post(BULK, json={"filter": {"tag": "2026-returns"}, "login": "enable"})
    assert matching.status_code == 202


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"login": "enable"}, "account_ids"),  # neither ids nor filter
        ({"account_ids": ["1"], "filter": {"tag": "x"}, "login": "enable"}, "account_ids"),
        ({"account_ids": ["1"]}, "login"),  # nothing to do
        ({"account_ids": ["1"], "login": "maybe"}, "login"),
        (
            {"account_ids": ["1"], "notify": "enable", "notification_preferences": {"nope": True}},
            "notification_preferences.nope",
        ),
        ({"account_ids": ["1"], "login": "enable", "colour": "red"}, "colour"),
        ({"account_ids": [], "login": "enable"}, "account_ids"),
    ],
)
def test_r_rel_3_bad_bulk_requests_are_422_and_start_nothing(make, body, field):
    firm = make.firm()
    response = firm.api.post(BULK, json=body)
    assert response.status_code == 422, response.get_json()
    assert any(key.startswith(field.split(".")[0]) for key in response.get_json()["error"]["fields"]), (
        response.get_json()
    )
    assert firm.api.get("/jobs").get_json()["items"] == []


def _audit(app: Any, account_id: int) -> list[tuple[str, Any, Any]]:
    with in_app(app) as session:
        entries = session.scalars(
            select(AuditEntry)
            .where(AuditEntry.account_id == account_id)
            .order_by(AuditEntry.field, AuditEntry.id)
        ).all()
        return [(e.field, e.old_value, e.new_value) for e in entries]


def _activate(app: Any, firm_id: int, email_id: int) -> None:
    with in_app(app) as session:
        session.add(
            PortalUser(
                firm_id=firm_id,
                email_id=email_id,
                password_hash=hash_password("a long client password"),
                activated_at=utcnow(),
            )
        )
        session.commit()


def test_r_blk_3_a_bulk_change_is_the_same_change_as_one_made_by_hand(app, make, smtp, redis_url):
    """Two identical accounts: one changed by the PATCH, one by a bulk job. Same settings, same
    audit, signatory on first login, access granted (not invited) for the activated email, and
    outstanding invitations revoked when login goes off."""
    app.config["MAIL_URL"] = smtp.url
    firm = make.firm()
    pairs = []
    for name in ("By hand", "In bulk"):
        fresh = make.contact(firm.id, "Fresh", name.replace(" ", ""))
        known = make.contact(firm.id, "Known", name.replace(" ", ""))
        account = make.account(firm.id, name, contacts=[fresh, known])
        _activate(app, firm.id, known.emails[0].id)  # already uses the portal elsewhere
        pairs.append((account, fresh.emails[0], known.emails[0]))
    (hand, hand_fresh, hand_known), (bulk_account, bulk_fresh, bulk_known) = pairs

    for email in (hand_fresh, hand_known):
        response = firm.api.patch(
            f"/accounts/{hand.id}/contact-settings/{email.id}", json={"login": True, "send_invitation": True}
        )
        assert response.status_code == 200, response.get_json()
    firm.api.post(
        BULK, json={"account_ids": [str(bulk_account.id)], "login": "enable", "send_invitations": True}
    )
    run_worker(app)

    def effects(account: Any, fresh: Any, known: Any) -> dict[str, Any]:
        rows = {row.email_id: row for row in _settings(app, account.id)}
        with in_app(app) as session:
            kinds = {
                to: kind
                for to, kind in session.execute(
                    select(OutboxEmail.to_address, OutboxEmail.kind).where(
                        OutboxEmail.to_address.in_([fresh.address, known.address])
                    )
                )
            }
        return {
            "settings": [(rows[e.id].login, rows[e.id].signatory) for e in (fresh, known)],
            "audit": _audit(app, account.id),
            "mail": [kinds.get(fresh.address), kinds.get(known.address)],
        }

    by_hand, in_bulk = effects(hand, hand_fresh, hand_known), effects(bulk_account, bulk_fresh, bulk_known)
    assert by_hand == in_bulk
    assert in_bulk["settings"] == [(True, True), (True, True)]
    assert in_bulk["mail"] == ["invitation", "access_granted"]
    assert ("signatory", False, True) in in_bulk["audit"] and ("login", False, True) in in_bulk["audit"]

    # login off: the outstanding invitation is revoked, the same way
    firm.api.patch(f"/accounts/{hand.id}/contact-settings/{hand_fresh.id}", json={"login": False})
    firm.api.post(BULK, json={"account_ids": [str(bulk_account.id)], "login": "disable"})
    run_worker(app)
    with in_app(app) as session:
        reasons = session.execute(
            select(Invitation.account_id, Invitation.revoked_reason).where(
                Invitation.account_id.in_([hand.id, bulk_account.id])
            )
        ).all()
    assert sorted(r for _, r in reasons) == ["login_off", "login_off"]
    assert _audit(app, hand.id)[-2:] == _audit(app, bulk_account.id)[-2:]


def test_r_blk_2_the_starter_gets_an_inbox_report_with_the_errors(app, make, redis_url):
    world = _firm_with_accounts(make, 2)
    colleague = make.staff(world.firm.id)
    job = world.firm.api.post(
        BULK, json={"account_ids": [str(a.id) for a in world.accounts] + ["31337"], "notify": "enable"}
    ).get_json()
    run_worker(app)
    [item] = world.firm.api.get("/inbox").get_json()["items"]
    assert item["kind"] == "bulk_update_report" and item["job_id"] == job["id"] and item["read"] is False
    # R-BLK-2: accounts, emails changed, invitations and errors, in plain English ("1 error")
    assert item["title"] == "Bulk update done: 2 of 2 accounts changed, 2 emails, 0 invitations sent, 1 error"
    assert "31337" in item["body"]
    assert colleague.api.get("/inbox").get_json()["items"] == []  # a report goes to its starter only


def test_inbox_firm_wide_items_have_a_read_state_per_staff_user(app, make, redis_url):
    from portal_app.extensions import db
    from portal_app.models import InboxItem

    firm = make.firm()
    colleague = make.staff(firm.id)
    outsider = make.firm()
    with in_app(app):
        db.session.add(
            InboxItem(firm_id=firm.id, kind="invitation_request", title="anna asks for a new link")
        )
        db.session.commit()
    [mine] = firm.api.get("/inbox").get_json()["items"]
    [theirs] = colleague.api.get("/inbox").get_json()["items"]
    assert mine["id"] == theirs["id"] and not mine["read"]
    read = firm.api.post(f"/inbox/{mine['id']}/read")
    assert read.status_code == 200 and read.get_json()["read"] is True
    assert firm.api.post(f"/inbox/{mine['id']}/read").status_code == 200  # twice is harmless
    assert firm.api.get("/inbox?unread=true").get_json()["items"] == []
    assert [i["read"] for i in firm.api.get("/inbox").get_json()["items"]] == [True]
    assert [i["read"] for i in colleague.api.get("/inbox?unread=true").get_json()["items"]] == [False]
    assert outsider.api.get("/inbox").get_json()["items"] == []
    assert outsider.api.post(f"/inbox/{mine['id']}/read").status_code == 404
    assert outsider.api.get(f"/jobs/{mine['id']}").status_code == 404


# --- R-REL-2: a worker killed mid-job --------------------------------------------------------------

SEED_SQL = """
INSERT INTO accounts (firm_id, name, type, custom_fields, search_text, created_at, updated_at)
SELECT :firm, 'Client ' || lpad(g::text, 5, '0'), 'individual', '{}', '', now(), now()
  FROM generate_series(1, :n) g;
INSERT INTO contacts (firm_id, first_name, middle_name, last_name, phones, addresses, custom_fields,
                      created_at, updated_at)
SELECT :firm, 'Client', '', 'No ' || g, '[]', '[]', '{}', now(), now() FROM generate_series(1, :n) g;
INSERT INTO contact_emails (firm_id, contact_id, address, label, is_primary, created_at)
SELECT :firm, c.id, 'client' || c.id || '@example.com', '', true, now()
  FROM contacts c WHERE c.firm_id = :firm;
INSERT INTO account_contacts (account_id, contact_id, firm_id, description, created_at)
SELECT a.id, c.id, :firm, '', now()
  FROM (SELECT id, row_number() OVER (ORDER BY id) r FROM accounts WHERE firm_id = :firm) a
  JOIN (SELECT id, row_number() OVER (ORDER BY id) r FROM contacts WHERE firm_id = :firm) c USING (r);
INSERT INTO contact_settings (firm_id, account_id, contact_id, email_id, login, notify,
                              notification_preferences, email_sync, auto_save_attachments, signatory,
                              created_at, updated_at)
SELECT :firm, ac.account_id, ac.contact_id, e.id, false, false, '{}', false, false, false, now(), now()
  FROM account_contacts ac JOIN contact_emails e ON e.contact_id = ac.contact_id WHERE ac.firm_id = :firm
"""


def test_r_rel_2_worker_killed_mid_job_leaves_whole_accounts_and_a_rerun_invites_nobody_twice(
    app, make, smtp, redis_url, database_url
):
    import os
    import signal
    import time

    from sqlalchemy import text

    from portal_app.jobs.staff_jobs import sweep_jobs
    from portal_app.models import Job

    if not database_url.startswith("postgresql"):
        pytest.skip("the killed-worker walk runs on PostgreSQL (CI always has it)")
    firm = make.firm()
    with in_app(app) as session:
        for statement in SEED_SQL.split(";\n"):
            session.execute(text(statement), {"firm": firm.id, "n": 2000})
        session.commit()
        account_ids = session.scalars(
            text("SELECT id FROM accounts WHERE firm_id = :f ORDER BY id"), {"f": firm.id}
        ).all()
    body = {
        "account_ids": [str(i) for i in account_ids],
        "login": "enable",
        "notify": "enable",
        "send_invitations": True,
        "invitation_message": "Welcome",
    }
    job_id = int(firm.api.post(BULK, json=body).get_json()["id"])

    worker = spawn_worker(app, database_url, redis_url, smtp.url, BULK_BATCH_ACCOUNTS="25")
    deadline = time.monotonic() + 60
    cursor = 0
    while time.monotonic() < deadline:
        with in_app(app) as session:
            cursor = session.scalar(select(Job.cursor).where(Job.id == job_id)) or 0
        if cursor >= 200:
            break
        time.sleep(0.005)
    os.killpg(worker.pid, signal.SIGKILL)  # the worker and its scheduler, as a crash would
    worker.wait(timeout=10)
    assert worker.stdout is not None
    worker.stdout.close()
    assert 200 <= cursor < 2000, f"the job was not caught mid-way (cursor {cursor})"

    with in_app(app) as session:
        job = session.get(Job, job_id)
        done = job.cursor
        assert job.state == "running" and 0 < done < 2000
        rows = session.execute(
            select(
                ContactSettings.account_id,
                ContactSettings.login,
                ContactSettings.notify,
                ContactSettings.signatory,
            )
        ).all()
        changed = {
            a for a, login, notify, signatory in rows if (login, notify, signatory) == (True, True, True)
        }
        untouched = {
            a for a, login, notify, signatory in rows if (login, notify, signatory) == (False, False, False)
        }
        assert changed | untouched == set(account_ids), "an account was changed half-way"
        assert changed == set(account_ids[:done])  # exactly the committed batches
        invited = set(session.scalars(select(Invitation.account_id)))
        assert invited == changed  # no invitation was queued for an untouched account
        audited = set(session.scalars(select(AuditEntry.account_id).distinct()))
        assert audited == changed
    progress = firm.api.get(f"/jobs/{job_id}").get_json()
    assert progress["state"] == "running" and progress["progress"] == {"done": done, "total": 2000}

    from datetime import timedelta

    with in_app(app):
        assert sweep_jobs(stale_after=timedelta(0)) == 1  # the sweep finds the job its worker lost
    rerun = spawn_worker(app, database_url, redis_url, smtp.url, "--burst", BULK_BATCH_ACCOUNTS="25")
    output = rerun.communicate(timeout=300)[0].decode()
    assert rerun.returncode == 0, output[-3000:]

    finished = firm.api.get(f"/jobs/{job_id}").get_json()
    assert finished["state"] == "done" and finished["progress"] == {"done": 2000, "total": 2000}
    with in_app(app) as session:
        assert (
            session.scalar(
                select(func.count()).select_from(ContactSettings).where(ContactSettings.login.is_(False))
            )
            == 0
        )
        per_email = session.execute(
            select(Invitation.email_id, func.count()).group_by(Invitation.email_id)
        ).all()
        assert len(per_email) == 2000 and {count for _, count in per_email} == {1}  # nobody twice
        assert (
            session.scalar(
                select(func.count()).select_from(OutboxEmail).where(OutboxEmail.kind == "invitation")
            )
            == 2000
        )
    delivered = smtp.wait_for(2000, timeout=60)
    assert len(delivered) == 2000 and len({m["To"] for m in delivered}) == 2000
