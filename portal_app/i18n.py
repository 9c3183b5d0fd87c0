"""Languages of the client portal and its emails (Flask-Babel). Staff-facing API text stays English.

The portal's language is the user's own setting, else a hint the page set (an invitation's
language on its activation page), else the browser's Accept-Language, else English. Emails are
rendered in a job, without a request: they say which language they want with `force_locale`.
"""

from __future__ import annotations

from flask import Flask, g, has_request_context, request
from flask_login import current_user

from portal_app.extensions import babel

# Each language under its own name, as a language menu shows it.
LANGUAGES = {"en": "English", "de": "Deutsch"}
DEFAULT_LANGUAGE = "en"


def known_language(code: str | None) -> str | None:
    return code if code in LANGUAGES else None


def select_locale() -> str:
    if not has_request_context():
        return DEFAULT_LANGUAGE
    user = current_user._get_current_object() if current_user and current_user.is_authenticated else None
    chosen = known_language(getattr(user, "language", None)) or known_language(g.get("language_hint"))
    if chosen:
        return chosen
    return request.accept_languages.best_match(LANGUAGES) or DEFAULT_LANGUAGE


def select_timezone() -> str | None:
    """Times on portal pages are in the user's own time zone (profile), else UTC."""
    if not has_request_context() or not (current_user and current_user.is_authenticated):
        return None
    return getattr(current_user, "timezone", None)


def init_app(app: Flask) -> None:
    babel.init_app(app, locale_selector=select_locale, timezone_selector=select_timezone)

    @app.context_processor
    def html_lang() -> dict[str, str]:
        from flask_babel import get_locale

        return {"html_lang": str(get_locale() or DEFAULT_LANGUAGE)}
