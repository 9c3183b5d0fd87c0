"""gunicorn settings for production: `gunicorn -c gunicorn.conf.py wsgi:app`.

Workers follow the machine: WEB_CONCURRENCY if set, else one per core plus one. The worker model
is `sync` by default, chosen from `make bench` (portal home on 2 cores: sync and gthread were
within a few percent of each other, and sync is the simpler model). Run it behind a proxy that
buffers slow clients (nginx, a load balancer), with PROXY_HOPS set (README); GUNICORN_THREADS > 1
switches to gthread for deployments without such a proxy.
"""

import logging
import os

from portal_app.redact import RedactTokens

workers = int(os.environ.get("WEB_CONCURRENCY") or (os.cpu_count() or 1) + 1)
threads = int(os.environ.get("GUNICORN_THREADS") or 1)
worker_class = "gthread" if threads > 1 else "sync"
bind = os.environ.get("GUNICORN_BIND") or "127.0.0.1:8000"
accesslog = "-"
errorlog = "-"
# Time, client, request line (token paths redacted), status, bytes, duration in microseconds.
access_log_format = '%(t)s %(h)s "%(r)s" %(s)s %(b)s %(D)sus'


def on_starting(server):  # noqa: ARG001 - gunicorn's hook signature
    logging.getLogger("gunicorn.access").addFilter(RedactTokens())
