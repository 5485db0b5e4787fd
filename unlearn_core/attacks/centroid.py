"""Our embedding-space attack: how tightly a person's photos cluster (``functional.centroid_similarity``,
the leave-one-out centroid cosine), a fixed score thresholded at Youden's J.

It reads embeddings only (no head, no reference), so it can also score a group of photos the model
never had a class for: the "forget me" flow's verdict uses it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import ModelOutputs, ScoreAttack, register_attack
from .functional import centroid_similarity


@register_attack
@dataclass
class Centroid(ScoreAttack):
    name = "embedding"
    summary = "Leave-one-out centroid cosine in the embedding space (fixed score, no head needed)"
    help = ("How tightly a person's photos cluster in the embedding (training pulls them together); alarming: forgotten "
            "people still clustered like training identities, or scattered more than strangers (Streisand).")
    order = 30

    def features(self, out: ModelOutputs) -> dict[str, np.ndarray]:
        """The score of every image of the labelled sets, computed on all of them together (an
        identity's images in several sets see each other); an image alone in its identity scores 0."""
        labelled = [s for s in out.sets if s != "unseen"]
        scores = centroid_similarity(np.concatenate([out.embeddings[s] for s in labelled]),
                                     np.concatenate([out.labels[s] for s in labelled]))
        bounds = np.cumsum([0] + [len(out.labels[s]) for s in labelled])
        return {s: np.nan_to_num(scores[a:b], nan=0.0)[:, None] for s, a, b in zip(labelled, bounds[:-1], bounds[1:])}
