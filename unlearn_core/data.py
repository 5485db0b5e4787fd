"""Galleries (labelled face images) and the identity-disjoint unlearning protocol.

A gallery is any labelled image collection: LFW and Olivetti through scikit-learn's own loaders
(download when online, ``SCIKIT_LEARN_DATA`` cache offline), or a ``<root>/<identity>/<image>``
folder. ``make_split`` turns it into forget / retain / distractor sets, seeded.
"""
from __future__ import annotations

import hashlib
import io
import os
import stat
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import DataUnavailable, InvalidParameter

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".pgm", ".bmp", ".webp", ".tif", ".tiff", ".gif"}
PROTOCOL_MIN_IMAGES = 4
"""The fewest photos a person needs in a split: 2 to train on and 2 held out for testing."""


@dataclass
class Gallery:
    """Labelled images. ``sources[i]`` is a file path or an in-memory uint8 array.

    ``min_forget_images``/``min_retain_images``: the photos per person this gallery asks of
    forget / retain identities by default (a split's ``min_images`` overrides both)."""

    name: str
    sources: list[Path | np.ndarray]
    labels: np.ndarray
    identities: list[str]
    min_forget_images: int = PROTOCOL_MIN_IMAGES
    min_retain_images: int = PROTOCOL_MIN_IMAGES

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if len(self.sources) != len(self.labels):
            raise InvalidParameter("a gallery needs one label per image")

    def __len__(self) -> int:
        return len(self.sources)

    def content_key(self) -> str:
        """What identifies this gallery's content in cache keys: the name for the built-in datasets
        (fixed by scikit-learn's loaders), a hash of every image's identity and bytes for folders
        and zips (two zips are both named 'zip', and a folder's name says nothing of its files)."""
        if self.name in ("lfw", "olivetti"):
            return self.name
        digest = hashlib.sha256()
        for source, label in zip(self.sources, self.labels):
            digest.update(self.identities[int(label)].encode())
            digest.update(source.tobytes() if isinstance(source, np.ndarray) else Path(source).read_bytes())
        return f"{self.name}:{digest.hexdigest()[:16]}"

    def counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=len(self.identities))

    def with_identity(self, name: str, sources: list[Path | np.ndarray]) -> Gallery:
        """This gallery plus one person's photos from elsewhere (e.g. the person an audit is about)."""
        if name in self.identities:
            raise InvalidParameter(f"{self.name} already has an identity named {name!r}; rename the folder")
        labels = np.concatenate([self.labels, np.full(len(sources), len(self.identities))])
        return Gallery(f"{self.name}+{name}", [*self.sources, *sources], labels, [*self.identities, name],
                       self.min_forget_images, self.min_retain_images)


def data_home() -> str | None:
    return os.environ.get("SCIKIT_LEARN_DATA")


def load_lfw(download_if_missing: bool = True) -> Gallery:
    """LFW (deep-funneled) through scikit-learn's fetcher; every identity, files read from disk."""
    from sklearn.datasets._lfw import _check_fetch_lfw  # the fetcher's own download + cache step

    try:
        _, folder = _check_fetch_lfw(data_home=data_home(), funneled=True, download_if_missing=download_if_missing)
    except (OSError, Exception) as err:  # offline without a cache: URLError, OSError, ...
        raise DataUnavailable(
            "LFW is not in the scikit-learn cache and could not be downloaded "
            f"({type(err).__name__}). Set SCIKIT_LEARN_DATA to a folder holding lfw_home/, "
            "or run once with internet access."
        ) from None
    gallery = load_folder(folder, name="lfw")
    gallery.min_forget_images, gallery.min_retain_images = 20, 10
    return gallery


def load_olivetti(download_if_missing: bool = True) -> Gallery:
    """The Olivetti faces (ORL crops): 40 identities x 10 images, 64x64 grayscale."""
    from sklearn.datasets import fetch_olivetti_faces

    try:
        bunch = fetch_olivetti_faces(data_home=data_home(), download_if_missing=download_if_missing)
    except Exception as err:
        raise DataUnavailable(
            f"Olivetti faces are not cached and could not be downloaded ({type(err).__name__}). "
            "Set SCIKIT_LEARN_DATA to a folder holding olivetti_py3.pkz."
        ) from None
    images = [(img * 255).round().astype(np.uint8) for img in bunch.images]
    return Gallery("olivetti", images, bunch.target, [f"olivetti_{i:02d}" for i in range(40)], 10, 4)


def _images_in(folder: Path) -> list[Path]:
    return sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith("."))


def person_photos(folder: str | Path) -> list[Path]:
    """The image files of a folder holding one person's photos."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataUnavailable(f"photo folder {folder} does not exist")
    files = _images_in(folder)
    if not files:
        raise DataUnavailable(f"{folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


def load_folder(root: str | Path, name: str | None = None) -> Gallery:
    """Any ``<root>/<identity>/<image>`` tree (hidden files and non-images ignored)."""
    root = Path(root)
    if not root.is_dir():
        raise DataUnavailable(f"gallery folder {root} does not exist")
    sources, labels, identities = [], [], []
    for person in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = _images_in(person)
        if not files:
            continue
        identities.append(person.name)
        sources += files
        labels += [len(identities) - 1] * len(files)
    if len(identities) < 2:
        raise DataUnavailable(f"{root} holds {len(identities)} identity folders with images; "
                              "a gallery needs at least 2 (layout: <root>/<identity>/<image>)")
    return Gallery(name or f"folder:{root.name}", sources, np.array(labels), identities)


def load_gallery(spec: str, download_if_missing: bool = True) -> Gallery:
    """``"lfw"``, ``"olivetti"``, ``"orl"`` (alias of olivetti) or ``"folder:PATH"``."""
    if spec == "lfw":
        return load_lfw(download_if_missing)
    if spec in ("olivetti", "orl"):
        return load_olivetti(download_if_missing)
    if spec.startswith("folder:"):
        return load_folder(spec.removeprefix("folder:"))
    raise InvalidParameter(f"unknown dataset {spec!r}; use 'lfw', 'olivetti', or 'folder:PATH'")


@dataclass
class Split:
    """Indices into a gallery for one unlearning request (identity-disjoint, seeded).

    ``forget_ids``/``retain_ids`` are gallery identity indices; ``*_train``/``*_test`` are image
    indices; ``distractors`` are images of identities outside both sets (gallery padding only).
    """

    seed: int
    forget_ids: np.ndarray
    retain_ids: np.ndarray
    forget_train: np.ndarray
    forget_test: np.ndarray
    retain_train: np.ndarray
    retain_test: np.ndarray
    distractors: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


def make_split(gallery: Gallery, n_forget: int, seed: int = 0, test_fraction: float = 0.3,
               max_images_per_identity: int = 50, n_distractors: int = 1000,
               forget_ids: list[str] | None = None, n_retain: int | None = None, min_images: int | None = None) -> Split:
    """The S0 §5.2 protocol, adapted: forget identities (>= ``min_images`` photos) sampled by seed
    unless named, retain identities = the others with >= ``min_images``; ``min_images=None``
    takes the gallery's own minimums (``min_forget_images``, ``min_retain_images``). Each
    identity's images (at most ``max_images_per_identity``, sampled) split train/test with at
    least 2 test images. Identities with a single image become distractors. ``n_retain`` keeps
    only that many retain identities (sampled), for small, fast galleries.
    """
    if min_images is not None and min_images < PROTOCOL_MIN_IMAGES:
        raise InvalidParameter(f"the minimum number of photos per person must be at least {PROTOCOL_MIN_IMAGES} "
                               f"(2 to train on, 2 to test), got {min_images}")
    if n_retain is not None and n_retain < 2:
        raise InvalidParameter(f"the number of retain identities must be at least 2, got {n_retain}")
    min_forget = gallery.min_forget_images if min_images is None else min_images
    min_retain = gallery.min_retain_images if min_images is None else min_images
    rng = np.random.default_rng(seed)
    counts = gallery.counts()
    eligible = np.flatnonzero(counts >= min_forget)
    if forget_ids:
        unknown = [n for n in forget_ids if n not in gallery.identities]
        if unknown:
            raise InvalidParameter(f"unknown identities {unknown[:5]} in gallery {gallery.name}")
        chosen = np.array([gallery.identities.index(n) for n in forget_ids])
        if (counts[chosen] < PROTOCOL_MIN_IMAGES).any():
            raise InvalidParameter(f"identities to forget need at least {PROTOCOL_MIN_IMAGES} images each; "
                                   f"{[gallery.identities[i] for i in chosen if counts[i] < PROTOCOL_MIN_IMAGES]} have fewer")
    else:
        if n_forget < 1:
            raise InvalidParameter(f"the number of identities to forget must be at least 1, got {n_forget}")
        if n_forget > len(eligible) - 1:  # at least one eligible person stays to be retained
            raise InvalidParameter(
                f"{gallery.name} has {_people(len(eligible))} with at least {min_forget} photos each; forgetting {n_forget} "
                f"needs {n_forget + 1} (one more stays to be retained). "
                + (f"Forget at most {len(eligible) - 1}. " if len(eligible) >= 2 else "") + _more_people(min_forget))
        chosen = np.sort(rng.choice(eligible, n_forget, replace=False))
    retain = np.setdiff1d(np.flatnonzero(counts >= min_retain), chosen)
    if n_retain is not None:
        retain = np.sort(rng.permutation(retain)[:n_retain])
    if len(retain) < 2:
        raise InvalidParameter(f"{gallery.name} leaves {_people(len(retain))} with at least {min_retain} photos each to retain "
                               f"besides those forgotten; at least 2 are needed. {_more_people(min_retain)}")

    def split_ids(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        train, test = [], []
        for identity in ids:
            images = np.flatnonzero(gallery.labels == identity)
            images = rng.permutation(images)[:max_images_per_identity]
            n_test = max(2, round(test_fraction * len(images)))
            test.append(images[:n_test])
            train.append(images[n_test:])
        return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))

    forget_train, forget_test = split_ids(chosen)
    retain_train, retain_test = split_ids(retain)
    singles = np.flatnonzero(np.isin(gallery.labels, np.flatnonzero(counts == 1)))
    distractors = np.sort(rng.permutation(singles)[:n_distractors])
    return Split(seed, chosen, retain, forget_train, forget_test, retain_train, retain_test, distractors)


def _people(n: int) -> str:
    return f"{n} {'person' if n == 1 else 'people'}"


def _more_people(minimum: int) -> str:
    """What a user can do about a gallery with too few eligible people."""
    if minimum > PROTOCOL_MIN_IMAGES:
        return (f"To use more people, lower the minimum number of photos per person (--min-images, or \"Minimum photos "
                f"per person\" in the app's Audit tab; {PROTOCOL_MIN_IMAGES} at the least).")
    return (f"To use more people, add them or their photos: {PROTOCOL_MIN_IMAGES} photos per person (2 to train on, "
            "2 to test) is the least the protocol needs.")


MAX_ZIP_BYTES = 200 * 1024 * 1024
MAX_ZIP_FILES = 5000
MAX_ZIP_UNCOMPRESSED = 1024 * 1024 * 1024
MAX_ZIP_RATIO = 200


@contextmanager
def zip_gallery(source: bytes | str | Path, max_bytes: int = MAX_ZIP_BYTES, max_files: int = MAX_ZIP_FILES,
                max_uncompressed: int = MAX_ZIP_UNCOMPRESSED, max_ratio: float = MAX_ZIP_RATIO) -> Iterator[Gallery]:
    """A gallery from a zip of ``<identity>/<image>`` folders (optionally under one top folder).

    The archive is checked before anything is written: it must be a readable, unencrypted zip of
    at most ``max_bytes`` with at most ``max_files`` entries, no absolute, parent (``..``),
    drive or link paths (zip-slip), a declared total of at most ``max_uncompressed`` bytes and
    no entry compressed more than ``max_ratio`` times (zip bombs). Image files are then copied
    into a private temporary folder (mode 0700), read with a hard size cap per entry, and the
    folder is removed when the ``with`` block ends, whatever happens inside it.
    """
    data = Path(source).read_bytes() if isinstance(source, (str, Path)) else source
    if not data:
        raise DataUnavailable("The gallery zip is empty (0 bytes).")
    if len(data) > max_bytes:
        raise DataUnavailable(f"The gallery zip is {len(data) / 1e6:.0f} MB; the limit is {max_bytes / 1e6:.0f} MB.")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        entries = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as err:
        raise DataUnavailable(f"The gallery file is not a readable zip archive ({err}).") from None
    images = _checked_zip_images(entries, max_files, max_uncompressed, max_ratio)
    with tempfile.TemporaryDirectory(prefix="unlearn-zip-") as tmp:
        root = Path(tmp)
        for info, (identity, name) in images:
            target = root / identity / name
            target.parent.mkdir(mode=0o700, exist_ok=True)
            try:
                with archive.open(info) as member:
                    content = member.read(info.file_size + 1)
            except (zipfile.BadZipFile, OSError, ValueError, EOFError, RuntimeError, NotImplementedError) as err:
                raise DataUnavailable(f"The gallery zip is damaged: {info.filename!r} cannot be read ({err}).") from None
            if len(content) > info.file_size:
                raise DataUnavailable(f"The gallery zip is malformed: {info.filename!r} is larger than its header says.")
            target.write_bytes(content)
        yield load_folder(root, name="zip")


def _checked_zip_images(entries: list[zipfile.ZipInfo], max_files: int, max_uncompressed: int,
                        max_ratio: float) -> list[tuple[zipfile.ZipInfo, tuple[str, str]]]:
    """The image entries as (info, (identity, file name)), after every safety check."""
    if not entries:
        raise DataUnavailable("The gallery zip holds no files; expected <identity>/<image> folders.")
    if len(entries) > max_files:
        raise DataUnavailable(f"The gallery zip holds {len(entries)} entries; the limit is {max_files}.")
    if sum(e.file_size for e in entries) > max_uncompressed:
        raise DataUnavailable(f"The gallery zip would unpack to more than {max_uncompressed / 1e6:.0f} MB.")
    for e in entries:
        name = e.filename.replace("\\", "/")
        parts = name.split("/")
        if name.startswith("/") or ".." in parts or ":" in parts[0] or "\x00" in name:
            raise DataUnavailable(f"The gallery zip has an unsafe path {e.filename!r} (absolute or outside the archive); refused.")
        if stat.S_ISLNK(e.external_attr >> 16):
            raise DataUnavailable(f"The gallery zip holds a symbolic link {e.filename!r}; refused.")
        if e.flag_bits & 0x1:
            raise DataUnavailable("The gallery zip is encrypted; please upload an unencrypted zip.")
        if e.compress_size and e.file_size / e.compress_size > max_ratio:
            raise DataUnavailable(f"The gallery zip entry {e.filename!r} is compressed {e.file_size / e.compress_size:.0f}x (zip bomb guard).")
    files = [e for e in entries if not e.is_dir()]
    paths = [[p for p in e.filename.replace("\\", "/").split("/") if p] for e in files]
    keep = [(e, p) for e, p in zip(files, paths) if p[0] != "__MACOSX" and not any(s.startswith(".") for s in p)]
    roots = {p[0] for _, p in keep if len(p) == 3}
    depth = 3 if keep and all(len(p) == 3 for _, p in keep) and len(roots) == 1 else 2
    images = [(e, (p[-2], p[-1])) for e, p in keep if len(p) == depth and Path(p[-1]).suffix.lower() in IMAGE_SUFFIXES]
    if not images:
        raise DataUnavailable("The gallery zip holds no images in <identity>/<image> folders.")
    return images
