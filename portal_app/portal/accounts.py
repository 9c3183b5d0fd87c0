"""A client's accounts: the home page of the current account with its to-dos, the account
switcher, and the one-click unsubscribe page. Every request re-checks which accounts the client
may see (R-POR-3, R-LOG-7)."""

from __future__ import annotations

from typing import Any

import flask_babel
from flask import Response, abort, g, make_response, redirect, render_template, request, url_for
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from portal_app.extensions import csrf, db
from portal_app.models import Account, Firm, PortalUser, Todo, utcnow
from portal_app.portal.base import bp, client_page, limit_ip, link_problem_page, refuse_expired_form
from portal_app.portal.forms import ConfirmForm
from portal_app.services import client_accounts, notifications, todos
from portal_app.services import unsubscribe as unsubscribe_links
from portal_app.services.validation import parse_id

KIND_LABELS = {
    "documents_upload": _l("Documents to upload"),
    "documents_signature": _l("Documents to sign"),
    "documents_approval": _l("Documents to approve"),
    "messages_tasks": _l("Messages and tasks"),
    "proposals": _l("Proposals"),
    "organizers": _l("Organizers"),
    "invoices_payments": _l("Invoices and payments"),
    "client_requests": _l("Requests"),
    "transactions": _l("Transactions"),
}


@bp.get("/portal/")
@client_page
def home(user: PortalUser) -> Any:
    """The current account's home; every request re-checks access (R-POR-3, R-LOG-7)."""
    accounts = client_accounts.accessible_accounts(user)
    if not accounts:
        return render_template("portal/no_access.html", form=ConfirmForm()), 403
    current = next((a for a in accounts if a.id == user.current_account_id), accounts[0])
    return redirect(url_for("portal.account_home", account_id=current.id))


@bp.get("/portal/a/<int:account_id>/")
@client_page
def account_home(user: PortalUser, account_id: int) -> Any:
    with_counts = client_accounts.accounts_with_open_counts(user)
    accounts = [account for account, _count, _signs in with_counts]
    current = next((a for a in accounts if a.id == account_id), None)
    if current is None:
        if not accounts:
            return render_template("portal/no_access.html", form=ConfirmForm()), 403
        abort(404)  # never reveal whether the account exists (R-SEC-1)
    if user.current_account_id != current.id:
        user.current_account_id = current.id  # remembered for the next visit; no data changes
    completed = _just_completed(current.id, request.args.get("completed"))
    return render_account(
        user,
        accounts,
        current,
        counts={a.id: count for a, count, _signs in with_counts},
        signatory=next(signs for a, _count, signs in with_counts if a is current),
        completed=completed,
    )


def _just_completed(account_id: int, value: str | None) -> Todo | None:
    """The to-do a redirect after completing one names, to thank for it (only a done one of
    this account)."""
    todo_id = parse_id(value)
    if todo_id is None:
        return None
    return db.session.scalar(
        select(Todo).where(Todo.id == todo_id, Todo.account_id == account_id, Todo.state == "done")
    )


def account_or_404(user: PortalUser, account_id: int) -> tuple[list[Account], Account]:
    """The user's accounts and this one among them; 404 when it is not theirs (R-POR-3)."""
    accounts = client_accounts.accessible_accounts(user)
    current = next((a for a in accounts if a.id == account_id), None)
    if current is None:
        abort(404)
    return accounts, current


@bp.post("/portal/switch")
@client_page
def switch_account(user: PortalUser) -> Any:
    """The account picker without JavaScript: a form POST, then a redirect."""
    form = ConfirmForm()
    if not form.validate_on_submit():
        refuse_expired_form()
    wanted = parse_id(request.form.get("account_id"))
    accounts = client_accounts.accessible_accounts(user)
    current = next((a for a in accounts if a.id == wanted), None)
    if current is None:
        abort(404)
    user.current_account_id = current.id
    if request.headers.get("HX-Request"):
        response = render_account(user, accounts, current)
        response.headers["HX-Push-Url"] = url_for("portal.account_home", account_id=current.id)
        return response
    return redirect(url_for("portal.account_home", account_id=current.id), code=303)


def render_account(
    user: PortalUser,
    accounts: list[Account],
    current: Account,
    *,
    counts: dict[int, int] | None = None,
    signatory: bool | None = None,
    completed: Todo | None = None,
) -> Response:
    if counts is None:
        counts = todos.open_counts([a.id for a in accounts])
    open_rows, done_rows = todos.account_page_todos(current.id)
    items = todos.client_view(user.email_id, current.id, open_rows, signatory=signatory)
    reading = [i.todo.id for i in items if i.action in ("sign", "approve") and i.todo.document_count]
    to_read = todos.documents_of(reading) if reading else {}
    groups: dict[str, list[Any]] = {}
    for item in items:
        groups.setdefault(item.todo.kind, []).append(item)
    firm_name, address = user.firm.name, user.email.address  # loaded with the user
    g.default_firm_name = firm_name  # the layout's name, without a second lookup
    context = {
        "accounts": accounts,
        "current": current,
        "groups": groups,
        "others": [(a, counts.get(a.id, 0)) for a in accounts if a.id != current.id],
        "firm_name": firm_name,
        "address": address,
        "form": ConfirmForm(),
        "today": utcnow().date(),
        "kind_labels": KIND_LABELS,
        "completed": completed,
        "documents": to_read,
        "done": done_rows,
    }
    # htmx asks for the swapped part only; the same URL serves the full page otherwise
    template = "portal/_account.html" if request.headers.get("HX-Request") else "portal/home.html"
    response = make_response(render_template(template, **context))
    response.headers["Vary"] = "HX-Request, Cookie"
    return response


@bp.route("/portal/unsubscribe/<token>", methods=["GET", "POST"])
@csrf.exempt
@limit_ip
def unsubscribe(token: str) -> Any:
    """One-click unsubscribe (RFC 8058). The signed link is the credential, so the POST carries
    no CSRF token (mail providers POST ``List-Unsubscribe=One-Click`` without cookies); it only
    ever switches one notification category off. A GET changes nothing: it asks."""
    link = unsubscribe_links.read_unsubscribe(token)
    if link is None:
        return link_problem_page("tampered")
    g.language_hint = _language_of(link.email.id)
    flask_babel.refresh()
    firm_name = (
        db.session.scalar(
            select(Firm.name)
            .join(Account, Account.firm_id == Firm.id)
            .where(Account.id.in_([row.account_id for row in link.settings]))
        )
        if link.settings
        else None
    )
    context = {
        "address": link.email.address,
        "category": notifications.CATEGORY_LABELS[link.category],
        "accounts": link.accounts,
        "firm_name": firm_name or "Portico",
        "token": token,
        "done": False,
    }
    if request.method == "POST":
        unsubscribe_links.unsubscribe(link)
        context["done"] = True
    response = make_response(render_template("portal/unsubscribe.html", **context))
    response.headers["Cache-Control"] = "no-store"
    return response


def _language_of(email_id: int) -> str | None:
    return db.session.scalar(select(PortalUser.language).where(PortalUser.email_id == email_id))
