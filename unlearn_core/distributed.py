"""Ingestion on Ray workers: ``ingest(..., runner=RayRunner())`` computes the batches in a pool of
Ray actors, each holding its own MTCNN detector and a copy of the embedder.

Local mode by default (a Ray instance on this machine with ``workers`` CPUs); ``address`` joins a
running cluster instead (``"auto"`` on a cluster node, or ``"ray://head:10001"`` from outside).
This package travels to the workers with the job (Ray's ``runtime_env`` ``py_modules``); their
Python needs the packages of ``requirements.txt`` (torch, facenet-pytorch). The weights travel
pickled with the embedder, and images as their bytes, so workers need no shared filesystem. The
driver keeps the caches (see ``ingest``): a batch's shard is written when its result arrives, so
killing the job loses only the batches in flight.

Ray Core actors (``ray.util.ActorPool``, one batch per task) rather than Ray Data's
``map_batches``: a batch is the unit of the resumable cache, so the pool's task is exactly that
unit, no re-blocking by Ray Data can split it, and ``map_unordered`` submits a batch (and reads its
images) only when an actor is free, which bounds the driver's memory.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import InvalidParameter
from .ingest import BatchJob, BatchResult, ChipEmbedder

RAY_REQUIREMENT = "ray[data]==2.60.0"


class _Worker:
    """One actor: a detector and the embedder on the actor's device, reused for every batch."""

    def __init__(self, embedder: ChipEmbedder, device: str, threads: int):
        import torch

        from .faces import FaceDetector

        torch.set_num_threads(threads)
        self.embedder = embedder.on(device)
        self.detector = FaceDetector(device)

    def run(self, job: BatchJob) -> BatchResult:
        from .ingest import run_batch

        return run_batch(job, self.detector, self.embedder)


@dataclass
class RayRunner:
    """Batches on ``workers`` Ray actors (``cpus_per_worker`` CPUs and ``gpus_per_worker`` GPUs
    each; a worker with a GPU embeds and detects on it). ``address=None`` starts Ray on this
    machine, sized to the workers, and shuts it down afterwards; a cluster is left running."""

    address: str | None = None
    workers: int = 2
    cpus_per_worker: int = 1
    gpus_per_worker: float = 0.0

    def __post_init__(self) -> None:
        if self.workers < 1 or self.cpus_per_worker < 1 or self.gpus_per_worker < 0:
            raise InvalidParameter(f"Ray workers need workers >= 1, cpus_per_worker >= 1 and gpus_per_worker >= 0, got "
                                   f"{self.workers}, {self.cpus_per_worker}, {self.gpus_per_worker}")

    def run(self, jobs: Iterable[BatchJob], embedder: ChipEmbedder) -> Iterator[tuple[BatchJob, BatchResult]]:
        try:
            import ray
            from ray.util import ActorPool
        except ImportError as exc:
            raise InvalidParameter(f"the distributed path needs Ray: pip install '{RAY_REQUIREMENT}'") from exc
        started_here = not ray.is_initialized()
        if started_here:
            package = str(Path(__file__).resolve().parent)
            options = {"num_cpus": self.workers * self.cpus_per_worker} if self.address is None else {"address": self.address}
            ray.init(**options, include_dashboard=False, log_to_driver=False, configure_logging=False,
                     runtime_env={"py_modules": [package]} if self.address is not None else None)
        try:
            actor = ray.remote(num_cpus=self.cpus_per_worker, num_gpus=self.gpus_per_worker)(_Worker)
            device = "cuda" if self.gpus_per_worker > 0 else "cpu"
            cpu_copy = embedder.on("cpu")  # pickled once into Ray's object store, shared by the actors
            pool = ActorPool([actor.remote(cpu_copy, device, self.cpus_per_worker) for _ in range(self.workers)])
            pending = {}

            def submit(worker, job: BatchJob):
                pending[job.shard] = job
                return worker.run.remote(job)

            for result in pool.map_unordered(submit, jobs):
                yield pending.pop(result.shard), result
        finally:
            if started_here:
                ray.shutdown()
