"""Languages of the client portal and its emails (Flask-Babel). Staff-facing API text stays English.

The portal's language is the user's own setting, else a hint the page set (an invitation's
language on its activation page), else the browser's Accept-Language, else English. Emails are
rendered in a job, without a request: they say which language they want with `force_locale`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask, g, has_request_context, request
from flask_babel import force_locale, get_locale, get_translations
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
    """Times on portal pages are in the user's own time zone (profile), else UTC. Emails say
    UTC whoever's request happens to render them (in-process jobs)."""
    if not has_request_context() or g.get("rendering_email") or not current_user.is_authenticated:
        return None
    from portal_app.models import PortalUser

    user = current_user._get_current_object()
    return user.timezone if isinstance(user, PortalUser) else None


@contextmanager
def email_locale(language: str) -> Iterator[None]:
    """Render an email in the recipient's language, with times in UTC, inside or outside a request."""
    rendering = g.get("rendering_email")
    babel_state = g.get("_flask_babel")  # flask-babel caches the page's time zone here
    cached_zone = getattr(babel_state, "babel_tzinfo", None)
    g.rendering_email = True
    if babel_state is not None:
        babel_state.babel_tzinfo = None
    try:
        with force_locale(language):
            yield
    finally:
        g.rendering_email = rendering
        if babel_state is not None:
            babel_state.babel_tzinfo = cached_zone


def init_app(app: Flask) -> None:
    babel.init_app(app, locale_selector=select_locale, timezone_selector=select_timezone)

    @app.context_processor
    def page_language() -> dict[str, Any]:
        """The page's language, and the template's gettext bound to its catalogue: a page's
        dozens of strings are looked up in the catalogue directly, not each through
        Flask-Babel's locale and catalogue lookup (the portal home has about fifty)."""
        translations = get_translations()
        bound = _BOUND.get(id(translations))
        if bound is None or bound[0] is not translations:
            bound = (translations, _bind(translations))
            _BOUND[id(translations)] = bound
        return {"html_lang": str(get_locale() or DEFAULT_LANGUAGE), **bound[1]}


# A catalogue's gettext callables, built once per catalogue (one per language and app).
_BOUND: dict[int, tuple[Any, dict[str, Any]]] = {}


def _bind(translations: Any) -> dict[str, Any]:
    """What Jinja's i18n extension installs with ``newstyle=True`` (autoescaping, ``%(name)s``
    formatting), over one catalogue; in the render context it wins over Flask-Babel's globals."""
    from jinja2.ext import _make_new_gettext, _make_new_ngettext, _make_new_npgettext, _make_new_pgettext

    return {
        "gettext": _make_new_gettext(translations.ugettext),
        "ngettext": _make_new_ngettext(translations.ungettext),
        "pgettext": _make_new_pgettext(translations.upgettext),
        "npgettext": _make_new_npgettext(translations.unpgettext),
    }
