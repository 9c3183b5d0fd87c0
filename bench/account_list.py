"""Benchmark: the staff account list (SPEC §15) against one hand-written SQL query.

Builds a firm of N accounts (~2 contacts and ~2.5 emails per account) on PostgreSQL, then
times one page of 50 rows through the whole stack (GET /api/v1/accounts with a bearer token:
auth, schema, service, JSON) and the same page fetched by one hand-written query through
psycopg, for three lists: the first page, a status filter and a search. Medians, side by side,
measured in the same run.

    .venv/bin/python bench/account_list.py                # 1 000, 10 000, 100 000 accounts
    .venv/bin/python bench/account_list.py --sizes 1000   # quicker
    The data lives in a PostgreSQL database of its own, created for the run and dropped after it.

Targets: Portico ≤ 2× the reference; latency at 100 000 ≤ 1.5× latency at 1 000, or no more
growth than the reference query's own on the same data (both growths are printed).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import build_app, growth, own_database, report, time_ratio  # noqa: E402

from portal_app.extensions import db  # noqa: E402
from portal_app.services import search_text  # noqa: E402
from portal_app.services.staff import create_firm, create_staff_user, issue_api_token  # noqa: E402
from portal_app.transaction import commit  # noqa: E402

FIRST = ["anna", "ben", "chen", "dana", "eli", "fatima", "george", "hana", "ivan", "julia", "kofi", "lena"]
LAST = ["berger", "smith", "garcia", "ito", "novak", "okafor", "larsen", "dubois", "rossi", "khan", "weber"]
SCENARIOS = {
    "first page": ({}, ""),
    "status=pending_activation": ({"status": "pending_activation"}, "pending_activation"),
    "q=okafor (common: 18%)": ({"q": "okafor"}, "search"),
    "q=c777@ (one email)": ({"q": "c777@"}, "search"),
}

REFERENCE_SQL = """
WITH a AS (
  SELECT a.*, lower(a.name) AS k FROM accounts a
   WHERE a.firm_id = %(firm)s {where}
   ORDER BY lower(a.name), a.id LIMIT 51)
SELECT a.id, a.name, a.type, a.company_name, a.company_address, a.custom_fields, a.created_at,
       CASE WHEN EXISTS (SELECT 1 FROM contact_settings s JOIN portal_users p ON p.email_id = s.email_id
                          WHERE s.account_id = a.id AND s.login AND p.activated_at IS NOT NULL
                            AND p.password_hash IS NOT NULL) THEN 'activated'
            WHEN EXISTS (SELECT 1 FROM contact_settings s WHERE s.account_id = a.id AND s.login)
            THEN 'pending_activation' ELSE 'not_activated' END AS status,
       EXISTS (SELECT 1 FROM contact_settings s WHERE s.account_id = a.id AND s.notify) AS notify,
       EXISTS (SELECT 1 FROM contact_settings s WHERE s.account_id = a.id AND s.email_sync) AS email_sync,
       ARRAY(SELECT t.tag FROM account_tags t WHERE t.account_id = a.id ORDER BY t.tag) AS tags
  FROM a
 ORDER BY a.k, a.id
"""
REFERENCE_FILTERS = {
    "": "",
    "pending_activation": """
   AND EXISTS (SELECT 1 FROM contact_settings s WHERE s.account_id = a.id AND s.login)
   AND NOT EXISTS (SELECT 1 FROM contact_settings s JOIN portal_users p ON p.email_id = s.email_id
                    WHERE s.account_id = a.id AND s.login AND p.activated_at IS NOT NULL
                      AND p.password_hash IS NOT NULL)""",
    "search": """
   AND a.search_text LIKE %(p)s""",
}

SEED_SQL = """
INSERT INTO accounts (id, firm_id, name, type, custom_fields, created_at, updated_at)
SELECT %(base)s + g, %(firm)s,
       initcap((%(last)s::text[])[1 + (g * 7) %% %(nl)s]) || ' ' || g, 'individual', '{}', now(), now()
  FROM generate_series(1, %(n)s) g;
INSERT INTO contacts (id, firm_id, first_name, middle_name, last_name, phones, addresses, custom_fields,
                      created_at, updated_at)
SELECT %(base)s * 2 + g, %(firm)s, initcap((%(first)s::text[])[1 + g %% %(nf)s]), '',
       initcap((%(last)s::text[])[1 + (g * 3) %% %(nl)s]), '[]', '[]', '{}', now(), now()
  FROM generate_series(1, 2 * %(n)s) g;
INSERT INTO contact_emails (id, firm_id, contact_id, address, label, is_primary, created_at)
SELECT %(base)s * 3 + g, %(firm)s, %(base)s * 2 + g, 'c' || g || '@mail' || (g %% 97) || '.example', 'work',
       true, now()
  FROM generate_series(1, 2 * %(n)s) g
UNION ALL
SELECT %(base)s * 3 + 2 * %(n)s + g, %(firm)s, %(base)s * 2 + g, 'c' || g || '@home.example', 'home',
       false, now()
  FROM generate_series(1, 2 * %(n)s) g WHERE g %% 4 = 0;
INSERT INTO account_contacts (account_id, contact_id, firm_id, description, created_at)
SELECT %(base)s + (g + 1) / 2, %(base)s * 2 + g, %(firm)s, '', now() FROM generate_series(1, 2 * %(n)s) g;
INSERT INTO contact_settings (firm_id, account_id, contact_id, email_id, login, notify,
                              notification_preferences, email_sync, auto_save_attachments, signatory,
                              created_at, updated_at)
SELECT %(firm)s, ac.account_id, ac.contact_id, e.id, ac.account_id %% 3 = 0, ac.account_id %% 2 = 0, '{}',
       ac.account_id %% 5 = 0, false, false, now(), now()
  FROM account_contacts ac JOIN contact_emails e ON e.contact_id = ac.contact_id
 WHERE ac.firm_id = %(firm)s;
INSERT INTO portal_users (firm_id, email_id, password_hash, activated_at, session_token, timezone, language,
                          created_at)
SELECT %(firm)s, s.email_id, 'x', now(), md5(s.email_id::text || random()::text), 'UTC', 'en', now()
  FROM contact_settings s WHERE s.firm_id = %(firm)s AND s.account_id %% 6 = 0 AND s.login
 GROUP BY s.email_id;
INSERT INTO account_tags (firm_id, account_id, tag)
SELECT %(firm)s, %(base)s + g, (ARRAY['vip', '1040', 'payroll'])[1 + g %% 3]
  FROM generate_series(1, %(n)s) g WHERE g %% 4 = 0;
"""


def seed(app, conn: psycopg.Connection, n: int) -> tuple[int, str]:
    with app.app_context():
        firm = create_firm(f"Bench firm {n}")
        staff = create_staff_user(firm, email=f"bench{n}@bench.example", password=None, role="admin")
        _, token = issue_api_token(staff)
        commit()
        firm_id = firm.id
        db.session.remove()
    base = firm_id * 10_000_000
    params = {
        "firm": firm_id,
        "n": n,
        "base": base,
        "first": FIRST,
        "last": LAST,
        "nf": len(FIRST),
        "nl": len(LAST),
    }
    for statement in SEED_SQL.split(";\n"):
        if statement.strip():
            conn.execute(statement, params)
    conn.commit()
    with app.app_context():
        search_text.refresh_firm(firm_id)  # what the services keep for rows they write
        commit()
        db.session.remove()
    conn.execute("ANALYZE")
    conn.commit()
    return firm_id, token


def explain(app, client, conn: psycopg.Connection, query: dict, headers: dict, title: str) -> None:
    """Capture the page query Portico sends for one request and print its plan."""
    from sqlalchemy import event

    seen: list[tuple[str, dict]] = []

    def capture(_conn, _cursor, statement, parameters, _context, _many):  # noqa: ANN001
        if "FROM accounts" in statement and "LIMIT" in statement:
            seen.append((statement, parameters))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", capture)
    try:
        client.get("/api/v1/accounts", query_string={**query, "limit": 50}, headers=headers)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    statement, parameters = seen[0]
    plan = conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters).fetchall()
    print(f"\n-- {title}\n" + "\n".join(row[0] for row in plan), flush=True)


def median_ms(fn, repeat: int) -> float:
    for _ in range(3):
        fn()  # warm caches and plans
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument(
        "--explain", action="store_true", help="print EXPLAIN (ANALYZE, BUFFERS) of Portico's page query"
    )
    args = parser.parse_args()
    with own_database("accounts") as url:
        return run(url, args)


def run(url: str, args: argparse.Namespace) -> int:
    app = build_app(url)
    client = app.test_client()
    conn = psycopg.connect(url)
    results: dict[tuple[int, str], tuple[float, float]] = {}
    for n in [int(s) for s in args.sizes.split(",")]:
        started = time.perf_counter()
        firm_id, token = seed(app, conn, n)
        print(f"seeded {n:>7} accounts in {time.perf_counter() - started:5.1f} s", flush=True)
        headers = {"Authorization": f"Bearer {token}"}
        for label, (query, ref_key) in SCENARIOS.items():
            body = client.get("/api/v1/accounts", query_string={**query, "limit": 50}, headers=headers)
            assert body.status_code == 200, body.get_json()
            portico_rows = body.get_json()["items"]
            sql = REFERENCE_SQL.format(where=REFERENCE_FILTERS[ref_key])
            params = {"firm": firm_id, "p": f"%{query.get('q', '')}%"}
            reference_rows = conn.execute(sql, params).fetchall()[:50]
            assert [r["id"] for r in portico_rows] == [str(r[0]) for r in reference_rows], label
            assert [r["status"] for r in portico_rows] == [r[7] for r in reference_rows], label
            portico = median_ms(
                lambda q=query, h=headers: client.get(
                    "/api/v1/accounts", query_string={**q, "limit": 50}, headers=h
                ).get_json(),
                args.repeat,
            )
            reference = median_ms(lambda s=sql, p=params: conn.execute(s, p).fetchall(), args.repeat)
            if args.explain:
                explain(app, client, conn, query, headers, f"{label}, {n:,} accounts")
            results[(n, label)] = (portico, reference)
    conn.close()

    with app.app_context():
        db.engine.dispose()
    figures = [
        time_ratio(f"account list, {label}, {n:,} accounts", portico, reference, "ms", 2.0)
        for (n, label), (portico, reference) in results.items()
    ]
    sizes = sorted({n for n, _ in results})
    if len(sizes) > 1:
        for label in SCENARIOS:
            (p_small, r_small), (p_large, r_large) = results[(sizes[0], label)], results[(sizes[-1], label)]
            figures.append(
                growth(
                    f"account list, {label}, growth {sizes[0]:,} → {sizes[-1]:,}",
                    p_large / p_small,
                    r_large / r_small,
                    1.5,
                    "Portico's growth beside the reference query's own",
                )
            )
    report(figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
