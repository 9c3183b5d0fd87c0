"""Clients act on their to-dos from the portal (R-POR-6); only signatories sign (R-SIG-1)."""

from __future__ import annotations

import re
from typing import Any

from tests.portal_helpers import activate, csrf_from, home, login, setup_invite
from tests.test_notifications import activated, add_person, new_todo, set_settings


def todo_state(firm: Any, todo_id: str) -> dict[str, Any]:
    response = firm.api.patch(f"/todos/{todo_id}", json={})
    assert response.status_code == 200
    return response.get_json()


def signed_in(app: Any, make: Any, smtp: Any) -> Any:
    world = setup_invite(make, smtp, app)
    world.client = app.test_client()
    assert activate(world.client, world.link).status_code == 302
    return world


def test_r_por_6_clients_sign_approve_and_mark_done_and_staff_see_who_and_when(app, make, smtp):
    world = signed_in(app, make, smtp)
    firm, account, client = world.firm, world.account, world.client
    sign = new_todo(firm, account.id, kind="documents_signature", title="Form 8879")
    invoice = new_todo(
        firm, account.id, kind="invoices_payments", title="Invoice 17", requires_signature=True
    )
    pay = new_todo(firm, account.id, kind="invoices_payments", title="Invoice 18")
    approve = new_todo(firm, account.id, kind="documents_approval", title="Draft return")
    upload = new_todo(firm, account.id, kind="documents_upload", title="Upload your W-2")
    page = home(client).data.decode()
    base = f"/portal/a/{account.id}/todos"
    for todo, action in (
        (sign, "sign"),
        (invoice, "sign"),
        (pay, "done"),
        (approve, "approve"),
        (upload, "done"),
    ):
        if action == "sign":
            assert f'href="{base}/{todo["id"]}/sign"' in page, todo["title"]
        else:
            assert f'action="{base}/{todo["id"]}/{action}"' in page, todo["title"]
    assert "Only authorised signers" not in page

    # signing: a confirmation step naming the signer, then the signature
    confirm = client.get(f"{base}/{sign['id']}/sign")
    assert confirm.status_code == 200
    assert "I, Anna Berger, sign this for Berger Family." in confirm.data.decode()
    token = csrf_from(confirm.data)
    skipped = client.post(f"{base}/{sign['id']}/sign", data={"csrf_token": token})
    assert skipped.status_code == 303 and skipped.headers["Location"].endswith(f"{base}/{sign['id']}/sign")
    assert todo_state(firm, sign["id"])["state"] == "open"  # no signature without the confirmation
    signed = client.post(f"{base}/{sign['id']}/sign", data={"csrf_token": token, "confirm": "yes"})
    assert signed.status_code == 303
    thanks = client.get(signed.headers["Location"]).data.decode()
    assert "Thank you. You signed “Form 8879”." in thanks
    assert f"{base}/{sign['id']}/sign" not in thanks  # it left the open list
    staff_view = todo_state(firm, sign["id"])
    assert staff_view["state"] == "done" and staff_view["done_at"]
    assert staff_view["done_by"] == {"email": world.email.address, "action": "signed", "via": "portal"}

    # approve and mark done: one click each
    token = csrf_from(thanks)
    assert client.post(f"{base}/{approve['id']}/approve", data={"csrf_token": token}).status_code == 303
    assert client.post(f"{base}/{upload['id']}/done", data={"csrf_token": token}).status_code == 303
    assert todo_state(firm, approve["id"])["done_by"] == {
        "email": world.email.address,
        "action": "approved",
        "via": "portal",
    }
    assert todo_state(firm, upload["id"])["done_by"] == {
        "email": world.email.address,
        "action": "done",
        "via": "portal",
    }
    # the wrong action for a to-do, or a second completion, changes nothing
    assert client.post(f"{base}/{pay['id']}/approve", data={"csrf_token": token}).status_code == 400
    assert client.post(f"{base}/{invoice['id']}/done", data={"csrf_token": token}).status_code == 400
    again = client.post(f"{base}/{upload['id']}/done", data={"csrf_token": token})
    assert again.status_code == 303
    assert todo_state(firm, upload["id"])["done_by"]["action"] == "done"
    listed = firm.api.get(f"/accounts/{account.id}/todos?state=open").get_json()["items"]
    assert sorted(t["title"] for t in listed) == ["Invoice 17", "Invoice 18"]


def test_r_por_6_htmx_gets_the_account_part_back_with_the_thanks(app, make, smtp):
    world = signed_in(app, make, smtp)
    todo = new_todo(world.firm, world.account.id, kind="client_requests", title="Answer the questionnaire")
    page = home(world.client)
    path = f"/portal/a/{world.account.id}/todos/{todo['id']}/done"
    response = world.client.post(
        path, data={"csrf_token": csrf_from(page.data)}, headers={"HX-Request": "true"}
    )
    body = response.data.decode()
    assert response.status_code == 200 and "<html" not in body and 'id="portal"' in body
    assert "“Answer the questionnaire” is done." in body
    assert response.headers["HX-Push-Url"] == f"/portal/a/{world.account.id}/"
    inline = world.client.get(
        f"/portal/a/{world.account.id}/todos/{new_todo(world.firm, world.account.id)['id']}/sign",
        headers={"HX-Request": "true"},
    )
    assert inline.status_code == 200 and inline.data.decode().startswith('<li class="todo sign-confirm"')


def test_r_sig_1_only_signatories_sign_a_forged_post_is_403_and_changes_nothing(app, make, smtp):
    world = signed_in(app, make, smtp)
    firm, account = world.firm, world.account
    viewer = add_person(make, firm, account.id, "Victor", address="victor@berger.example")
    set_settings(firm, account.id, viewer.id, login=True, signatory=False)
    activated(app, firm.id, viewer.id)
    todo = new_todo(firm, account.id, kind="proposals", title="Engagement letter 2026")
    # the signatory's signing form, as their browser has it
    form_page = world.client.get(f"/portal/a/{account.id}/todos/{todo['id']}/sign").data.decode()
    action = re.search(r'<form method="post" action="([^"]+)"', form_page).group(1)
    fields = dict(re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', form_page))
    assert fields["confirm"] == "yes" and action.endswith(f"/todos/{todo['id']}/sign")

    other = app.test_client()
    assert login(other, viewer.address).status_code == 302
    page = home(other).data.decode()
    assert "Engagement letter 2026" in page and "Only authorised signers can sign this." in page
    assert f"/todos/{todo['id']}/sign" not in page  # no sign button
    assert other.get(f"/portal/a/{account.id}/todos/{todo['id']}/sign").status_code == 403
    # the same form, posted from the non-signatory's session (their own valid CSRF token)
    forged = other.post(action, data={**fields, "csrf_token": csrf_from(page)})
    assert forged.status_code == 403
    assert todo_state(firm, todo["id"])["state"] == "open"
    # signatory switched on: now they may
    set_settings(firm, account.id, viewer.id, signatory=True)
    assert "Only authorised signers" not in home(other).data.decode()
    assert other.post(action, data={**fields, "csrf_token": csrf_from(page)}).status_code == 303
    signed = {"email": viewer.address, "action": "signed", "via": "portal"}
    assert todo_state(firm, todo["id"])["done_by"] == signed


def test_r_por_3_todo_actions_answer_404_for_accounts_and_todos_that_are_not_the_users(app, make, smtp):
    world = signed_in(app, make, smtp)
    stranger_firm = make.firm()
    theirs = make.account(stranger_firm.id)
    their_todo = new_todo(stranger_firm, theirs.id, kind="documents_upload", title="Theirs")
    other_account = make.account(world.firm.id, "Not Linked")
    unlinked_todo = new_todo(world.firm, other_account.id, kind="documents_upload", title="Not mine")
    token = csrf_from(home(world.client).data)
    for account_id, todo_id in (
        (theirs.id, their_todo["id"]),
        (world.account.id, their_todo["id"]),
        (other_account.id, unlinked_todo["id"]),
        (world.account.id, unlinked_todo["id"]),
    ):
        path = f"/portal/a/{account_id}/todos/{todo_id}"
        assert world.client.post(f"{path}/done", data={"csrf_token": token}).status_code == 404
        assert world.client.get(f"{path}/sign").status_code == 404
    assert todo_state(stranger_firm, their_todo["id"])["state"] == "open"
    assert todo_state(world.firm, unlinked_todo["id"])["state"] == "open"


def _upload(firm: Any, account_id: int, name: str, data: bytes, content_type: str) -> str:
    import io

    response = firm.api.post(
        f"/accounts/{account_id}/documents",
        data={"file": (io.BytesIO(data), name, content_type)},
        content_type="multipart/form-data",
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def test_r_por_6_a_signature_to_do_shows_its_documents_before_the_sign_button(app, make, smtp):
    """Signing blind: the client reads what they sign, from the to-do, before signing."""
    world = signed_in(app, make, smtp)
    firm, account, client = world.firm, world.account, world.client
    return_pdf = _upload(firm, account.id, "2025 Form 8879.pdf", b"%PDF-1.7 the return", "application/pdf")
    letter = _upload(firm, account.id, "letter.txt", b"<script>alert(1)</script>", "text/html")
    other = make.account(firm.id, "Someone Else")
    foreign = _upload(firm, other.id, "other.pdf", b"%PDF-1.7 not yours", "application/pdf")
    refused = firm.api.post(
        f"/accounts/{account.id}/todos",
        json={"kind": "documents_signature", "title": "Sign", "document_ids": [foreign]},
    )
    assert refused.status_code == 422 and "document_ids" in refused.get_json()["error"]["fields"]
    sign = new_todo(
        firm, account.id, kind="documents_signature", title="Form 8879", document_ids=[return_pdf, letter]
    )
    assert sign["document_ids"] == [return_pdf, letter] and sign["requires_signature"] is True
    approve = new_todo(firm, account.id, kind="documents_approval", title="Draft", document_ids=[letter])
    base = f"/portal/a/{account.id}/todos"
    page = home(client).data.decode()
    assert "Read the documents before you sign:" in page and "Read the document before you approve:" in page
    assert page.index("2025 Form 8879.pdf") < page.index(f'href="{base}/{sign["id"]}/sign"')
    confirm = client.get(f"{base}/{sign['id']}/sign").data.decode()
    assert confirm.index(f'{base}/{sign["id"]}/documents/{return_pdf}') < confirm.index("Sign now")
    assert "I have read the documents above. I, Anna Berger, sign them for Berger Family." in confirm
    assert '<h1 id="sign-heading">Form 8879</h1>' in confirm  # not "Sign “Sign …”"
    pdf = client.get(f"{base}/{sign['id']}/documents/{return_pdf}")
    assert pdf.status_code == 200 and pdf.data == b"%PDF-1.7 the return"
    assert pdf.headers["Content-Type"] == "application/pdf"
    # R-DOC-4: every file is a download, sandboxed should a browser open it anyway
    assert pdf.headers["Content-Disposition"].startswith("attachment;")
    assert pdf.headers["Content-Security-Policy"] == "sandbox; default-src 'none'"
    # claimed text/html: the type is sniffed from the bytes (text), and it is a download, never a page
    html = client.get(f"{base}/{sign['id']}/documents/{letter}")
    assert html.status_code == 200 and html.headers["Content-Disposition"].startswith("attachment;")
    assert html.headers["Content-Type"].startswith("text/plain")
    assert html.headers["X-Content-Type-Options"] == "nosniff"
    # only the to-do's own documents, only on the client's own accounts
    assert client.get(f"{base}/{approve['id']}/documents/{return_pdf}").status_code == 404
    assert client.get(f"{base}/{sign['id']}/documents/{foreign}").status_code == 404
    assert client.get(f"/portal/a/{other.id}/todos/{sign['id']}/documents/{return_pdf}").status_code == 404
    assert app.test_client().get(f"{base}/{sign['id']}/documents/{return_pdf}").status_code == 302  # login


def test_r_por_6_done_to_dos_stay_visible_with_what_when_and_who(app, make, smtp):
    world = signed_in(app, make, smtp)
    firm, account, client = world.firm, world.account, world.client
    sign = new_todo(firm, account.id, kind="documents_signature", title="Form 8879")
    staff_done = new_todo(firm, account.id, kind="documents_upload", title="Upload the W-2")
    token = csrf_from(client.get(f"/portal/a/{account.id}/todos/{sign['id']}/sign").data)
    base = f"/portal/a/{account.id}/todos"
    signed = client.post(f"{base}/{sign['id']}/sign", data={"csrf_token": token, "confirm": "yes"})
    assert signed.status_code == 303
    assert firm.api.patch(f"/todos/{staff_done['id']}", json={"state": "done"}).status_code == 200
    page = home(client).data.decode()
    done = page[page.index('id="done-heading"') :]
    assert "Form 8879" in done and f"Signed by {world.email.address} on" in done
    assert "Upload the W-2" in done and "Marked done by Harbor &amp; Finch CPA on" in done
    assert f'{base}/{sign["id"]}/sign' not in page
