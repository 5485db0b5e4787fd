"""``bench-scale``: ingestion rates, and the gallery index's build time, latency, recall and deletes at scale.

Real vectors are every LFW face (``ingest``, pretrained backbone); beyond LFW the galleries are
synthetic, drawn from a two-level Gaussian fitted to those real vectors (``FittedFaces``: people's
centres from the spread of real identity means, each person's photos from the pooled spread of
real photos around their identity mean, ``PHOTOS_PER_PERSON`` each), so that a person is a cluster
of photos as in LFW and "delete one person" deletes a realistic number of rows.
"""
from __future__ import annotations

import platform
import resource
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np
import torch

from .data import Gallery
from .faces import DETECT_BATCH, FaceDetector
from .index import EXACT_BELOW, IVF_MIN_POINTS, GalleryIndex, IVFParams
from .ingest import BatchRunner, ChipEmbedder, IngestStats, LocalRunner, ingest
from .metrics import unit_rows

PHOTOS_PER_PERSON = 10
N_QUERIES = 200
NPROBES = (16, 32, 64, 128)
"""nprobe values measured for each IVF index (the default, ``IVFParams.for_size``, is chosen from them)."""


@dataclass(frozen=True)
class FittedFaces:
    """A Gaussian over identity centres and one over a photo's offset from its identity's centre."""

    centre_mean: np.ndarray
    centre_chol: np.ndarray
    within_chol: np.ndarray

    @classmethod
    def fit(cls, vectors: np.ndarray, labels: np.ndarray) -> FittedFaces:
        """Fitted on identities with at least two photos."""
        people = [p for p in np.unique(labels) if (labels == p).sum() >= 2]
        means = np.stack([vectors[labels == p].mean(0) for p in people])
        offsets = np.concatenate([vectors[labels == p] - m for p, m in zip(people, means)])
        ridge = 1e-6 * np.eye(vectors.shape[1])
        return cls(means.mean(0), np.linalg.cholesky(np.cov(means.T) + ridge), np.linalg.cholesky(np.cov(offsets.T) + ridge))

    def people(self, n_people: int, rng: np.random.Generator) -> np.ndarray:
        return self.centre_mean + rng.standard_normal((n_people, len(self.centre_mean))) @ self.centre_chol.T

    def photos(self, centres: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One unit photo vector per row of ``centres``."""
        noise = rng.standard_normal(centres.shape) @ self.within_chol.T
        return unit_rows(centres + noise).astype(np.float32)


@dataclass
class Gallerized:
    """A gallery's vectors, its people, and held-out queries (new photos of its people)."""

    name: str
    ids: np.ndarray
    labels: np.ndarray
    vectors: np.ndarray
    queries: np.ndarray


def synthetic(fitted: FittedFaces, n: int, seed: int) -> Gallerized:
    rng = np.random.default_rng(seed)
    n_people = n // PHOTOS_PER_PERSON
    centres = fitted.people(n_people, rng)
    labels = np.repeat(np.arange(n_people), PHOTOS_PER_PERSON)
    vectors = np.concatenate([fitted.photos(centres[labels[i : i + 100_000]], rng) for i in range(0, n, 100_000)])
    queries = fitted.photos(centres[rng.choice(n_people, N_QUERIES)], rng)
    return Gallerized(f"synthetic {n:,}", np.arange(n), labels, vectors, queries)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_index(gallery: Gallerized, ivf: IVFParams | None, nprobes: tuple[int, ...], seed: int,
                  milvus_uri: str | None = None) -> list[dict[str, float | str]]:
    """Build time, single-query top-10 latency p50/p99, recall@10 against exact search, and the
    time to delete one person's rows (median of 5 people with 2 photos or more), for one index kind
    (and each nprobe); ``milvus_uri``: the Milvus backend there instead of FAISS."""
    rng = np.random.default_rng(seed)
    exact_ids = unit_top10(gallery.queries, gallery.vectors, gallery.ids)
    started = time.perf_counter()
    if milvus_uri is not None:
        from .index_milvus import MilvusIndex

        index = MilvusIndex.build(milvus_uri, gallery.ids, gallery.vectors, gallery.labels)
    else:
        index = GalleryIndex.build(gallery.ids, gallery.vectors, gallery.labels, exact_below=0 if ivf else len(gallery.ids) + 1, ivf=ivf, seed=seed)
    build_s = time.perf_counter() - started
    rows = []
    for nprobe in [p for p in nprobes if p <= ivf.nlist] if ivf else (0,):
        if ivf:
            index.set_nprobe(nprobe)
        n_timed = N_QUERIES if ivf or len(gallery.ids) < 200_000 else 50  # exact search over 1M takes ~0.1 s per query
        latencies, found = [], []
        for q in gallery.queries[:n_timed]:
            started = time.perf_counter()
            found.append(index.search(q, 10)[1][0])
            latencies.append(time.perf_counter() - started)
        recall = float(np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found, exact_ids)]))
        default = milvus_uri is None and (ivf is None) == (len(gallery.ids) < EXACT_BELOW) and (ivf is None or nprobe == ivf.nprobe)  # build's pick
        rows.append({"gallery": gallery.name, "n": len(gallery.ids), "index": index.kind + (" **(default)**" if default else ""), "build_s": build_s,
                     "p50_ms": 1e3 * float(np.percentile(latencies, 50)), "p99_ms": 1e3 * float(np.percentile(latencies, 99)),
                     "recall10": recall, "n_timed": n_timed})
    people, counts = np.unique(gallery.labels, return_counts=True)
    people = people[counts >= 2]
    people = rng.choice(people, min(5, len(people)), replace=False)
    sizes, times = [], []
    for person in people:
        started = time.perf_counter()
        sizes.append(index.delete(label=int(person)))
        times.append(time.perf_counter() - started)
    for row in rows:
        row.update(delete_ms=1e3 * float(np.median(times)), delete_rows=float(np.median(sizes)), peak_rss_mb=peak_rss_mb())
    if milvus_uri is not None:
        index.close()
    return rows


def unit_top10(queries: np.ndarray, vectors: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Exact top-10 ids by a dense product, in chunks of the gallery (the ground truth)."""
    best_s = np.full((len(queries), 0), -np.inf, np.float32)
    best_i = np.zeros((len(queries), 0), np.int64)
    for i in range(0, len(vectors), 200_000):
        sims = queries @ vectors[i : i + 200_000].T
        top = np.argpartition(-sims, 10, axis=1)[:, :10]
        best_s = np.concatenate([best_s, np.take_along_axis(sims, top, 1)], 1)
        best_i = np.concatenate([best_i, ids[i : i + 200_000][top]], 1)
        order = np.argsort(-best_s, 1)[:, :10]
        best_s, best_i = np.take_along_axis(best_s, order, 1), np.take_along_axis(best_i, order, 1)
    return best_i


def ingestion_rates(gallery: Gallery, embedder: ChipEmbedder, n: int, seed: int, ray_workers: int = 0) -> dict[str, IngestStats]:
    """Align and embed the same ``n`` images drawn from ``gallery`` into an empty cache each time:
    one image per MTCNN call, MTCNN batches (the default), and ``ray_workers`` Ray workers in local
    mode (none if 0)."""
    rows = np.sort(np.random.default_rng(seed).choice(len(gallery), n, replace=False))
    sample = Gallery(f"{gallery.name} sample", [gallery.sources[i] for i in rows], gallery.labels[rows], gallery.identities)
    runners: dict[str, BatchRunner] = {
        "in process, one image per MTCNN call": LocalRunner(FaceDetector(embedder.device, batch_size=1)),
        f"in process, MTCNN batches of {DETECT_BATCH} (default)": LocalRunner(FaceDetector(embedder.device)),
    }
    if ray_workers:
        from .distributed import RayRunner

        runners[f"Ray local mode, {ray_workers} workers x 1 CPU"] = RayRunner(workers=ray_workers)
    out = {}
    for name, runner in runners.items():
        with tempfile.TemporaryDirectory() as cache:
            out[name] = ingest(sample, embedder, Path(cache), runner=runner).stats
    return out


def run_bench_scale(gallery: Gallery, embedder: ChipEmbedder, cache_root: Path, sizes: list[int], n_rate: int = 200,
                    seed: int = 0, ray_workers: int = 0, milvus: bool = False) -> dict:
    """Everything ``docs/bench-scale.md`` reports (``render``); ``milvus``: also the Milvus backend
    (Milvus Lite on a temporary file) on the real gallery."""
    rates = ingestion_rates(gallery, embedder, n_rate, seed, ray_workers)
    started = time.perf_counter()
    real = ingest(gallery, embedder, cache_root)
    lfw_s = time.perf_counter() - started
    rng = np.random.default_rng(seed)
    lfw = Gallerized(f"{gallery.name} (real)", real.rows, real.labels, real.vectors, real.vectors[rng.choice(len(real.rows), N_QUERIES)])
    fitted = FittedFaces.fit(real.vectors, real.labels)
    rows = measure_index(lfw, None, (), seed)
    if len(lfw.ids) >= IVFParams.for_size(len(lfw.ids)).nlist * IVF_MIN_POINTS:
        rows += measure_index(lfw, IVFParams.for_size(len(lfw.ids)), NPROBES, seed)
    if milvus:
        with tempfile.TemporaryDirectory() as folder:
            rows += measure_index(lfw, None, (), seed, milvus_uri=str(Path(folder) / "gallery.db"))
    for n in sizes:
        data = synthetic(fitted, n, seed)
        rows += measure_index(data, None, (), seed) + measure_index(data, IVFParams.for_size(n), NPROBES, seed)
        del data
    machine = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch / {faiss.omp_get_max_threads()} faiss thread(s)"
    return {"gallery": gallery.name, "rates": rates, "lfw": real.stats, "lfw_s": lfw_s, "n_lfw_faces": len(real.rows), "rows": rows,
            "machine": machine}


def render(results: dict) -> str:
    """The markdown of docs/bench-scale.md."""
    rates, lfw = results["rates"], results["lfw"]
    n_rate = next(iter(rates.values())).n_images
    lines = [
        "# bench-scale: ingestion and the gallery index at 13k, 100k and 1M vectors",
        "",
        "Written by `make bench-scale` (`python -m unlearn_core bench-scale`). Machine: "
        f"{results['machine']}. **The CPU (2 cores) was shared with other jobs while this ran: every time "
        "here is an upper bound.**",
        "",
        "## Ingestion (align with MTCNN, embed with the pretrained dlib ResNet, 128-D)",
        "",
        f"The same {n_rate} images of {results['gallery']} drawn at random, into an empty cache each time, in batches of 256. "
        "Align and embed: images per second of each step (per worker: the step's time summed over workers); "
        "wall: images per second of the whole run (the workers together, Ray's start-up included).",
        "",
        "| runner | align img/s | embed img/s | wall img/s |",
        "|---|---|---|---|",
        *(f"| {name} | {r.rate('align'):.1f} | {r.rate('embed'):.1f} | {r.throughput:.1f} |" for name, r in rates.items()),
        "",
        f"- The whole gallery ({results['gallery']}) through the batch job (`ingest`): {results['n_lfw_faces']:,} faces of "
        f"{lfw.n_images:,} images; this run "
        f"aligned {lfw.aligned:,} and embedded {lfw.embedded:,} images and read {lfw.shards_read} of "
        f"{lfw.shards_read + lfw.shards_written} batches from the cache ({results['lfw_s']:.1f} s).",
        "",
        "## The index (FAISS, in process)",
        "",
        "Top-10 by cosine, one query at a time (p50 / p99 over 200 queries; 50 for exact search at 1M). "
        "Recall@10 against exact search. *Real*: every face of the gallery, queries are 200 of its own vectors. "
        "*Synthetic*: vectors drawn from a two-level Gaussian fitted to the real LFW vectors (identity centres, "
        f"then {PHOTOS_PER_PERSON} photos per person around each), queries are new photos of its people; "
        "**synthetic, not faces**. Delete: one person's rows (`delete(label=...)`), median of 5 people with 2 photos or more. Peak RSS: "
        "the bench process's peak so far (it holds the gallery's vectors, the ground truth and the index). "
        "**(default)**: what `GalleryIndex.build` picks at that size (exact below 100k vectors, else `IVFParams.for_size`).",
        "",
        "| gallery | vectors | index | build s | p50 ms | p99 ms | recall@10 | delete one person ms (rows) | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["rows"]:
        lines.append(f"| {r['gallery']} | {r['n']:,} | {r['index']} | {r['build_s']:.2f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                     f"{r['recall10']:.3f} | {r['delete_ms']:.1f} ({r['delete_rows']:.0f}) | {r['peak_rss_mb']:,.0f} |")
    return "\n".join(lines) + "\n"
