"""The batch ingestion job on real LFW photos: the workspace's vectors, resumable, re-embedding re-aligns nothing."""
import numpy as np
import pytest

from unlearn_core.data import Gallery
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
