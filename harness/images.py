"""Reading image files: the one place where the harness opens an image.

Participants feed the harness their own photos, so every kind of file is
either converted to 8-bit RGB on purpose or refused with one line that names
the file (a :class:`ImageError`, which is a :class:`~harness.errors.UserError`):

==========================  =================================================
file                        what :func:`read_image` does
==========================  =================================================
missing, a folder, 0 bytes  refused
not an image                refused ("not an image (unrecognised format)")
truncated (JPEG, PNG, ...)  refused; ``ImageFile.LOAD_TRUNCATED_IMAGES`` is
                            never set, so a half-downloaded photo is never
                            silently padded with grey
over :data:`MAX_PIXELS`     refused from the header, before any pixel is
                            decoded (a 10,000 x 10,000 image, or a
                            decompression bomb). Not downscaled: aligners
                            such as ``oracle`` take landmarks in the file's
                            pixel coordinates, which a silent resize breaks
grayscale (``1``, ``L``)    converted: the gray value in all three channels
16-bit (``I;16``, ``I``)    converted: the top byte of each value (v >> 8),
                            the same scaling Pillow uses for 16-bit colour
                            PNGs, so 65535 -> 255 and 32896 -> 128
CMYK                        converted with Pillow's CMYK -> RGB formula (no
                            colour management)
transparency (``RGBA``,     composited over :data:`BACKGROUND` (white, as
``LA``, palette PNG with    most viewers show it), so a transparent
a transparent colour)       background never turns black behind a face
EXIF orientation            applied: the model sees the photo upright, as
                            every viewer shows it
other modes (float, LAB)    refused with the mode named
==========================  =================================================

Multi-frame files (GIF, TIFF) give their first frame.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from harness.errors import UserError

MAX_PIXELS = 64_000_000
"""Largest image accepted (width x height): 8000 x 8000, above any phone camera
and below Pillow's own decompression-bomb warning (89.5 megapixels)."""

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
"""File name endings taken for images when a folder is listed."""

BACKGROUND = (255, 255, 255)
"""What transparent pixels are composited over: white."""

_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_PLAIN = ("1", "L", "P", "RGB", "CMYK", "YCbCr")  # im.convert("RGB") is right for these
_ALPHA = ("RGBA", "LA", "PA", "RGBa", "La")


class ImageError(UserError):
    """An image file that cannot be used; ``reason`` says why without the path."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        super().__init__(f"image {str(path)!r}: {reason}")
        self.path = Path(path)
        self.reason = reason


def read_image(path: str | os.PathLike) -> Image.Image:
    """The image at ``path`` as an upright 8-bit RGB ``PIL.Image``, fully decoded.

    Raises :class:`ImageError` (one line naming the file) for anything the
    module docstring lists as refused.
    """
    with _open(path) as im:
        try:
            im.load()
            im = ImageOps.exif_transpose(im)
        except Exception as exc:  # Pillow's decoders raise many types for a damaged file
            raise ImageError(path, _damaged(exc)) from None
        return to_rgb(im, path)


def check_image(path: str | os.PathLike) -> None:
    """Refuse what can be told from the header alone (fast: no pixel is decoded).

    Missing, empty, unrecognised, too large or of an unsupported mode raise
    :class:`ImageError`; a file that passes may still be truncated further on,
    which :func:`read_image` refuses when it decodes it.
    """
    with _open(path) as im:
        _check_mode(im, path)


def to_rgb(im: Image.Image, path: str | os.PathLike = "<memory>") -> Image.Image:
    """Convert a decoded image to 8-bit RGB following the module's table."""
    _check_mode(im, path)
    if im.mode in _SIXTEEN_BIT:
        top = (np.asarray(im, dtype=np.int64) >> 8).clip(0, 255).astype(np.uint8)
        return Image.fromarray(top, "L").convert("RGB")
    if im.mode in _ALPHA or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im.convert("RGB")


# ----------------------------------------------------------------- helpers
def _open(path: str | os.PathLike) -> Image.Image:
    """``Image.open`` (header only) with the file-level and size checks."""
    p = Path(path)
    if not p.exists():
        raise ImageError(path, "no such file")
    if not p.is_file():
        raise ImageError(path, "not a regular file")
    if p.stat().st_size == 0:
        raise ImageError(path, "empty file (0 bytes)")
    try:
        with warnings.catch_warnings():  # the pixel limit below is ours, and lower
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(p)
    except Image.DecompressionBombError as exc:
        raise ImageError(path, f"too large ({exc}); the limit is {MAX_PIXELS:,} pixels") from None
    except Image.UnidentifiedImageError:
        raise ImageError(path, "not an image (unrecognised format)") from None
    except Exception as exc:  # a recognised format with a broken header
        raise ImageError(path, _damaged(exc)) from None
    pixels = im.width * im.height
    if pixels > MAX_PIXELS:
        im.close()
        raise ImageError(path, f"{im.width} x {im.height} = {pixels:,} pixels, above the limit of "
                               f"{MAX_PIXELS:,}; downscale it first")
    return im


def _check_mode(im: Image.Image, path: str | os.PathLike) -> None:
    if im.mode not in (*_PLAIN, *_SIXTEEN_BIT, *_ALPHA):
        raise ImageError(path, f"unsupported pixel mode {im.mode!r}; save it as 8-bit RGB, "
                               f"grayscale or CMYK")


def _damaged(exc: Exception) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"damaged or truncated image file ({text})"
