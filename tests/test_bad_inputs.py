"""A corpus of bad inputs, each sent through the very functions the UI buttons call
(``app.run_forget_me`` / ``app.run_audit``): every one must come back as a clear message, nothing
may raise, and nothing may be left on disk (temporary folder, Gradio's upload folder, cache).
Images are generated here from real LFW faces; nothing is committed.
"""
from __future__ import annotations

import io
import stat
import struct
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import app

SHARED = Path(__file__).resolve().parents[2] / "shared"
LFW = SHARED / "sklearn_data" / "lfw_home" / "lfw_funneled"
FACE = LFW / "Tony_Blair" / "Tony_Blair_0001.jpg"
OTHER_FACE = LFW / "Colin_Powell" / "Colin_Powell_0001.jpg"
ERROR = "⚠️"


def encode(image: Image.Image, fmt: str, **kw) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kw)
    return buffer.getvalue()


def face() -> Image.Image:
    return Image.open(FACE).convert("RGB")


def bomb_png(width: int = 30_000, height: int = 30_000) -> bytes:
    """A tiny PNG whose header claims ``width x height`` pixels (900 MP)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = zlib.compress(b"\x00" * (width // 8 + 1) * 16)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def two_faces(big: int = 250, small: int = 170) -> Image.Image:
    canvas = Image.new("RGB", (big + small + 60, big + 40), (235, 235, 235))
    canvas.paste(face().resize((big, big)), (20, 20))
    canvas.paste(Image.open(OTHER_FACE).convert("RGB").resize((small, small)), (big + 40, 20 + (big - small) // 2))
    return canvas


def exif_rotated(image: Image.Image) -> bytes:
    """Pixels stored rotated by 90 degrees, with EXIF orientation 6 saying how to turn them back."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(image.transpose(Image.Transpose.ROTATE_90), "JPEG", exif=exif.tobytes())


def animated_gif(image: Image.Image) -> bytes:
    frames = [image.convert("P"), Image.new("P", image.size)]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def sixteen_bit_png(image: Image.Image) -> bytes:
    gray = (np.asarray(image.convert("L"), np.uint16) * 257).astype(np.uint16)
    return encode(Image.fromarray(gray), "PNG")


def rgba_png(image: Image.Image) -> bytes:
    rgba = image.convert("RGBA")
    alpha = np.full(rgba.size[::-1], 255, np.uint8)
    alpha[:20] = 0  # a transparent band at the top
    rgba.putalpha(Image.fromarray(alpha))
    return encode(rgba, "PNG")


def zip_of(entries: dict[str, bytes], symlinks: tuple[str, ...] = (), compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in entries.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = compression
            if name in symlinks:
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def att_zip(n_identities: int, per_identity: int = 6) -> dict[str, bytes]:
    root = SHARED / "faces" / "att_faces"
    people = sorted(p for p in root.iterdir() if p.is_dir())[:n_identities]
    return {f"{p.name}/{f.name}": f.read_bytes() for p in people for f in sorted(p.iterdir())[:per_identity]}


# -- the corpus ---------------------------------------------------------------------------------
PORTRAITS = {
    "no upload": (lambda: None, "upload a photo"),
    "0 bytes": (lambda: b"", "empty"),
    "text file": (lambda: b"hello, I am not an image\n" * 10, "not an image"),
    "random bytes": (lambda: np.random.default_rng(0).bytes(5000), "not an image"),
    "html": (lambda: b"<html><body><img src=x onerror=alert(1)></body></html>", "not an image"),
    "svg": (lambda: b'<svg xmlns="http://www.w3.org/2000/svg" width="200" height="200"><circle r="50"/></svg>', "not an image"),
    "pdf header": (lambda: b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", "not an image"),
    "jpeg header only": (lambda: FACE.read_bytes()[:200], "damaged or truncated|not an image"),
    "truncated jpeg": (lambda: FACE.read_bytes()[: len(FACE.read_bytes()) // 2], "damaged or truncated"),
    "decompression bomb": (bomb_png, "pixels"),
    "file too large": (lambda: b"\xff\xd8\xff" + bytes(21 * 1024 * 1024), "limit"),
    "16x16": (lambda: encode(face().resize((16, 16)), "PNG"), "at least"),
    "1x900 sliver": (lambda: encode(Image.new("RGB", (1, 900), "white"), "PNG"), "at least"),
    "huge image": (lambda: encode(Image.new("RGB", (8000, 6000), "white"), "JPEG", quality=30), "megapixels"),
    "no face (blank)": (lambda: encode(Image.new("RGB", (300, 300), (128, 128, 128)), "PNG"), "no face"),
    "no face (noise)": (lambda: encode(Image.fromarray(np.random.default_rng(1).integers(0, 255, (300, 300, 3), dtype=np.uint8)), "PNG"), "no face"),
    "several faces": (lambda: encode(two_faces(), "JPEG"), "faces in the image; please upload a portrait with exactly one"),
}

PARAMETERS = {  # (method, iterations, params, extras) -> expected words
    "iterations 0": ("dispersion", 0, "", 0, "iterations"),
    "iterations negative": ("dispersion", -5, "", 0, "iterations"),
    "iterations huge": ("dispersion", 10**9, "", 0, "iterations"),
    "iterations fractional": ("dispersion", 2.5, "", 0, "iterations"),
    "iterations NaN": ("dispersion", float("nan"), "", 0, "iterations"),
    "iterations missing": ("dispersion", None, "", 0, "iterations"),
    "unknown method": ("no_such_method", 5, "", 0, "unknown method"),
    "params not JSON": ("dispersion", 5, "{margin: ", 0, "json"),
    "params not an object": ("dispersion", 5, "[1, 2]", 0, "json object"),
    "unknown parameter": ("dispersion", 5, '{"foo": 1}', 0, "foo"),
    "parameter out of range": ("dispersion", 5, '{"margin": 5}', 0, "margin"),
    "parameter wrong type": ("dispersion", 5, '{"margin": "wide"}', 0, "margin"),
    "too many extra photos": ("dispersion", 5, "", 11, "at most"),
}

ZIPS = {
    "no zip uploaded": (lambda: None, "upload a zip"),
    "0-byte zip": (lambda: b"", "empty"),
    "not a zip": (lambda: b"PK\x03\x04 this is not really a zip" * 20, "not a readable zip"),
    "empty zip": (lambda: zip_of({}), "no files"),
    "zip-slip parent path": (lambda: zip_of({"../../evil/escape.jpg": FACE.read_bytes(), **att_zip(3)}), "unsafe path"),
    "zip-slip absolute path": (lambda: zip_of({"/tmp/evil_abs.jpg": FACE.read_bytes()}), "unsafe path"),
    "zip-slip nested parent": (lambda: zip_of({"s1/../../escape.jpg": FACE.read_bytes()}), "unsafe path"),
    "zip with a symlink": (lambda: zip_of({"s1/link.jpg": b"/etc/passwd"}, symlinks=("s1/link.jpg",)), "symbolic link"),
    "zip bomb": (lambda: zip_of({"s1/zeros.jpg": bytes(60 * 1024 * 1024)}), "zip bomb"),
    "zip of text files": (lambda: zip_of({"s1/readme.txt": b"hi", "s2/notes.md": b"x"}), "no images"),
    "zip with flat images": (lambda: zip_of({"a.jpg": FACE.read_bytes()}), "no images"),
    "zip with one identity": (lambda: zip_of(att_zip(1)), "at least 2"),
}


@pytest.fixture
def clean_disk(tmp_path, monkeypatch, lfw_workspace):
    """Private temporary, upload and cache folders; yields a function listing what is in them."""
    folders = {name: tmp_path / name for name in ("tmp", "gradio", "cache")}
    for folder in folders.values():
        folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folders["tmp"]))
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(folders["gradio"]))
    monkeypatch.setenv("UNLEARN_CACHE", str(folders["cache"]))
    monkeypatch.setattr(app, "SETTINGS", app.AppSettings(device="cpu", train_from="tail", iterations=1, warmup=False))
    app.POOL.add(lfw_workspace)

    def leftovers() -> list[str]:
        return sorted(str(p.relative_to(tmp_path)) for folder in folders.values() for p in folder.rglob("*"))

    return leftovers


def forget(portrait, extras=(), method="dispersion", iterations=1, params="", take_main=False):
    return app.run_forget_me(portrait, list(extras), method, iterations, take_main, params, None, None)


def audit(zip_upload=None, gallery="Uploaded zip", methods=("dispersion",), n_forget=1, n_retain=2, seed=0, names="", params=""):
    return app.run_audit(gallery, zip_upload, names, n_forget, n_retain, 0, seed, list(methods), 1, params, False, False, [], None, None)


def assert_message(outputs: tuple, expected: str) -> None:
    status, *rest, state = outputs
    assert status.startswith(ERROR), status
    assert any(e.lower() in status.lower() for e in expected.split("|")), status
    assert not any(rest), "a failed request must not return results"
    assert state is None or set(state) == {"uploads"}, "a failed request leaves no results in the session, only what was uploaded"


@pytest.mark.parametrize("name", list(PORTRAITS))
def test_bad_portrait(name, clean_disk):
    make, expected = PORTRAITS[name]
    assert_message(forget(make()), expected)
    assert clean_disk() == []


@pytest.mark.parametrize("name", list(PARAMETERS))
def test_bad_parameters(name, clean_disk):
    method, iterations, params, n_extras, expected = PARAMETERS[name]
    extras = [FACE.read_bytes()] * n_extras
    assert_message(forget(FACE.read_bytes(), extras, method, iterations, params), expected)
    assert clean_disk() == []


@pytest.mark.parametrize("name", list(ZIPS))
def test_bad_gallery_zip(name, clean_disk, tmp_path):
    make, expected = ZIPS[name]
    assert_message(audit(make()), expected)
    assert clean_disk() == []
    assert not any(Path(p).exists() for p in ("/tmp/evil_abs.jpg", tmp_path / "escape.jpg", tmp_path.parent / "evil"))


@pytest.mark.parametrize("field, value, expected", [
    ("methods", (), "at least one method"),
    ("methods", ("no_such_method",), "unknown method"),
    ("gallery", "Flickr", "choose a gallery"),
    ("n_forget", 0, "identities to forget"),
    ("n_retain", 1, "retain identities"),
    ("seed", -1, "seed"),
    ("names", "Nobody_Atall", "unknown identities"),
    ("params", '{"dispersion": {"margin": -1}}', "margin"),
])
def test_bad_audit_settings(field, value, expected, clean_disk):
    kwargs = {"gallery": "LFW", field: value}
    assert_message(audit(**kwargs), expected)
    assert clean_disk() == []


def test_awkward_but_valid_photos_are_used(clean_disk):
    """EXIF-rotated two-face portrait (the main one taken, and said so); CMYK, 16-bit, alpha, animated
    GIF extras are all decoded and used; unusable extras are skipped with a note, not a crash."""
    portrait = exif_rotated(two_faces())
    image = face()
    good = [encode(image.convert("CMYK"), "JPEG"), sixteen_bit_png(image), rgba_png(image), animated_gif(image)]
    bad = [b"", b"not an image", encode(Image.new("RGB", (200, 200), "white"), "PNG")]
    outputs = forget(portrait, good + bad, take_main=True)
    status, state = outputs[0], outputs[-1]
    assert status.startswith("✅"), status
    assert "faces; the main one (large and central) was used" in status
    for i in (2, 3, 4):  # 7 extras: the first 3 are enrolled, the rest check photos (the bad ones last)
        assert f"Check photo {i} was skipped" in status
    report = state["report"]
    assert report["n_enrolled"] + report["n_check"] == len(good) and not report["one_shot_check"]
    assert report["visitor"]["before"]["n_queries"] == report["n_check"] == 1
    # the main face (larger, nearer the centre) is Tony Blair's, the same person as the extras: before unlearning they find each other
    assert report["visitor"]["before"]["rank1"] == 1.0
    assert clean_disk() == []


def test_upload_file_is_deleted(clean_disk):
    """A photo Gradio stored for an upload is read once and deleted at once; a re-run with the same
    path uses the bytes kept in the session's memory."""
    folder = Path(app.gr.utils.get_upload_folder()) / "abc123"
    folder.mkdir(parents=True)
    upload = folder / "portrait.png"
    upload_bytes = encode(Image.new("RGB", (300, 300), (128, 128, 128)), "PNG")
    upload.write_bytes(upload_bytes)
    outputs = forget(str(upload))
    assert_message(outputs, "no face")
    assert not upload.exists()
    assert outputs[-1]["uploads"] == {"forget_me": {str(upload): upload_bytes}}  # kept in memory for a re-run
    assert_message(app.run_forget_me(str(upload), [], "dispersion", 1, False, "", outputs[-1], None), "no face")  # read from memory
    assert clean_disk() == []
