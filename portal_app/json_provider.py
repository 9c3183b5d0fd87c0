"""JSON that the parser refuses is a 400, however it is refused (R-REL-3).

Python's json module raises ``RecursionError`` (not ``ValueError``) for deeply nested input such
as 990 levels of ``[``. Flask turns only ``ValueError`` into a 400, so that input escaped as a
500, even from a rate-limit key function reading an unauthenticated login body. Here every
refusal becomes a ``JSONDecodeError`` (a ``ValueError``), which Flask, webargs and
``get_json(silent=True)`` already handle.
"""

from __future__ import annotations

import json
from typing import Any

from flask.json.provider import DefaultJSONProvider


class SafeJSONProvider(DefaultJSONProvider):
    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            return super().loads(s, **kwargs)
        except RecursionError:
            raise json.JSONDecodeError("JSON nested too deeply", "", 0) from None
