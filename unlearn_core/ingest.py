"""Ingestion and re-embedding as a batch job: a gallery's images in, aligned chips and unit vectors out.

Images go through in fixed batches: each is aligned (MTCNN, ``ChipCache``: one chip per content
hash) and the batch embedded at once. Each embedded batch is written to a shard keyed by its
images' content hashes and the embedder's weights (``ChipEmbedder.key``), so a job killed half-way
and run again reads what it finished (no image aligned or embedded twice) and re-embedding after
the model changed re-aligns nothing. Alignment and embedding are timed separately
(``IngestStats``), because alignment is the bottleneck on a CPU.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .backbones import Backbone
from .data import Gallery
from .faces import ChipCache, FaceDetector, content_digest
from .features import InputEncoder
from .model import FaceModel
from .types import Progress


@dataclass(frozen=True)
class ChipEmbedder:
    """Aligned chips -> unit embeddings: the pretrained backbone, or a trained ``FaceModel`` on its
    frozen trunk (``model.start``). ``key`` names the weights, so vectors of another model never
    pass for these."""

    backbone: Backbone
    model: FaceModel | None = None
    device: str = "cpu"

    @cached_property
    def key(self) -> str:
        digest = hashlib.blake2b(digest_size=8)
        digest.update(self.backbone.name.encode())
        for name, tensor in (self.model or self.backbone.module).state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()

    @cached_property
    def _encoder(self) -> InputEncoder:
        start = self.model.start if self.model is not None else len(self.backbone.module.stages)
        return InputEncoder(self.backbone, start, self.device)

    @torch.no_grad()
    def __call__(self, chips: np.ndarray) -> np.ndarray:
        x = self._encoder(chips)
        x = self.model.embed(x) if self.model is not None else F.normalize(x, dim=1)
        return x.cpu().numpy().astype(np.float32)


@dataclass
class IngestStats:
    """What a run computed and what it read from the caches, and where the time went."""

    n_images: int = 0
    aligned: int = 0
    """Images run through MTCNN by this run (the rest came from the chip cache or a shard)."""
    embedded: int = 0
    """Chips embedded by this run (the rest came from shards)."""
    shards_read: int = 0
    shards_written: int = 0
    timing_s: dict[str, float] = field(default_factory=lambda: {"hash": 0.0, "align": 0.0, "embed": 0.0})

    def rate(self, step: str) -> float:
        """Images per second of ``align`` or ``embed`` in this run (nan when it did none)."""
        done = self.aligned if step == "align" else self.embedded
        return done / self.timing_s[step] if done and self.timing_s[step] > 0 else float("nan")


@dataclass
class Ingested:
    """A gallery's faces as vectors: ``rows`` (gallery image indices with a face), their labels, vectors."""

    rows: np.ndarray
    labels: np.ndarray
    vectors: np.ndarray
    stats: IngestStats


def ingest(gallery: Gallery, embedder: ChipEmbedder, cache_root: Path, batch_size: int = 256,
           detector: FaceDetector | None = None, progress: Progress | None = None) -> Ingested:
    """Align and embed every image of ``gallery`` in batches of ``batch_size`` (resumable: see the
    module docstring); a progress bar shows images done and what came from the caches."""
    detector = detector or FaceDetector.shared(embedder.device)
    chips = ChipCache(cache_root, embedder.backbone.template, embedder.backbone.chip_size)
    shards = Path(cache_root) / "vectors" / f"{embedder.backbone.name}-{embedder.key}"
    shards.mkdir(parents=True, exist_ok=True)
    stats = IngestStats(n_images=len(gallery))
    started = time.perf_counter()
    digests = [content_digest(s)[1] for s in gallery.sources]
    stats.timing_s["hash"] = time.perf_counter() - started
    rows, vectors = [], []
    bar = tqdm(total=len(gallery), desc=f"ingesting {gallery.name}", unit="img", disable=len(gallery) < 50)
    for first in range(0, len(gallery), batch_size):
        batch = np.arange(first, min(first + batch_size, len(gallery)))
        shard = shards / f"{hashlib.sha256(''.join(digests[i] for i in batch).encode()).hexdigest()[:24]}.npz"
        if shard.exists():
            with np.load(shard) as stored:
                has_face, batch_vectors = stored["has_face"], stored["vectors"]
            stats.shards_read += 1
        else:
            has_face, batch_vectors = _align_and_embed(gallery, batch, digests, chips, detector, embedder, stats)
            tmp = shard.with_suffix(".tmp.npz")
            np.savez(tmp, has_face=has_face, vectors=batch_vectors)
            tmp.replace(shard)
            stats.shards_written += 1
        rows.append(batch[has_face])
        vectors.append(batch_vectors)
        bar.update(len(batch))
        bar.set_postfix(aligned=stats.aligned, embedded=stats.embedded, shards_read=stats.shards_read)
        if progress is not None:
            progress(batch[-1] / max(len(gallery) - 1, 1), f"ingesting: {batch[-1] + 1} of {len(gallery)} images")
    bar.close()
    all_rows = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    dim = embedder.backbone.embed_dim
    return Ingested(all_rows, gallery.labels[all_rows], np.concatenate(vectors) if vectors else np.zeros((0, dim), np.float32), stats)


def _align_and_embed(gallery: Gallery, batch: np.ndarray, digests: list[str], chips: ChipCache, detector: FaceDetector,
                     embedder: ChipEmbedder, stats: IngestStats) -> tuple[np.ndarray, np.ndarray]:
    """One batch: chips (cached or aligned now), then one embedding pass over those with a face."""
    started = time.perf_counter()
    stats.aligned += sum(not chips.has(digests[i]) for i in batch)
    aligned = [chips.get(gallery.sources[i], detector)[0] for i in batch]
    stats.timing_s["align"] += time.perf_counter() - started
    has_face = np.array([c is not None for c in aligned])
    started = time.perf_counter()
    faces = [c for c in aligned if c is not None]
    vectors = embedder(np.stack(faces)) if faces else np.zeros((0, embedder.backbone.embed_dim), np.float32)
    stats.embedded += len(faces)
    stats.timing_s["embed"] += time.perf_counter() - started
    return has_face, vectors
