"""S3's own task on faces: a multi-label attribute model, one attribute forgotten, the others kept.

* Data: a workspace's training photos (forget_train + retain_train) and test photos, labelled with
  the PSEUDO-labels of ``table.py`` (only the attributes passing its consistency check).
* Model (S3 §3, §7.1): the workspace's original model body (frozen trunk + trainable tail, its
  identity head dropped) and a linear head with one sigmoid output per attribute, trained with
  binary cross-entropy, SGD momentum 0.9, weight decay 5e-4, horizontal flips (S3's recipe; the
  head at S3's lr 0.01, the tail at the project's measured 1e-4, see ``train.TrainConfig``).
* Forgetting (S3 Table 2 reading): the attribute is forgotten ENTIRELY (all its labels, positive and
  negative, on every training photo), the other attributes are kept. The forget loss is the BCE of
  that attribute's output, the retain loss the BCE of the others.
* Methods: the registered ``weight_filtering`` / ``weight_pruning`` (S3 Algorithms 1-2) with their
  own parameters; their weight selection (``select_weights``) runs on the two BCE importances, then S3's
  Algorithm 3 (constrained fine-tuning on the retain loss). Baselines (``baselines.py``): ``finetune``
  (all layers), ``cf_k`` (S3's CF-k), ``random_labeling`` (SalUN's loss), ``unsir`` (S3's UNSIR),
  ``boundary_expanding`` (Chen et al. 2023) and ``gradient_ascent``. ``retrain`` is the reference:
  the same recipe from the same start without the forgotten attribute's loss.
* Metrics: accuracy and balanced accuracy (chance = 0.5 for any constant guess) per attribute on the
  test photos; the attribute inference attack (AIA: a logistic-regression probe trained on the
  model's embeddings of training photos, tested on test photos' embeddings, balanced accuracy);
  the mean binary entropy of the forgotten output; a loss-threshold membership inference attack on the
  forgotten output (training vs test photos, ``loss_mia``); runtimes and the speed-up over retraining.
"""
from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from torch import nn

from ..attacks import roc_summary
from ..errors import InvalidParameter
from ..features import FaceData
from ..methods.base import create_method
from ..methods.importance import parameter_importance
from ..model import FaceModel
from ..pipeline import Workspace, cache_dir, concat_face_data
from .baselines import BASELINES, create_baseline
from .table import ATTRIBUTES, AttributeTable, attribute_table

SELECTION_METHODS = ("weight_filtering", "weight_pruning")
"""S3's own methods (Algorithms 1-3), the registered identity-task methods reused on the BCE losses."""
METHODS = (*SELECTION_METHODS, *BASELINES)
DEFAULT_METHODS = SELECTION_METHODS
"""What ``audit_attributes`` runs unless told otherwise (the CLI's default; ``--method`` picks others)."""


def method_params(methods: list[str] | tuple[str, ...], params: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """``{method: {...}}`` for the chosen ``methods``, each checked (``check_params``); a parameter object
    for a method not chosen, or one that is not ``{method: {...}}``, is an ``InvalidParameter``."""
    if not methods:
        raise InvalidParameter(f"choose at least one attribute-unlearning method: {', '.join(METHODS)}")
    params = params or {}
    if not all(isinstance(v, dict) for v in params.values()) or not set(params) <= set(METHODS):
        raise InvalidParameter('attribute-task parameters must be {method: {...}} with methods among '
                               f'{list(METHODS)}, e.g. {{"gradient_ascent": {{"iterations": 20}}}}')
    unchosen = sorted(set(params) - set(methods))
    if unchosen:
        raise InvalidParameter(f"parameters are given for {', '.join(unchosen)}, which is not among the chosen methods")
    for method in methods:
        check_params(method, params.get(method))
    return {m: dict(params.get(m, {})) for m in methods}


def check_params(method: str, params: dict[str, Any] | None = None) -> None:
    """Raise ``InvalidParameter`` for an unknown method or an unknown / out-of-range parameter, before any work."""
    if method not in METHODS:
        raise InvalidParameter(f"unknown attribute-unlearning method {method!r}; choose from {list(METHODS)}")
    if method in BASELINES:
        create_baseline(method, **(params or {}))
    else:
        create_method(method, **(params or {}))


@dataclass
class AttributeData:
    """Training and test photos with their (N, K) pseudo-label matrices, K = ``attributes``."""

    train: FaceData
    test: FaceData
    attributes: list[str]
    table: AttributeTable

    def index(self, attribute: str) -> int:
        if attribute not in self.attributes:
            dropped = [a for a in ATTRIBUTES if a not in self.attributes]
            raise InvalidParameter(f"unknown or unusable attribute {attribute!r}: usable {self.attributes}"
                                   + (f" ({dropped} failed the pseudo-label consistency check)" if dropped else ""))
        return self.attributes.index(attribute)


def attribute_data(ws: Workspace) -> AttributeData:
    """Pseudo-label the workspace's chips (cached) and pair them with its encoded inputs."""
    if ws.backbone.inputs.size != 150:
        raise InvalidParameter(f"the attribute task needs the dlib_resnet backbone's 150x150 chips, not {ws.config.backbone}")
    ids = {int(i): int(ws.gallery.labels[i]) for i in ws.images.chips}
    table = attribute_table(ws.images.chips, ids, cache_dir())
    kept = table.kept
    if len(kept) < 2:
        raise InvalidParameter(f"only {kept} of the pseudo-labelled attributes passed the consistency check; the task needs two")

    def labelled(parts: list[str]) -> FaceData:
        data = concat_face_data([getattr(ws.parts, p) for p in parts])
        return replace(data, labels=torch.from_numpy(table.columns(data.image_ids, kept)))

    return AttributeData(labelled(["forget_train", "retain_train"]), labelled(["forget_test", "retain_test"]), kept, table)


EMBEDDING_SCALE = 16.0
"""The head reads ``EMBEDDING_SCALE`` x the unit embedding: with unit vectors and S3's lr 0.01 the
logits barely left 0 in the training budget (every attribute at the constant guess, measured)."""


class AttributeModel(nn.Module):
    """A face model body and a linear multi-label head on its scaled unit-length embedding."""

    def __init__(self, body: FaceModel, head: nn.Linear):
        super().__init__()
        self.body, self.head = body, head

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.head(EMBEDDING_SCALE * self.body.embed(inputs))

    def embed(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.body.embed(inputs)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return self.body.trainable_parameters() + list(self.head.parameters())

    def named_trainable_parameters(self) -> list[tuple[str, nn.Parameter]]:
        return [(f"body.{n}", p) for n, p in self.body.named_trainable_parameters()] + [(f"head.{n}", p) for n, p in self.head.named_parameters()]

    def clone(self) -> AttributeModel:
        """A copy of the trainable part; the frozen trunk is shared."""
        return AttributeModel(self.body.clone(), copy.deepcopy(self.head))


def bce(model: AttributeModel, x: torch.Tensor, y: torch.Tensor, columns: list[int]) -> torch.Tensor:
    """Binary cross-entropy of the outputs in ``columns`` (S3's multi-label loss)."""
    return F.binary_cross_entropy_with_logits(model(x)[:, columns], y[:, columns].to(x.dtype))


@dataclass
class AttributeTrainConfig:
    epochs: int = 15
    head_lr: float = 0.01
    body_lr: float = 1e-4
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 64


def fit(model: AttributeModel, data: FaceData, columns: list[int], steps: int, optimiser: torch.optim.Optimizer,
        generator: torch.Generator, batch_size: int, before_step=None, after_step=None) -> None:
    """``steps`` SGD steps of the BCE on ``columns`` over random flipped/unflipped mini-batches."""
    model.train()
    for _ in range(steps):
        idx = torch.randint(len(data), (min(batch_size, len(data)),), generator=generator)
        x, y = data.batch(idx, torch.rand(len(idx), generator=generator) < 0.5)
        if before_step:
            before_step(model)
        optimiser.zero_grad()
        bce(model, x, y, columns).backward()
        optimiser.step()
        if after_step:
            after_step(model)
    model.eval()


def train_attribute_model(ws: Workspace, data: AttributeData, columns: list[int], seed: int = 0,
                          config: AttributeTrainConfig | None = None) -> AttributeModel:
    """The multi-label model trained on the attributes in ``columns`` from the workspace's original body."""
    config = config or AttributeTrainConfig()
    torch.manual_seed(seed)
    body = ws.original.clone()
    body.head = None
    model = AttributeModel(body, nn.Linear(ws.backbone.embed_dim, len(data.attributes)))
    optimiser = torch.optim.SGD([{"params": body.trainable_parameters(), "lr": config.body_lr},
                                 {"params": model.head.parameters(), "lr": config.head_lr}],
                                momentum=config.momentum, weight_decay=config.weight_decay)
    steps = config.epochs * max(1, len(data.train) // config.batch_size)
    fit(model, data.train, columns, steps, optimiser, torch.Generator().manual_seed(seed), config.batch_size)
    return model


def unlearn_attribute(model: AttributeModel, data: AttributeData, attribute: str, method: str,
                      params: dict[str, Any] | None = None, seed: int = 0) -> tuple[AttributeModel, int]:
    """Forget ``attribute`` with ``method``: ``(unlearned copy, n_modified)``; ``n_modified`` counts the
    weights WF/WP's selection modified (their fine-tuning moves others too), for a baseline every weight that moved.

    Weight Filtering / Pruning: S3 Algorithm 1 or 2 (weight selection on the forget / retain BCE
    importances), then Algorithm 3. Baselines: ``baselines.py``."""
    check_params(method, params)
    j = data.index(attribute)
    if method in BASELINES:
        twin = create_baseline(method, **(params or {})).run(model, data, j, seed)
        return twin, changed_weights(model, twin)
    algo = create_method(method, **(params or {}))
    others = [k for k in range(len(data.attributes)) if k != j]
    twin = model.clone()
    generator = torch.Generator().manual_seed(seed)
    forget = parameter_importance(twin, data.train, algo.importance_batch, loss_fn=partial(bce, columns=[j]))
    retain = parameter_importance(twin, data.train, algo.importance_batch, algo.retain_images, generator, loss_fn=partial(bce, columns=others))
    algo.select_weights(dict(twin.named_trainable_parameters()), forget, retain, generator)
    optimiser = torch.optim.SGD(twin.trainable_parameters(), lr=algo.lr, momentum=algo.momentum)
    fit(twin, data.train, others, algo.iterations, optimiser, generator, algo.importance_batch * 4, algo.snapshot_slow, algo.after_step)
    return twin, algo.n_modified_


def changed_weights(before: AttributeModel, after: AttributeModel) -> int:
    """How many trainable weights differ between two models."""
    old = dict(before.named_trainable_parameters())
    return sum(int((p.detach() != old[n].detach()).sum()) for n, p in after.named_trainable_parameters())


@torch.no_grad()
def outputs(model: AttributeModel, data: FaceData) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities (N, K), unit embeddings (N, D)) of ``data``."""
    model.eval()
    emb = torch.cat([model.embed(data.inputs[i : i + 256]) for i in range(0, len(data), 256)])
    return torch.sigmoid(model.head(EMBEDDING_SCALE * emb)).numpy(), emb.numpy()


def balanced_accuracy(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean of the true-positive and true-negative rates (0.5 for any constant guess)."""
    pos, neg = truth == 1, truth == 0
    rates = [float((pred[m] == truth[m]).mean()) for m in (pos, neg) if m.any()]
    return float(np.mean(rates))


def attribute_inference(train_emb: np.ndarray, train_y: np.ndarray, test_emb: np.ndarray, test_y: np.ndarray, seed: int = 0) -> float:
    """AIA: balanced accuracy of a logistic-regression probe predicting the attribute from embeddings."""
    if len(np.unique(train_y)) < 2:
        return 0.5
    probe = LogisticRegression(max_iter=2000, class_weight="balanced", random_state=seed).fit(train_emb, train_y)
    return balanced_accuracy(probe.predict(test_emb), test_y)


def binary_entropy(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return -(p * np.log2(p) + (1 - p) * np.log2(1 - p))


def evaluate(model: AttributeModel, data: AttributeData, attribute: str, seed: int = 0) -> dict[str, Any]:
    """Per attribute accuracy / balanced accuracy on the test photos; AIA, entropy and loss MIA of the forgotten one."""
    j = data.index(attribute)
    p_test, e_test = outputs(model, data.test)
    p_train, e_train = outputs(model, data.train)
    truth = data.test.labels.numpy()
    pred = (p_test > 0.5).astype(np.float32)
    per = {a: {"accuracy": float((pred[:, k] == truth[:, k]).mean()), "balanced_accuracy": balanced_accuracy(pred[:, k], truth[:, k])}
           for k, a in enumerate(data.attributes)}
    entropy = binary_entropy(p_test[:, j])
    return {"attributes": per, "aia": attribute_inference(e_train, data.train.labels[:, j].numpy(), e_test, truth[:, j], seed),
            "entropy_mean": float(entropy.mean()), "entropy_hist": np.histogram(entropy, bins=10, range=(0, 1))[0].tolist(),
            "mia": loss_mia(p_train[:, j], data.train.labels[:, j].numpy(), p_test[:, j], truth[:, j])}


def per_sample_bce(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def loss_mia(p_train: np.ndarray, y_train: np.ndarray, p_test: np.ndarray, y_test: np.ndarray) -> dict[str, Any]:
    """Membership inference on one attribute (S3 §7.3 reports MIA): score = minus the per-photo BCE of
    that output (a low loss looks like a training photo), members = training photos, non-members =
    test photos; ``attacks.roc_summary``'s AUC (0.5: indistinguishable) with its bootstrap interval
    and TPR at low FPR (None where the test photos are too few to resolve it)."""
    summary = roc_summary(-per_sample_bce(p_train, y_train), -per_sample_bce(p_test, y_test))
    return {key: summary[key] for key in ("auc", "auc_ci", "tpr_at_fpr", "n_members", "n_nonmembers")}


@dataclass
class AttributeAudit:
    """One attribute forgotten by each method on one workspace; ``to_json`` for reports."""

    attribute: str
    attributes: list[str]
    consistency: dict[str, dict[str, float]]
    before: dict[str, Any]
    retrain: dict[str, Any]
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    timing_s: dict[str, float] = field(default_factory=dict)
    n_train: int = 0
    n_test: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"task": "attributes", "pseudo_labels": True, "forget_attribute": self.attribute, "reading": "the attribute entirely",
                "attributes": self.attributes, "consistency": self.consistency, "n_train": self.n_train, "n_test": self.n_test,
                "before": self.before, "retrain": self.retrain, "methods": self.runs, "timing_s": self.timing_s}


def audit_attributes(ws: Workspace, attribute: str, methods: tuple[str, ...] = DEFAULT_METHODS, seed: int = 0,
                     params: dict[str, dict[str, Any]] | None = None, config: AttributeTrainConfig | None = None,
                     progress: Callable[[float, str], None] | None = None) -> AttributeAudit:
    """Train the multi-label model, forget ``attribute`` with each method, compare with retraining."""
    params = method_params(methods, params)  # bad names or parameters fail before any training
    report_progress = progress or (lambda fraction, message: None)
    report_progress(0.0, "pseudo-labelling the photos")
    data = attribute_data(ws)
    j = data.index(attribute)
    everything = list(range(len(data.attributes)))
    report_progress(0.2, "training the attribute model")
    started = time.perf_counter()
    original = train_attribute_model(ws, data, everything, seed, config)
    timing = {"train": time.perf_counter() - started}
    report_progress(0.45, f"retraining without {attribute}")
    started = time.perf_counter()
    retrained = train_attribute_model(ws, data, [k for k in everything if k != j], seed, config)
    timing["retrain"] = time.perf_counter() - started
    report = AttributeAudit(attribute, data.attributes, data.table.consistency(), evaluate(original, data, attribute, seed),
                            evaluate(retrained, data, attribute, seed), timing_s=timing, n_train=len(data.train), n_test=len(data.test))
    for i, method in enumerate(methods):
        report_progress(0.7 + 0.3 * i / len(methods), f"forgetting {attribute} with {method}")
        started = time.perf_counter()
        unlearned, n_modified = unlearn_attribute(original, data, attribute, method, (params or {}).get(method), seed)
        seconds = time.perf_counter() - started
        report.runs[method] = {**evaluate(unlearned, data, attribute, seed), "unlearn_s": seconds,
                               "speedup": timing["retrain"] / max(seconds, 1e-9), "n_modified": n_modified}
    return report


def render_bench(reports: list[dict[str, Any]], command: str) -> str:
    """Markdown for several seeds' ``AttributeAudit.to_json()``: mean ± std per run and attribute."""

    def stat(values: list[float], digits: int = 3) -> str:
        return f"{np.mean(values):.{digits}f} ± {np.std(values):.{digits}f}"

    first = reports[0]
    runs = ["before", "retrain", *first["methods"]]
    pick = {r: (lambda rep, r=r: rep[r] if r in ("before", "retrain") else rep["methods"][r]) for r in runs}
    lines = [f"# Forgetting the attribute `{first['forget_attribute']}` (S3's multi-label task) on LFW", "",
             f"`{command}`; seeds {', '.join(str(r['seed']) for r in reports)} (mean ± std over seeds; each seed its own split). "
             "Labels are PSEUDO-labels (face-api's age/gender and expression nets, `unlearn_core/attributes/`); the attribute is "
             "forgotten entirely (S3 Table 2). Test photos; balanced accuracy: 0.5 = chance for any constant guess. "
             "AIA: balanced accuracy of a logistic-regression probe on the model's embeddings. MIA: AUC of the forgotten "
             "output's per-photo BCE (lower = member) separating training from test photos "
             "(0.5 = indistinguishable). Runtimes on a shared 2-core CPU.", "",
             "## Pseudo-label consistency check", "",
             "| attribute | positive rate | flip agreement | identity agreement | kept (all seeds) |", "|---|---|---|---|---|"]
    for attr, row in first["consistency"].items():
        ident = stat([r["consistency"][attr]["identity_agreement"] for r in reports]) if "identity_agreement" in row else "n/a (per photo)"
        lines.append(f"| {attr} | {stat([r['consistency'][attr]['positive_rate'] for r in reports])} | "
                     f"{stat([r['consistency'][attr]['flip_agreement'] for r in reports])} | {ident} | "
                     f"{all(r['consistency'][attr]['kept'] for r in reports)} |")
    lines += ["", "## Accuracy (balanced accuracy) per attribute", "", "| attribute | " + " | ".join(runs) + " |", "|---" * (len(runs) + 1) + "|"]
    for attr in first["attributes"]:
        tag = " (forgotten)" if attr == first["forget_attribute"] else ""
        cells = [f"{stat([pick[r](rep)['attributes'][attr]['accuracy'] for rep in reports])} "
                 f"({stat([pick[r](rep)['attributes'][attr]['balanced_accuracy'] for rep in reports])})" for r in runs]
        lines.append(f"| {attr}{tag} | " + " | ".join(cells) + " |")
    lines.append("| AIA | " + " | ".join(stat([pick[r](rep)["aia"] for rep in reports]) for r in runs) + " |")
    if all("mia" in pick[r](rep) for r in runs for rep in reports):
        lines.append("| MIA AUC (forgotten output's BCE, training vs test) | "
                     + " | ".join(stat([pick[r](rep)["mia"]["auc"] for rep in reports]) for r in runs) + " |")
    lines.append("| entropy of the forgotten output | " + " | ".join(stat([pick[r](rep)["entropy_mean"] for rep in reports]) for r in runs) + " |")
    seconds = {"before": lambda rep: rep["timing_s"]["train"], "retrain": lambda rep: rep["timing_s"]["retrain"],
               **{m: (lambda rep, m=m: rep["methods"][m]["unlearn_s"]) for m in first["methods"]}}
    lines.append("| runtime (s) | " + " | ".join(stat([seconds[r](rep) for rep in reports], 1) for r in runs) + " |")
    speedups = [stat([rep["methods"][m]["speedup"] for rep in reports], 1) for m in first["methods"]]
    lines.append("| speed-up vs retrain | | | " + " | ".join(speedups) + " |")
    return "\n".join(lines) + "\n"
