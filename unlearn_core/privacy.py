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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr

from . import attacks
from .attacks import ModelOutputs, References, attack_class, create_attack, list_attacks
from .features import Parts
from .metrics import retrieval, tow_maps
from .model import FaceModel
from .probes import deep_forgetting, format_probes
from .references import DEFAULT_K, ReferencePool

if TYPE_CHECKING:
    from .methods import UnlearnRequest
    from .train import TrainConfig

SETS = {"forget": "forget_train", "forget_heldout": "forget_test", "members": "retain_train",
        "test": "retain_test", "unseen": "distractors"}
"""Audit set -> workspace part."""

REPORTED_ATTACKS = tuple(list_attacks())
"""Every registered attack, in report order; each has a block in the report holding ``unlearned``
and ``retrain`` results."""


class _Seeded(Protocol):
    @property
    def seed(self) -> int: ...

    @property
    def train(self) -> TrainConfig: ...


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

    def reference_pool(self, k: int) -> ReferencePool:
        """K reference models, the forget identities IN for half of them (``references``)."""

    def request(self, one_shot: bool = False, seed: int = 0) -> UnlearnRequest:
        """Only ``.support`` is read (the one-shot support sample, for the hardness study)."""

    def identity_names(self, classes: list[int]) -> list[str]: ...

    def evaluate(self, model: FaceModel) -> dict[str, dict[str, float]]:
        """``metrics.protocol_metrics`` of ``model`` (ToW reads its training-photo retrieval)."""


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


def membership_attacks(outs: Mapping[str, ModelOutputs], reference: References | None, seed: int,
                       names: list[str] | None = None) -> tuple[dict[str, Any], list[str], dict[str, str]]:
    """Run every registered attack (or ``names``) on the ``unlearned`` and ``retrain`` outputs.

    Returns the report blocks (attack -> ``{"unlearned", "retrain", ["beyond_retrain"], "streisand"}``),
    the Streisand reasons prefixed with the attack's name, and the attacks skipped with why (an
    attack that ``needs_reference`` when ``reference``, the reference models' outputs, is None).
    """
    blocks: dict[str, Any] = {}
    flags: list[str] = []
    skipped: dict[str, str] = {}
    for name in list_attacks() if names is None else names:
        attack = create_attack(name)
        if attack.needs_reference and reference is None:
            skipped[name] = "needs reference models and none were given"
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


def privacy_audit(ws: AuditWorkspace, model: FaceModel, unlearned_references: list[FaceModel | None] | None = None,
                  k: int = DEFAULT_K, seed: int | None = None) -> dict[str, Any]:
    """Membership-inference attacks, ToW, unlearn score, distributions, hardness, the deep-forgetting
    probes and the Streisand check for ``model``, each next to the retrain model's (``ws.retrain_model()``).

    The attacks that need references (RMIA, U-LiRA) read ``ws.reference_pool(k)``;
    ``unlearned_references[i]`` is reference model i after the audited unlearning (None where it
    never held the forget identities). Without them the references that held the forget identities
    stand as they were trained: the right comparison for a model that was not unlearned (the original).
    """
    seed = ws.config.seed if seed is None else seed
    retrain = ws.retrain_model()
    outs = {"unlearned": model_outputs(model, ws.parts), "retrain": model_outputs(retrain, ws.parts)}
    pool = ws.reference_pool(k)
    unlearned = unlearned_references or [None] * pool.k
    references = References([model_outputs(m, ws.parts) for m in pool.models], pool.member,
                            [None if u is None else model_outputs(u, ws.parts) for u in unlearned])
    report: dict[str, Any] = {
        "references": {"k": pool.k, "unlearned": unlearned_references is not None,
                       "trained_on_forget": [bool(row[ws.forget_classes[0]]) for row in pool.member]},
        "n_images": {s: len(outs["unlearned"].labels[s]) for s in SETS},
        "thresholds": {"streisand_auc": attacks.STREISAND_AUC, "streisand_beyond": attacks.STREISAND_BEYOND},
    }
    blocks, flags, _ = membership_attacks(outs, references, seed)  # references are always given: nothing is skipped
    report.update(blocks)

    original = outs["unlearned"] if model is ws.original else model_outputs(ws.original, ws.parts)
    report["deep_forgetting"] = {who: deep_forgetting(m, outs[who], original, ws.parts, seed)
                                 for who, m in (("unlearned", model), ("retrain", retrain))}
    maps = {who: tow_maps(ws.evaluate(m)) for who, m in (("unlearned", model), ("retrain", retrain), ("original", ws.original))}
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
    ("auc_forget", "AUC forget", "How well the attack tells forgotten training photos from its non-members (held-out photos of the same "
                                 "people; U-LiRA: the same photos under models that never saw them), with a 95% bootstrap interval: "
                                 "0.5 = not at all, as under retrain; well below 0.5 = Streisand."),
    ("tpr1_forget", "TPR@1%FPR", "Share of forgotten photos the attack spots while wrongly accusing only 1% of its non-members "
                                 "(95% interval): a confident hit rate, near 0.01 under retrain."),
    ("tpr01_forget", "TPR@0.1%FPR", "The same at 0.1%; 'n/r' where there are fewer than 1,000 non-members, too few to resolve it."),
    ("n_forget", "n mem/non", "How many member and non-member photos the forgetting figures rest on."),
    ("forget_member_rate", "forget->member", "Share of forgotten photos the attack still calls members of the training set."),
    ("auc_members", "AUC mem/non", "How well the attack tells training photos from held-out ones on retained people (95% interval): "
                                   "its strength (0.5 = blind), not a forgetting measure."),
    ("tpr01_members", "mem TPR@0.1%", "Its strength at a 0.1% false-positive rate on retained people ('n/r': too few non-members)."),
)
"""Per-model privacy figures: (key, short label, one plain sentence)."""


@dataclass(frozen=True)
class Cell:
    """One privacy figure: a value with its 95 % interval, a count, or a TPR the sample cannot
    resolve (``min_fpr``: the smallest FPR it can)."""

    value: float | None
    ci: list[float] | None = None
    min_fpr: float | None = None
    count: str | None = None

    def text(self) -> str:
        if self.count is not None:
            return self.count
        if self.value is None:
            return "-" if self.min_fpr is None else f"n/r (>= {self.min_fpr:.1%})"
        return f"{self.value:.3f}" + ("" if self.ci is None else f" [{self.ci[0]:.2f}, {self.ci[1]:.2f}]")


def _cells(b: dict[str, Any]) -> dict[str, Cell]:
    """An attack block's ``PRIVACY_COLUMNS`` figures."""
    def tpr(game: dict[str, Any] | None, level: str) -> Cell:
        if game is None:
            return Cell(None)
        return Cell(game["tpr_at_fpr"][level], game["tpr_ci"][level], None if game["tpr_at_fpr"][level] is not None else game["min_fpr"])

    f, m = b["forget_vs_heldout"], b.get("members_vs_nonmembers")
    return {"auc_forget": Cell(f["auc"], f["auc_ci"]), "tpr1_forget": tpr(f, "0.01"), "tpr01_forget": tpr(f, "0.001"),
            "n_forget": Cell(None, count=f"{f['n_members']}/{f['n_nonmembers']}"),
            "forget_member_rate": Cell(b.get("forget_member_rate")),
            "auc_members": Cell(None) if m is None else Cell(m["auc"], m["auc_ci"]), "tpr01_members": tpr(m, "0.001")}


def privacy_rows(privacy: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per attack (``REPORTED_ATTACKS``): its ``PRIVACY_COLUMNS`` figures (``Cell``) for the
    unlearned model and the retrain reference, the share of forget photos beyond retrain (None
    where the attack reports none) and its Streisand reasons. Attacks absent from the report
    (skipped) have no row."""
    return [{"attack": a, "unlearned": _cells(privacy[a]["unlearned"]), "retrain": _cells(privacy[a]["retrain"]),
             "beyond_retrain": privacy[a].get("beyond_retrain"), "streisand": privacy[a]["streisand"]}
            for a in REPORTED_ATTACKS if a in privacy]


def format_privacy_table(privacy: dict[str, Any]) -> str:
    """A text table, one line per attack and model (unlearned, then retrain), then the
    deep-forgetting probes, ToW and the Streisand verdict."""
    widths = [max(len(label), 22 if key.startswith(("auc", "tpr")) else 9) for key, label, _ in PRIVACY_COLUMNS]
    lines = [f"{'privacy':<19}" + "  ".join(f"{label:>{w}}" for (_, label, _), w in zip(PRIVACY_COLUMNS, widths))
             + f"  {'beyond retrain':>14}  Streisand"]

    def pair(a: float | None, b: float | None) -> str:
        return "-" if a is None or b is None else f"{a:.3f} | {b:.3f}"

    for row in privacy_rows(privacy):
        for who in ("unlearned", "retrain"):
            cells = "  ".join(f"{row[who][key].text():>{w}}" for (key, _, _), w in zip(PRIVACY_COLUMNS, widths))
            tail = "" if who == "retrain" else (f"  {'-' if row['beyond_retrain'] is None else format(row['beyond_retrain'], '.3f'):>14}"
                                                f"  {'yes' if row['streisand'] else 'no'}")
            lines.append(f"{row['attack'] + ' ' + who:<19}{cells}{tail}")
    refs = privacy["references"]
    unlearned = " (those that held the forget identities unlearned them with the audited method)" if refs["unlearned"] else ""
    lines.append(f"references: {refs['k']} models, half of them trained on the forget identities{unlearned}; "
                 "intervals: 95% bootstrap; n/r: TPR at an FPR the non-members cannot resolve")
    if "deep_forgetting" in privacy:
        lines += format_probes(privacy["deep_forgetting"])
    tow, us = privacy["tug_of_war"], privacy["unlearn_score"]
    lines.append(f"tug of war (S2 Eq. 7): unlearned {tow['unlearned']:.3f}, original {tow['original']:.3f}, retrain 1.000;"
                 f" unlearn score |acc test - acc forget|: {pair(us['unlearned']['score'], us['retrain']['score'])}")
    s = privacy["streisand"]
    lines.append("Streisand flag: " + ("; ".join(s["reasons"]) if s["flag"] else "none"))
    return "\n".join(lines)
