"""The SalUn / Unlearn-Saliency membership attack on the identity head's correctness, confidence,
entropy and modified entropy (Song & Mittal 2021; features in ``functional.salun_features``).

Label-aware: it needs each image's head class, so unseen identities cannot be non-members.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from .base import ModelOutputs, ScoreAttack, register_attack
from .functional import salun_features


@register_attack
@dataclass
class Salun(ScoreAttack):
    name = "salun"
    summary = "Logistic regression on the head's correctness, confidence and (modified) entropy (label-aware)"
    help = ("Guesses membership from how sure and how right the identity head is about a photo (SalUn-style); alarming: "
            "the head still sure about forgotten people, or far less sure than about people it never saw.")
    order = 20

    def features(self, out: ModelOutputs) -> dict[str, np.ndarray]:
        return {s: salun_features(out.logits[s], out.labels[s]) for s in out.sets if s != "unseen"}

    def estimator(self, seed: int) -> BaseEstimator:
        """Logistic regression on the four SalUn features. SalUn fits an RBF SVC; here retain
        members and held-out images are all confidently correct, so the forget images of a model that
        forgot them lie far outside the training range, where an RBF model answers arbitrarily and a
        linear one extrapolates monotonically (less confident = less member-like)."""
        return make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced", random_state=seed))
