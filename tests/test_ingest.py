"""The batch ingestion job on real LFW photos: the workspace's vectors, resumable, re-embedding re-aligns nothing."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from unlearn_core.data import Gallery
from unlearn_core.index import GalleryIndex
from unlearn_core.ingest import ChipEmbedder, ingest


class Killed(Exception):
    pass


def test_ingest_is_resumable_and_matches_the_workspace(lfw_workspace, tmp_path):
    ws = lfw_workspace
    part = ws.parts.forget_test
    rows = part.image_ids[:20]
    gallery = Gallery("sample", [ws.gallery.sources[i] for i in rows], ws.gallery.labels[rows], ws.gallery.identities)
    embedder = ChipEmbedder(ws.backbone, ws.original)
    batches = []

    def kill_after_first_batch(fraction: float, message: str) -> None:
        batches.append(message)
        raise Killed

    with pytest.raises(Killed):
        ingest(gallery, embedder, tmp_path, batch_size=8, progress=kill_after_first_batch)
    assert len(batches) == 1
    resumed = ingest(gallery, embedder, tmp_path, batch_size=8)
    assert resumed.stats.shards_read == 1 and resumed.stats.shards_written == 2
    assert resumed.stats.aligned == 12 and resumed.stats.embedded == len(resumed.rows) - int((resumed.rows < 8).sum())
    np.testing.assert_allclose(resumed.vectors, ws.embed(ws.original, "forget_test")[:20][resumed.rows], atol=1e-5)
    again = ingest(gallery, embedder, tmp_path, batch_size=8)
    assert (again.stats.aligned, again.stats.embedded, again.stats.shards_read) == (0, 0, 3)
    np.testing.assert_array_equal(again.vectors, resumed.vectors)
    pretrained = ingest(gallery, ChipEmbedder(ws.backbone), tmp_path, batch_size=8)  # another model: re-embed, never re-align
    assert pretrained.stats.aligned == 0 and pretrained.stats.embedded == len(pretrained.rows) == len(resumed.rows)
    assert np.abs(pretrained.vectors - resumed.vectors).max() > 0.1
    np.testing.assert_allclose(np.linalg.norm(pretrained.vectors, axis=1), 1, atol=1e-5)


LFW = Path(__file__).resolve().parents[2] / "shared" / "sklearn_data" / "lfw_home" / "lfw_funneled"


def test_ingest_and_bench_scale_commands_on_real_faces(tmp_path):
    """Three LFW people as a folder gallery: `ingest` saves a loadable index of their faces;
    `bench-scale` (a tiny synthetic size) writes its report."""
    folder = tmp_path / "gallery"
    for person in ("John_McCain", "Jiang_Zemin", "Hu_Jintao"):
        (folder / person).mkdir(parents=True)
        for photo in sorted((LFW / person).glob("*.jpg"))[:4]:
            (folder / person / photo.name).write_bytes(photo.read_bytes())
    run = [sys.executable, "-m", "unlearn_core"]
    env = {**os.environ, "UNLEARN_CACHE": str(tmp_path / "cache")}  # nothing cached before
    ingested = subprocess.run([*run, "ingest", "--dataset", f"folder:{folder}", "--batch-size", "5", "--threads", "1", "--device", "cpu",
                               "--index", str(tmp_path / "index"), "--milvus", str(tmp_path / "gallery.db")],
                              capture_output=True, text=True, timeout=600, env=env)
    assert ingested.returncode == 0, ingested.stderr
    assert "12 faces of 12 images" in ingested.stdout and "0 batches read from the cache, 3 written" in ingested.stdout
    index = GalleryIndex.load(tmp_path / "index")
    assert index.count == 12 and index.kind == "exact" and sorted(np.bincount(index.labels_of(np.arange(12)))) == [4, 4, 4]
    from unlearn_core.index_milvus import MilvusIndex

    milvus = MilvusIndex(str(tmp_path / "gallery.db"), 128)
    assert "12 vectors written" in ingested.stdout and milvus.count == 12
    np.testing.assert_array_equal(milvus.labels_of(np.arange(12)), index.labels_of(np.arange(12)))
    milvus.close()
    out = tmp_path / "bench-scale.md"
    bench = subprocess.run([*run, "bench-scale", "--dataset", f"folder:{folder}", "--sizes", "2000", "--rate-sample", "3", "--threads", "1",
                            "--device", "cpu", "--out", str(out)], capture_output=True, text=True, timeout=600, env=env)
    assert bench.returncode == 0, bench.stderr
    report = out.read_text()
    assert "| synthetic 2,000 | 2,000 | exact **(default)** |" in report
    assert "aligned 0 and embedded 12 images and read 0 of 1 batches" in report  # batches of another size: chips reused


def test_ray_workers_ingest_the_same_vectors_and_share_the_resumable_cache(lfw_workspace, tmp_path):
    """The distributed path in Ray's local mode on real faces: killed after its first batch, its
    shard and chips are there; the rerun on Ray computes only the rest, with the workspace's vectors;
    the in-process runner then reads every batch from the cache."""
    from unlearn_core.distributed import RayRunner

    ws = lfw_workspace
    rows = ws.parts.forget_test.image_ids[:24]
    gallery = Gallery("sample", [ws.gallery.sources[i] for i in rows], ws.gallery.labels[rows], ws.gallery.identities)
    embedder = ChipEmbedder(ws.backbone, ws.original)
    runner = RayRunner(workers=2)

    def kill(fraction: float, message: str) -> None:
        raise Killed

    with pytest.raises(Killed):
        ingest(gallery, embedder, tmp_path, batch_size=8, runner=runner, progress=kill)
    on_ray = ingest(gallery, embedder, tmp_path, batch_size=8, runner=runner)
    assert (on_ray.stats.shards_read, on_ray.stats.shards_written) == (1, 2)
    assert on_ray.stats.aligned == 16
    expected = ws.embed(ws.original, "forget_test")[:24][on_ray.rows]  # one CPU thread per worker: float sums differ in order
    assert len(on_ray.rows) == len(rows) and (on_ray.vectors * expected).sum(1).min() > 1 - 1e-6
    local = ingest(gallery, embedder, tmp_path, batch_size=8)
    assert (local.stats.aligned, local.stats.embedded, local.stats.shards_read) == (0, 0, 3)
    np.testing.assert_array_equal(local.rows, on_ray.rows)
    regrouped = ingest(gallery, embedder, tmp_path, batch_size=12, runner=runner)  # new batches: chips cached by the Ray run
    assert regrouped.stats.aligned == 0 and regrouped.stats.embedded == len(regrouped.rows)


def test_batched_detection_finds_what_one_image_at_a_time_finds():
    """MTCNN batches (same-sized LFW photos) give the same faces and landmarks as one call per photo."""
    from unlearn_core.faces import FaceDetector, load_image

    images = [load_image(p) for p in sorted(LFW.glob("*/*.jpg"))[::997][:10]]
    batched, single = FaceDetector("cpu", batch_size=4).detect_many(images), FaceDetector("cpu", batch_size=1).detect_many(images)
    assert sum(map(len, single)) >= 10
    for one, many in zip(single, batched):
        assert len(one) == len(many)
        for a, b in zip(one, many):
            np.testing.assert_allclose(a.landmarks, b.landmarks, atol=1e-2)
            assert abs(a.prob - b.prob) < 1e-4
