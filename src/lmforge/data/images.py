"""Images for the image tasks: decode a file or bytes with Pillow into one RGB picture.

Every image lmforge reads (training data, an index, a search query, a served request) comes
through ``open_image`` or ``decode_image``, so PNG, JPEG, WebP, BMP and GIF files and
grayscale, palette and RGBA pictures all become plain RGB the same way (transparent pixels
on white). A folder of images is listed with ``image_files``.
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from lmforge.errors import LmforgeError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")
MAX_PIXELS = 40_000_000  # larger pictures are refused (Pillow's decompression-bomb guard)


class ImageError(LmforgeError):
    """An image that cannot be read; the message names it and says why."""


def decode_image(data: bytes, *, name: str = "image") -> Image.Image:
    """The picture in ``data`` (the bytes of an image file) as RGB.

    Raises:
        ImageError: not an image Pillow can decode, truncated, or too large.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_PIXELS:
                raise ImageError(
                    f"{name}: {image.width}x{image.height} pixels is more than "
                    f"{MAX_PIXELS:,}; resize it first"
                )
            image.load()
            return _rgb(image)
    except ImageError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as err:
        reason = "not an image file Pillow can read" if isinstance(
            err, UnidentifiedImageError) else f"cannot be decoded ({err})"  # fmt: skip
        raise ImageError(f"{name}: {reason}; use a PNG, JPEG, WebP, BMP or GIF file") from None


def open_image(path: Path) -> Image.Image:
    """The image file at ``path`` as RGB.

    Raises:
        ImageError: no such file, or one that is not a readable image.
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ImageError(f"{path}: no such image file") from None
    except OSError as err:
        raise ImageError(f"{path}: cannot read it ({err.strerror or err})") from None
    return decode_image(data, name=str(path))


def image_files(folder: Path) -> list[Path]:
    """The image files directly in ``folder``, sorted by name."""
    return sorted(
        path for path in folder.iterdir()
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES
    )  # fmt: skip


def _rgb(image: Image.Image) -> Image.Image:
    """RGB pixels; transparency is composited on white, as a viewer shows it."""
    if image.mode in {"RGBA", "LA"} or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")
