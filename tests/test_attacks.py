"""Attack and diagnostic building blocks on hand-made numbers (exact expected values)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from scipy.special import softmax
from scipy.stats import norm
from sklearn.metrics import roc_auc_score, roc_curve

from unlearn_core import attacks
from unlearn_core.attacks.base import _REGISTRY
from unlearn_core.errors import InvalidParameter
from unlearn_core.privacy import membership_attacks
from unlearn_core.references import forget_halves

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
    # 100 non-members resolve FPR 1% at the finest: 0.1% is reported as not resolvable, never as the FPR-0 point.
    assert summary["min_fpr"] == pytest.approx(0.01)
    assert summary["tpr_at_fpr"]["0.001"] is None and summary["tpr_ci"]["0.001"] is None
    # FPR 1% admits the one high non-member, and then every member above 0.45.
    assert summary["tpr_at_fpr"]["0.01"] == pytest.approx(0.6)
    y = np.r_[np.ones(10), np.zeros(100)]
    assert summary["auc"] == pytest.approx(roc_auc_score(y, np.r_[members, nonmembers]))
    fpr, tpr = np.array(summary["roc"]["fpr"]), np.array(summary["roc"]["tpr"])
    assert fpr[0] == 0 and fpr[-1] == 1 and tpr[-1] == 1
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    assert (summary["n_members"], summary["n_nonmembers"]) == (10, 100)
    lo, hi = summary["auc_ci"]
    assert lo < summary["auc"] < hi <= 1.0
    lo, hi = summary["tpr_ci"]["0.01"]
    assert lo < 0.6 < hi
    # with 1,000 non-members 0.1% is resolvable and admits one of them (0.95); with two high ones, only members above both
    many = np.r_[0.95, np.linspace(0.0, 0.45, 999)]
    assert attacks.roc_summary(members, many)["tpr_at_fpr"]["0.001"] == pytest.approx(0.6)
    assert attacks.roc_summary(members, np.r_[0.95, 0.96, many[2:]])["tpr_at_fpr"]["0.001"] == pytest.approx(0.2)


def test_tpr_at_fpr_matches_the_roc_curve_and_auc_rank_matches_sklearn():
    rng = np.random.default_rng(0)
    members, nonmembers = rng.normal(1, 1, 300).round(1), rng.normal(0, 1, 2000).round(1)  # rounded: ties
    fpr, tpr, _ = roc_curve(np.r_[np.ones(300), np.zeros(2000)], np.r_[members, nonmembers])
    for level in (1e-3, 1e-2, 0.1):
        assert attacks.tpr_at_fpr(members, nonmembers, level) == pytest.approx(tpr[fpr <= level].max())
    y = np.r_[np.ones(300), np.zeros(2000)]
    assert attacks.auc_rank(members[None], nonmembers[None])[0] == pytest.approx(roc_auc_score(y, np.r_[members, nonmembers]))


def test_bootstrap_intervals_on_hand_made_scores():
    separated = attacks.roc_summary(np.linspace(2, 3, 50), np.linspace(0, 1, 200))
    assert separated["auc_ci"] == [1.0, 1.0] and separated["tpr_ci"]["0.01"] == [1.0, 1.0]
    # two unit Gaussians one standard deviation apart: AUC = Phi(1/sqrt 2); the interval's width is
    # close to Hanley & McNeil's normal approximation (1982) and it covers the truth ~95% of the time
    truth = norm.cdf(1 / np.sqrt(2))
    q1, q2 = truth / (2 - truth), 2 * truth**2 / (1 + truth)
    se = np.sqrt((truth * (1 - truth) + 99 * (q1 - truth**2) + 99 * (q2 - truth**2)) / 100**2)
    rng = np.random.default_rng(1)
    covered, widths = 0, []
    for _ in range(100):
        ci = attacks.bootstrap_intervals(rng.normal(1, 1, 100), rng.normal(0, 1, 100), (0.01,), n_boot=400, seed=0)["auc"]
        covered += ci[0] <= truth <= ci[1]
        widths.append(ci[1] - ci[0])
    assert 88 <= covered <= 100
    assert np.mean(widths) == pytest.approx(2 * 1.96 * se, rel=0.15)


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
    fitted = attacks.fit_attack(members, nonmembers, attacks.create_attack("salun").estimator(0), seed=0)
    assert fitted.held_out.auc > 0.95
    assert fitted.held_out.n_members == 100 and fitted.held_out.n_nonmembers == 75
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


# -- the registry ---------------------------------------------------------------------------------
def synthetic_outputs(seed: int = 0, shift: float = 0.0, photos_seed: int | None = None) -> attacks.ModelOutputs:
    """Logits, unit embeddings and labels on every audit set: 6 head classes (0-3 retained, 4-5
    forget), members more confident than held-out images by ``shift``; unseen identities are 10-12.
    ``photos_seed``: the labels drawn from it (the same photos under several models), the noise from ``seed``."""
    rng = np.random.default_rng(seed)
    photos = np.random.default_rng(seed if photos_seed is None else photos_seed)
    sizes = {"forget": (40, [4, 5]), "forget_heldout": (20, [4, 5]), "members": (120, [0, 1, 2, 3]),
             "test": (60, [0, 1, 2, 3]), "unseen": (30, [10, 11, 12])}
    logits, embeddings, labels = {}, {}, {}
    for name, (n, classes) in sizes.items():
        y = photos.choice(classes, n)
        z = rng.normal(0.0, 1.0, (n, 6))
        if name != "unseen":
            z[np.arange(n), y] += 3.0 + (shift if name in ("members", "forget") else 0.0)
        e = rng.normal(0.0, 1.0, (n, 8)) + np.eye(8)[y % 8] * (2.0 + (shift if name in ("members", "forget") else 0.0))
        logits[name], embeddings[name], labels[name] = z, e / np.linalg.norm(e, axis=1, keepdims=True), y
    return attacks.ModelOutputs(embeddings=embeddings, labels=labels, logits=logits)


def test_registry_lists_every_attack_in_report_order_with_its_needs():
    assert attacks.list_attacks() == ["shokri", "salun", "embedding", "rmia", "ulira"]
    for name in attacks.list_attacks():
        cls = attacks.attack_class(name)
        assert cls.name == name and cls.summary and cls.help.count("alarming") == 1
    assert [n for n in attacks.list_attacks() if attacks.attack_class(n).needs_reference] == ["rmia", "ulira"]
    assert [n for n in attacks.list_attacks() if attacks.attack_class(n).uses_unseen] == ["shokri"]


def test_create_attack_validates_names_and_parameters():
    assert attacks.create_attack("rmia", gamma=2.0).get_params() == {"gamma": 2.0}
    assert attacks.create_attack("shokri").k == 3
    with pytest.raises(InvalidParameter, match="unknown attack 'nope'; available: \\['shokri'"):
        attacks.create_attack("nope")
    with pytest.raises(InvalidParameter, match="salun has no parameter\\(s\\) \\['k'\\]; it takes none"):
        attacks.create_attack("salun", k=3)
    with pytest.raises(InvalidParameter, match="gamma must be >= 1e-12, got 0"):
        attacks.create_attack("rmia", gamma=0)
    with pytest.raises(InvalidParameter, match="k must be a whole number"):
        attacks.create_attack("shokri", k=2.5)
    with pytest.raises(InvalidParameter, match="finite number"):
        attacks.create_attack("rmia", gamma=float("nan"))
    with pytest.raises(ValueError, match="registered twice"):
        attacks.register_attack(attacks.attack_class("rmia"))


def test_score_attack_result_is_typed_and_serialises_to_the_report_block():
    out = synthetic_outputs(shift=2.0)
    result = attacks.create_attack("shokri").run(out, seed=0)
    block = result.to_dict()
    assert list(block) == ["nonmembers", "members_vs_nonmembers", "threshold", "member_test_rate", "nonmember_rate",
                           "forget_member_rate", "forget_heldout_member_rate", "forget_vs_heldout", "forget_score_mean"]
    assert block["nonmembers"] == ["test", "unseen"]
    assert block["forget_vs_heldout"] == result.forget_vs_heldout.to_dict()
    assert block["forget_score_mean"] == pytest.approx(result.forget_scores.mean())
    assert result.auc == block["forget_vs_heldout"]["auc"] > 0.7  # forget images were made member-like
    assert (result.n_members, result.n_nonmembers) == (40, 20)
    assert result.tpr_at_fpr == block["forget_vs_heldout"]["tpr_at_fpr"]
    # the label-aware and embedding attacks calibrate on held-out images of known identities only
    assert attacks.create_attack("salun").run(out).nonmembers == ["test"]
    embedding = attacks.create_attack("embedding").run(out)
    assert embedding.nonmembers == ["test"] and embedding.members_vs_nonmembers.n_members == 120
    assert embedding.members_vs_nonmembers.n_nonmembers == 60


def synthetic_references(k: int = 4) -> attacks.References:
    """``k`` reference models' outputs: the forget classes (4, 5) trained on (shift 2) by the first
    half, never seen (shift 0) by the others; the retained classes trained on by all."""
    member = np.ones((k, 6), bool)
    member[k // 2 :, [4, 5]] = False
    outputs = [synthetic_outputs(10 + i, shift=2.0 if member[i, 4] else 0.0, photos_seed=0) for i in range(k)]
    return attacks.References(outputs, member, [None] * k)


def test_forget_halves_put_the_forget_identities_in_half_of_the_models():
    member = forget_halves(10, [0, 1, 2], 8, seed=0)
    assert member.shape == (8, 10) and member[:, 3:].all()
    assert (member[:, [0]] == member[:, :3]).all() and member[:, 0].sum() == 4
    assert not (member == forget_halves(10, [0, 1, 2], 8, seed=1)).all()
    with pytest.raises(InvalidParameter, match="even and at least 4"):
        forget_halves(10, [0], 3, seed=0)


def test_rmia_needs_references_and_reports_gamma_and_k():
    out, refs = synthetic_outputs(0, shift=2.0), synthetic_references()
    with pytest.raises(InvalidParameter, match="reference"):
        attacks.create_attack("rmia").run(out)
    block = attacks.create_attack("rmia", gamma=1.0).run(out, refs).to_dict()
    assert list(block) == ["gamma", "k", "nonmembers", "members_vs_nonmembers", "forget_vs_heldout", "forget_score_mean"]
    # the population is every held-out photo (60 retained + 20 forget), each left out of its own comparison
    assert block["k"] == 4 and block["members_vs_nonmembers"]["n_nonmembers"] == 60
    unshifted = attacks.create_attack("rmia").run(synthetic_outputs(0, shift=0.0), refs)
    assert block["forget_vs_heldout"]["auc"] > unshifted.auc + 0.2
    assert block["members_vs_nonmembers"]["auc"] > unshifted.members_vs_nonmembers.auc + 0.2


def test_ulira_tells_a_model_that_still_holds_the_forget_set_from_never_seen_ones():
    refs = synthetic_references(8)
    ulira = attacks.create_attack("ulira")
    held = ulira.run(synthetic_outputs(1, shift=2.0, photos_seed=0), refs)
    never = ulira.run(synthetic_outputs(1, shift=0.0, photos_seed=0), refs)
    assert held.auc > 0.7 and held.forget_vs_heldout.auc_ci[0] > 0.6
    assert never.forget_vs_heldout.auc_ci[0] < 0.5 < never.forget_vs_heldout.auc_ci[1]
    # 40 forget photos scored against each of the 3-model leave-one-out means of the 4 never-seen models
    assert (held.n_members, held.n_nonmembers) == (160, 160)
    # models that unlearned the forget set down to never-seen level: the held model now looks unlearned-like
    unlearned = attacks.References(refs.outputs, refs.member, [synthetic_outputs(20 + i, photos_seed=0) if i < 4 else None for i in range(8)])
    assert ulira.run(synthetic_outputs(1, shift=0.0, photos_seed=0), unlearned).forget_vs_heldout.auc_ci[0] < 0.5
    with pytest.raises(InvalidParameter, match="2 without"):
        ulira.run(synthetic_outputs(0), synthetic_references(2))


def test_audit_skips_an_attack_without_its_references_and_says_why():
    outs = {"unlearned": synthetic_outputs(0, shift=2.0), "retrain": synthetic_outputs(1)}
    blocks, _, skipped = membership_attacks(outs, None, seed=0)
    assert list(blocks) == ["shokri", "salun", "embedding"]
    assert skipped == dict.fromkeys(("rmia", "ulira"), "needs reference models and none were given")
    assert set(blocks["shokri"]) == {"unlearned", "retrain", "beyond_retrain", "streisand"}
    blocks, _, skipped = membership_attacks(outs, synthetic_references(), seed=0)
    assert list(blocks) == attacks.list_attacks() and not skipped
    assert set(blocks["rmia"]) == {"unlearned", "retrain", "beyond_retrain", "streisand"}


def test_a_new_attack_is_one_registered_class():
    @attacks.register_attack
    @dataclass
    class Loss(attacks.ScoreAttack):
        name = "loss-test"
        summary = "Negative log loss of the label (Yeom et al. 2018)"
        help = "Lower loss = member; alarming: forgotten photos with a training-like loss."
        order = 35  # between the embedding attack and RMIA

        def features(self, out):
            return {s: out.label_log_prob(s)[:, None] for s in out.sets if s != "unseen"}

    try:
        assert attacks.list_attacks()[-3:] == ["loss-test", "rmia", "ulira"]
        outs = {"unlearned": synthetic_outputs(0, shift=2.0), "retrain": synthetic_outputs(1)}
        blocks, _, _ = membership_attacks(outs, None, seed=0, names=["loss-test"])
        assert blocks["loss-test"]["unlearned"]["forget_vs_heldout"]["auc"] > 0.7
        assert 0.0 <= blocks["loss-test"]["beyond_retrain"] <= 1.0
    finally:
        del _REGISTRY["loss-test"]
