"""Deep-forgetting probes: is the forgetting deep or cosmetic? Each is run on the unlearned model
and on the retrain reference (the privacy audit puts them side by side).

- ``relearning``: an attacker fine-tunes the model on a few photos of each forgotten person (the
  original CosFace loss and recipe: SGD lr 1e-4, momentum 0.9, gradient norm clipped at 5; at S0's
  lr 1e-3 this network collapses within 5 steps, forget mAP 0.31 -> 0.06) and counts the steps
  until their held-out photos are retrieved at forget mAP >= 0.5 again (cf. the relearning attacks
  of Lynch et al. 2024 and Hu et al. 2024: knowledge only hidden comes back within a few steps).
- ``linear_probe``: a logistic regression on the model's embeddings of the forget identities'
  training photos, tested on their held-out photos: can a linear read-out still name them?
- ``look_alikes``: the retrieval mAP change (model minus original) of the k retained identities
  nearest to each forgotten one (cosine of identity centroids under the original model), beside
  the change of the other retained identities: the collateral cost of forgetting a face.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from .attacks import ModelOutputs
from .features import FaceData, Parts
from .metrics import centroids, retrieval, unit_rows
from .model import FaceModel, cosface_loss
from .sampling import flip_mask

RELEARN_TARGET = 0.5
"""Forget mAP the relearning attacker wants back."""
RELEARN_PHOTOS = (1, 4)
"""Photos per forgotten person the attacker fine-tunes on."""
RELEARN_STEPS = 60
"""Step cap of the relearning attack (evaluated every ``RELEARN_EVERY`` steps)."""
RELEARN_EVERY = 5
RELEARN_LR = 1e-4
RELEARN_CLIP = 5.0
LOOK_ALIKES = 3


@torch.no_grad()
def _embed(model: FaceModel, data: FaceData) -> np.ndarray:
    return torch.cat([model.embed(data.inputs[i : i + 512]) for i in range(0, len(data), 512)]).cpu().numpy()


def forget_map(model: FaceModel, parts: Parts) -> float:
    """Forget mAP as ``Workspace.evaluate`` has it: forget held-out photos as queries against every held-out photo."""
    f, r = parts.forget_test, parts.retain_test
    gallery = np.concatenate([_embed(model, f), _embed(model, r)])
    return retrieval(_embed(model, f), f.labels.cpu().numpy(), gallery, np.concatenate([f.labels.cpu().numpy(), r.labels.cpu().numpy()]),
                     f.image_ids, np.concatenate([f.image_ids, r.image_ids]))["mAP"]


def relearning(model: FaceModel, parts: Parts, photos: int, seed: int = 0, steps: int = RELEARN_STEPS,
               every: int = RELEARN_EVERY, lr: float = RELEARN_LR, target: float = RELEARN_TARGET) -> dict[str, Any]:
    """Fine-tune a copy of ``model`` on ``photos`` training photos per forget identity (all of them in
    each step, random flips) until forget mAP >= ``target``: ``{"photos", "steps" (None: not within
    the cap), "curve": [[step, mAP], ...]}``. ``model`` is left unchanged."""
    forget = parts.forget_train
    labels = forget.labels.cpu().numpy()
    rng = np.random.default_rng(seed)
    chosen = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:photos] for c in np.unique(labels)])
    data = forget.subset(chosen)
    curve = [[0, forget_map(model, parts)]]
    if curve[-1][1] >= target:
        return {"photos": photos, "steps": 0, "curve": curve}
    attacker = model.clone().train()
    optimiser = torch.optim.SGD(attacker.trainable_parameters(), lr=lr, momentum=0.9)
    generator = torch.Generator().manual_seed(seed)
    idx = torch.arange(len(data), device=data.inputs.device)
    for step in range(1, steps + 1):
        x, y = data.batch(idx, flip_mask(len(idx), generator).to(idx.device))
        loss = cosface_loss(attacker, x, y)
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(attacker.trainable_parameters(), RELEARN_CLIP)
        optimiser.step()
        if step % every == 0:
            attacker.eval()
            curve.append([step, forget_map(attacker, parts)])
            attacker.train()
            if curve[-1][1] >= target:
                return {"photos": photos, "steps": step, "curve": curve}
    return {"photos": photos, "steps": None, "curve": curve}


def linear_probe(out: ModelOutputs, seed: int = 0) -> dict[str, float]:
    """Accuracy of a logistic regression that names the forget identity of each held-out photo from
    its embedding, trained on their training photos' embeddings; ``chance`` = 1 / identities."""
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    probe.fit(out.embeddings["forget"], out.labels["forget"])
    accuracy = float(np.mean(probe.predict(out.embeddings["forget_heldout"]) == out.labels["forget_heldout"]))
    return {"accuracy": accuracy, "chance": 1.0 / len(np.unique(out.labels["forget"]))}


def look_alike_classes(original: ModelOutputs, k: int = LOOK_ALIKES) -> np.ndarray:
    """The retained identities among the ``k`` nearest (centroid cosine, original model) to any forget identity."""
    forget_classes = np.unique(original.labels["forget"])
    retained = np.unique(original.labels["members"])
    n = int(max(forget_classes.max(), retained.max())) + 1
    f = unit_rows(centroids(original.embeddings["forget"], original.labels["forget"], n)[forget_classes])
    r = unit_rows(centroids(original.embeddings["members"], original.labels["members"], n)[retained])
    nearest = np.argsort(-(f @ r.T), axis=1)[:, :k]
    return np.unique(retained[nearest])


def _class_maps(out: ModelOutputs, parts: Parts, classes: np.ndarray) -> float:
    """mAP of the held-out photos of ``classes`` against every held-out photo."""
    e = np.concatenate([out.embeddings["forget_heldout"], out.embeddings["test"]])
    lab = np.concatenate([out.labels["forget_heldout"], out.labels["test"]])
    ids = np.concatenate([parts.forget_test.image_ids, parts.retain_test.image_ids])
    q = np.isin(out.labels["test"], classes)
    return retrieval(out.embeddings["test"][q], out.labels["test"][q], e, lab, parts.retain_test.image_ids[q], ids)["mAP"]


def look_alikes(out: ModelOutputs, original: ModelOutputs, parts: Parts, k: int = LOOK_ALIKES) -> dict[str, Any]:
    """mAP change (this model minus the original) of the look-alike retained identities and of the others."""
    near = look_alike_classes(original, k)
    others = np.setdiff1d(np.unique(original.labels["test"]), near)
    return {"k": k, "n_look_alikes": len(near),
            "look_alike_map_change": _class_maps(out, parts, near) - _class_maps(original, parts, near),
            "other_map_change": _class_maps(out, parts, others) - _class_maps(original, parts, others)}


def deep_forgetting(model: FaceModel, out: ModelOutputs, original: ModelOutputs, parts: Parts, seed: int = 0) -> dict[str, Any]:
    """The three probes for one model."""
    return {"relearning": [relearning(model, parts, n, seed) for n in RELEARN_PHOTOS],
            "linear_probe": linear_probe(out, seed), "look_alikes": look_alikes(out, original, parts)}


PROBE_HELP = {
    "relearning": "Steps of fine-tuning on a few photos of each forgotten person until their other photos are found again "
                  f"(forget mAP >= {RELEARN_TARGET}); few steps = the forgetting was only on the surface.",
    "linear_probe": "Accuracy of a linear read-out trained to name the forgotten people from the model's embeddings; "
                    "near chance = their identity is gone from the embedding, near the retrain reference's = as if never trained.",
    "look_alikes": f"Retrieval mAP change of the {LOOK_ALIKES} retained people most like each forgotten one, against the change "
                   "for everyone else: a large drop = forgetting a face hurt similar faces.",
}
"""Probe -> one plain sentence for the reports."""


def probe_lines(probes: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
    """Per probe: (name, "unlearned ... | retrain ..." text)."""
    def relearn(p: dict[str, Any]) -> str:
        return ", ".join(f"{r['photos']} photo(s): {'> ' + str(RELEARN_STEPS) if r['steps'] is None else r['steps']} steps" for r in p["relearning"])

    def probe(p: dict[str, Any]) -> str:
        return f"{p['linear_probe']['accuracy']:.3f} (chance {p['linear_probe']['chance']:.3f})"

    def alike(p: dict[str, Any]) -> str:
        a = p["look_alikes"]
        return f"{a['look_alike_map_change']:+.3f} on {a['n_look_alikes']} look-alikes, {a['other_map_change']:+.3f} on the others"

    return [(name, f"unlearned {fn(probes['unlearned'])} | retrain {fn(probes['retrain'])}")
            for name, fn in (("relearning", relearn), ("linear_probe", probe), ("look_alikes", alike))]


def format_probes(probes: dict[str, dict[str, Any]]) -> list[str]:
    """The probes as text lines for the CLI."""
    return [f"deep forgetting, {name}: {text}" for name, text in probe_lines(probes)]
