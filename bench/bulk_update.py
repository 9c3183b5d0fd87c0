"""Benchmark: the bulk update of contact settings (SPEC §15, issue 10).

A firm of N accounts (~2 contacts and ~2.5 emails each, as in bench/account_list.py) on a
PostgreSQL database of its own. Portico: `POST /api/v1/bulk/contact-settings` enabling notify and
login for every account (no invitations), run by the real `flask --app wsgi worker` (started
beforehand, as in production); the clock runs from the POST until the job says done. Reference,
same run, same data: the equivalent hand-written set-based SQL (one UPDATE … FROM and the audit
INSERT … SELECT), in a transaction that is rolled back so Portico then starts from the same state.

    .venv/bin/python bench/bulk_update.py [--accounts 10000]

Targets: Portico ≤ 3× the reference; the worker's peak RSS ≤ 250 MB.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import psycopg
from redis import Redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    REDIS_URL,
    absolute,
    build_app,
    own_database,
    report,
    run_job_through_worker,
    time_ratio,
)
from account_list import seed  # noqa: E402

REFERENCE_SQL = """
WITH old AS (
  SELECT s.id, s.firm_id, s.account_id, s.contact_id, s.email_id, s.login, s.notify, s.signatory,
         NOT s.login AND NOT EXISTS (SELECT 1 FROM audit_entries x WHERE x.account_id = s.account_id
                                        AND x.email_id = s.email_id AND x.field = 'login') AS first_login
    FROM contact_settings s JOIN accounts a ON a.id = s.account_id
   WHERE a.firm_id = %(firm)s AND (NOT s.login OR NOT s.notify)
     FOR UPDATE OF s
), changed AS (
  UPDATE contact_settings s
     SET login = true, notify = true, signatory = s.signatory OR old.first_login, updated_at = now()
    FROM old WHERE s.id = old.id
  RETURNING s.id
)
INSERT INTO audit_entries (firm_id, account_id, contact_id, email_id, address, actor_type, actor_id,
                           actor_label, field, old_value, new_value, created_at)
SELECT old.firm_id, old.account_id, old.contact_id, old.email_id, e.address, 'staff', 1, 'bench',
       v.field, to_jsonb(v.o)::json, to_jsonb(v.n)::json, now()
  FROM old JOIN changed ON changed.id = old.id
  JOIN contact_emails e ON e.id = old.email_id
  CROSS JOIN LATERAL (VALUES ('login', old.login, true), ('notify', old.notify, true),
                             ('signatory', old.signatory, old.signatory OR old.first_login)) v(field, o, n)
 WHERE v.o IS DISTINCT FROM v.n
"""


def run_reference(url: str, firm_id: int) -> tuple[float, int]:
    with psycopg.connect(url) as conn:
        started = time.perf_counter()
        inserted = conn.execute(REFERENCE_SQL, {"firm": firm_id}).rowcount
        elapsed = time.perf_counter() - started
        conn.rollback()
    return elapsed, inserted


def run_portico(app, url: str, token: str) -> tuple[float, float, dict]:
    return run_job_through_worker(
        app,
        url,
        token,
        lambda client, headers: client.post(
            "/api/v1/bulk/contact-settings",
            json={"filter": {}, "login": "enable", "notify": "enable"},
            headers=headers,
        ),
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--accounts", type=int, default=10_000)
    args = parser.parse_args()
    Redis.from_url(REDIS_URL).flushdb()
    with own_database("bulk") as url:
        app = build_app(url, REDIS_URL=REDIS_URL)
        with psycopg.connect(url) as conn:
            firm_id, token = seed(app, conn, args.accounts)
        reference, audited = run_reference(url, firm_id)
        portico, rss, result = run_portico(app, url, token)
        print(
            f"reference: {reference:.2f} s ({audited} audit rows); Portico: {portico:.2f} s, "
            f"{result['emails_changed']} emails changed on {result['accounts_changed']} accounts",
            flush=True,
        )
        from portal_app.extensions import db

        with app.app_context():
            db.engine.dispose()
    Redis.from_url(REDIS_URL).flushdb()
    name = f"bulk update of {args.accounts:,} accounts (notify + login on)"
    report(
        [
            time_ratio(name, portico, reference, "s", 3.0),
            absolute(f"{name}: worker peak RSS", rss, "MB", 250),
        ]
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
