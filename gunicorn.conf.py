"""gunicorn settings for production: `gunicorn -c gunicorn.conf.py wsgi:app`."""

import logging

from portal_app.redact import RedactTokens

workers = 2
threads = 4
accesslog = "-"


def on_starting(server):  # noqa: ARG001 - gunicorn's hook signature
    logging.getLogger("gunicorn.access").addFilter(RedactTokens())
