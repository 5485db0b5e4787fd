"""Image and gallery-zip decoding on hand-made bytes (no face data): every bad file is a named
error with a message for people, and awkward but valid images decode to upright 8-bit RGB."""
from __future__ import annotations

import io
import stat
import zipfile

import numpy as np
import pytest
from PIL import Image

from unlearn_core.data import zip_gallery
from unlearn_core.errors import DataUnavailable, ImageTooLarge, ImageTooSmall, NotAnImage
from unlearn_core.faces import load_image

pytestmark = pytest.mark.fast


def encode(image: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kw)
    return buffer.getvalue()


def gradient(width: int = 64, height: int = 48) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.uint8)
    return Image.fromarray(np.stack([np.tile(x, (height, 1))] * 3, axis=-1))


@pytest.mark.parametrize("data, error, message", [
    (b"", NotAnImage, "empty"),
    (b"hello, I am not an image\n" * 10, NotAnImage, "not an image format"),
    (b"<svg xmlns='http://www.w3.org/2000/svg'/>", NotAnImage, "not an image format"),
    (encode(gradient(), "JPEG")[:300], NotAnImage, "damaged or truncated"),
    (b"\xff\xd8\xff" + bytes(2048), NotAnImage, "damaged or truncated|not an image format"),
    (encode(gradient(16, 16)), ImageTooSmall, "at least 32x32"),
    (encode(Image.new("L", (1, 900))), ImageTooSmall, "1x900"),
])
def test_bad_image_bytes(data, error, message):
    with pytest.raises(error, match=message):
        load_image(data)


def test_size_limits_are_checked_before_decoding():
    with pytest.raises(ImageTooLarge, match="limit is"):
        load_image(bytes(2000), max_bytes=1000)
    with pytest.raises(ImageTooLarge, match="megapixels"):
        load_image(encode(gradient(200, 100)), max_pixels=10_000)


def test_awkward_images_decode_to_upright_rgb():
    image = gradient()
    rotated = image.transpose(Image.Transpose.ROTATE_90)  # stored sideways, EXIF says how to turn it back
    exif = Image.Exif()
    exif[0x0112] = 6
    upright = load_image(encode(rotated, "JPEG", exif=exif.tobytes()))
    assert upright.mode == "RGB" and upright.size == image.size
    rgba = image.convert("RGBA")
    rgba.putalpha(0)  # fully transparent: composited on white
    assert np.asarray(load_image(encode(rgba))).min() == 255
    sixteen = Image.fromarray((np.asarray(image.convert("L"), np.uint16) * 257).astype(np.uint16))
    assert np.abs(np.asarray(load_image(encode(sixteen)).convert("L"), int) - np.asarray(image.convert("L"), int)).max() <= 1
    assert load_image(encode(image.convert("CMYK"), "JPEG")).mode == "RGB"
    assert load_image(np.asarray(image, np.float32) / 255).size == image.size


def zip_of(entries: dict[str, bytes], symlinks: tuple[str, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            if name in symlinks:
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, data)
    return buffer.getvalue()


PNG = encode(gradient())


@pytest.mark.parametrize("data, message", [
    (b"", "empty"),
    (b"PK\x03\x04 not really a zip" * 20, "not a readable zip"),
    (zip_of({}), "no files"),
    (zip_of({"../evil.png": PNG}), "unsafe path"),
    (zip_of({"/tmp/evil.png": PNG}), "unsafe path"),
    (zip_of({"a/link.png": b"/etc/passwd"}, symlinks=("a/link.png",)), "symbolic link"),
    (zip_of({"a/zeros.png": bytes(10 * 1024 * 1024)}), "zip bomb"),
    (zip_of({"a/readme.txt": b"hi", "flat.png": PNG}), "no images"),
])
def test_bad_gallery_zips(data, message, tmp_path):
    with pytest.raises(DataUnavailable, match=message), zip_gallery(data):
        pass


def test_a_gallery_zip_unpacks_privately_and_is_removed():
    data = zip_of({f"top/{person}/{k}.png": PNG for person in ("ann", "bob") for k in range(3)} | {"__MACOSX/top/._x.png": b"x"})
    with zip_gallery(data) as gallery:
        root = gallery.sources[0].parents[1]
        assert sorted(gallery.identities) == ["ann", "bob"] and len(gallery) == 6
        assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert not root.exists()
