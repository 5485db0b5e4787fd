"""Ingestion and re-embedding as a batch job: a gallery's images in, aligned chips and unit vectors out.

Images go through in fixed batches (``BatchJob``): each batch is aligned (MTCNN, one detector
batch) and embedded at once (``run_batch``), in this process (``LocalRunner``) or on Ray workers
(``distributed.RayRunner``). This process owns the caches: chips (``ChipCache``: one per content
hash) and one shard of vectors per batch, keyed by its images' content hashes and the embedder's
weights (``ChipEmbedder.key``), each written as soon as its batch is done. So a job killed half-way
and run again reads what it finished (no image aligned or embedded twice), and re-embedding after
the model changed re-aligns nothing. Alignment and embedding are timed separately
(``IngestStats``), because alignment is the bottleneck on a CPU.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .backbones import Backbone
from .data import Gallery
from .faces import ChipCache, FaceDetector, align_dataset_images, content_digest
from .features import InputEncoder
from .model import FaceModel
from .storage import atomic_write
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

    def on(self, device: str) -> ChipEmbedder:
        """This embedder on ``device``: itself when it is there, else a copy (the weights are copied)."""
        if torch.device(device) == torch.device(self.device):
            return self
        module = copy.deepcopy(self.backbone.module).to(device)
        model = copy.deepcopy(self.model).to(device) if self.model is not None else None
        return ChipEmbedder(dataclasses.replace(self.backbone, module=module), model, device)

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
    timing_s: dict[str, float] = field(default_factory=lambda: {"hash": 0.0, "align": 0.0, "embed": 0.0, "wall": 0.0})
    """Seconds hashing, aligning and embedding (summed over workers) and the run's wall time."""

    def rate(self, step: str) -> float:
        """Images per second of ``align`` or ``embed`` in this run (nan when it did none)."""
        done = self.aligned if step == "align" else self.embedded
        return done / self.timing_s[step] if done and self.timing_s[step] > 0 else float("nan")

    @property
    def throughput(self) -> float:
        """Images per wall-clock second over the whole run (all workers together)."""
        return self.n_images / self.timing_s["wall"] if self.timing_s["wall"] > 0 else float("nan")


@dataclass
class Ingested:
    """A gallery's faces as vectors: ``rows`` (gallery image indices with a face), their labels, vectors."""

    rows: np.ndarray
    labels: np.ndarray
    vectors: np.ndarray
    stats: IngestStats


@dataclass
class BatchJob:
    """One batch to compute: ``rows`` of the gallery, each image's ``inputs`` (its cached chip, ``None``
    for a cached image without a face, or its content to align) and the ``shard`` its vectors go to."""

    shard: str
    rows: np.ndarray
    digests: list[str]
    inputs: list[np.ndarray | bytes | None]


@dataclass
class BatchResult:
    """A computed batch (``shard`` names its job): which images have a face, their vectors, the
    chips aligned for it (by position in the batch, to cache) and the seconds spent aligning and embedding."""

    shard: str
    has_face: np.ndarray
    vectors: np.ndarray
    aligned: dict[int, tuple[np.ndarray | None, dict]]
    align_s: float
    embed_s: float


def run_batch(job: BatchJob, detector: FaceDetector, embedder: ChipEmbedder) -> BatchResult:
    """Align what the batch still needs (one MTCNN batch), then embed its faces in one pass; runs
    wherever the job is sent (this process, or a worker: see ``distributed``)."""
    started = time.perf_counter()
    to_align = [i for i, x in enumerate(job.inputs) if isinstance(x, bytes)]
    backbone = embedder.backbone
    aligned = dict(zip(to_align, align_dataset_images([job.inputs[i] for i in to_align], detector, backbone.template, backbone.chip_size)))
    chips = [aligned[i][0] if i in aligned else x for i, x in enumerate(job.inputs)]
    align_s = time.perf_counter() - started
    started = time.perf_counter()
    has_face = np.array([c is not None for c in chips], dtype=bool)
    faces = [c for c in chips if c is not None]
    vectors = embedder(np.stack(faces)) if faces else np.zeros((0, backbone.embed_dim), np.float32)
    return BatchResult(job.shard, has_face, vectors, aligned, align_s, time.perf_counter() - started)


class BatchRunner(Protocol):
    """Computes batch jobs and yields ``(job, result)`` pairs as they finish, in any order."""

    def run(self, jobs: Iterable[BatchJob], embedder: ChipEmbedder) -> Iterator[tuple[BatchJob, BatchResult]]: ...


@dataclass
class LocalRunner:
    """Batches one after another in this process (CPU or the embedder's GPU)."""

    detector: FaceDetector | None = None

    def run(self, jobs: Iterable[BatchJob], embedder: ChipEmbedder) -> Iterator[tuple[BatchJob, BatchResult]]:
        detector = self.detector or FaceDetector.shared(embedder.device)
        for job in jobs:
            yield job, run_batch(job, detector, embedder)


def ingest(gallery: Gallery, embedder: ChipEmbedder, cache_root: Path, batch_size: int = 256,
           runner: BatchRunner | None = None, progress: Progress | None = None) -> Ingested:
    """Align and embed every image of ``gallery`` in batches of ``batch_size`` (resumable: see the
    module docstring), computed by ``runner`` (default ``LocalRunner``; ``distributed.RayRunner``
    sends them to Ray workers). This process reads the caches, writes every finished batch's shard
    and newly aligned chips as it arrives, and shows a progress bar."""
    runner = runner or LocalRunner()
    chips = ChipCache(cache_root, embedder.backbone.template, embedder.backbone.chip_size)
    shards = Path(cache_root) / "vectors" / f"{embedder.backbone.name}-{embedder.key}"
    shards.mkdir(parents=True, exist_ok=True)
    stats = IngestStats(n_images=len(gallery))
    started = time.perf_counter()
    digests = [content_digest(s)[1] for s in gallery.sources]
    stats.timing_s["hash"] = time.perf_counter() - started
    batches = [np.arange(first, min(first + batch_size, len(gallery))) for first in range(0, len(gallery), batch_size)]
    names = [hashlib.sha256("".join(digests[i] for i in batch).encode()).hexdigest()[:24] + ".npz" for batch in batches]
    done: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    bar = tqdm(total=len(gallery), desc=f"ingesting {gallery.name}", unit="img", disable=len(gallery) < 50)

    def finished(name: str, n_images: int) -> None:
        bar.update(n_images)
        bar.set_postfix(aligned=stats.aligned, embedded=stats.embedded, shards_read=stats.shards_read)
        if progress is not None:
            progress(bar.n / len(gallery), f"ingesting: {bar.n} of {len(gallery)} images")

    for name, batch in zip(names, batches):
        if (shards / name).exists():
            with np.load(shards / name) as stored:
                done[name] = stored["has_face"], stored["vectors"]
            stats.shards_read += 1
            finished(name, len(batch))

    def jobs() -> Iterator[BatchJob]:  # built lazily: a job's image bytes are read when a worker can take it
        for name, batch in zip(names, batches):
            if name not in done:
                cached = [chips.read(digests[i]) for i in batch]
                inputs = [hit[0] if hit is not None else content_digest(gallery.sources[i])[0] for i, hit in zip(batch, cached)]
                yield BatchJob(name, batch, [digests[i] for i in batch], inputs)

    for job, result in runner.run(jobs(), embedder):
        for position, (chip, record) in result.aligned.items():
            chips.put(job.digests[position], chip, record)
        atomic_write(shards / job.shard, lambda tmp, r=result: _save_shard(tmp, r))
        done[job.shard] = result.has_face, result.vectors
        stats.aligned += len(result.aligned)
        stats.embedded += len(result.vectors)
        stats.timing_s["align"] += result.align_s
        stats.timing_s["embed"] += result.embed_s
        stats.shards_written += 1
        finished(job.shard, len(job.rows))
    bar.close()
    stats.timing_s["wall"] = time.perf_counter() - started
    rows = [batch[done[name][0]] for name, batch in zip(names, batches)]
    all_rows = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    vectors = [done[name][1] for name in names]
    dim = embedder.backbone.embed_dim
    return Ingested(all_rows, gallery.labels[all_rows], np.concatenate(vectors) if vectors else np.zeros((0, dim), np.float32), stats)


def _save_shard(path: Path, result: BatchResult) -> None:
    with open(path, "wb") as f:  # a file object: np.savez would add ".npz" to the temporary name
        np.savez(f, has_face=result.has_face, vectors=result.vectors)
