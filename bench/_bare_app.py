"""The reference for the portal-home benchmark: a bare Flask JSON endpoint, served by the same
gunicorn settings as Portico (`gunicorn -c gunicorn.conf.py bench._bare_app:app`)."""

from flask import Flask

app = Flask(__name__)


@app.get("/")
def index() -> dict[str, object]:
    return {"ok": True, "accounts": 5, "todos": 20}
