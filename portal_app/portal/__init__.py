"""The client portal, one module per thing a client does: ``sign_in`` (password, code, sign
out), ``links`` (activation, a new invitation, the password reset), ``accounts`` (the home page,
the switcher, unsubscribing), ``todo_views`` (sign, approve, mark done), ``documents`` (the Documents
page, uploads), ``requests`` (client requests), ``photos`` (the account photo), ``profile``
(settings, password, two factors), ``passkeys`` (signing in with one, adding and removing
them), ``action_links`` (acting from an email without logging in).
``base`` is what every page shares.

The views hold forms, pages and the Flask session; the rules they apply are services. The
request commits once, at the end (``portal_app.transaction``).
"""

from __future__ import annotations

from flask import Blueprint


def register_routes() -> Blueprint:
    """The blueprint with every portal route: importing the view modules adds them (their
    decorators), from the factory; ``base`` holds the blueprint itself."""
    from portal_app.portal import (  # noqa: F401
        accounts,
        action_links,
        documents,
        links,
        passkeys,
        photos,
        profile,
        requests,
        sign_in,
        todo_views,
    )
    from portal_app.portal.base import bp

    return bp
