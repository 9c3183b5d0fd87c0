"""Development-only pages: the mail viewer at /dev/mail (not registered in production)."""

from __future__ import annotations

import re
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

from flask import Blueprint, abort, render_template

from portal_app.mail.transport import dev_mail_dir

bp = Blueprint("dev", __name__, url_prefix="/dev")

_NAME = re.compile(r"^[0-9T]+\.eml$")


def _read(path) -> EmailMessage:  # type: ignore[no-untyped-def]
    return BytesParser(policy=policy.default).parsebytes(path.read_bytes())  # type: ignore[return-value]


@bp.get("/mail")
def mail_index() -> str:
    folder = dev_mail_dir()
    files = sorted(folder.glob("*.eml"), reverse=True) if folder.exists() else []
    messages = []
    for path in files[:200]:
        message = _read(path)
        messages.append(
            {"name": path.name, "to": message["To"], "subject": message["Subject"], "date": path.stem}
        )
    return render_template("dev/mail_index.html", messages=messages)


@bp.get("/mail/<name>")
def mail_show(name: str) -> str:
    if not _NAME.match(name):
        abort(404)
    path = dev_mail_dir() / name
    if not path.exists():
        abort(404)
    message = _read(path)
    text_part = message.get_body(("plain",))
    html_part = message.get_body(("html",))
    return render_template(
        "dev/mail_show.html",
        message=message,
        text=text_part.get_content() if text_part else "",
        html=html_part.get_content() if html_part else "",
    )
