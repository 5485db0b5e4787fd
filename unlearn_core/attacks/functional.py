"""Attack building blocks and unlearning diagnostics: pure functions of logits, embeddings and labels.

Scores are "higher = more member-like" everywhere. scikit-learn does the attack models, ROC and
AUC; this module only builds features and combines results. The attacks themselves (which
features, which model, which sets) are the registered classes next to this module.

- ``shokri_features`` + ``fit_attack``: a Shokri et al. (2017)-style attack model trained on
  members vs non-members; we use one attack model on the label-free, sorted top-k output
  (the ML-Leaks simplification of Shokri's per-class shadow models), so unseen identities, which
  have no head class, can be non-members.
- ``salun_features``: correctness, confidence, entropy and modified entropy (Song & Mittal 2021),
  the inputs of the SalUn / Unlearn-Saliency MIA (a logistic regression here, see ``salun.py``).
- ``rmia_scores``: RMIA with one reference model (S2 App. B, Eq. 8-9).
- ``centroid_similarity``: our embedding-space attack (a fixed score, thresholded by Youden's J).
- ``tug_of_war`` (S2 Eq. 7), ``unlearn_score`` (S4 §5.1), ``histograms`` (S3 Fig. 2),
  ``support_distances`` (S2 §5.4 hardness) and ``streisand`` (S2 §5.4, S3 §7.4).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import log_softmax
from sklearn.base import BaseEstimator, clone
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.model_selection import train_test_split

FPR_LEVELS = (1e-3, 1e-2)
"""False-positive rates at which TPR is reported (0.1% and 1%, as LiRA / RMIA practice); a level
below ``1 / n_nonmembers`` is reported as None (not resolvable by the sample)."""

BOOTSTRAP = 1000
"""Bootstrap resamples behind every 95 % interval."""

STREISAND_AUC = 0.35
"""Flag when forget training images score as members *less* often than held-out images of the same
identities: AUC(forget vs held-out) below this (0.5 is indistinguishable; 0.15 below is about two
standard errors with ~25 held-out and ~50 forget images)."""

STREISAND_BEYOND = 0.9
"""Flag when, in at least this fraction of (retrain, unlearned) pairs of forget images, the retrain
reference finds the image more member-like than the unlearned model does (the AUC of retrain vs
unlearned forget scores): the unlearned model overshoots the never-trained state."""


# -- ROC ------------------------------------------------------------------------------------------
def resolvable(level: float, n_nonmembers: int) -> bool:
    """True when ``n_nonmembers`` can resolve a false-positive rate of ``level`` (at least one
    non-member may be wrongly accused: ``level * n >= 1``)."""
    return level * n_nonmembers >= 1 - 1e-9


def tpr_at_fpr(member_scores: np.ndarray, nonmember_scores: np.ndarray, level: float) -> float:
    """Highest TPR of the rule "member if score > t" whose FPR is at most ``level``: with
    ``k = floor(level * n)`` non-members allowed above t, t is the (k+1)-th largest non-member
    score (the ROC curve's point at FPR <= level). Vectorised over leading axes (bootstrap rows)."""
    nonmember_scores = np.sort(np.asarray(nonmember_scores, float), axis=-1)
    n = nonmember_scores.shape[-1]
    k = int(np.floor(level * n + 1e-9))
    if k >= n:
        return np.ones(nonmember_scores.shape[:-1]) if nonmember_scores.ndim > 1 else 1.0
    threshold = nonmember_scores[..., n - 1 - k]
    return np.mean(np.asarray(member_scores, float) > threshold[..., None], axis=-1)


def auc_rank(member_scores: np.ndarray, nonmember_scores: np.ndarray) -> np.ndarray:
    """Mann-Whitney AUC (ties count 1/2) per row of ``(B, m)`` member and ``(B, n)`` non-member scores."""
    nonmembers = np.sort(nonmember_scores, axis=-1)
    below = np.stack([np.searchsorted(row, m, side="left") for row, m in zip(nonmembers, member_scores)])
    upto = np.stack([np.searchsorted(row, m, side="right") for row, m in zip(nonmembers, member_scores)])
    return (below + upto).mean(-1) / (2 * nonmembers.shape[-1])


def bootstrap_intervals(member_scores: np.ndarray, nonmember_scores: np.ndarray, levels: tuple[float, ...],
                        n_boot: int = BOOTSTRAP, seed: int = 0) -> dict[str, Any]:
    """Percentile 95 % intervals of the AUC and of TPR at each resolvable level: members and
    non-members are resampled with replacement separately (the two samples are independent),
    ``n_boot`` times. Unresolvable levels get None."""
    rng = np.random.default_rng(seed)
    m = member_scores[rng.integers(0, len(member_scores), (n_boot, len(member_scores)))]
    z = nonmember_scores[rng.integers(0, len(nonmember_scores), (n_boot, len(nonmember_scores)))]

    def interval(values: np.ndarray) -> list[float]:
        return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]

    return {"auc": interval(auc_rank(m, z)),
            "tpr": {f"{level:g}": interval(tpr_at_fpr(m, z, level)) if resolvable(level, len(nonmember_scores)) else None for level in levels}}


@dataclass(frozen=True)
class Roc:
    """An attack's ROC on members vs non-members: AUC and TPR at each ``FPR_LEVELS`` level (keyed
    ``f"{level:g}"``; None where the sample cannot resolve the level) with bootstrap 95 % intervals,
    the smallest FPR the sample resolves (``1 / n_nonmembers``), at most ``max_points`` ROC points
    for a log-log plot, and the sample sizes."""

    auc: float
    tpr_at_fpr: dict[str, float | None]
    fpr: list[float]
    tpr: list[float]
    n_members: int
    n_nonmembers: int
    auc_ci: list[float]
    tpr_ci: dict[str, list[float] | None]

    @property
    def min_fpr(self) -> float:
        """The smallest false-positive rate this many non-members can resolve."""
        return 1.0 / self.n_nonmembers

    def to_dict(self) -> dict[str, Any]:
        """The report's JSON block: ``{"auc", "auc_ci", "tpr_at_fpr", "tpr_ci", "min_fpr", "roc": {"fpr", "tpr"},
        "n_members", "n_nonmembers"}``."""
        return {"auc": self.auc, "auc_ci": list(self.auc_ci), "tpr_at_fpr": dict(self.tpr_at_fpr), "tpr_ci": dict(self.tpr_ci),
                "min_fpr": self.min_fpr, "roc": {"fpr": list(self.fpr), "tpr": list(self.tpr)},
                "n_members": self.n_members, "n_nonmembers": self.n_nonmembers}


def roc(member_scores: np.ndarray, nonmember_scores: np.ndarray, levels: tuple[float, ...] = FPR_LEVELS,
        max_points: int = 100, seed: int = 0) -> Roc:
    """The ``Roc`` of member vs non-member scores (``seed``: the bootstrap's)."""
    member_scores, nonmember_scores = np.asarray(member_scores, float), np.asarray(nonmember_scores, float)
    if len(member_scores) == 0 or len(nonmember_scores) == 0:
        raise ValueError("an ROC needs at least one member and one non-member score")
    y = np.r_[np.ones(len(member_scores)), np.zeros(len(nonmember_scores))]
    s = np.r_[member_scores, nonmember_scores]
    fpr, tpr, _ = roc_curve(y, s)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), max_points)).round().astype(int))
    n = len(nonmember_scores)
    intervals = bootstrap_intervals(member_scores, nonmember_scores, levels, seed=seed)
    return Roc(auc=float(roc_auc_score(y, s)),
               tpr_at_fpr={f"{level:g}": float(tpr_at_fpr(member_scores, nonmember_scores, level)) if resolvable(level, n) else None
                           for level in levels},
               fpr=fpr[keep].tolist(), tpr=tpr[keep].tolist(), n_members=len(member_scores), n_nonmembers=n,
               auc_ci=intervals["auc"], tpr_ci=intervals["tpr"])


def roc_summary(member_scores: np.ndarray, nonmember_scores: np.ndarray, levels: tuple[float, ...] = FPR_LEVELS,
                max_points: int = 100) -> dict[str, Any]:
    """``roc(...).to_dict()``: the JSON block."""
    return roc(member_scores, nonmember_scores, levels, max_points).to_dict()


# -- output features ------------------------------------------------------------------------------
def entropy(logits: np.ndarray) -> np.ndarray:
    """Shannon entropy (nats) of the softmax of each row."""
    logp = log_softmax(logits, axis=1)
    return -(np.exp(logp) * logp).sum(1)


def label_log_prob(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """log softmax probability of each row's label (labels must be head classes, >= 0)."""
    labels = np.asarray(labels)
    if (labels < 0).any():
        raise ValueError("label-aware features need head-class labels (>= 0)")
    return log_softmax(logits, axis=1)[np.arange(len(labels)), labels]


def shokri_features(logits: np.ndarray, k: int = 3) -> np.ndarray:
    """Label-free attack input: the k largest log-probabilities of each row, sorted descending."""
    logp = log_softmax(logits, axis=1)
    return -np.sort(-logp, axis=1)[:, :k]


def salun_features(logits: np.ndarray, labels: np.ndarray, floor: float = 1e-12) -> np.ndarray:
    """Correctness, confidence, entropy and modified entropy (Song & Mittal 2021:
    ``-(1 - p_y) log p_y - sum_{i != y} p_i log(1 - p_i)``) per row.

    CosFace logits (s = 64) put p_y within 1e-5 of 1 for most faces, so the three continuous
    features enter in log-log form: ``log(-log p_y)`` (the log loss) for the confidence, and the
    log of the entropy and of the modified entropy (each floored at ``floor``).
    """
    logp = log_softmax(logits, axis=1)
    p = np.exp(logp)
    rows = np.arange(len(labels))
    p_y, logp_y = p[rows, labels], label_log_prob(logits, labels)
    log_1m = np.log1p(-np.clip(p, 0.0, 1 - floor))
    m_entropy = -(1 - p_y) * logp_y - (p * log_1m).sum(1) + p_y * log_1m[rows, labels]
    correct = (logits.argmax(1) == labels).astype(float)
    log = lambda v: np.log(np.maximum(v, floor))
    return np.stack([correct, log(-logp_y), log(entropy(logits)), log(m_entropy)], axis=1)


# -- attack models --------------------------------------------------------------------------------
@dataclass
class FittedAttack:
    """An attack model fitted on half of the members and non-members, scored on the other half."""

    estimator: BaseEstimator
    held_out: Roc
    """ROC of held-out members vs held-out non-members."""
    member_test_rate: float
    """Fraction of held-out members predicted member (S4's "member-test" rate)."""
    nonmember_rate: float
    """Fraction of held-out non-members predicted member (the attack's false-positive rate)."""

    def member_probability(self, features: np.ndarray) -> np.ndarray:
        return self.estimator.predict_proba(features)[:, 1]


def fit_attack(members: np.ndarray, nonmembers: np.ndarray, estimator: BaseEstimator,
               nonmember_groups: np.ndarray | None = None, seed: int = 0) -> FittedAttack:
    """Train ``estimator`` (cloned) on a stratified half of members (1) and non-members (0).

    ``nonmember_groups`` (e.g. 0 = held-out images of known identities, 1 = unseen identities)
    are stratified too, so both kinds of non-member appear on both sides. Member prediction is
    ``P(member) >= 0.5``.
    """
    x = np.concatenate([members, nonmembers])
    groups = np.r_[np.zeros(len(members)), 1 + (np.zeros(len(nonmembers)) if nonmember_groups is None else nonmember_groups)]
    y = (groups == 0).astype(int)
    train, test = train_test_split(np.arange(len(x)), test_size=0.5, stratify=groups, random_state=seed)
    model = clone(estimator).fit(x[train], y[train])
    p = model.predict_proba(x[test])[:, 1]
    is_member = y[test] == 1
    return FittedAttack(model, roc(p[is_member], p[~is_member]),
                        float(np.mean(p[is_member] >= 0.5)), float(np.mean(p[~is_member] >= 0.5)))


def youden_threshold(member_scores: np.ndarray, nonmember_scores: np.ndarray) -> float:
    """The score threshold maximising TPR - FPR (Youden's J) for a fixed-score attack (the
    curve's first, infinite threshold excluded)."""
    y = np.r_[np.ones(len(member_scores)), np.zeros(len(nonmember_scores))]
    fpr, tpr, thresholds = roc_curve(y, np.r_[member_scores, nonmember_scores])
    return float(thresholds[1:][np.argmax((tpr - fpr)[1:])])


# -- RMIA -----------------------------------------------------------------------------------------
def rmia_scores(target_x: np.ndarray, reference_x: np.ndarray, target_z: np.ndarray, reference_z: np.ndarray,
                gamma: float = 1.0, same_image: np.ndarray | None = None) -> np.ndarray:
    """RMIA membership score with one reference model (S2 App. B; Zarifzadeh et al. 2024).

    Inputs are log-probabilities of each sample's label under the target ``theta`` and the
    reference ``theta'`` for candidates x and population samples z. Eq. 8 in log space:
    ``log LR(x, z) = [log Pr(x|theta) - log Pr(x|theta')] - [log Pr(z|theta) - log Pr(z|theta')]``;
    Eq. 9: ``Score(x) = fraction of z with LR(x, z) >= gamma``. ``same_image[i, j]`` true marks
    candidate i and population sample j as the same image, left out of i's comparison.
    """
    if gamma <= 0:
        raise ValueError(f"gamma must be positive, got {gamma}")
    ratio_x = np.asarray(target_x, float) - np.asarray(reference_x, float)
    ratio_z = np.asarray(target_z, float) - np.asarray(reference_z, float)
    wins = (ratio_x[:, None] - ratio_z[None, :]) >= np.log(gamma)
    valid = np.ones_like(wins) if same_image is None else ~same_image
    return (wins & valid).sum(1) / np.maximum(valid.sum(1), 1)


# -- embedding-space attack -----------------------------------------------------------------------
def centroid_similarity(embeddings: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Embedding-space membership score: cosine between each image and the normalised mean of the
    *other* images of its identity (leave-one-out centroid).

    Threat model: the attacker queries the deployed retrieval model with several photos of a
    person. Training with a metric loss pulls a training image towards its identity's centre more
    than a held-out image of the same person, and pulls a trained identity's images together more
    than an unseen identity's; after unlearning the forget images should be as coherent as under
    the retrain reference, no more (remembered) and no less (over-forgotten, Streisand). Images
    whose identity has no other image get NaN.
    """
    x = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
    classes, inverse = np.unique(labels, return_inverse=True)
    sums = np.zeros((len(classes), x.shape[1]))
    np.add.at(sums, inverse, x)
    others = sums[inverse] - x
    norms = np.linalg.norm(others, axis=1)
    counts = np.bincount(inverse)[inverse]
    with np.errstate(invalid="ignore", divide="ignore"):
        score = (x * others).sum(1) / norms
    return np.where((counts > 1) & (norms > 1e-12), score, np.nan)


# -- summaries ------------------------------------------------------------------------------------
def tug_of_war(unlearned: Mapping[str, float], retrain: Mapping[str, float],
               parts: tuple[str, ...] = ("retain", "forget", "test")) -> float:
    """S2 Eq. 7: product over retain, forget and test of ``1 - |mAP(unlearned) - mAP(retrain)|``."""
    return float(np.prod([1.0 - abs(unlearned[p] - retrain[p]) for p in parts]))


def unlearn_score(acc_test: float, acc_forget: float) -> float:
    """S4 §5.1: ``|acc(test) - acc(forget)|`` (lower = forget samples treated like unseen ones)."""
    return float(abs(acc_test - acc_forget))


def histograms(values: Mapping[str, np.ndarray], bins: int | np.ndarray = 30) -> dict[str, Any]:
    """Per-set histograms on shared bin edges: ``{"edges": [...], "fractions": {set: [...]}}``
    with each set's fractions summing to 1 (S3 Fig. 2 plots these for the entropy)."""
    finite = {k: np.asarray(v, float)[np.isfinite(v)] for k, v in values.items()}
    if isinstance(bins, int):
        bins = np.histogram_bin_edges(np.concatenate(list(finite.values())), bins=bins)
    out = {}
    for name, v in finite.items():
        counts, _ = np.histogram(v, bins=bins)
        out[name] = (counts / max(len(v), 1)).tolist()
    return {"edges": np.asarray(bins).tolist(), "fractions": out}


def support_distances(support: np.ndarray, support_labels: np.ndarray, forget: np.ndarray,
                      forget_labels: np.ndarray) -> np.ndarray:
    """S2 §5.4 hardness: Euclidean distance between each (normalised) support embedding and the
    centroid (mean of normalised embeddings) of its identity's forget images."""
    unit = lambda a: a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    support, forget = unit(support), unit(forget)
    centres = np.stack([forget[forget_labels == c].mean(0) for c in support_labels])
    return np.linalg.norm(support - centres, axis=1)


def beyond_retrain(unlearned_forget: np.ndarray, retrain_forget: np.ndarray) -> float:
    """Probability that a forget image scores more member-like under the retrain reference than
    under the unlearned model (the AUC of retrain vs unlearned scores): 0.5 = matches the
    reference, near 0 = still remembered, near 1 = pushed past the never-trained state."""
    return float(roc_auc_score(np.r_[np.ones(len(retrain_forget)), np.zeros(len(unlearned_forget))],
                               np.r_[retrain_forget, unlearned_forget]))


def streisand(forget_vs_heldout_auc: float, beyond: float | None = None,
              auc_threshold: float = STREISAND_AUC, beyond_threshold: float = STREISAND_BEYOND) -> list[str]:
    """Reasons (empty = no flag) to suspect the Streisand effect (S2 §5.4, S3 §7.4): the forget
    images look *less* like training data than held-out images of the same people, or far less
    than under the retrain reference; either way the removal itself is visible."""
    reasons = []
    if forget_vs_heldout_auc < auc_threshold:
        reasons.append(f"forget-vs-held-out AUC {forget_vs_heldout_auc:.2f} < {auc_threshold}")
    if beyond is not None and beyond >= beyond_threshold:
        reasons.append(f"forget scores beyond the retrain reference's in {beyond:.0%} of pairs (>= {beyond_threshold:.0%})")
    return reasons
