"""Metrics on hand-made embeddings where the right answer is known."""
import numpy as np
import pytest

from unlearn_core.metrics import centroid_accuracy, centroids, compactness, retrieval, top_k

pytestmark = pytest.mark.fast


def unit(*angles_deg: float) -> np.ndarray:
    a = np.radians(angles_deg)
    return np.stack([np.cos(a), np.sin(a)], 1)


def test_retrieval_perfect_and_self_match_removed():
    emb = unit(0, 1, 90, 91)
    labels = np.array([0, 0, 1, 1])
    ids = np.arange(4)
    out = retrieval(emb, labels, emb, labels, ids, ids)
    assert out["mAP"] == pytest.approx(1.0) and out["rank1"] == 1.0 and out["n_queries"] == 4
    # without removing self-matches every query trivially finds itself first
    assert retrieval(emb, labels, emb, labels)["rank1"] == 1.0


def test_retrieval_known_average_precision():
    query = unit(0)
    gallery = unit(1, 2, 3)  # ranked in this order
    out = retrieval(query, np.array([0]), gallery, np.array([1, 0, 0]))
    assert out["mAP"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert out["rank1"] == 0.0 and out["rank5"] == 1.0


def test_queries_without_positive_are_not_scored():
    out = retrieval(unit(0, 90), np.array([0, 5]), unit(1, 2), np.array([0, 1]))
    assert out["n_queries"] == 1


def test_compactness_eq10():
    emb = np.concatenate([unit(0, 60), unit(0, 0, 180)])
    labels = np.array([0, 0, 1, 1, 1])
    # identity 0: cos 60 = 0.5; identity 1: pairs (1, -1, -1) -> mean -1/3
    assert compactness(emb, labels) == pytest.approx((0.5 - 1 / 3) / 2)


def test_centroid_accuracy():
    train = unit(0, 10, 90, 100)
    c = centroids(train, np.array([0, 0, 1, 1]), 2)
    assert centroid_accuracy(unit(5, 80, 40), np.array([0, 1, 1]), c) == pytest.approx(2 / 3)


def test_top_k_leaves_the_query_out_and_keeps_uploads_with_negative_ids():
    gallery = unit(0, 2, 4, 90)
    labels = np.array([0, 0, 1, 1])
    ids = np.array([-1, -2, 7, 8])  # -1, -2: uploads
    chips = np.arange(4)[:, None] * np.ones((4, 2))
    rows = top_k(unit(0), np.array([0]), np.array([-1]), gallery, labels, ids, chips[:1], chips, ["a", "b"], k=3)
    hits = rows[0].hits
    assert [h.name for h in hits] == ["a", "b", "b"] and [h.correct for h in hits] == [True, False, False]
    assert hits[0].chip[0] == 1 and hits[0].similarity == pytest.approx(np.cos(np.radians(2)), abs=1e-6)
