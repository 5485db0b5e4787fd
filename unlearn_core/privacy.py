"""The privacy audit of an unlearned model, side by side with the retrain reference.

Sets (from the audited workspace, see ``AuditWorkspace``): members = retain training images;
non-members = held-out images of retained identities (``retain_test``) and, for label-free
attacks, unseen identities (``distractors``); forget = the forget identities' training images, and
forget held-out = their held-out images. Under the retrain reference the forget training and
held-out images are exchangeable (both unseen), so every "forget vs held-out" AUC is 0.5 there in
expectation.

The attacks are the registered ones (``unlearn_core.attacks``), each run on the audited model
("unlearned") and on the retrain model ("retrain"). Label-aware numbers use the model's own head;
the retrain reference's head has a zero row for each forget identity (its logit is 0), so on
forget images it is maximally unsure, which is what a model that never saw them does.

This module reads a workspace only through ``AuditWorkspace`` (``pipeline.Workspace`` is one);
it never imports ``pipeline``.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr

from . import attacks
from .attacks import ModelOutputs, attack_class, create_attack, list_attacks
from .features import Parts
from .metrics import retrieval
from .model import FaceModel

if TYPE_CHECKING:
    from .methods import UnlearnRequest

SETS = {"forget": "forget_train", "forget_heldout": "forget_test", "members": "retain_train",
        "test": "retain_test", "unseen": "distractors"}
"""Audit set -> workspace part."""

REPORTED_ATTACKS = tuple(list_attacks())
"""Every registered attack, in report order; each has a block in the report holding ``unlearned``
and ``retrain`` results."""


class _Seeded(Protocol):
    @property
    def seed(self) -> int: ...


class AuditWorkspace(Protocol):
    """What the privacy audit reads from a workspace (``pipeline.Workspace`` satisfies it)."""

    @property
    def parts(self) -> Parts:
        """The protocol's image sets (inputs, labels, image ids)."""

    @property
    def config(self) -> _Seeded: ...

    @property
    def forget_classes(self) -> list[int]: ...

    @property
    def original(self) -> FaceModel: ...

    def retrain_model(self) -> FaceModel: ...

    def request(self, one_shot: bool = False, seed: int = 0) -> UnlearnRequest:
        """Only ``.support`` is read (the one-shot support sample, for the hardness study)."""

    def identity_names(self, classes: list[int]) -> list[str]: ...


@torch.no_grad()
def model_outputs(model: FaceModel, parts: Parts) -> ModelOutputs:
    """Logits, normalised embeddings and labels of ``model`` on every audit set."""
    logits, embeddings, labels = {}, {}, {}
    for name, part in SETS.items():
        d = parts[part]
        batches = [model(d.inputs[i : i + 512]) for i in range(0, len(d), 512)]
        raw = torch.cat(batches) if batches else torch.zeros(0, model.head.weight.shape[1], device=d.inputs.device)
        logits[name] = model.head(raw).cpu().numpy().astype(np.float64)
        embeddings[name] = F.normalize(raw, dim=1).cpu().numpy()
        labels[name] = d.labels.cpu().numpy()
    return ModelOutputs(embeddings=embeddings, labels=labels, logits=logits)


def membership_attacks(outs: Mapping[str, ModelOutputs], reference: ModelOutputs | None, seed: int,
                       names: list[str] | None = None) -> tuple[dict[str, Any], list[str], dict[str, str]]:
    """Run every registered attack (or ``names``) on the ``unlearned`` and ``retrain`` outputs.

    Returns the report blocks (attack -> ``{"unlearned", "retrain", ["beyond_retrain"], "streisand"}``),
    the Streisand reasons prefixed with the attack's name, and the attacks skipped with why (an
    attack that ``needs_reference`` when ``reference`` is None).
    """
    blocks: dict[str, Any] = {}
    flags: list[str] = []
    skipped: dict[str, str] = {}
    for name in list_attacks() if names is None else names:
        attack = create_attack(name)
        if attack.needs_reference and reference is None:
            skipped[name] = "needs a reference model and none was given"
            continue
        results = {who: attack.run(out, reference, seed) for who, out in outs.items()}
        block: dict[str, Any] = {who: r.to_dict() for who, r in results.items()}
        beyond = None
        if attack.compares_with_retrain:
            beyond = block["beyond_retrain"] = attacks.beyond_retrain(results["unlearned"].forget_scores, results["retrain"].forget_scores)
        block["streisand"] = attacks.streisand(results["unlearned"].auc, beyond)
        blocks[name] = block
        flags += [f"{name}: {r}" for r in block["streisand"]]
    return blocks, flags, skipped


def retrieval_maps(ws: AuditWorkspace, out: ModelOutputs) -> dict[str, float]:
    """mAP for ToW: retain = retain training images against themselves, forget = forget training
    images against all training images, test = held-out retain images against themselves (each
    query's own image excluded)."""
    e, lab = out.embeddings, out.labels
    ids = {s: ws.parts[p].image_ids for s, p in SETS.items()}

    def m(query: str, gallery: tuple[str, ...]) -> float:
        return retrieval(e[query], lab[query], np.concatenate([e[g] for g in gallery]), np.concatenate([lab[g] for g in gallery]),
                         ids[query], np.concatenate([ids[g] for g in gallery]))["mAP"]

    return {"retain": m("members", ("members",)), "forget": m("forget", ("forget", "members")), "test": m("test", ("test",))}


def identity_maps(out: ModelOutputs, ws: AuditWorkspace) -> np.ndarray:
    """Per forget identity: mAP of its held-out images against held-out forget + retain images."""
    e, lab = out.embeddings, out.labels
    gallery = np.concatenate([e["forget_heldout"], e["test"]])
    g_lab = np.concatenate([lab["forget_heldout"], lab["test"]])
    g_ids = np.concatenate([ws.parts.forget_test.image_ids, ws.parts.retain_test.image_ids])
    q_ids = ws.parts.forget_test.image_ids
    maps = []
    for c in ws.forget_classes:
        q = lab["forget_heldout"] == c
        maps.append(retrieval(e["forget_heldout"][q], lab["forget_heldout"][q], gallery, g_lab, q_ids[q], g_ids)["mAP"])
    return np.array(maps)


def hardness(ws: AuditWorkspace, out: ModelOutputs, ref: ModelOutputs, original: ModelOutputs) -> dict[str, Any]:
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


def distributions(outs: dict[str, ModelOutputs], bins: int = 30) -> dict[str, Any]:
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


def privacy_audit(ws: AuditWorkspace, model: FaceModel, reference: FaceModel | None = None, seed: int | None = None) -> dict[str, Any]:
    """Membership-inference attacks, ToW, unlearn score, distributions, hardness and the Streisand
    check for ``model``, each next to the retrain model's (``ws.retrain_model()``).

    ``reference`` is the reference model of the attacks that need one (RMIA; default: the retrain
    model; S2 uses the retrain model unlearned with the same method). With the retrain model as
    both target and reference RMIA is 0.5 by construction.
    """
    seed = ws.config.seed if seed is None else seed
    retrain = ws.retrain_model()
    outs = {"unlearned": model_outputs(model, ws.parts), "retrain": model_outputs(retrain, ws.parts)}
    ref = outs["retrain"] if reference is None or reference is retrain else model_outputs(reference, ws.parts)
    report: dict[str, Any] = {
        "reference": "retrain" if ref is outs["retrain"] else "given",
        "n_images": {s: len(outs["unlearned"].labels[s]) for s in SETS},
        "thresholds": {"streisand_auc": attacks.STREISAND_AUC, "streisand_beyond": attacks.STREISAND_BEYOND},
    }
    blocks, flags, _ = membership_attacks(outs, ref, seed)  # a reference is always given: nothing is skipped
    report.update(blocks)

    original = outs["unlearned"] if model is ws.original else model_outputs(ws.original, ws.parts)
    maps = {who: retrieval_maps(ws, out) for who, out in {**outs, "original": original}.items()}
    report["tug_of_war"] = {**{who: attacks.tug_of_war(m, maps["retrain"]) for who, m in maps.items()}, "map": maps}
    report["unlearn_score"] = {who: {"score": attacks.unlearn_score(o.accuracy("test"), o.accuracy("forget")),
                                     "acc_test": o.accuracy("test"), "acc_forget": o.accuracy("forget")} for who, o in outs.items()}
    report["distributions"] = distributions(outs)
    report["hardness"] = hardness(ws, outs["unlearned"], outs["retrain"], original)
    report["streisand"] = {"flag": bool(flags), "reasons": flags}
    return report


ATTACK_HELP = {name: attack_class(name).help for name in REPORTED_ATTACKS}
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
    share of forget photos beyond retrain (None where the attack reports none) and its Streisand
    reasons. Attacks absent from the report (skipped) have no row."""
    rows = []
    for attack in (a for a in REPORTED_ATTACKS if a in privacy):
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
