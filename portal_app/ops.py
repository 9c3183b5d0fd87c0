"""Probes and metrics for whoever runs Portico (R-OPS-4).

``/healthz`` answers from the process alone (is it serving?); ``/readyz`` asks PostgreSQL and
Redis, each within a second, and names the one that failed (should it get traffic?); ``/metrics``
is the Prometheus text format behind ``METRICS_TOKEN``. None of them touches a session, a CSRF
token or a rate limit, and the logs leave them out (``redact.PROBE_PATHS``), so a load balancer
polling every few seconds does not drown them.
"""

from __future__ import annotations

import hmac
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as Timeout
from typing import Any

from flask import Blueprint, Response, abort, current_app, jsonify, request

from portal_app.extensions import db, limiter

bp = Blueprint("ops", __name__)
CHECK_SECONDS = 1.0
_checks = ThreadPoolExecutor(max_workers=4, thread_name_prefix="readyz")


@bp.get("/healthz")
@limiter.exempt
def healthz() -> Response:
    return jsonify({"status": "ok"})


def _database(app: Any) -> None:
    from sqlalchemy import text

    with app.app_context():
        try:
            db.session.execute(text("SELECT 1"))
        finally:
            db.session.remove()


def _redis(app: Any) -> None:
    from redis import Redis

    client = Redis.from_url(
        app.config["REDIS_URL"], socket_connect_timeout=CHECK_SECONDS, socket_timeout=CHECK_SECONDS
    )
    try:
        client.ping()
    finally:
        client.close()


@bp.get("/readyz")
@limiter.exempt
def readyz() -> tuple[Response, int]:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    engine_name = (
        "postgresql" if app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql") else "database"
    )
    checks = {engine_name: _database}
    if app.config["REDIS_URL"]:
        checks["redis"] = _redis
    running = {name: _checks.submit(check, app) for name, check in checks.items()}
    answers: dict[str, str] = {}
    for name, future in running.items():
        try:
            future.result(timeout=CHECK_SECONDS)
            answers[name] = "ok"
        except Timeout:
            answers[name] = f"no answer within {CHECK_SECONDS:g} s"
        except Exception as exc:
            answers[name] = f"failed: {type(exc).__name__}"
    failed = sorted(name for name, answer in answers.items() if answer != "ok")
    status = 503 if failed else 200
    return jsonify({"status": "unavailable" if failed else "ok", "failed": failed, "checks": answers}), status


@bp.get("/metrics")
@limiter.exempt
def metrics() -> Response:
    token = current_app.config["METRICS_TOKEN"]
    if not token:
        abort(404)  # not configured: there is no metrics endpoint
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        return Response("metrics need the bearer METRICS_TOKEN\n", status=401, mimetype="text/plain")
    from prometheus_client import CONTENT_TYPE_LATEST

    from portal_app.metrics import exposition

    return Response(exposition(current_app._get_current_object()), mimetype=CONTENT_TYPE_LATEST)  # type: ignore[attr-defined]
