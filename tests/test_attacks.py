"""Attack and diagnostic building blocks on hand-made numbers (exact expected values)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.special import softmax
from sklearn.metrics import roc_auc_score

from unlearn_core import attacks

pytestmark = pytest.mark.fast


def hand_made_scores() -> tuple[np.ndarray, np.ndarray]:
    """10 members, 100 non-members: one non-member (0.95) outscores all but two members, the
    other 99 lie in [0, 0.45], below six members."""
    members = np.array([1.0, 0.99, 0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.2, 0.1])
    nonmembers = np.r_[0.95, np.linspace(0.0, 0.45, 99)]
    return members, nonmembers


def test_tpr_at_fpr_on_hand_made_scores():
    members, nonmembers = hand_made_scores()
    summary = attacks.roc_summary(members, nonmembers)
    # FPR 0.01% and 0.1% are below 1/100: only thresholds above every non-member count (2 members).
    assert summary["tpr_at_fpr"]["0.0001"] == pytest.approx(0.2)
    assert summary["tpr_at_fpr"]["0.001"] == pytest.approx(0.2)
    # FPR 1% admits the one high non-member, and then every member above 0.45.
    assert summary["tpr_at_fpr"]["0.01"] == pytest.approx(0.6)
    y = np.r_[np.ones(10), np.zeros(100)]
    assert summary["auc"] == pytest.approx(roc_auc_score(y, np.r_[members, nonmembers]))
    fpr, tpr = np.array(summary["roc"]["fpr"]), np.array(summary["roc"]["tpr"])
    assert fpr[0] == 0 and fpr[-1] == 1 and tpr[-1] == 1
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    assert (summary["n_members"], summary["n_nonmembers"]) == (10, 100)


def test_roc_summary_needs_both_sides():
    with pytest.raises(ValueError, match="at least one member"):
        attacks.roc_summary(np.array([0.5]), np.array([]))


def test_salun_features_match_their_definitions():
    logits = np.array([[3.0, 1.0, 0.0], [0.0, 2.0, 0.5]])
    labels = np.array([0, 0])
    p = softmax(logits, axis=1)
    feats = attacks.salun_features(logits, labels)
    np.testing.assert_array_equal(feats[:, 0], [1.0, 0.0])  # correctness
    np.testing.assert_allclose(feats[:, 1], np.log(-np.log(p[:, 0])))  # log loss
    np.testing.assert_allclose(feats[:, 2], np.log(-(p * np.log(p)).sum(1)))
    m_entropy = -(1 - p[:, 0]) * np.log(p[:, 0]) - (p[:, 1:] * np.log(1 - p[:, 1:])).sum(1)
    np.testing.assert_allclose(feats[:, 3], np.log(m_entropy))
    with pytest.raises(ValueError, match="head-class labels"):
        attacks.salun_features(logits, np.array([0, -1]))


def test_shokri_features_are_sorted_top_k_log_probs():
    logits = np.array([[0.0, 5.0, 1.0, 2.0]])
    feats = attacks.shokri_features(logits, k=2)
    logp = np.log(softmax(logits, axis=1))[0]
    np.testing.assert_allclose(feats, [[logp[1], logp[3]]])


def test_fit_attack_separates_separable_features():
    rng = np.random.default_rng(0)
    members, nonmembers = rng.normal(2.0, 1.0, (200, 2)), rng.normal(-2.0, 1.0, (150, 2))
    fitted = attacks.fit_attack(members, nonmembers, attacks.salun_attack(0), seed=0)
    assert fitted.held_out["auc"] > 0.95
    assert fitted.held_out["n_members"] == 100 and fitted.held_out["n_nonmembers"] == 75
    assert fitted.member_test_rate > 0.9 and fitted.nonmember_rate < 0.1
    assert fitted.member_probability(np.array([[3.0, 3.0], [-3.0, -3.0]])).round().tolist() == [1.0, 0.0]


def test_rmia_scores_follow_eq_8_and_9():
    # log-likelihood ratios target - reference: candidates 2, 0, -1; population 1, 0, -2
    target_x, reference_x = np.array([0.0, -1.0, -3.0]), np.array([-2.0, -1.0, -2.0])
    target_z, reference_z = np.array([0.0, -1.0, -2.0]), np.array([-1.0, -1.0, 0.0])
    np.testing.assert_allclose(attacks.rmia_scores(target_x, reference_x, target_z, reference_z), [1.0, 2 / 3, 1 / 3])
    # gamma = e: LR >= e means a log-ratio gap of at least 1
    np.testing.assert_allclose(attacks.rmia_scores(target_x, reference_x, target_z, reference_z, gamma=np.e), [1.0, 1 / 3, 1 / 3])
    # the population against itself, each sample left out of its own comparison
    same = np.eye(3, dtype=bool)
    np.testing.assert_allclose(attacks.rmia_scores(target_z, reference_z, target_z, reference_z, same_image=same), [1.0, 0.5, 0.0])
    with pytest.raises(ValueError, match="gamma"):
        attacks.rmia_scores(target_x, reference_x, target_z, reference_z, gamma=0.0)


def test_centroid_similarity_is_leave_one_out():
    emb = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, -3.0]])
    labels = np.array([0, 0, 0, 1])
    scores = attacks.centroid_similarity(emb, labels)
    # image 0 against the mean of images 1 and 2 (unit rows): (0, 1) + (0.707, 0.707)
    other = np.array([0.0, 1.0]) + np.array([1.0, 1.0]) / np.sqrt(2)
    assert scores[0] == pytest.approx(other[0] / np.linalg.norm(other))
    assert scores[2] == pytest.approx(1.0)  # (1,1) against (1,0)+(0,1): same direction
    assert np.isnan(scores[3])  # alone in its identity


def test_tug_of_war_and_unlearn_score():
    retrain = {"retain": 0.9, "forget": 0.3, "test": 0.8}
    assert attacks.tug_of_war(retrain, retrain) == 1.0
    unlearned = {"retain": 0.8, "forget": 0.5, "test": 0.8}
    assert attacks.tug_of_war(unlearned, retrain) == pytest.approx(0.9 * 0.8 * 1.0)
    assert attacks.unlearn_score(0.9, 0.6) == pytest.approx(0.3)
    assert attacks.unlearn_score(0.6, 0.9) == pytest.approx(0.3)


def test_histograms_share_edges_and_sum_to_one():
    h = attacks.histograms({"a": np.array([0.0, 1.0, 2.0]), "b": np.array([2.0, 2.0, np.nan])}, bins=4)
    assert h["edges"] == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0])
    assert h["fractions"]["a"] == pytest.approx([1 / 3, 0, 1 / 3, 1 / 3])
    assert h["fractions"]["b"] == pytest.approx([0, 0, 0, 1.0])


def test_support_distances():
    forget = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 5.0]])
    d = attacks.support_distances(np.array([[1.0, 0.0], [0.0, 2.0]]), np.array([7, 8]), forget, np.array([7, 7, 8]))
    assert d[0] == pytest.approx(np.linalg.norm([1.0, 0.0] - np.array([0.5, 0.5])))
    assert d[1] == pytest.approx(0.0)


def test_streisand_thresholds():
    assert attacks.streisand(0.5, 0.5) == []
    assert attacks.streisand(0.1, None)[0].startswith("forget-vs-held-out AUC 0.10")
    assert len(attacks.streisand(0.2, 0.95)) == 2
    assert attacks.beyond_retrain(np.array([0.0, 0.1]), np.array([0.5, 0.6])) == 1.0
    assert attacks.beyond_retrain(np.array([0.5, 0.6]), np.array([0.5, 0.6])) == 0.5


def test_youden_threshold_is_a_finite_score():
    members, nonmembers = hand_made_scores()
    # J = TPR - FPR peaks at 0.6 - 0.01 when the threshold is the lowest member above 0.45
    assert attacks.youden_threshold(members, nonmembers) == pytest.approx(0.6)
    assert np.isfinite(attacks.youden_threshold(np.array([0.0]), np.array([1.0])))
