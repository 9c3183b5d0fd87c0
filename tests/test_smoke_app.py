from __future__ import annotations


def test_index_page_served(client):
    response = client.get("/")
    assert response.status_code == 200
    assert b"Portico is running" in response.data
