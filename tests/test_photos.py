"""The account photo (R-PHO-1): re-encoded squares without metadata, refused when not an image
or a decompression bomb, served only to the firm's staff and the account's portal users."""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

from PIL import Image

from tests.portal_helpers import csrf_from
from tests.test_documents import multipart
from tests.test_portal_todos import signed_in


def jpeg_with_gps_and_rotation() -> bytes:
    image = Image.new("RGB", (400, 200), (200, 30, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to show
    exif[0x010F] = "PhoneMaker"
    exif[0x8825] = {1: "N", 2: (52.0, 31.0, 12.0)}  # GPS
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif.tobytes())
    return buffer.getvalue()


def png_bomb() -> bytes:
    """A PNG whose header claims 20 000 × 20 000 pixels (400 megapixels) in a few hundred bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 20000, 20000, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
        + chunk(b"IEND", b"")
    )


def put_photo(firm: Any, account_id: int, data: bytes, name: str = "me.jpg") -> Any:
    body, content_type = multipart({}, [(data, name)])
    return firm.api._call("PUT", f"/accounts/{account_id}/photo", data=body, content_type=content_type)


def test_r_pho_1_staff_set_a_photo_reencoded_upright_without_metadata(app, make, smtp):
    world = signed_in(app, make, smtp)
    firm, account, client = world.firm, world.account, world.client
    response = put_photo(firm, account.id, jpeg_with_gps_and_rotation())
    assert response.status_code == 200
    url = response.get_json()["photo_url"]
    assert url.startswith(f"/photos/{account.id}/")
    assert firm.api.get(f"/accounts/{account.id}").get_json()["photo_url"] == url
    listed = firm.api.get("/accounts").get_json()["items"]
    assert [a["photo_url"] for a in listed if a["id"] == str(account.id)] == [url]
    served = app.test_client().get(url, headers={"Authorization": f"Bearer {firm.api.token}"})
    assert served.status_code == 200 and served.headers["Content-Type"] == "image/jpeg"
    image = Image.open(io.BytesIO(served.data))
    assert image.size == (256, 256)
    assert not image.getexif() and "exif" not in image.info and "icc_profile" not in image.info
    assert b"PhoneMaker" not in served.data
    small = client.get(url + "?size=64")  # the account's own portal user
    assert small.status_code == 200 and Image.open(io.BytesIO(small.data)).size == (64, 64)
    # the portal header shows it
    assert url in client.get(f"/portal/a/{account.id}/").data.decode()
    # anyone else: 404, as if there were none
    assert app.test_client().get(url).status_code == 404
    assert (
        app.test_client().get(url, headers={"Authorization": f"Bearer {make.firm().api.token}"}).status_code
        == 404
    )
    # removed: the URL is gone
    assert firm.api.delete(f"/accounts/{account.id}/photo").get_json()["photo_url"] is None
    assert client.get(url).status_code == 404


def test_r_pho_1_a_file_that_is_no_image_or_a_bomb_gets_422_and_nothing_is_stored(app, make, smtp):
    world = signed_in(app, make, smtp)
    firm, account = world.firm, world.account
    good = put_photo(firm, account.id, jpeg_with_gps_and_rotation()).get_json()["photo_url"]
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    gif = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"
    for data, name in (
        (b"%PDF-1.4 not an image", "x.jpg"),
        (svg, "x.svg"),
        (png_bomb(), "bomb.png"),
        (gif, "x.gif"),
    ):
        refused = put_photo(firm, account.id, data, name)
        assert refused.status_code == 422, name
        assert refused.get_json()["error"]["fields"]["file"]
    assert firm.api.get(f"/accounts/{account.id}").get_json()["photo_url"] == good  # unchanged


def test_r_pho_1_a_client_sets_and_removes_the_photo_from_the_profile(app, make, smtp):
    world = signed_in(app, make, smtp)
    firm, account, client = world.firm, world.account, world.client
    client.get(f"/portal/a/{account.id}/")
    profile = client.get("/portal/profile").data.decode()
    assert "Photo of Berger Family" in profile
    token = csrf_from(profile)
    body, content_type = multipart({"csrf_token": token}, [(b"not an image", "x.png")])
    bad = client.post(f"/portal/a/{account.id}/photo", data=body, content_type=content_type)
    assert "could not be used" in client.get(bad.headers["Location"]).data.decode()
    assert firm.api.get(f"/accounts/{account.id}").get_json()["photo_url"] is None
    body, content_type = multipart({"csrf_token": token}, [(jpeg_with_gps_and_rotation(), "me.jpg")])
    assert (
        client.post(f"/portal/a/{account.id}/photo", data=body, content_type=content_type).status_code == 303
    )
    url = firm.api.get(f"/accounts/{account.id}").get_json()["photo_url"]
    assert url and url in client.get("/portal/profile").data.decode()
    other = make.account(firm.id, "Someone Else")
    body, content_type = multipart({"csrf_token": token}, [(jpeg_with_gps_and_rotation(), "me.jpg")])
    assert client.post(f"/portal/a/{other.id}/photo", data=body, content_type=content_type).status_code == 404
    assert client.post(f"/portal/a/{account.id}/photo/delete", data={"csrf_token": token}).status_code == 303
    assert firm.api.get(f"/accounts/{account.id}").get_json()["photo_url"] is None
