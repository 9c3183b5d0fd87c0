"""Acting from an email without logging in (R-LFA-1..3).

A notification email about an item the firm lets clients act on carries "Open without logging
in": a token of its own purpose (tokens.ACTION_LINK), minted in the delivery job (R-SEC-9),
naming one item (a to-do, or the documents of one upload), one contact email and account, and
the address as it was. The signature proves only that we minted it; every use checks the
database as it is now, and the link is dead when the to-do is done, deleted or reopened since
(``times_reopened``), the documents are gone or hidden, ``notify`` is off for that email on that
account, the email was removed or changed, its contact unlinked, the firm no longer allows the
action, or ``ACTION_LINK_MAX_AGE_DAYS`` passed.

The link is the whole credential for its one item: the pages under /portal/link/ act through the
same services as the signed-in portal (signing needs ``signatory``, R-SIG-1; uploads R-DOC-2/4;
requests R-REQ-1), and nothing here signs anyone in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import current_app
from itsdangerous import SignatureExpired
from sqlalchemy import select

from portal_app import tokens
from portal_app.extensions import db
from portal_app.models import (
    Account,
    AuditEntry,
    Contact,
    ContactEmail,
    ContactSettings,
    Document,
    Firm,
    PortalUser,
    Todo,
)
from portal_app.services import client_requests, documents, todos

# What completing a to-do from its link needs the firm to allow (a plain "mark done" to-do has
# no login-free action: it stays in the portal).
TODO_ACTIONS = {"sign": "sign", "approve": "approve", "submit": "complete_client_requests"}
DOCUMENT_ACTIONS = ("view_documents", "upload_documents")

# Why a link no longer opens: each a page with its own message (portal/base.LINK_PROBLEMS).
PROBLEMS = (
    "tampered",
    "link_expired",
    "todo_done",
    "item_gone",
    "link_dead",  # notify off, email removed or changed, contact unlinked
    "action_off",
    "link_stale",  # the to-do was done and opened again since: a newer email has the link
)


def todo_action(todo: Todo) -> str | None:
    """The login-free action a to-do's link needs, or None when it has none."""
    action = todos.action_for(todo)
    if action == "done" and todo.kind == client_requests.KIND:
        return "complete_client_requests"
    return TODO_ACTIONS.get(action)


def _short_digest(address: str) -> str:
    return tokens.digest(address)[:16]


def mint(
    firm: Firm,
    *,
    email: ContactEmail,
    account_id: int,
    todo: Todo | None = None,
    document_ids: list[int] = (),
    language: str | None = None,
) -> str | None:
    """The token of an email's "Open without logging in" link, or None when the firm does not
    allow acting on this item without logging in (the email then links to the portal only)."""
    allowed = set(firm.login_free_actions or [])
    if todo is not None:
        if todo.state != "open" or todo_action(todo) not in allowed:
            return None
        item: dict[str, Any] = {"t": todo.id, "r": todo.times_reopened or 0}
    else:
        if not document_ids or not allowed.intersection(DOCUMENT_ACTIONS):
            return None
        item = {"d": list(document_ids)}
    return tokens.mint(
        tokens.ACTION_LINK,
        {**item, "e": email.id, "a": account_id, "h": _short_digest(email.address), "l": language},
    )


@dataclass
class ActionLink:
    """What one live link opens, as the database is now."""

    token: str
    firm: Firm
    account: Account
    email: ContactEmail
    settings: ContactSettings
    name: str  # the contact's name, or the address
    todo: Todo | None = None
    view: todos.ClientTodo | None = None  # the to-do as this email may act on it
    documents: list[Document] = field(default_factory=list)
    actions: set[str] = field(default_factory=set)  # the firm's login-free actions that apply
    has_login: bool = False  # an activated portal login that may see this account
    language: str | None = None  # the email's language: the page speaks it too

    @property
    def client(self) -> todos.ClientDone:
        return todos.ClientDone(email_id=self.email.id, address=self.email.address, via="email_link")

    @property
    def uploader(self) -> documents.ClientUploader:
        return documents.ClientUploader(email_id=self.email.id, name=self.name, address=self.email.address)

    @property
    def is_request(self) -> bool:
        return self.todo is not None and bool(self.todo.item_count)

    def key(self) -> str:
        """One rate-limit and batch key per item and email (not the token, which a resend renews)."""
        item = (
            f"t{self.todo.id}" if self.todo is not None else "d" + ".".join(str(d.id) for d in self.documents)
        )
        return f"{item}:e{self.email.id}"


class LinkProblem(Exception):
    def __init__(self, problem: str, *, firm: Firm | None = None, has_login: bool = False) -> None:
        super().__init__(problem)
        self.problem = problem
        self.firm = firm
        self.has_login = has_login


def _payload(token: str) -> dict[str, Any]:
    max_age = int(current_app.config["ACTION_LINK_MAX_AGE_DAYS"]) * 86400
    try:
        payload = tokens.read(tokens.ACTION_LINK, token, max_age=max_age)
    except SignatureExpired:
        raise LinkProblem("link_expired") from None
    except tokens.InvalidToken:
        raise LinkProblem("tampered") from None
    ids_ok = all(isinstance(payload.get(k), int) for k in ("e", "a")) and isinstance(payload.get("h"), str)
    item_ok = isinstance(payload.get("t"), int) or (
        isinstance(payload.get("d"), list) and payload["d"] and all(isinstance(i, int) for i in payload["d"])
    )
    if not (ids_ok and item_ok):
        raise LinkProblem("tampered")
    return payload


def _has_login(email_id: int, settings: ContactSettings) -> bool:
    user = db.session.scalar(select(PortalUser).where(PortalUser.email_id == email_id))
    return user is not None and user.is_activated and settings.login


def check(token: str, *, done_here: bool = False) -> ActionLink:
    """The live link's item, or LinkProblem saying why it no longer opens. ``done_here``: the
    thank-you page after acting, for a to-do this very email completed from a link."""
    payload = _payload(token)
    email = db.session.get(ContactEmail, payload["e"])
    settings = db.session.scalar(
        select(ContactSettings).where(
            ContactSettings.email_id == payload["e"], ContactSettings.account_id == payload["a"]
        )
    )
    account = db.session.get(Account, payload["a"])
    if email is None or settings is None or account is None:
        raise LinkProblem("link_dead")  # the email removed, or its contact unlinked
    firm = db.session.get_one(Firm, account.firm_id)
    has_login = _has_login(email.id, settings)
    if _short_digest(email.address) != payload["h"] or not settings.notify:
        raise LinkProblem("link_dead", firm=firm, has_login=has_login)
    allowed = set(firm.login_free_actions or [])
    contact = db.session.get(Contact, email.contact_id)
    link = ActionLink(
        token=token,
        firm=firm,
        account=account,
        email=email,
        settings=settings,
        name=(contact.display_name if contact is not None else "") or email.address,
        has_login=has_login,
        language=payload.get("l") if isinstance(payload.get("l"), str) else None,
    )
    if "t" in payload:
        todo = db.session.scalar(select(Todo).where(Todo.id == payload["t"], Todo.account_id == account.id))
        if todo is None:
            raise LinkProblem("item_gone", firm=firm, has_login=has_login)
        needed = todo_action(todo)
        if needed is None or needed not in allowed:
            raise LinkProblem("action_off", firm=firm, has_login=has_login)
        done_by_link = todo.done_by_email_id == email.id and todo.done_via == "email_link"
        if todo.state != "open" and not (done_here and done_by_link):
            raise LinkProblem("todo_done", firm=firm, has_login=has_login)
        if payload.get("r", 0) != (todo.times_reopened or 0):
            raise LinkProblem("link_stale", firm=firm, has_login=has_login)
        link.todo = todo
        [link.view] = todos.client_view(email.id, account.id, [todo], signed_in=False)
        link.actions = {needed}
        link.documents = todos.documents_of([todo.id]).get(todo.id, [])
        return link
    link.actions = allowed.intersection(DOCUMENT_ACTIONS)
    if not link.actions:
        raise LinkProblem("action_off", firm=firm, has_login=has_login)
    link.documents = list(
        db.session.scalars(
            select(Document)
            .where(
                Document.id.in_(payload["d"]),
                Document.account_id == account.id,
                Document.visible_to_client.is_(True),
            )
            .order_by(Document.id)
        )
    )
    if not link.documents:
        raise LinkProblem("item_gone", firm=firm, has_login=has_login)
    return link


def link_document(link: ActionLink, document_id: int) -> Document | None:
    """A document this link shows (a to-do's, or the upload's with ``view_documents``)."""
    if link.todo is None and "view_documents" not in link.actions:
        return None
    return next((d for d in link.documents if d.id == document_id), None)


def sent_by_link_email(link: ActionLink, *, limit: int = 20) -> list[Document]:
    """What this email sent the firm on this account, newest first: the page confirms an upload
    with it (names only: reading files needs ``view_documents`` or a login)."""
    return list(
        db.session.scalars(
            select(Document)
            .where(
                Document.account_id == link.account.id,
                Document.source == "client",
                Document.uploaded_by_email_id == link.email.id,
            )
            .order_by(Document.id.desc())
            .limit(limit)
        )
    )


def audit(link: ActionLink, what: str, detail: Any = None) -> None:
    """The audit trail shows what was done from an emailed link, by which email (R-LFA-3)."""
    db.session.add(
        AuditEntry(
            firm_id=link.firm.id,
            account_id=link.account.id,
            contact_id=link.email.contact_id,
            email_id=link.email.id,
            address=link.email.address,
            actor_type="email_link",
            actor_id=link.email.id,
            actor_label=link.email.address,
            field=what,
            old_value=None,
            new_value=detail,
        )
    )
