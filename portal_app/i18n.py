"""Languages of the client portal (Flask-Babel). Staff-facing API text stays English."""

from __future__ import annotations

from flask import Flask, has_request_context, request
from flask_login import current_user

from portal_app.extensions import babel

LANGUAGES = ("en",)


def select_locale() -> str:
    if not has_request_context():
        return LANGUAGES[0]  # jobs (emails) render in the default language
    user = current_user._get_current_object() if current_user and current_user.is_authenticated else None
    preferred = getattr(user, "language", None)
    if preferred in LANGUAGES:
        return preferred
    return request.accept_languages.best_match(LANGUAGES) or LANGUAGES[0]


def init_app(app: Flask) -> None:
    babel.init_app(app, locale_selector=select_locale)

    @app.context_processor
    def html_lang() -> dict[str, str]:
        from flask_babel import get_locale

        return {"html_lang": str(get_locale() or "en")}
