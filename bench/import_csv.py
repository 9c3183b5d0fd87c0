"""Benchmark: a CSV import of 100 000 rows (≈ 40 000 accounts) through the real endpoint and
worker (SPEC §15, issue 11), on a PostgreSQL database of its own.

Portico: `POST /api/v1/imports` with the file as a text/csv body, run by a `flask --app wsgi
worker` that is already up; the clock runs from the POST until the job says done; the worker's
peak RSS is read from /proc. Reference, same run, same file: `COPY` into a staging table plus
set-based SQL that creates the same accounts, contacts, emails, links and settings (in a
transaction rolled back afterwards).

    .venv/bin/python bench/import_csv.py [--rows 100000]

Targets: Portico ≤ 60 s and the worker's peak RSS ≤ 250 MB; the ratio to the reference is printed.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from redis import Redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    REDIS_URL,
    Figure,
    absolute,
    build_app,
    own_database,
    report,
    run_job_through_worker,
)

HEADER = "account_name,external_id,account_type,first_name,last_name,email,login,notify,email_sync\n"

REFERENCE_SQL = [
    """CREATE TEMP TABLE staging (account_name text, external_id text, account_type text, first_name text,
        last_name text, email text, login text, notify text, email_sync text) ON COMMIT DROP""",
    None,  # COPY
    """INSERT INTO accounts (firm_id, name, external_id, type, custom_fields, search_text,
                            created_at, updated_at)
       SELECT DISTINCT ON (external_id) %(firm)s, account_name, external_id,
              coalesce(nullif(account_type, ''), 'individual'), '{}', '', now(), now()
         FROM staging ORDER BY external_id""",
    """CREATE TEMP TABLE new_contacts ON COMMIT DROP AS
       SELECT nextval('contacts_id_seq') AS id, s.* FROM staging s""",
    """INSERT INTO contacts (id, firm_id, first_name, middle_name, last_name, phones, addresses,
                            custom_fields, created_at, updated_at)
       SELECT id, %(firm)s, first_name, '', last_name, '[]', '[]', '{}', now(), now() FROM new_contacts""",
    """INSERT INTO contact_emails (firm_id, contact_id, address, label, is_primary, created_at)
       SELECT %(firm)s, id, lower(email), '', true, now() FROM new_contacts""",
    """INSERT INTO account_contacts (account_id, contact_id, firm_id, description, created_at)
       SELECT a.id, c.id, %(firm)s, '', now() FROM new_contacts c
         JOIN accounts a ON a.firm_id = %(firm)s AND a.external_id = c.external_id""",
    """INSERT INTO contact_settings (firm_id, account_id, contact_id, email_id, login, notify,
                                    notification_preferences, email_sync, auto_save_attachments, signatory,
                                    created_at, updated_at)
       SELECT %(firm)s, a.id, c.id, e.id, c.login IS NOT DISTINCT FROM 'yes',
              c.notify IS NOT DISTINCT FROM 'yes', '{}', c.email_sync IS NOT DISTINCT FROM 'yes', false,
              c.login IS NOT DISTINCT FROM 'yes', now(), now()
         FROM new_contacts c JOIN contact_emails e ON e.contact_id = c.id
         JOIN accounts a ON a.firm_id = %(firm)s AND a.external_id = c.external_id""",
]


def make_csv(rows: int) -> bytes:
    """≈ 2.5 rows (contact emails) per account: 40 000 accounts for 100 000 rows."""
    out = io.StringIO()
    out.write(HEADER)
    for n in range(rows):
        account = n * 2 // 5
        flags = ("yes" if n % 3 == 0 else "no", "yes" if n % 2 == 0 else "", "yes" if n % 5 == 0 else "")
        out.write(
            f"Client {account:06d},C-{account},{'company' if account % 4 == 0 else 'individual'},"
            f"Person{n},Family{account},person{n}@clients{n % 97}.example,{','.join(flags)}\n"
        )
    return out.getvalue().encode()


def run_reference(url: str, firm_id: int, data: bytes) -> float:
    with psycopg.connect(url) as conn:
        started = time.perf_counter()
        for statement in REFERENCE_SQL:
            if statement is None:
                with conn.cursor().copy("COPY staging FROM STDIN WITH (FORMAT csv, HEADER true)") as copy:
                    copy.write(data)
            else:
                conn.execute(statement, {"firm": firm_id})
        elapsed = time.perf_counter() - started
        conn.rollback()
    return elapsed


def run_portico(app, url: str, token: str, data: bytes) -> tuple[float, float, dict]:
    return run_job_through_worker(
        app,
        url,
        token,
        lambda client, headers: client.post(
            "/api/v1/imports", data=data, headers={**headers, "Content-Type": "text/csv"}
        ),
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    data = make_csv(args.rows)
    Redis.from_url(REDIS_URL).flushdb()
    with own_database("import") as url:
        app = build_app(url, REDIS_URL=REDIS_URL)
        app.config["DOCUMENTS_DIR"] = tempfile.mkdtemp()
        with app.app_context():
            from portal_app.extensions import db
            from portal_app.services.staff import create_firm, create_staff_user, issue_api_token
            from portal_app.transaction import commit

            firm = create_firm("Import bench")
            staff = create_staff_user(firm, email="import@bench.example", password=None, role="admin")
            _, token = issue_api_token(staff)
            reference_firm = create_firm("Reference")
            commit()
            reference_id = reference_firm.id
            db.session.remove()
        reference = run_reference(url, reference_id, data)
        portico, rss, result = run_portico(app, url, token, data)
        print(f"Portico {portico:.1f} s ({result}); COPY + set-based SQL {reference:.1f} s", flush=True)
        with app.app_context():
            db.engine.dispose()
    Redis.from_url(REDIS_URL).flushdb()
    name = f"CSV import of {args.rows:,} rows"
    ratio = portico / reference if reference else 0.0
    report(
        [
            absolute(
                f"{name}: total time", portico, "s", 60, note=f"COPY + SQL: {reference:.1f} s, {ratio:.1f}×"
            ),
            Figure(f"{name}: vs COPY + set-based SQL", portico, reference, "s", ratio, "(no target)", True),
            absolute(f"{name}: worker peak RSS", rss, "MB", 250),
        ]
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
