"""Keep emailed tokens out of logs (R-SEC-9): request lines of token pages are redacted in the
development server's access log (werkzeug) and in gunicorn's (see gunicorn.conf.py)."""

from __future__ import annotations

import logging
import re

TOKEN_PATH = re.compile(r"(/portal/(?:activate|password/reset)/)[^\s/?\"]+")


def redact(text: str) -> str:
    return TOKEN_PATH.sub(r"\1[redacted]", text)


class RedactTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        record.msg = redact(str(record.msg))
        return True


def init_app() -> None:
    for name in ("werkzeug", "gunicorn.access"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())
