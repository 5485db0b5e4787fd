"""Bytes in, aligned face chips out.

Every way an image can be bad ends here with a named error (``unlearn_core.errors``). Faces are
found with facenet-pytorch's MTCNN (weights ship in its wheel) and aligned with a similarity
transform from its 5 landmarks onto the backbone's template. Dataset chips are cached on disk by
content hash; uploads are never cached.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm.auto import tqdm

from .errors import ImageTooLarge, ImageTooSmall, MultipleFaces, NoFaceFound, NotAnImage
from .storage import atomic_write

MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_PIXELS = 40_000_000
MIN_SIDE = 32
DETECT_MAX_SIDE = 1024
DETECT_MIN_SIDE = 256
MIN_FACE_PROB = 0.95
DETECT_BATCH = 8

ImageSource = bytes | str | Path | Image.Image | np.ndarray


def load_image(source: ImageSource, max_bytes: int = MAX_FILE_BYTES, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode any common image to 8-bit RGB, upright (EXIF orientation applied).

    Handles grayscale, palette, alpha (composited on white), CMYK, 16-bit and animated images
    (first frame). Raises ``NotAnImage``, ``ImageTooLarge`` or ``ImageTooSmall``.
    """
    if isinstance(source, np.ndarray):
        source = Image.fromarray(_to_uint8(source))
    if isinstance(source, Image.Image):
        image = source
    else:
        data = Path(source).read_bytes() if isinstance(source, (str, Path)) else source
        if len(data) == 0:
            raise NotAnImage("The file is empty (0 bytes).")
        if len(data) > max_bytes:
            raise ImageTooLarge(f"The file is {len(data) / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB.")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                image = Image.open(io.BytesIO(data))
                _check_pixels(image.size, max_pixels)
                image.load()
        except (ImageTooLarge, NotAnImage):
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            raise ImageTooLarge(f"The image has too many pixels (decompression bomb guard): {err}") from None
        except UnidentifiedImageError:
            raise NotAnImage("The file is not an image format we can read (try JPEG or PNG).") from None
        except (OSError, SyntaxError, ValueError) as err:
            raise NotAnImage(f"The image file is damaged or truncated ({err}).") from None
    _check_pixels(image.size, max_pixels)
    with contextlib.suppress(Exception):  # malformed EXIF must not lose the image
        image = ImageOps.exif_transpose(image)
    rgb = _to_rgb(image)
    if min(rgb.size) < MIN_SIDE:
        raise ImageTooSmall(f"The image is {rgb.size[0]}x{rgb.size[1]} pixels; a face needs at least {MIN_SIDE}x{MIN_SIDE}.")
    return rgb


def _check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    if size[0] * size[1] > max_pixels:
        raise ImageTooLarge(f"The image is {size[0]}x{size[1]} pixels; the limit is {max_pixels / 1e6:.0f} megapixels.")


def _to_uint8(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if np.issubdtype(array.dtype, np.floating):
        scale = 255.0 if array.max(initial=0) <= 1.0 else 1.0
        return np.clip(array * scale, 0, 255).astype(np.uint8)
    return (array.astype(np.float64) * 255.0 / max(int(array.max(initial=0)), 255)).astype(np.uint8)


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        return Image.fromarray(_to_uint8(np.asarray(image))).convert("RGB")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return image.convert("RGB")


@dataclass(frozen=True)
class Detection:
    box: np.ndarray  # x1, y1, x2, y2 in image pixels
    prob: float
    landmarks: np.ndarray  # (5, 2): left eye, right eye, nose, mouth left, mouth right


@dataclass(frozen=True)
class AlignedFace:
    chip: np.ndarray  # (S, S, 3) uint8 RGB
    detection: Detection
    n_faces: int


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping ``src`` to ``dst``.

    Umeyama (1991) closed form; returns the 2x3 matrix ``A`` with ``dst ~= A @ [x, y, 1]``.
    """
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = dst_c.T @ src_c / len(src)
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1
    rotation = u @ np.diag(d) @ vt
    scale = (s * d).sum() / src_c.var(0).sum()
    translation = dst_mean - scale * rotation @ src_mean
    return np.hstack([scale * rotation, translation[:, None]])


def align(image: Image.Image, landmarks: np.ndarray, template: np.ndarray, size: int) -> np.ndarray:
    """Warp ``image`` so its 5 landmarks land on ``template``; returns a (size, size, 3) uint8 chip."""
    forward = np.vstack([similarity_transform(landmarks.astype(np.float64), template.astype(np.float64)), [0, 0, 1]])
    inverse = np.linalg.inv(forward)[:2].ravel()  # PIL maps output pixels back to input pixels
    chip = image.transform((size, size), Image.Transform.AFFINE, tuple(inverse), resample=Image.Resampling.BILINEAR)
    return np.asarray(chip, dtype=np.uint8)


class FaceDetector:
    """MTCNN on CPU or GPU; one shared instance per device (``FaceDetector.shared()``)."""

    _instances: dict[str, FaceDetector] = {}
    _lock = threading.Lock()

    def __init__(self, device: str = "cpu", min_prob: float = MIN_FACE_PROB, batch_size: int = DETECT_BATCH):
        from facenet_pytorch import MTCNN

        self.mtcnn = MTCNN(keep_all=True, device=device, min_face_size=20)
        self.min_prob, self.batch_size = min_prob, batch_size
        self._run_lock = threading.Lock()

    @classmethod
    def shared(cls, device: str = "cpu") -> FaceDetector:
        with cls._lock:
            if device not in cls._instances:
                cls._instances[device] = cls(device)
            return cls._instances[device]

    def detect(self, image: Image.Image) -> list[Detection]:
        """All faces with probability >= ``min_prob``, in original image coordinates."""
        return self.detect_many([image])[0]

    def detect_many(self, images: Sequence[Image.Image]) -> list[list[Detection]]:
        """``detect`` for several images: those of one size (after scaling) go through MTCNN
        together, ``batch_size`` at a time (its networks then run once per pyramid scale per batch)."""
        batch_size = self.batch_size
        # very large photos are shrunk; small, tightly cropped ones (Olivetti's 64x64) are enlarged
        scales = [min(DETECT_MAX_SIDE / max(im.size), max(1.0, DETECT_MIN_SIDE / max(im.size))) for im in images]
        scaled = [im if s == 1.0 else im.resize((round(im.width * s), round(im.height * s)), Image.Resampling.BILINEAR)
                  for im, s in zip(images, scales)]
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, im in enumerate(scaled):
            by_size.setdefault(im.size, []).append(i)
        found: list[list[Detection]] = [[] for _ in images]
        for same_size in by_size.values():
            for first in range(0, len(same_size), batch_size):
                chunk = same_size[first : first + batch_size]
                with self._run_lock, torch.no_grad():
                    boxes, probs, points = self.mtcnn.detect([scaled[i] for i in chunk], landmarks=True)
                for i, b, p, pts in zip(chunk, boxes, probs, points):
                    if b is not None:
                        found[i] = [Detection(box=np.asarray(bb, np.float64) / scales[i], prob=float(pp),
                                              landmarks=np.asarray(ll, np.float64) / scales[i])
                                    for bb, pp, ll in zip(b, p, pts) if pp is not None and pp >= self.min_prob]
        return found


def central_face(detections: Sequence[Detection], size: tuple[int, int]) -> int:
    """Index of the main face: large and near the image centre.

    Score = box diagonal / (1 + distance of the box centre from the image centre in units of the
    image diagonal * 4). Dataset photos (LFW) are centred on their subject and a selfie on its
    taker; background faces are smaller and off-centre. On 24 LFW people used as visitors the
    largest face alone picked a bystander in 4 of their 120 photos (e.g. a larger face behind the
    subject), this score in none.
    """
    centre = np.array(size, np.float64) / 2
    diagonal = float(np.hypot(*size))
    scores = []
    for det in detections:
        box_centre = (det.box[:2] + det.box[2:]) / 2
        box_diag = float(np.hypot(*(det.box[2:] - det.box[:2])))
        offset = float(np.linalg.norm(box_centre - centre)) / diagonal
        scores.append(box_diag / (1 + 4 * offset))
    return int(np.argmax(scores))


def align_portrait(source: ImageSource, template: np.ndarray, size: int, allow_multiple: bool = False,
                   detector: FaceDetector | None = None) -> AlignedFace:
    """Align the single face of an uploaded portrait.

    Several faces raise ``MultipleFaces`` (with the count) unless ``allow_multiple``, in which case
    the main face (``central_face``: large and central) is used and ``n_faces`` says how many were seen.
    """
    image = load_image(source)
    detections = (detector or FaceDetector.shared()).detect(image)
    if not detections:
        raise NoFaceFound("No face was found in the image. Use a well-lit, frontal photo where the face is clearly visible.")
    if len(detections) > 1 and not allow_multiple:
        raise MultipleFaces(len(detections))
    det = detections[central_face(detections, image.size)]
    return AlignedFace(align(image, det.landmarks, template, size), det, len(detections))


def content_digest(source: Path | np.ndarray) -> tuple[bytes | np.ndarray, str]:
    """A dataset image's content (file bytes, or the array) and its sha256, the key of every cache."""
    if isinstance(source, np.ndarray):
        return source, hashlib.sha256(str(source.shape).encode() + source.tobytes()).hexdigest()
    data = Path(source).read_bytes()
    return data, hashlib.sha256(data).hexdigest()


class ChipCache:
    """Aligned dataset chips on disk, keyed by (template, size) and the image's sha256.

    One PNG per image (lossless), with the face count and detection probability in its text
    chunk; images without a face get an empty ``.none`` marker so they are not detected again.
    """

    def __init__(self, root: Path, template: np.ndarray, size: int):
        key = hashlib.sha256(template.astype(np.float32).tobytes() + str(size).encode()).hexdigest()[:12]
        self.root = Path(root) / f"chips-{size}-{key}"
        self.template, self.size = template, size

    def _path(self, digest: str, suffix: str) -> Path:
        return self.root / digest[:2] / f"{digest}{suffix}"

    def has(self, digest: str) -> bool:
        """Whether the image with this content digest was aligned already (a chip or a no-face marker)."""
        return self._path(digest, ".png").exists() or self._path(digest, ".none").exists()

    def read(self, digest: str) -> tuple[np.ndarray | None, dict] | None:
        """The cached chip (``None`` for an image without a face) and record, or ``None`` if not cached."""
        png = self._path(digest, ".png")
        if png.exists():
            with Image.open(png) as cached:
                return np.asarray(cached.convert("RGB")), json.loads(cached.text.get("record", "{}"))
        if self._path(digest, ".none").exists():
            return None, {"n_faces": 0}
        return None

    def put(self, digest: str, chip: np.ndarray | None, record: dict) -> None:
        """Store an aligned chip (or, for ``None``, the marker of an image without a face)."""
        png = self._path(digest, ".png")
        png.parent.mkdir(parents=True, exist_ok=True)
        if chip is None:
            self._path(digest, ".none").touch()
            return
        from PIL.PngImagePlugin import PngInfo

        info = PngInfo()
        info.add_text("record", json.dumps(record))
        atomic_write(png, lambda tmp: Image.fromarray(chip).save(tmp, format="PNG", pnginfo=info))

    def get(self, source: Path | np.ndarray, detector: FaceDetector) -> tuple[np.ndarray | None, dict]:
        """The chip for a dataset image (``None`` if it has no face) and its detection record."""
        return self.get_many([source], detector)[0]

    def get_many(self, sources: Sequence[Path | np.ndarray], detector: FaceDetector,
                 desc: str = "aligning faces") -> list[tuple[np.ndarray | None, dict]]:
        """``get`` for many images; those not cached are aligned in MTCNN batches and cached."""
        contents = [content_digest(s) for s in sources]
        out = [self.read(digest) for _, digest in contents]
        missing = [i for i, hit in enumerate(out) if hit is None]
        bar = tqdm(total=len(missing), desc=desc, disable=len(missing) < 50, leave=False)
        for first in range(0, len(missing), DETECT_BATCH):
            chunk = missing[first : first + DETECT_BATCH]
            for i, aligned in zip(chunk, align_dataset_images([contents[i][0] for i in chunk], detector, self.template, self.size)):
                self.put(contents[i][1], *aligned)
                out[i] = aligned
            bar.update(len(chunk))
        bar.close()
        return out


def align_dataset_images(contents: Sequence[bytes | np.ndarray], detector: FaceDetector, template: np.ndarray,
                         size: int) -> list[tuple[np.ndarray | None, dict]]:
    """Dataset images (their content, as ``content_digest`` reads it) to the main face's chip and
    its detection record, detected in one MTCNN batch; an unreadable image or one without a face
    gives ``(None, {"n_faces": 0})``."""
    images: list[Image.Image | None] = []
    for content in contents:
        try:
            images.append(load_image(content))
        except (NotAnImage, ImageTooLarge, ImageTooSmall):
            images.append(None)
    readable = [i for i, im in enumerate(images) if im is not None]
    detections = dict(zip(readable, detector.detect_many([images[i] for i in readable])))
    out: list[tuple[np.ndarray | None, dict]] = []
    for i, image in enumerate(images):
        found = detections.get(i, [])
        if image is None or not found:
            out.append((None, {"n_faces": 0}))
            continue
        chosen = central_face(found, image.size)
        record = {"n_faces": len(found), "chosen": chosen, "prob": round(found[chosen].prob, 4),
                  "landmarks": np.round(found[chosen].landmarks, 3).tolist()}
        out.append((align(image, found[chosen].landmarks, template, size), record))
    return out
