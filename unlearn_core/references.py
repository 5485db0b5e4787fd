"""Reference models for the low-FPR attacks (RMIA with K references, U-LiRA): which training
identities each of K reference models trains on.

LiRA / RMIA practice (Carlini et al. 2022; Zarifzadeh et al. 2024): every candidate is IN for half
of the reference models and OUT for the other half, and the references are trained like the
audited model. The candidates here are the forget identities' photos, and an unlearning request
forgets people, so the forget identities are IN together in a random half of the models (those
are unlearned with the audited method on the same request for the per-example attack: K/2
unlearning runs) and OUT in the other half. The retained identities are IN in every reference,
as in the original and the retrain models: a never-seen reference is the retrain recipe with
another training seed, a trained one the original recipe with another seed. Measured on the test
workspace: with the retained identities also in random halves, the never-seen references hold half
as many identities as the retrain model and differ from it systematically (U-LiRA's AUC of the
retrain model against them 0.76 where it should be 0.5).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .errors import InvalidParameter

if TYPE_CHECKING:
    from .methods import UnlearnRequest
    from .model import FaceModel

DEFAULT_K = 4
"""Reference models per audit. Chosen for time, not convergence: U-LiRA's TPR at 1% FPR on the
original model was 0.31 with 4 and 0.40 with 8 (docs/privacy-lfw.md)."""


def check_k(k: int) -> int:
    """``k`` when it is a valid number of reference models (even, at least 4: 2 IN, 2 OUT)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 4 or k % 2:
        raise InvalidParameter(f"the number of reference models must be even and at least 4 (2 IN, 2 OUT), got {k!r}")
    return k


def forget_halves(n_classes: int, forget_classes: list[int], k: int, seed: int) -> np.ndarray:
    """``(k, n_classes)`` booleans: class c is IN for model i. The forget classes are IN together for a
    random k/2 of the models; every other class is IN for all."""
    check_k(k)
    member = np.ones((k, n_classes), bool)
    member[:, forget_classes] = np.random.default_rng([seed, k, 12]).permutation(np.arange(k) < k // 2)[:, None]
    return member


@dataclass
class ReferencePool:
    """K trained reference models, what each trained on, and for those that hold the forget
    identities the request that forgets them (None for the others)."""

    models: list[FaceModel]
    member: np.ndarray
    """``(K, n_classes)``: class c in the training data of model k."""
    requests: list[UnlearnRequest | None]

    @property
    def k(self) -> int:
        return len(self.models)
