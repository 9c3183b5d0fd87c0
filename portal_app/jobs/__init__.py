"""Background jobs: plain functions that take ids; the queue itself is ``portal_app.queue``."""
