"""What `make topology` drives through nginx: portal sign-ins by real clients, and the staff API's
bulk updates (one inviting 10 000 clients, one changing 5 000 accounts); and the seed they need."""

from __future__ import annotations

import http.client
import json
import re
import ssl
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from email import message_from_bytes
from email.utils import parseaddr
from typing import Any

import psycopg

CLIENT_PASSWORD = "topology client password 2026"
CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"')

# Each statement reads its parameters once, from ``p``: accounts tagged by what the run does to
# them, one contact with one email each, and the contact settings that link them.
PARAMS = "WITH p AS (SELECT %(tag)s::text AS tag, %(firm)s::bigint AS firm) "
SEED = [
    "INSERT INTO accounts (firm_id, name, type, custom_fields, search_text, created_at, updated_at)"
    " SELECT p.firm, p.tag || ' client ' || g, 'individual', '{}', p.tag || ' client ' || g, now(), now()"
    " FROM p, generate_series(1, %(n)s) g",
    "INSERT INTO account_tags (account_id, tag, firm_id) SELECT a.id, p.tag, p.firm"
    " FROM p JOIN accounts a ON a.firm_id = p.firm AND a.name LIKE p.tag || ' client %%'",
    "INSERT INTO contacts (firm_id, first_name, middle_name, last_name, phones, addresses, custom_fields,"
    " created_at, updated_at) SELECT p.firm, 'Client', '', p.tag || ' ' || t.account_id, '[]', '[]', '{}',"
    " now(), now() FROM p JOIN account_tags t ON t.tag = p.tag AND t.firm_id = p.firm",
    "INSERT INTO contact_emails (firm_id, contact_id, address, label, is_primary, created_at)"
    " SELECT p.firm, c.id, p.tag || c.id || '@clients.example', '', true, now()"
    " FROM p JOIN contacts c ON c.firm_id = p.firm AND c.last_name LIKE p.tag || ' %%'",
    "INSERT INTO account_contacts (account_id, contact_id, firm_id, description, created_at)"
    " SELECT split_part(c.last_name, ' ', 2)::bigint, c.id, p.firm, '', now()"
    " FROM p JOIN contacts c ON c.firm_id = p.firm AND c.last_name LIKE p.tag || ' %%'",
    "INSERT INTO contact_settings (firm_id, account_id, contact_id, email_id, login, notify,"
    " notification_preferences, email_sync, auto_save_attachments, signatory, created_at, updated_at)"
    " SELECT p.firm, ac.account_id, ac.contact_id, e.id, %(login)s, false, '{}', false, false, false,"
    " now(), now() FROM p JOIN account_tags t ON t.tag = p.tag AND t.firm_id = p.firm"
    " JOIN account_contacts ac ON ac.account_id = t.account_id"
    " JOIN contact_emails e ON e.contact_id = ac.contact_id",
]


def seed(url: str, firm_id: int, tag: str, count: int, *, login: bool = False) -> None:
    with psycopg.connect(url, prepare_threshold=None) as conn:
        for statement in SEED:
            conn.execute(PARAMS + statement, {"firm": firm_id, "tag": tag, "n": count, "login": login})


def seed_portal_users(url: str, firm_id: int, tag: str) -> list[str]:
    """Activated portal logins for the accounts tagged ``tag`` (already seeded with login on)."""
    from portal_app.passwords import hash_password

    password_hash = hash_password(CLIENT_PASSWORD)
    with psycopg.connect(url, prepare_threshold=None) as conn:
        conn.execute(
            "INSERT INTO portal_users (firm_id, email_id, password_hash, activated_at, session_token,"
            " timezone, created_at) SELECT %(firm)s, e.id, %(hash)s, now(), md5(random()::text || e.id),"
            " 'UTC', now() FROM contact_emails e"
            " WHERE e.firm_id = %(firm)s AND e.address LIKE %(tag)s || '%%'",
            {"firm": firm_id, "hash": password_hash, "tag": tag},
        )
        rows = conn.execute(
            "SELECT address FROM contact_emails WHERE firm_id = %s AND address LIKE %s ORDER BY id",
            (firm_id, f"{tag}%"),
        ).fetchall()
    return [row[0] for row in rows]


@dataclass
class Site:
    """nginx's TLS address, spoken to as https://localhost:<port> (certificate not checked)."""

    address: str
    port: int

    @property
    def origin(self) -> str:
        return f"https://localhost:{self.port}"

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes, list[str]]:
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        conn = http.client.HTTPSConnection(self.address, self.port, context=context, timeout=60)
        try:
            conn.request(
                method, path, body=body, headers={"Host": f"localhost:{self.port}", **(headers or {})}
            )
            response = conn.getresponse()
            data = response.read()
            return response.status, dict(response.headers), data, response.headers.get_all("Set-Cookie") or []
        finally:
            conn.close()

    def api(self, token: str, method: str, path: str, payload: Any = None) -> tuple[int, Any]:
        body = json.dumps(payload).encode() if payload is not None else None
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        status, _, data, _ = self.request(method, f"/api/v1{path}", body, headers)
        return status, json.loads(data) if data[:1] in (b"{", b"[") else None


def _cookies(set_cookies: list[str], jar: dict[str, str]) -> str:
    for raw in set_cookies:
        name, _, rest = raw.partition("=")
        jar[name] = rest.split(";", 1)[0]
    return "; ".join(f"{k}={v}" for k, v in jar.items())


def sign_in(site: Site, email: str) -> tuple[list[int], bool]:
    """A client opens the login page, signs in and lands on a portal page: the statuses seen, and
    whether they ended signed in."""
    jar: dict[str, str] = {}
    status, _, page, cookies = site.request("GET", "/portal/login")
    statuses = [status]
    match = CSRF.search(page.decode(errors="replace"))
    if status != 200 or match is None:
        return statuses, False
    form = urllib.parse.urlencode(
        {"csrf_token": match.group(1) or match.group(2), "email": email, "password": CLIENT_PASSWORD}
    ).encode()
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Cookie": _cookies(cookies, jar),
        "Origin": site.origin,
        "Referer": f"{site.origin}/portal/login",
    }
    status, answer, _, cookies = site.request("POST", "/portal/login", form, headers)
    statuses.append(status)
    path = "/portal/login"
    for _ in range(3):  # the home page may send the client on to their account
        if status not in (302, 303):
            break
        path = urllib.parse.urlsplit(answer.get("Location", "/portal")).path
        status, answer, _, cookies = site.request("GET", path, headers={"Cookie": _cookies(cookies, jar)})
        statuses.append(status)
    return statuses, status == 200 and not path.startswith("/portal/login")


@dataclass
class SignInLoad:
    """``clients`` threads signing in over and over until stopped; what each request answered."""

    site: Site
    emails: list[str]
    clients: int = 6
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    sign_ins: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _run(self, offset: int) -> None:
        n = offset
        while not self._stop.is_set():
            email = self.emails[n % len(self.emails)]
            n += self.clients
            try:
                seen, signed_in = sign_in(self.site, email)
            except (OSError, http.client.HTTPException) as exc:
                with self._lock:
                    self.errors[type(exc).__name__] += 1
                continue
            with self._lock:
                self.statuses.update(seen)
                self.sign_ins += signed_in

    def start(self) -> SignInLoad:
        self._threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(self.clients)
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=90)

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500) + sum(self.errors.values())

    @property
    def requests(self) -> int:
        return sum(self.statuses.values()) + sum(self.errors.values())


def sign_in_rate(site: Site, emails: list[str], seconds: float) -> float:
    load = SignInLoad(site, emails).start()
    time.sleep(seconds)
    load.stop()
    return load.sign_ins / seconds


def delivered(mail_file: str, prefix: str) -> Counter[str]:
    """Recipients the SMTP sink received, with how many times each, for addresses ``prefix``…"""
    from bench._smtp_sink import read_messages  # noqa: PLC0415 - the sink's own reader

    counts: Counter[str] = Counter()
    for raw in read_messages(mail_file):
        to = parseaddr(message_from_bytes(raw)["To"] or "")[1]
        if to.startswith(prefix):
            counts[to] += 1
    return counts
