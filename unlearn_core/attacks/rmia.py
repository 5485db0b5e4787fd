"""RMIA with K reference models (Zarifzadeh et al. 2024, "online": references trained with and
without each candidate's identity; S2 App. B uses it with one reference).

``Pr(x|theta)`` is the head's softmax probability of the image's identity. ``Pr(x)`` is its mean
over the K reference models (half trained on the identity, half not: the online estimate, no
offline correction needed). The population z is every held-out photo of the gallery's labelled
identities (retained and forgotten): photos no model trained on, each left out of its own
comparison. Held-out photos of the forget identities belong in it: the references hold those
identities in half of the models and the retained ones in all, so a population of retained
people's photos alone puts every forget photo above all of it (every score 1, AUC 0.5 by ties). Eq. 9: ``Score(x) = fraction of z with
[Pr(x|theta)/Pr(x)] / [Pr(z|theta)/Pr(z)] >= gamma``.

Two games: forget training vs forget held-out photos (the forgetting measure), and retained
training photos vs held-out photos of retained identities (the attack's strength).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

from ..errors import InvalidParameter
from .base import AttackResult, MembershipAttack, ModelOutputs, References, param, register_attack
from .functional import rmia_scores, roc


def population_log_prob(reference: References, name: str) -> np.ndarray:
    """``log Pr(x)``: the log of the mean probability of each image's label over the K reference models."""
    return logsumexp(np.stack([o.label_log_prob(name) for o in reference.outputs]), axis=0) - np.log(reference.k)


@register_attack
@dataclass
class Rmia(MembershipAttack):
    name = "rmia"
    summary = "Relative likelihood of each photo under the audited model against K reference models and a population (RMIA)"
    help = ("Compares each forgotten photo's likelihood under the audited model, relative to reference models trained with "
            "and without the person, with that of photos nobody trained on (RMIA); alarming: an AUC far from 0.5, either way.")
    order = 40
    needs_reference = True

    gamma: float = param(1.0, 1e-12, None, "likelihood-ratio threshold of Eq. 9")

    def run(self, out: ModelOutputs, reference: References | None = None, seed: int = 0) -> AttackResult:
        if reference is None:
            raise InvalidParameter("rmia needs the reference models' outputs")
        population = ("test", "forget_heldout")
        z_target = np.concatenate([out.label_log_prob(p) for p in population])
        z_ref = np.concatenate([population_log_prob(reference, p) for p in population])
        start = {"test": 0, "forget_heldout": len(out.labels["test"])}

        def score(name: str) -> np.ndarray:
            same = None
            if name in start:  # a population photo is left out of its own comparison
                same = np.zeros((len(out.labels[name]), len(z_target)), bool)
                same[np.arange(len(same)), start[name] + np.arange(len(same))] = True
            return rmia_scores(out.label_log_prob(name), population_log_prob(reference, name), z_target, z_ref, self.gamma, same_image=same)

        forget, heldout = score("forget"), score("forget_heldout")
        return AttackResult(forget_vs_heldout=roc(forget, heldout, seed=seed), params={"gamma": self.gamma, "k": reference.k},
                            forget_score_mean=float(forget.mean()), forget_scores=forget,
                            nonmembers=["test"], members_vs_nonmembers=roc(score("members"), score("test"), seed=seed))
