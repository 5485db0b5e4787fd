"""Hyper-parameters chosen on a validation split of the training identities, never on test photos.

Where a paper gives a grid (S2 App. A tunes MetaUnlearn's learning rates; the baselines' papers
state one value, sometimes a range), ``tune`` runs every grid point on a *simulated* request: it
forgets ``n`` of the workspace's retained training identities (as many as the real request) from
the original model, which trained on them. The real forget identities take no part, and the score
reads training photos only:

    score = (1 - acc_f) * min(1, acc_r / acc_r0) * min(1, mAP_r / mAP_r0)

``acc``: the identity head's top-1 accuracy on the simulated forget identities' photos (``acc_f``)
and on the other retained identities' photos (``acc_r``); ``mAP_r``: retrieval mAP of the latter
against all validation photos; ``0``: the original model. This is S2 Eq. 7's ToW in the
classification sense with the retrain reference's values known without training it (a model
retrained without an identity cannot classify it, acc 0, and keeps the others, ~acc_r0 and
mAP_r0), which is what these baselines' papers measure. Ties (to 3 decimals) go to the earlier grid
point: grids list the paper's own value first. A method reads what the real request would give it
(MetaUnlearn's unseen set, ``request.test``, included); only the score is restricted to training photos.
"""
from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import InvalidParameter
from .features import FaceData
from .methods import UnlearnRequest, create_method, method_class
from .methods.base import head_accuracy
from .metrics import retrieval
from .model import FaceModel
from .pipeline import Workspace, support_sample
from .types import Progress


@dataclass
class ValidationSplit:
    """A simulated request on retained training identities and the photos its score reads."""

    request: UnlearnRequest
    forget: FaceData
    """Training photos of the simulated forget identities."""
    retain: FaceData
    """Training photos of the other retained identities."""


def validation_split(ws: Workspace, one_shot: bool = False, seed: int = 0) -> ValidationSplit:
    """Forget ``len(ws.forget_classes)`` random retained identities (all their training photos, or
    one support photo each when ``one_shot``); the other retained identities are the retain set."""
    data = ws.parts.retain_train
    labels = data.labels.cpu().numpy()
    classes = np.unique(labels)
    n = len(ws.forget_classes)
    if n >= len(classes):
        raise InvalidParameter(f"tuning simulates forgetting {n} of the {len(classes)} retained identities: it needs more retained ones than that")
    simulated = np.sort(np.random.default_rng([seed, 11]).choice(classes, n, replace=False))
    in_forget = np.isin(labels, simulated)
    forget, retain = data.subset(np.flatnonzero(in_forget)), data.subset(np.flatnonzero(~in_forget))
    request = dataclasses.replace(ws.request(seed=seed), forget_classes=[int(c) for c in simulated], forget=None if one_shot else forget,
                                  support=support_sample(forget, seed), retain=retain, forget_test=None, reference=None)
    return ValidationSplit(request, forget, retain)


def validation_scores(ws: Workspace, model: FaceModel, split: ValidationSplit) -> dict[str, float]:
    """Head accuracy and retrieval mAP of the simulated forget and retain identities' training photos."""
    emb = {"forget": ws.embed_data(model, split.forget), "retain": ws.embed_data(model, split.retain)}
    parts = (split.forget, split.retain)
    gallery_emb = np.concatenate([emb["forget"], emb["retain"]])
    gallery_labels = np.concatenate([d.labels.cpu().numpy() for d in parts])
    gallery_ids = np.concatenate([d.image_ids for d in parts])
    out = {}
    for part, data in zip(("forget", "retain"), parts):
        out[f"{part}_acc"] = head_accuracy(model, data)
        out[f"{part}_mAP"] = retrieval(emb[part], data.labels.cpu().numpy(), gallery_emb, gallery_labels, data.image_ids, gallery_ids)["mAP"]
    return out


def validation_tow(scores: Mapping[str, float], original: Mapping[str, float]) -> float:
    """The module docstring's score: forgetting in the classification sense times what is kept."""
    kept = min(1.0, scores["retain_acc"] / max(original["retain_acc"], 1e-12)) * min(1.0, scores["retain_mAP"] / max(original["retain_mAP"], 1e-12))
    return (1.0 - scores["forget_acc"]) * kept


def tune(ws: Workspace, method: str, grid: Mapping[str, Sequence[Any]] | None = None, one_shot: bool = False, seed: int = 0,
         progress: Progress | None = None) -> dict[str, Any]:
    """Every point of ``grid`` (default: the method's ``paper_grid``) on ``validation_split``; the
    rows, the original model's scores and the chosen parameters (highest ``validation_tow``)."""
    progress = progress or (lambda f, m: None)
    grid = dict(grid if grid is not None else method_class(method).paper_grid)
    if not grid:
        raise InvalidParameter(f"{method} declares no paper grid; give one (e.g. --grid lr=1e-4,1e-3)")
    points = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    for params in points:
        create_method(method, **params)  # every point valid before any runs
    split = validation_split(ws, one_shot, seed)
    original = validation_scores(ws, ws.original, split)
    rows = []
    for i, params in enumerate(points):
        progress(i / len(points), f"tune {method}: {params}")
        unlearner = create_method(method, **params)
        scores = validation_scores(ws, unlearner.unlearn(ws.original, split.request, seed=seed), split)
        rows.append({"params": params, **scores, "score": validation_tow(scores, original), "seconds": unlearner.seconds_})
    best = max(range(len(rows)), key=lambda i: (round(rows[i]["score"], 3), -i))
    defaults = create_method(method).get_params()
    return {"method": method, "setting": "one_shot" if one_shot else "standard", "seed": seed, "grid": grid, "original": original,
            "rows": rows, "best": rows[best]["params"], "defaults": {k: defaults[k] for k in grid},
            "simulated_forget": ws.identity_names(split.request.forget_classes)}


def render_tuning(results: list[dict[str, Any]], command: str) -> str:
    """Markdown: one table per tuned method, the chosen row in bold, whether the defaults are it."""
    lines = ["# Hyper-parameters tuned on a validation split of the training identities", "",
             f"Written by `{command}`. Each method forgets {len(results[0]['simulated_forget']) if results else 0} *retained* training "
             "identities from the original model (the real forget identities and all test photos take no part); score = "
             "(1 − acc_f) · min(1, acc_r/acc_r0) · min(1, mAP_r/mAP_r0) on training photos (S2 Eq. 7's ToW in the classification "
             "sense, `unlearn_core/tuning.py`). acc: the identity head's top-1 accuracy; mAP: retrieval among the validation photos; "
             "0: the original model. The grid lists the paper's value first; ties go to it. **Bold**: chosen.", ""]
    for result in results:
        names = list(result["grid"])
        chosen = result["best"] == result["defaults"]
        lines += [f"## {result['method']} ({result['setting'].replace('_', '-')} setting, seed {result['seed']})", "",
                  f"Original model: forget acc {result['original']['forget_acc']:.3f}, retain acc {result['original']['retain_acc']:.3f}, "
                  f"retain mAP {result['original']['retain_mAP']:.3f}. The shipped defaults are "
                  + ("the chosen point." if chosen else f"NOT the chosen point: {result['defaults']}."), "",
                  "| " + " | ".join(names) + " | forget acc ↓ | forget mAP | retain acc ↑ | retain mAP ↑ | score ↑ | s |",
                  "|" + " --- |" * (len(names) + 6)]
        for row in result["rows"]:
            cells = [str(row["params"][n]) for n in names]
            cells += [f"{row[k]:.3f}" for k in ("forget_acc", "forget_mAP", "retain_acc", "retain_mAP", "score")]
            cells.append(f"{row['seconds']:.1f}")
            if row["params"] == result["best"]:
                cells = [f"**{c}**" for c in cells]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)
