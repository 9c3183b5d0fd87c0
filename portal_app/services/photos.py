"""The account photo (R-PHO-1), set by the firm or by a client of the account.

Pillow decodes the upload (JPEG, PNG or WebP only, at most 40 megapixels, checked from the
header before a pixel is decoded, so a decompression bomb costs nothing), applies its EXIF
orientation and re-encodes centred squares of 256 and 64 pixels as fresh JPEGs: no EXIF, GPS,
XMP or ICC block of the original survives. Anything that does not decode is a 422 and nothing
is stored. The squares live under DOCUMENTS_DIR/photos by the digest of the 256-pixel one.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from portal_app.extensions import db
from portal_app.files import blob_path, write_atomically
from portal_app.models import Account
from portal_app.services.errors import ValidationFailed

AREA = "photos"
MAX_PIXELS = 40_000_000
MAX_BYTES = 10 * 1024 * 1024
SIZES = (256, 64)
FORMATS = ("JPEG", "PNG", "WEBP")


def photo_url(account_id: int, sha256: str | None) -> str | None:
    """One URL for staff and portal users; a new photo is a new URL (cached for a day)."""
    return f"/photos/{account_id}/{sha256[:16]}.jpg" if sha256 else None


def photo_path(sha256: str, size: int) -> Path:
    return blob_path(AREA, sha256, f"-{size}.jpg")


def _refuse(message: str) -> ValidationFailed:
    return ValidationFailed(message, fields={"file": [message]})


def squares(source: Path | io.BytesIO) -> dict[int, bytes]:
    """The 256 and 64 pixel JPEGs of an uploaded image; ``ValidationFailed`` for anything else."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source, formats=FORMATS) as image:
                width, height = image.size
                if width * height > MAX_PIXELS:
                    raise _refuse("The image is over 40 megapixels.")
                upright = ImageOps.exif_transpose(image)
                upright.load()
    except ValidationFailed:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _refuse("This is not a JPEG, PNG or WebP image.") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # truncated or corrupt
        raise _refuse("The image could not be read; it may be damaged.") from exc
    if upright.mode in ("RGBA", "LA", "P"):
        upright = upright.convert("RGBA")
        flat = Image.new("RGB", upright.size, (255, 255, 255))
        flat.paste(upright, mask=upright.getchannel("A"))
        upright = flat
    else:
        upright = upright.convert("RGB")
    out: dict[int, bytes] = {}
    for size in SIZES:
        square = ImageOps.fit(upright, (size, size), method=Image.Resampling.LANCZOS, centering=(0.5, 0.5))
        buffer = io.BytesIO()
        square.save(buffer, "JPEG", quality=88, optimize=True)  # no exif=, no icc_profile=: none kept
        out[size] = buffer.getvalue()
    return out


def set_photo(account: Account, source: Path | io.BytesIO) -> Account:
    made = squares(source)
    digest = hashlib.sha256(made[256]).hexdigest()
    for size, data in made.items():
        target = photo_path(digest, size)
        if not target.exists():
            write_atomically(target, data)
    account.photo_sha256 = digest
    db.session.flush()
    return account


def remove_photo(account: Account) -> Account:
    """The files stay until no account uses them (another account may have the same photo)."""
    account.photo_sha256 = None
    db.session.flush()
    return account


def current_photo(account: Account, digest_prefix: str, size: int) -> Path | None:
    """The file behind a ``photo_url`` that is still the account's photo; None otherwise."""
    if not account.photo_sha256 or not account.photo_sha256.startswith(digest_prefix) or size not in SIZES:
        return None
    path = photo_path(account.photo_sha256, size)
    return path if path.exists() else None
