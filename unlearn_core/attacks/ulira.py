"""A per-example unlearning attack in the manner of U-LiRA (Hayes et al. 2024, "Inexact unlearning
needs more careful evaluations"), on the forget identities' training photos.

For each forget photo x, a statistic phi is modelled as a Gaussian under
the reference models that were trained on x's identity and then unlearned with the audited method
("unlearned", or as trained when the audit gives no unlearned copies), and under those that never
trained on it ("never seen"). The score is the log likelihood ratio
``log N(phi; mu_unl(x), s_unl) - log N(phi; mu_out(x), s_out)``: per-example means and one standard
deviation per side pooled over examples (LiRA's fixed variance, for few references).

The game (U-LiRA's): the audited model's forget photos are the positives; the negatives are the
same photos under each never-seen reference model j in turn, scored against a never-seen mean
fitted without model j (leave one out; needs at least 2 never-seen references; the pooled
deviations use every model). The positives are scored against the same leave-one-out means (one
score per photo and mean), so both sides rest on means of equally many models. AUC 0.5 = the
audited model cannot be told from models that never saw these people; 1 = it still carries
them; well below 0.5 = it looks less trained on them than never-seen models do (Streisand).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from ..errors import InvalidParameter
from .base import AttackResult, MembershipAttack, ModelOutputs, References, register_attack
from .functional import centroid_similarity, roc


def statistic(out: ModelOutputs) -> np.ndarray:
    """Per forget training photo: the leave-one-out centroid cosine among its person's forget photos."""
    scores = centroid_similarity(np.concatenate([out.embeddings["forget"], out.embeddings["forget_heldout"]]),
                                 np.concatenate([out.labels["forget"], out.labels["forget_heldout"]]))
    return np.nan_to_num(scores[: len(out.labels["forget"])], nan=0.0)


def pooled_std(values: np.ndarray, floor: float = 1e-3) -> float:
    """The standard deviation of ``values`` (rows = models, columns = examples) around each
    example's mean, pooled over examples (LiRA's global variance), at least ``floor``."""
    return max(float(np.sqrt(np.mean((values - values.mean(0)) ** 2))), floor)


@register_attack
@dataclass
class ULira(MembershipAttack):
    name = "ulira"
    summary = "Per-photo likelihood ratio against reference models that unlearned the person vs never saw them (U-LiRA)"
    help = ("Asks for each forgotten photo whether how close it sits to the person's other photos looks like that of reference models that "
            "learned and then unlearned the person or of models that never saw them (U-LiRA; its non-members are the same "
            "photos under never-seen models); alarming: an AUC well above 0.5 (a trace remains) or well below (Streisand).")
    order = 50
    needs_reference = True

    def run(self, out: ModelOutputs, reference: References | None = None, seed: int = 0) -> AttackResult:
        if reference is None:
            raise InvalidParameter("ulira needs the reference models' outputs")
        phi = np.stack([statistic(u if u is not None else o) for o, u in zip(reference.outputs, reference.unlearned)])
        trained = np.stack([reference.trained("forget", k) for k in range(reference.k)])
        if not (trained.all(1) | ~trained.any(1)).all():
            raise InvalidParameter("ulira needs the forget identities IN or OUT together in each reference model")
        inside, outside = np.flatnonzero(trained[:, 0]), np.flatnonzero(~trained[:, 0])
        if len(inside) < 1 or len(outside) < 2:
            raise InvalidParameter("ulira needs at least 1 reference model with the forget identities and 2 without")
        mu_u, s_u, s_n = phi[inside].mean(0), pooled_std(phi[inside]), pooled_std(phi[outside])

        def llr(x: np.ndarray, mu_n: np.ndarray) -> np.ndarray:
            return norm.logpdf(x, mu_u, s_u) - norm.logpdf(x, mu_n, s_n)

        loo = [phi[np.setdiff1d(outside, j)].mean(0) for j in outside]  # never-seen means without model j
        target = np.concatenate([llr(statistic(out), mu) for mu in loo])
        never = np.concatenate([llr(phi[j], mu) for j, mu in zip(outside, loo)])
        return AttackResult(forget_vs_heldout=roc(target, never, seed=seed), params={"k": reference.k},
                            forget_score_mean=float(target.mean()), forget_scores=target)
