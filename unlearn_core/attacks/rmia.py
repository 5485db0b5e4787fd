"""RMIA with one reference model (S2 App. B; Zarifzadeh et al. 2024) on the forget identities.

Candidates are their training images (members of the original model) and held-out images
(non-members); the population z is the held-out images (the same regime for both models' heads),
each image left out of its own comparison.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InvalidParameter
from .base import AttackResult, MembershipAttack, ModelOutputs, param, register_attack
from .functional import rmia_scores, roc


@register_attack
@dataclass
class Rmia(MembershipAttack):
    name = "rmia"
    summary = "Likelihood ratio of the audited model against a reference model, per forget image"
    help = ("Compares each forgotten photo's likelihood under the audited model with the retrain reference's (RMIA); "
            "alarming: an AUC far from 0.5, either way.")
    order = 40
    needs_reference = True
    compares_with_retrain = False  # with the retrain model as target and reference every score ties (AUC 0.5)

    gamma: float = param(1.0, 1e-12, None, "likelihood-ratio threshold of Eq. 9")

    def run(self, out: ModelOutputs, reference: ModelOutputs | None = None, seed: int = 0) -> AttackResult:
        if reference is None:
            raise InvalidParameter("rmia needs a reference model's outputs")
        z_target, z_ref = out.label_log_prob("forget_heldout"), reference.label_log_prob("forget_heldout")
        n_forget, n_heldout = len(out.labels["forget"]), len(z_target)
        score_forget = rmia_scores(out.label_log_prob("forget"), reference.label_log_prob("forget"), z_target, z_ref, self.gamma)
        score_heldout = rmia_scores(z_target, z_ref, z_target, z_ref, self.gamma, same_image=np.eye(n_heldout, dtype=bool))
        return AttackResult(forget_vs_heldout=roc(score_forget, score_heldout), params={"gamma": self.gamma},
                            forget_score_mean=float(score_forget.mean()) if n_forget else float("nan"), forget_scores=score_forget)
