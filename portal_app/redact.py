"""Keep emailed tokens out of logs (R-SEC-9): request lines of token pages are redacted in the
development server's access log (werkzeug) and in gunicorn's (see gunicorn.conf.py)."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

# Every route whose path carries an emailed token, in one list; a test walks the app's routes and
# fails on a `<token>` route whose path this list does not redact.
TOKEN_PREFIXES = (
    "/portal/activate/",  # invitations and the activation banner (R-LOG-2, R-NOT-2)
    "/portal/password/reset/",  # password resets (R-LOG-9)
    "/portal/unsubscribe/",  # one-click unsubscribe (R-NOT-8)
    "/portal/link/",  # action links (R-LFA-2)
    "/staff/set-password/",  # a new staff user's set-your-password link
)
TOKEN_PATH = re.compile("(" + "|".join(re.escape(prefix) for prefix in TOKEN_PREFIXES) + r")[^\s/?\"]+")


def redact(text: str) -> str:
    return TOKEN_PATH.sub(r"\1[redacted]", text)


def _redact_value(value: object) -> object:
    return redact(value) if isinstance(value, str) else value


class RedactTokens(logging.Filter):
    """Redact token paths in a record's message and arguments.

    werkzeug logs with positional arguments (a tuple); gunicorn's access log passes one mapping
    of atoms (``%(r)s``, ``%(U)s`` …), which must stay a mapping for its format to work."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, Mapping):
            record.args = {key: _redact_value(value) for key, value in args.items()}
        elif args:
            record.args = tuple(_redact_value(a) for a in args)
        record.msg = redact(str(record.msg))
        return True


# the load-balancer probes and the Prometheus scrape (portal_app/ops.py), counted but never logged
PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class QuietProbes(logging.Filter):
    """Leave load-balancer probes and Prometheus scrapes out of the access log (every few
    seconds, from every balancer, they would drown the requests people made)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        path = args.get("U") if isinstance(args, Mapping) else None
        return path not in PROBE_PATHS


def init_app() -> None:
    for name in ("werkzeug", "gunicorn.access"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())
