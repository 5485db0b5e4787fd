"""Shokri et al. (2017)-style attack model on the label-free, sorted top-k output.

One attack model instead of Shokri's per-class shadow models (the ML-Leaks simplification), so
unseen identities, which have no head class, can be non-members too.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.ensemble import HistGradientBoostingClassifier

from .base import ModelOutputs, ScoreAttack, param, register_attack
from .functional import shokri_features


@register_attack
@dataclass
class Shokri(ScoreAttack):
    name = "shokri"
    summary = "Gradient-boosted attack model on the top-k output log-probabilities (label-free)"
    help = ("Guesses from the model's three highest output probabilities whether a photo was trained on; alarming: "
            "forgotten photos still called members more often than under retrain, or much less often (Streisand).")
    order = 10
    uses_unseen = True

    k: int = param(3, 1, 1000, "how many of the largest log-probabilities the attack model reads")

    def features(self, out: ModelOutputs) -> dict[str, np.ndarray]:
        return {s: shokri_features(out.logits[s], self.k) for s in out.sets}

    def estimator(self, seed: int) -> BaseEstimator:
        """Non-linear attack model on the sorted top-k output (gradient-boosted trees)."""
        return HistGradientBoostingClassifier(max_iter=100, class_weight="balanced", random_state=seed)
