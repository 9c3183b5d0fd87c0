from __future__ import annotations


def test_index_page_offers_the_portal_login(client):
    response = client.get("/")
    assert response.status_code == 200
    assert b'href="/portal/login"' in response.data
