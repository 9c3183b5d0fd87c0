"""Flask CLI commands (SPEC §14)."""

from __future__ import annotations

from flask import Flask


def register_commands(app: Flask) -> None:
    from portal_app.cli import admin, jobs

    app.cli.add_command(admin.firm_cli)
    app.cli.add_command(admin.staff_cli)
    app.cli.add_command(admin.demo_cli)
    app.cli.add_command(jobs.outbox_cli)
    app.cli.add_command(jobs.worker_command)
    app.cli.add_command(jobs.cron_command)
    app.cli.add_command(jobs.mail_cli)
