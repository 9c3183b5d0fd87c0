"""Configuration read from the environment (SPEC §1.2)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# Values that appear in tutorials and templates; a production key must be none of them.
DEFAULT_SECRET_KEYS = frozenset(
    {"", "dev", "development", "secret", "changeme", "change-me", "please-change-me", "portico"}
)
MIN_SECRET_KEY_LENGTH = 32


class ConfigError(RuntimeError):
    """The configuration cannot run; the message says what to fix."""


def _bool(value: str | None, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "")
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a whole number, not {raw!r}") from exc


def _non_negative(env: Mapping[str, str], name: str, default: int) -> int:
    value = _int(env, name, default)
    if value < 0:
        raise ConfigError(f"{name} must be 0 or more, not {value}")
    return value


def normalise_database_url(url: str) -> str:
    """Pick the driver for the plain ``postgresql://`` form (psycopg 3)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def engine_options(url: str) -> dict[str, Any]:
    """The engine's options. On PostgreSQL, psycopg never prepares statements on the server
    (``prepare_threshold=None``): a prepared statement may fall back to PostgreSQL's generic plan
    after five runs, and the account list's search is the same statement for a term in 18 % of the
    accounts and for one email; planned once for the common term, the one-email search scanned
    100 000 accounts (313 ms instead of 4 ms, bench/account_list.py). Each query is planned for its
    own values instead, and a transaction-mode PgBouncer never sees a named statement.

    psycopg runs in autocommit: plain reads go out without BEGIN and COMMIT, and the first write
    opens the transaction (``db_events``, which also swaps a pooled connection the server has
    ended, at checkout and without the round trip of ``pool_pre_ping``)."""
    options: dict[str, Any] = {}
    if url.startswith("postgresql+psycopg://"):
        options["connect_args"] = {"prepare_threshold": None}
        options["isolation_level"] = "AUTOCOMMIT"
    return options


def replica_engine(url: str) -> dict[str, Any]:
    """The replica's engine: the primary's options, and a short connect timeout, since a replica
    that does not answer falls back to the primary and must not hold the request up."""
    options = engine_options(url)
    options["connect_args"] = {
        **options.get("connect_args", {}),
        "connect_timeout": 2,
        "application_name": "portico-replica-reads",
    }
    return {"url": url, **options}


def _development_secret_key(instance_path: Path) -> str:
    """Return a per-checkout key kept under instance/, so dev sessions survive restarts."""
    path = instance_path / "secret_key"
    if path.exists():
        return path.read_text().strip()
    instance_path.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path.write_text(key)
    path.chmod(0o600)
    return key


def load_config(instance_path: str, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Build the Flask config from environment variables; refuse unsafe production setups."""
    env = os.environ if env is None else env
    portico_env = env.get("PORTICO_ENV", "production").strip().lower() or "production"
    if portico_env not in {"development", "production"}:
        raise ConfigError(f"PORTICO_ENV must be 'development' or 'production', not {portico_env!r}")
    development = portico_env == "development"
    instance = Path(instance_path)

    secret_key = env.get("SECRET_KEY", "")
    if not development:
        if secret_key.strip().lower() in DEFAULT_SECRET_KEYS:
            raise ConfigError(
                "SECRET_KEY is missing or a well-known default; set it to a long random value "
                "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(48))')."
            )
        if len(secret_key) < MIN_SECRET_KEY_LENGTH:
            raise ConfigError(
                f"SECRET_KEY is too short ({len(secret_key)} characters); "
                f"use at least {MIN_SECRET_KEY_LENGTH} random characters."
            )
    elif not secret_key:
        secret_key = _development_secret_key(instance)

    database_url = env.get("DATABASE_URL", "")
    if not database_url:
        if not development:
            raise ConfigError("DATABASE_URL is required in production (postgresql://user@host/db).")
        database_url = f"sqlite:///{instance / 'portico.db'}"
    redis_url = env.get("REDIS_URL", "") or None
    if not development and redis_url is None:
        raise ConfigError("REDIS_URL is required in production (jobs and rate limits use it).")

    pool_mode = _pool_mode(env)
    direct_url = env.get("DATABASE_DIRECT_URL", "") or (database_url if pool_mode == "session" else "")
    replica_url = normalise_database_url(env.get("DATABASE_REPLICA_URL", "").strip())
    if replica_url and not replica_url.startswith("postgresql"):
        raise ConfigError("DATABASE_REPLICA_URL must be a PostgreSQL URL (a streaming replica).")
    fallbacks = [k.strip() for k in env.get("SECRET_KEY_FALLBACKS", "").split(",") if k.strip()]
    session_hours = _int(env, "SESSION_MAX_AGE_HOURS", 8)
    return {
        "PORTICO_ENV": portico_env,
        "DEVELOPMENT": development,
        "SECRET_KEY": secret_key,
        "SECRET_KEY_FALLBACKS": fallbacks,
        "SQLALCHEMY_DATABASE_URI": normalise_database_url(database_url),
        "SQLALCHEMY_ENGINE_OPTIONS": engine_options(normalise_database_url(database_url)),
        # R-OPS-2: "transaction" behind a transaction-mode PgBouncer (nothing session-scoped on
        # DATABASE_URL); the cron's lease, which needs a session, uses DATABASE_DIRECT_URL.
        "DATABASE_POOL_MODE": pool_mode,
        "DATABASE_DIRECT_URL": normalise_database_url(direct_url) if direct_url else "",
        # R-OPS-3: a streaming replica for the account list, search and the overview
        # (portal_app/replica.py); a bind no model names, so only those reads reach it.
        "SQLALCHEMY_BINDS": {"replica": replica_engine(replica_url)} if replica_url else {},
        "READ_YOUR_WRITES_SECONDS": _int(env, "READ_YOUR_WRITES_SECONDS", 10),
        "REDIS_URL": redis_url,
        "MAIL_URL": env.get("MAIL_URL", "") or None,
        "MAIL_FROM": env.get("MAIL_FROM", "") or "Portico <no-reply@portico.localhost>",
        "BASE_URL": (env.get("BASE_URL", "") or "http://127.0.0.1:5000").rstrip("/"),
        "INVITATION_MAX_AGE_DAYS": _int(env, "INVITATION_MAX_AGE_DAYS", 7),
        "ACTION_LINK_MAX_AGE_DAYS": _int(env, "ACTION_LINK_MAX_AGE_DAYS", 14),
        "PASSWORD_RESET_MAX_AGE_MINUTES": _int(env, "PASSWORD_RESET_MAX_AGE_MINUTES", 60),
        "SESSION_MAX_AGE_HOURS": session_hours,
        "SESSION_IDLE_MINUTES": _int(env, "SESSION_IDLE_MINUTES", 60),
        "MAIL_MAX_ATTEMPTS": _int(env, "MAIL_MAX_ATTEMPTS", 5),
        # Accounts a bulk job changes per transaction (smaller: finer progress, more commits).
        "BULK_BATCH_ACCOUNTS": max(1, _int(env, "BULK_BATCH_ACCOUNTS", 500)),
        # Rows an import job applies per transaction.
        "IMPORT_BATCH_ROWS": max(1, _int(env, "IMPORT_BATCH_ROWS", 1000)),
        # Jobs run in this process (same job functions) unless a Redis queue is configured.
        "JOBS_INLINE": redis_url is None,
        "DEV_MAIL_DIR": str(instance / "mail"),
        # Files by SHA-256 (uploaded imports; later documents); shared by web and workers.
        "DOCUMENTS_DIR": env.get("DOCUMENTS_DIR", "") or str(instance / "documents"),
        "MAX_CONTENT_LENGTH": 10 * 1024 * 1024,
        # R-DOC-2: each uploaded document (client or staff) up to this many MiB, streamed to disk
        "UPLOAD_MAX_MB": max(1, _int(env, "UPLOAD_MAX_MB", 2048)),
        # files a client may pick in one form, and uploads (forms) per user per hour
        "UPLOAD_MAX_FILES": max(1, _int(env, "UPLOAD_MAX_FILES", 50)),
        "LIMIT_UPLOADS": env.get("LIMIT_UPLOADS", "") or "200 per hour",
        # R-DOC-4: clamd (tcp://host:3310 or unix:///run/clamav/clamd.ctl); unset: not scanned
        "CLAMAV_URL": env.get("CLAMAV_URL", "") or None,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": not development,
        "SESSION_COOKIE_NAME": "portico_session" if development else "__Host-portico_session",
        "PERMANENT_SESSION_LIFETIME": session_hours * 3600,
        # The cookie lives as long as the absolute timeout; it is re-sent only when the session
        # changes (login, the idle clock), not signed afresh on every response.
        "SESSION_REFRESH_EACH_REQUEST": False,
        "WTF_CSRF_CHECK_DEFAULT": False,
        "WTF_CSRF_TIME_LIMIT": None,
        "SQLALCHEMY_TRACK_MODIFICATIONS": False,
        # Rate limits (R-SEC-3): Redis when configured, process memory only in the embedded
        # default. Errors are not swallowed: with Redis down the limited forms refuse (503).
        "RATELIMIT_STORAGE_URI": redis_url or "memory://",
        "RATELIMIT_HEADERS_ENABLED": True,
        "RATELIMIT_SWALLOW_ERRORS": False,
        "LIMIT_PER_IP": env.get("LIMIT_PER_IP", "") or "100 per 10 minutes",
        "LIMIT_PER_EMAIL": env.get("LIMIT_PER_EMAIL", "") or "6 per 10 minutes",
        "LIMIT_NEW_INVITATION": env.get("LIMIT_NEW_INVITATION", "") or "3 per day",
        # R-LFA-4: requests to one emailed action link (its page, downloads, answers, uploads)
        "LIMIT_PER_LINK": env.get("LIMIT_PER_LINK", "") or "60 per 10 minutes",
        # Behind a TLS-terminating proxy: how many proxies in front of us set X-Forwarded-*
        # (0 = none; the headers are then ignored, so nobody can spoof scheme or host).
        "PROXY_HOPS": _non_negative(env, "PROXY_HOPS", 0),
        # R-SYN-4: a mailbox the poller reads (imaps://user:pass@host[:port]/INBOX, or imap:// for
        # a local server) and the firm it belongs to (needed when several firms are served)
        "INBOUND_IMAP_URL": env.get("INBOUND_IMAP_URL", "") or None,
        "INBOUND_IMAP_FIRM": env.get("INBOUND_IMAP_FIRM", "") or None,
        # R-OPS-4/5: /metrics only with this bearer token (no token: no endpoint); log lines as
        # JSON (one per request and per job) or plain text
        "METRICS_TOKEN": env.get("METRICS_TOKEN", "") or None,
        "LOG_FORMAT": _log_format(env),
    }


POOL_MODES = ("session", "transaction")


def _pool_mode(env: Mapping[str, str]) -> str:
    value = (env.get("DATABASE_POOL_MODE", "") or "session").strip().lower()
    if value not in POOL_MODES:
        raise ConfigError(f"DATABASE_POOL_MODE must be session or transaction, not {value!r}.")
    return value


def _log_format(env: Mapping[str, str]) -> str:
    value = (env.get("LOG_FORMAT", "") or "text").strip().lower()
    if value not in ("text", "json"):
        raise ConfigError(f"LOG_FORMAT must be text or json, not {value!r}.")
    return value
