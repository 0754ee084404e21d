"""harness.images: every awkward image file is converted on purpose or refused in one line."""
from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from harness import images
from harness.errors import UserError
from harness.images import BACKGROUND, ImageError, check_image, read_image


def png16(path: Path, values: np.ndarray) -> Path:
    """A 16-bit PNG written by hand (Pillow cannot write 16-bit colour):
    ``values`` is ``[H, W]`` (grayscale) or ``[H, W, 3]`` (RGB), 0..65535."""
    a = np.asarray(values, dtype=">u2")
    color_type = 2 if a.ndim == 3 else 0

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + row.tobytes() for row in a)  # filter type 0 per row
    header = struct.pack(">IIBBBBB", a.shape[1], a.shape[0], 16, color_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
                     + chunk(b"IEND", b""))
    return path


def rgb(im: Image.Image) -> np.ndarray:
    assert im.mode == "RGB"
    return np.asarray(im)


def noise(h: int = 32, w: int = 40, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# ------------------------------------------------------------------ refused
def test_missing_folder_and_empty_files_are_refused(tmp_path):
    with pytest.raises(ImageError, match=r"nope.jpg': no such file$"):
        read_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageError, match="not a regular file"):
        read_image(tmp_path)
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ImageError, match=r"empty.jpg': empty file \(0 bytes\)$"):
        read_image(tmp_path / "empty.jpg")


def test_not_an_image_is_refused(tmp_path):
    (tmp_path / "notes.jpg").write_text("image,AU1\na.jpg,1\n")
    with pytest.raises(ImageError, match=r"notes.jpg': not an image \(unrecognised format\)$"):
        read_image(tmp_path / "notes.jpg")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_files_are_refused_not_padded(tmp_path, fmt):
    whole = tmp_path / f"whole.{fmt.lower()}"
    Image.fromarray(noise(64, 64)).save(whole, fmt)
    cut = tmp_path / f"cut.{fmt.lower()}"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(ImageError, match=r"cut\.\w+': damaged or truncated image file \(.+\)$") as err:
        read_image(cut)
    assert "\n" not in str(err.value)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False  # refused because nobody turned this on


def test_nothing_we_import_turns_on_truncated_loading(tmp_path):
    # a fresh process: every dependency and built-in plugin imported, nothing else set up
    code = ("import facenet_pytorch, timm, harness; from PIL import ImageFile; "
            "harness.get_registry().table; print(ImageFile.LOAD_TRUNCATED_IMAGES)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": ""}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_ten_thousand_square_is_refused_from_the_header(tmp_path):
    big = tmp_path / "big.png"
    Image.new("1", (10_000, 10_000)).save(big)  # 12 kB on disk, 100 megapixels decoded
    message = (f"image {str(big)!r}: 10000 x 10000 = 100,000,000 pixels, above the limit of "
               f"{images.MAX_PIXELS:,}; downscale it first")
    for reader in (read_image, check_image):
        with pytest.raises(ImageError) as err:
            reader(big)
        assert str(err.value) == message


def test_decompression_bomb_beyond_pillows_own_limit(tmp_path, monkeypatch):
    # Pillow refuses in Image.open above twice its MAX_IMAGE_PIXELS; still one line from us
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    Image.new("L", (20, 20)).save(tmp_path / "bomb.png")
    with pytest.raises(ImageError, match=r"bomb.png': too large \(.*\); the limit is"):
        read_image(tmp_path / "bomb.png")


def test_the_pixel_limit_is_inclusive(tmp_path, monkeypatch):
    monkeypatch.setattr(images, "MAX_PIXELS", 12)
    Image.new("L", (4, 3)).save(tmp_path / "ok.png")
    Image.new("L", (13, 1)).save(tmp_path / "no.png")
    assert read_image(tmp_path / "ok.png").size == (4, 3)
    with pytest.raises(ImageError, match="13 x 1 = 13 pixels, above the limit of 12"):
        read_image(tmp_path / "no.png")


def test_float_images_are_refused_with_their_mode(tmp_path):
    Image.fromarray(np.full((4, 4), 0.5, np.float32)).save(tmp_path / "f.tif")
    with pytest.raises(ImageError, match="unsupported pixel mode 'F'"):
        read_image(tmp_path / "f.tif")
    with pytest.raises(ImageError, match="unsupported pixel mode 'F'"):
        check_image(tmp_path / "f.tif")


def test_image_error_is_a_user_error():
    assert issubclass(ImageError, UserError)
    assert ImageError("x.jpg", "why").reason == "why"


# ---------------------------------------------------------------- converted
def test_rgb_png_is_read_exactly(tmp_path):
    pixels = noise()
    Image.fromarray(pixels).save(tmp_path / "a.png")
    np.testing.assert_array_equal(rgb(read_image(tmp_path / "a.png")), pixels)
    check_image(tmp_path / "a.png")


@pytest.mark.parametrize("mode", ["L", "1"])
def test_grayscale_is_replicated_into_three_channels(tmp_path, mode):
    gray = noise()[..., 0]
    im = Image.fromarray(gray, "L")
    if mode == "1":
        gray = np.where(gray >= 128, 255, 0).astype(np.uint8)
        im = Image.fromarray(gray, "L").convert("1")
    im.save(tmp_path / "g.png")
    np.testing.assert_array_equal(rgb(read_image(tmp_path / "g.png")), np.stack([gray] * 3, -1))


def test_cmyk_jpeg_is_converted(tmp_path):
    # pure cyan, magenta, yellow and black patches: far from each other in RGB
    patches = {(0, 255, 255, 0): (255, 0, 0), (255, 0, 255, 0): (0, 255, 0),
               (255, 255, 0, 0): (0, 0, 255), (0, 0, 0, 255): (0, 0, 0)}
    cmyk = Image.new("CMYK", (64, 16))
    for i, ink in enumerate(patches):
        cmyk.paste(ink, (16 * i, 0, 16 * i + 16, 16))
    cmyk.save(tmp_path / "c.jpg", quality=95)
    assert Image.open(tmp_path / "c.jpg").mode == "CMYK"
    out = rgb(read_image(tmp_path / "c.jpg")).astype(int)
    for i, want in enumerate(patches.values()):
        np.testing.assert_allclose(out[8, 16 * i + 8], want, atol=12)


def test_sixteen_bit_gray_png_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 255, 257, 32896, 65280, 65535]])
    png16(tmp_path / "g16.png", values)
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    out = rgb(read_image(tmp_path / "g16.png"))
    # clipping (Pillow's plain convert) would give 0, 255, 255, 255, 255, 255
    np.testing.assert_array_equal(out[0, :, 0], [0, 0, 1, 128, 255, 255])
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()


def test_sixteen_bit_rgb_png_uses_the_same_scaling(tmp_path):
    v = np.array([0, 257, 32896, 65535])
    png16(tmp_path / "c16.png", np.stack([v, 65535 - v, v], -1)[None])
    out = rgb(read_image(tmp_path / "c16.png"))
    np.testing.assert_array_equal(out[0], np.stack([v >> 8, (65535 - v) >> 8, v >> 8], -1))


def test_palette_png_with_transparency_is_composited_on_white(tmp_path):
    im = Image.new("P", (4, 1))
    im.putpalette([0, 0, 0, 200, 10, 20] + [0] * 762)  # index 0 black, index 1 red-ish
    im.putdata([0, 1, 0, 1])
    im.save(tmp_path / "p.png", transparency=0)  # palette index 0 is transparent
    assert Image.open(tmp_path / "p.png").mode == "P"
    out = rgb(read_image(tmp_path / "p.png"))
    np.testing.assert_array_equal(out[0], [BACKGROUND, (200, 10, 20), BACKGROUND, (200, 10, 20)])
    assert BACKGROUND == (255, 255, 255)


def test_rgba_half_transparent_is_blended_over_white(tmp_path):
    Image.new("RGBA", (2, 2), (0, 0, 200, 128)).save(tmp_path / "a.png")
    out = rgb(read_image(tmp_path / "a.png")).astype(int)
    # over white: 255 + (c - 255) * 128 / 255
    np.testing.assert_allclose(out[0, 0], [127, 127, 227], atol=1)


def test_exif_orientation_is_applied(tmp_path):
    pixels = noise(8, 16)
    im = Image.fromarray(pixels)
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    im.save(tmp_path / "phone.png", exif=exif)
    out = rgb(read_image(tmp_path / "phone.png"))
    np.testing.assert_array_equal(out, np.rot90(pixels, k=-1))


def test_first_frame_of_an_animation(tmp_path):
    frames = [Image.new("RGB", (4, 4), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    out = rgb(read_image(tmp_path / "a.gif"))
    assert tuple(out[0, 0]) == (255, 0, 0)


# ---------------------------------------------------------- the one reader
def test_no_other_module_opens_image_files():
    """Every image file goes through harness.images (one set of rules)."""
    root = Path(__file__).resolve().parents[1]
    offenders = [str(p.relative_to(root)) for folder in ("harness", "plugins", "leaderboard")
                 for p in (root / folder).rglob("*.py")
                 if "Image.open(" in p.read_text() and p.name != "images.py"]
    assert offenders == []
