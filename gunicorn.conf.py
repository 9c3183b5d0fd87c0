"""gunicorn settings for production: `gunicorn -c gunicorn.conf.py wsgi:app`.

Workers follow the machine: WEB_CONCURRENCY if set, else one per core plus one. The worker model
is `sync` by default, chosen from `make bench` (portal home on 2 cores: sync and gthread were
within a few percent of each other, and sync is the simpler model). Run it behind a proxy that
buffers slow clients (nginx, a load balancer), with PROXY_HOPS set (README); GUNICORN_THREADS > 1
switches to gthread for deployments without such a proxy.

Metrics (R-OPS-4): with PROMETHEUS_MULTIPROC_DIR set, every worker (and every rq worker of the
host) writes its values there and a worker that exits is marked dead; empty the directory when
the host boots, not when gunicorn restarts (the rq workers write there too). Logs
(R-OPS-5): with LOG_FORMAT=json the app writes one JSON line per request itself, so gunicorn's
plain access log is off; otherwise it logs one plain line per request, probes left out.
"""

import logging
import os

from portal_app.redact import QuietProbes, RedactTokens

workers = int(os.environ.get("WEB_CONCURRENCY") or (os.cpu_count() or 1) + 1)
threads = int(os.environ.get("GUNICORN_THREADS") or 1)
worker_class = "gthread" if threads > 1 else "sync"
bind = os.environ.get("GUNICORN_BIND") or "127.0.0.1:8000"
accesslog = None if os.environ.get("LOG_FORMAT", "").strip().lower() == "json" else "-"
errorlog = "-"
# Time, client, request line (token paths redacted), status, bytes, duration in microseconds.
access_log_format = '%(t)s %(h)s "%(r)s" %(s)s %(b)s %(D)sus'
# SIGTERM: in-flight requests finish within this many seconds
graceful_timeout = 30


def on_starting(server):  # noqa: ARG001 - gunicorn's hook signature
    access = logging.getLogger("gunicorn.access")
    access.addFilter(QuietProbes())
    access.addFilter(RedactTokens())


def child_exit(server, worker):  # noqa: ARG001 - gunicorn's hook signature
    from portal_app.metrics import mark_process_dead

    mark_process_dead(worker.pid)
