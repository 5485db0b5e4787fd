"""The privacy audit of an unlearned model, side by side with the retrain reference.

Sets (from a ``Workspace``): members = retain training images; non-members = held-out images of
retained identities (``retain_test``) and, for label-free attacks, unseen identities
(``distractors``); forget = the forget identities' training images, and forget held-out = their
held-out images. Under the retrain reference the forget training and held-out images are
exchangeable (both unseen), so every "forget vs held-out" AUC is 0.5 there in expectation.

Label-aware numbers use the model's own head; the retrain reference's head has a zero row for
each forget identity (its logit is 0), so on forget images it is maximally unsure, which is what a model
that never saw them does. Every number is computed for the audited model ("unlearned") and for the
retrain model ("retrain").
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr

from . import attacks
from .metrics import retrieval
from .model import FaceModel

if TYPE_CHECKING:
    from .pipeline import Workspace

SETS = {"forget": "forget_train", "forget_heldout": "forget_test", "members": "retain_train",
        "test": "retain_test", "unseen": "distractors"}
"""Audit set -> workspace part."""

ATTACKS: dict[str, tuple[Callable[[int], Any] | None, bool]] = {
    "shokri": (attacks.shokri_attack, True),
    "salun": (attacks.salun_attack, False),
    "embedding": (None, False),
}
"""Attack name -> (attack-model factory, or None for a fixed score; whether unseen identities are
non-members too). Label-aware attacks cannot use unseen identities: they have no head class, and
the embedding attack needs two images of an identity."""
REPORTED_ATTACKS = (*ATTACKS, "rmia")
"""Every attack with a block in the report, each holding ``unlearned`` and ``retrain`` results."""


class Outputs:
    """Logits, normalised embeddings and labels of one model on every audit set."""

    @torch.no_grad()
    def __init__(self, ws: Workspace, model: FaceModel):
        self.logits: dict[str, np.ndarray] = {}
        self.embeddings: dict[str, np.ndarray] = {}
        self.labels: dict[str, np.ndarray] = {}
        for name, part in SETS.items():
            data = ws.data[part]
            batches = [model(data.inputs[i : i + 512]) for i in range(0, len(data), 512)]
            raw = torch.cat(batches) if batches else torch.zeros(0, ws.backbone.embed_dim, device=data.inputs.device)
            self.logits[name] = model.head(raw).cpu().numpy().astype(np.float64)
            self.embeddings[name] = F.normalize(raw, dim=1).cpu().numpy()
            self.labels[name] = data.labels.cpu().numpy()

    def features(self, attack: str) -> dict[str, np.ndarray]:
        """The attack's input features per audit set (label-aware attacks skip ``unseen``)."""
        if attack == "shokri":
            return {s: attacks.shokri_features(self.logits[s]) for s in SETS}
        if attack == "salun":
            return {s: attacks.salun_features(self.logits[s], self.labels[s]) for s in SETS if s != "unseen"}
        if attack == "embedding":
            labelled = [s for s in SETS if s != "unseen"]
            scores = attacks.centroid_similarity(np.concatenate([self.embeddings[s] for s in labelled]),
                                                 np.concatenate([self.labels[s] for s in labelled]))
            bounds = np.cumsum([0] + [len(self.labels[s]) for s in labelled])
            return {s: np.nan_to_num(scores[a:b], nan=0.0)[:, None] for s, a, b in zip(labelled, bounds[:-1], bounds[1:])}
        raise ValueError(f"unknown attack {attack!r}")

    def label_log_prob(self, name: str) -> np.ndarray:
        return attacks.label_log_prob(self.logits[name], self.labels[name])

    def accuracy(self, name: str) -> float:
        return float(np.mean(self.logits[name].argmax(1) == self.labels[name])) if len(self.labels[name]) else float("nan")


def membership_attack(out: Outputs, attack: str, seed: int) -> tuple[dict[str, Any], np.ndarray]:
    """Run one attack on ``out``: members vs non-members, then the forget sets.

    A fitted attack trains on half of the members and non-members and is scored on the other
    half (member = P(member) >= 0.5); a fixed-score attack is scored on all of them, with the
    member threshold at Youden's J. Returns the JSON block and the forget images' scores.
    """
    factory, with_unseen = ATTACKS[attack]
    feats = out.features(attack)
    nonmember_sets = ["test"] + (["unseen"] if with_unseen and len(feats["unseen"]) else [])
    nonmembers = np.concatenate([feats[s] for s in nonmember_sets])
    if factory is None:
        members, nonmembers = feats["members"][:, 0], nonmembers[:, 0]
        threshold = attacks.youden_threshold(members, nonmembers)
        held_out = attacks.roc_summary(members, nonmembers)
        member_rate, nonmember_rate = float(np.mean(members >= threshold)), float(np.mean(nonmembers >= threshold))
        score = lambda s: feats[s][:, 0]
    else:
        groups = np.concatenate([np.full(len(feats[s]), k) for k, s in enumerate(nonmember_sets)])
        fitted = attacks.fit_attack(feats["members"], nonmembers, factory(seed), groups, seed=seed)
        threshold, held_out = 0.5, fitted.held_out
        member_rate, nonmember_rate = fitted.member_test_rate, fitted.nonmember_rate
        score = lambda s: fitted.member_probability(feats[s])
    forget, heldout = score("forget"), score("forget_heldout")
    block = {
        "nonmembers": nonmember_sets,
        "members_vs_nonmembers": held_out,
        "threshold": float(threshold),
        "member_test_rate": member_rate,
        "nonmember_rate": nonmember_rate,
        "forget_member_rate": float(np.mean(forget >= threshold)),
        "forget_heldout_member_rate": float(np.mean(heldout >= threshold)),
        "forget_vs_heldout": attacks.roc_summary(forget, heldout),
        "forget_score_mean": float(np.mean(forget)),
    }
    return block, forget


def rmia(out: Outputs, ref: Outputs, gamma: float = 1.0) -> dict[str, Any]:
    """RMIA (S2 App. B) on the forget identities: candidates are their training images (members
    of the original model) and held-out images (non-members); the population z is the held-out
    images (the same regime for both models' heads), each image left out of its own comparison."""
    z_target, z_ref = out.label_log_prob("forget_heldout"), ref.label_log_prob("forget_heldout")
    n_forget, n_heldout = len(out.labels["forget"]), len(z_target)
    score_forget = attacks.rmia_scores(out.label_log_prob("forget"), ref.label_log_prob("forget"), z_target, z_ref, gamma)
    score_heldout = attacks.rmia_scores(z_target, z_ref, z_target, z_ref, gamma, same_image=np.eye(n_heldout, dtype=bool))
    return {"gamma": gamma, "forget_vs_heldout": attacks.roc_summary(score_forget, score_heldout),
            "forget_score_mean": float(score_forget.mean()) if n_forget else float("nan")}


def retrieval_maps(ws: Workspace, out: Outputs) -> dict[str, float]:
    """mAP for ToW: retain = retain training images against themselves, forget = forget training
    images against all training images, test = held-out retain images against themselves (each
    query's own image excluded)."""
    e, lab = out.embeddings, out.labels
    ids = {s: ws.data[p].image_ids for s, p in SETS.items()}

    def m(query: str, gallery: tuple[str, ...]) -> float:
        return retrieval(e[query], lab[query], np.concatenate([e[g] for g in gallery]), np.concatenate([lab[g] for g in gallery]),
                         ids[query], np.concatenate([ids[g] for g in gallery]))["mAP"]

    return {"retain": m("members", ("members",)), "forget": m("forget", ("forget", "members")), "test": m("test", ("test",))}


def identity_maps(out: Outputs, ws: Workspace) -> np.ndarray:
    """Per forget identity: mAP of its held-out images against held-out forget + retain images."""
    e, lab = out.embeddings, out.labels
    gallery = np.concatenate([e["forget_heldout"], e["test"]])
    g_lab = np.concatenate([lab["forget_heldout"], lab["test"]])
    g_ids = np.concatenate([ws.data["forget_test"].image_ids, ws.data["retain_test"].image_ids])
    q_ids = ws.data["forget_test"].image_ids
    maps = []
    for c in ws.forget_classes:
        q = lab["forget_heldout"] == c
        maps.append(retrieval(e["forget_heldout"][q], lab["forget_heldout"][q], gallery, g_lab, q_ids[q], g_ids)["mAP"])
    return np.array(maps)


def hardness(ws: Workspace, out: Outputs, ref: Outputs, original: Outputs) -> dict[str, Any]:
    """S2 §5.4: distance from each support sample to its identity's forget centroid (original
    model's embedding space) against the forgetting gap, mAP(unlearned) - mAP(retrain) on that
    identity's held-out images (positive = remembered more than the reference, negative = forgot
    more: the Streisand side). Spearman rho between the two (None when undefined)."""
    support = ws.request(one_shot=True, seed=ws.config.seed).support
    with torch.no_grad():
        support_emb = ws.original.embed(support.inputs).cpu().numpy()
    distance = attacks.support_distances(support_emb, support.labels.cpu().numpy(), original.embeddings["forget"], original.labels["forget"])
    gap = identity_maps(out, ws) - identity_maps(ref, ws)
    rho = float(spearmanr(distance, gap).statistic) if len(gap) > 2 and np.ptp(gap) > 0 else None
    return {"identities": ws.identity_names(ws.forget_classes), "support_distance": distance.tolist(),
            "map_gap": gap.tolist(), "spearman": rho}


def distributions(outs: dict[str, Outputs], bins: int = 30) -> dict[str, Any]:
    """S3 Fig. 2: histograms of log10 entropy (all sets) and log10 cross-entropy loss (labelled
    sets) per model, on bin edges shared by all models so they overlay."""
    sets = {"forget": "forget", "retain": "members", "test": "test", "unseen": "unseen"}
    floor = 1e-8
    values = {
        "entropy": {w: {k: np.log10(np.maximum(attacks.entropy(o.logits[s]), floor)) for k, s in sets.items()} for w, o in outs.items()},
        "loss": {w: {k: np.log10(np.maximum(-o.label_log_prob(s), floor)) for k, s in sets.items() if s != "unseen"} for w, o in outs.items()},
    }
    out: dict[str, Any] = {"scale": "log10", "floor": floor}
    for metric, per_model in values.items():
        every = np.concatenate([v for sets_ in per_model.values() for v in sets_.values()])
        edges = np.histogram_bin_edges(every[np.isfinite(every)], bins=bins)
        out[metric] = {"edges": edges.tolist(),
                       **{w: attacks.histograms(v, edges)["fractions"] for w, v in per_model.items()},
                       "median": {w: {k: float(np.median(x)) if len(x) else None for k, x in v.items()} for w, v in per_model.items()}}
    return out


def privacy_audit(ws: Workspace, model: FaceModel, reference: FaceModel | None = None, seed: int | None = None) -> dict[str, Any]:
    """Membership-inference attacks, ToW, unlearn score, distributions, hardness and the Streisand
    check for ``model``, each next to the retrain model's (``ws.retrain_model()``).

    ``reference`` is RMIA's reference model (default: the retrain model; S2 uses the retrain
    model unlearned with the same method). With the retrain model as both target and reference
    RMIA is 0.5 by construction.
    """
    seed = ws.config.seed if seed is None else seed
    retrain = ws.retrain_model()
    outs = {"unlearned": Outputs(ws, model), "retrain": Outputs(ws, retrain)}
    ref = outs["retrain"] if reference is None or reference is retrain else Outputs(ws, reference)
    report: dict[str, Any] = {
        "reference": "retrain" if ref is outs["retrain"] else "given",
        "n_images": {s: len(outs["unlearned"].labels[s]) for s in SETS},
        "thresholds": {"streisand_auc": attacks.STREISAND_AUC, "streisand_beyond": attacks.STREISAND_BEYOND},
    }
    flags: list[str] = []
    for attack in ATTACKS:
        blocks, forget_scores = {}, {}
        for who, out in outs.items():
            blocks[who], forget_scores[who] = membership_attack(out, attack, seed)
        beyond = attacks.beyond_retrain(forget_scores["unlearned"], forget_scores["retrain"])
        reasons = attacks.streisand(blocks["unlearned"]["forget_vs_heldout"]["auc"], beyond)
        report[attack] = {**blocks, "beyond_retrain": beyond, "streisand": reasons}
        flags += [f"{attack}: {r}" for r in reasons]
    report["rmia"] = {who: rmia(out, ref) for who, out in outs.items()}
    report["rmia"]["streisand"] = attacks.streisand(report["rmia"]["unlearned"]["forget_vs_heldout"]["auc"])
    flags += [f"rmia: {r}" for r in report["rmia"]["streisand"]]

    original = outs["unlearned"] if model is ws.original else Outputs(ws, ws.original)
    maps = {who: retrieval_maps(ws, out) for who, out in {**outs, "original": original}.items()}
    report["tug_of_war"] = {**{who: attacks.tug_of_war(m, maps["retrain"]) for who, m in maps.items()}, "map": maps}
    report["unlearn_score"] = {who: {"score": attacks.unlearn_score(o.accuracy("test"), o.accuracy("forget")),
                                     "acc_test": o.accuracy("test"), "acc_forget": o.accuracy("forget")} for who, o in outs.items()}
    report["distributions"] = distributions(outs)
    report["hardness"] = hardness(ws, outs["unlearned"], outs["retrain"], original)
    report["streisand"] = {"flag": bool(flags), "reasons": flags}
    return report


ATTACK_HELP = {
    "shokri": "Guesses from the model's three highest output probabilities whether a photo was trained on; alarming: "
              "forgotten photos still called members more often than under retrain, or much less often (Streisand).",
    "salun": "Guesses membership from how sure and how right the identity head is about a photo (SalUn-style); alarming: "
             "the head still sure about forgotten people, or far less sure than about people it never saw.",
    "embedding": "How tightly a person's photos cluster in the embedding (training pulls them together); alarming: forgotten "
                 "people still clustered like training identities, or scattered more than strangers (Streisand).",
    "rmia": "Compares each forgotten photo's likelihood under the audited model with the retrain reference's (RMIA); "
            "alarming: an AUC far from 0.5, either way.",
}
"""Attack -> one plain sentence: what it measures and what would be alarming."""

PRIVACY_COLUMNS = (
    ("auc_forget_heldout", "AUC forget/held", "How well the attack tells forgotten training photos from held-out photos of the "
                                               "same people: 0.5 = not at all, as under retrain; well below 0.5 = Streisand."),
    ("tpr_forget_heldout", "TPR@0.1%FPR", "Share of forgotten photos the attack spots while wrongly accusing only 0.1% of "
                                          "held-out photos: a confident hit rate (retrain: near 0)."),
    ("forget_member_rate", "forget->member", "Share of forgotten photos the attack still calls members of the training set."),
    ("auc_members", "AUC mem/non", "How well the attack tells training photos from held-out ones on retained people: "
                                   "its strength (0.5 = blind), not a forgetting measure."),
)
"""Per-model privacy numbers: (key, short label, explanation)."""


def privacy_rows(privacy: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per attack (``REPORTED_ATTACKS``): its ``PRIVACY_COLUMNS`` numbers for the
    unlearned model and the retrain reference (None where the attack has no such number), the
    share of forget photos beyond retrain (None for RMIA) and its Streisand reasons."""
    rows = []
    for attack in REPORTED_ATTACKS:
        block = privacy[attack]
        numbers = {}
        for who in ("unlearned", "retrain"):
            b = block[who]
            numbers[who] = {"auc_forget_heldout": b["forget_vs_heldout"]["auc"],
                            "tpr_forget_heldout": b["forget_vs_heldout"]["tpr_at_fpr"]["0.001"],
                            "forget_member_rate": b.get("forget_member_rate"),
                            "auc_members": b["members_vs_nonmembers"]["auc"] if "members_vs_nonmembers" in b else None}
        rows.append({"attack": attack, **numbers, "beyond_retrain": block.get("beyond_retrain"), "streisand": block["streisand"]})
    return rows


def format_privacy_table(privacy: dict[str, Any]) -> str:
    """A compact text table: each attack's numbers as ``unlearned | retrain``."""
    lines = [f"{'privacy':<11}" + "".join(f"{label:>18}" for _, label, _ in PRIVACY_COLUMNS) + f"{'beyond retrain':>16}  Streisand"]

    def pair(a: float | None, b: float | None) -> str:
        return "-" if a is None or b is None else f"{a:.3f} | {b:.3f}"

    for row in privacy_rows(privacy):
        beyond = "-" if row["beyond_retrain"] is None else f"{row['beyond_retrain']:.3f}"
        lines.append(f"{row['attack']:<11}" + "".join(f"{pair(row['unlearned'][key], row['retrain'][key]):>18}" for key, _, _ in PRIVACY_COLUMNS)
                     + f"{beyond:>16}  {'yes' if row['streisand'] else 'no'}")
    tow, us = privacy["tug_of_war"], privacy["unlearn_score"]
    lines.append(f"tug of war (S2 Eq. 7): unlearned {tow['unlearned']:.3f}, original {tow['original']:.3f}, retrain 1.000;"
                 f" unlearn score |acc test - acc forget|: {pair(us['unlearned']['score'], us['retrain']['score'])}")
    s = privacy["streisand"]
    lines.append("Streisand flag: " + ("; ".join(s["reasons"]) if s["flag"] else "none"))
    return "\n".join(lines)
