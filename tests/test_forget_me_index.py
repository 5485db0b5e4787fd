"""Forget me in the search index: deletion vs unlearning vs stale embeddings, on real faces."""
from pathlib import Path

import pytest

from unlearn_core.forget_me import forget_me
from unlearn_core.metrics import INDEX_STATES
from unlearn_core.viz import explain, index_states_table

LFW = Path(__file__).resolve().parents[2] / "shared" / "sklearn_data" / "lfw_home" / "lfw_funneled"


@pytest.fixture(scope="module")
def mccain(lfw_workspace):
    """John McCain (7 LFW photos, never seen by the workspace's model): portrait, 4 stored, 2 check photos."""
    photos = [p.read_bytes() for p in sorted((LFW / "John_McCain").glob("*.jpg"))]
    return forget_me(lfw_workspace, photos[0], photos[1:5], photos[5:7])


def test_deletion_alone_leaves_new_photos_matching_and_unlearning_alone_leaves_the_rows(mccain):
    states = mccain.index
    assert list(states) == list(INDEX_STATES) and mccain.report["index"] == states
    assert states["before"]["mAP"] > 0.9
    assert states["deletion_only"]["mAP"] > 0.9  # the model still knows him: his new photos find each other
    assert states["unlearning_only"]["mAP"] < 0.5 and states["both"]["mAP"] < 0.5  # measured 0.09 and 0.07
    assert "stored_mAP" not in states["both"] and "stored_mAP" not in states["deletion_only"]  # his stored rows are gone


def test_stale_vectors_still_match_where_the_re_embedded_index_does_not(mccain):
    """After unlearning, the index re-embedded with the new model no longer links his stored photos;
    the same rows left with the old model's vectors still find each other."""
    states = mccain.index
    assert states["stale"]["stored_rank1"] == 1.0 and states["stale"]["stored_mAP"] > 0.9  # measured 1.00
    assert states["unlearning_only"]["stored_mAP"] < 0.3  # measured 0.01


@pytest.mark.fast
def test_the_index_states_table_says_deleted_where_the_stored_rows_are_gone():
    states = {"before": {"mAP": 1.0, "rank1": 1.0, "stored_mAP": 1.0, "stored_rank1": 1.0},
              "both": {"mAP": 0.07, "rank1": 0.0}}
    headers, rows = index_states_table(states)
    assert headers[:2] == ["index state", "what the service did"] and len(rows) == 2
    assert rows[1][0] == "both" and rows[1][2:] == ["0.070", "0.000", "deleted", "deleted"]
    assert all(explain(h) for h in ("index state", "check mAP", "stored mAP"))


def test_the_audit_reports_the_index_states_of_the_forgotten_identities(lfw_workspace):
    """The Audit's forgotten gallery identities: their training photos are the stored rows, their
    held-out photos the new photos queried; the same four states as Forget me."""
    from unlearn_core.audit import audit
    from unlearn_core.pipeline import AuditConfig

    states = audit(lfw_workspace, [AuditConfig("projection")]).runs["projection"].index
    assert list(states) == list(INDEX_STATES)
    assert states["before"]["mAP"] > 0.9 and states["deletion_only"]["mAP"] > 0.9  # measured 1.00: new photos still match
    assert states["unlearning_only"]["mAP"] < 0.5 and states["both"]["mAP"] < 0.5  # measured 0.19 and 0.24
    assert states["stale"]["stored_mAP"] > 0.9 and states["unlearning_only"]["stored_mAP"] < 0.3  # measured 1.00 vs 0.07
