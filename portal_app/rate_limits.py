"""Sign-in rate limits that stop guessing, not signing in (R-SEC-3).

Per IP every attempt counts, at a bound a whole office behind one address does not reach. Per
email (or per pending sign-in) only *failed* attempts count, and a success clears that count: a
client who signs in from a desktop, a phone and a tablet in ten minutes is never refused, while
someone guessing a password or a code is stopped after a handful of tries.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import current_app, g, request
from flask.wrappers import Response
from limits import parse

from portal_app.extensions import LIMIT_KEY_PREFIX, limiter


def _succeeded(response: Response) -> bool:
    return response.status_code < 400


def failed_attempts(
    limit_value: Callable[[], str],
    key_func: Callable[[], str],
    *,
    scope: str,
    methods: list[str] | None = None,
) -> Any:
    """A limit that counts only failed answers (status ≥ 400) for ``key_func``'s key, and forgets
    them when an answer succeeds. The key is taken once, before the view runs (a successful
    sign-in clears the session the key may come from)."""

    def key() -> str:
        value = key_func()
        g.setdefault("limit_keys", {})[scope] = value
        return value

    def deduct(response: Response) -> bool:
        if response.status_code in (429, 503):
            return False  # refused by a limit, or the limits' store is down (fail closed)
        if not _succeeded(response):
            return True
        value = g.get("limit_keys", {}).get(scope)
        if value:
            bucket = f"{request.endpoint}:{scope}"  # flask-limiter's scope of a per-route limit
            try:
                limiter.limiter.clear(parse(limit_value()), LIMIT_KEY_PREFIX, value, bucket)
            except Exception:  # a success must not fail because the count could not be cleared
                current_app.logger.warning("could not clear the failed sign-in count", exc_info=True)
        return False

    return limiter.limit(limit_value, key_func=key, scope=scope, methods=methods, deduct_when=deduct)
