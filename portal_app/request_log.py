"""Request ids, request metrics and JSON log lines (R-OPS-4, R-OPS-5).

Every request gets an id: the ``X-Request-ID`` a trusted proxy sent (only with ``PROXY_HOPS``:
otherwise anyone could choose the id their requests are logged under), else a new one. It is
returned in the response, written on the request's log line, and handed to every job the request
enqueues (rq job meta), whose own log line carries it too. With ``LOG_FORMAT=json`` there is one
JSON line per request (logger ``portico.request``) and per job (``portico.job``); paths are
redacted as the access log's are (R-SEC-9). Probes (/healthz, /readyz, /metrics) are counted in
the metrics but not logged.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from typing import Any

from flask import Flask, g, request
from flask.wrappers import Response

from portal_app import metrics
from portal_app.redact import PROBE_PATHS, redact

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

request_log = logging.getLogger("portico.request")
job_log = logging.getLogger("portico.job")


class JsonLines(logging.Formatter):
    """The record's message is already a JSON object; other records become one."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if message.startswith("{"):
            return message
        return json.dumps(
            {
                "time": self.formatTime(record),
                "level": record.levelname,
                "logger": record.name,
                "message": message,
            }
        )


def configure_logging(app: Flask) -> None:
    if app.config["LOG_FORMAT"] != "json":
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines())
    for logger in (request_log, job_log):
        if not any(isinstance(h.formatter, JsonLines) for h in logger.handlers):
            logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def current_request_id() -> str | None:
    return g.get("request_id")


def _incoming_id(app: Flask) -> str:
    given = request.headers.get(REQUEST_ID_HEADER, "")
    if app.config["PROXY_HOPS"] and _SANE_ID.match(given):
        return given
    return uuid.uuid4().hex


def _who() -> dict[str, Any]:
    """The caller, as far as this request already knows it (never a query of its own)."""
    staff = g.get("staff")
    if staff is not None:
        return {"firm_id": staff.firm_id, "staff_user_id": staff.id}
    user = g.get("_login_user")  # loaded by Flask-Login during the request, if it was
    if user is not None and getattr(user, "is_authenticated", False):
        kind = "staff_user_id" if type(user).__name__ == "StaffUser" else "portal_user_id"
        return {"firm_id": getattr(user, "firm_id", None), kind: user.id}
    return {}


def init_app(app: Flask) -> None:
    configure_logging(app)
    json_lines = app.config["LOG_FORMAT"] == "json"

    @app.before_request
    def start_request() -> None:
        g.request_started = time.perf_counter()
        g.request_id = _incoming_id(app)

    @app.after_request
    def finish_request(response: Response) -> Response:
        request_id = g.get("request_id")
        if request_id:
            response.headers[REQUEST_ID_HEADER] = request_id
        elapsed = time.perf_counter() - g.get("request_started", time.perf_counter())
        endpoint = request.endpoint or "none"
        metrics.REQUESTS.labels(endpoint, request.method, str(response.status_code)).inc()
        metrics.LATENCY.labels(endpoint).observe(elapsed)
        if response.status_code == 429:
            metrics.RATE_LIMITED.labels(endpoint).inc()
        if json_lines and request.path not in PROBE_PATHS:
            request_log.info(
                json.dumps(
                    {
                        "kind": "request",
                        "method": request.method,
                        "path": redact(request.path),
                        "status": response.status_code,
                        "duration_ms": round(elapsed * 1000, 2),
                        "request_id": request_id,
                        **_who(),
                    }
                )
            )
        return response


def log_job(job_name: str, job_id: str, duration: float, outcome: str, request_id: str | None) -> None:
    """A worker's line for one job (and its metric)."""
    metrics.JOB_RUNS.labels(job_name, outcome).inc()
    if job_log.handlers:
        job_log.info(
            json.dumps(
                {
                    "kind": "job",
                    "job": job_name,
                    "id": job_id,
                    "duration_ms": round(duration * 1000, 2),
                    "outcome": outcome,
                    "request_id": request_id,
                }
            )
        )
