"""Baselines for S3's attribute task on the multi-label BCE model.

S3 §7 compares Weight Filtering / Weight Pruning with Retrain, CF-k [9], SCRUB [20], UNSIR [10] and
SalUN [21] (Tables 2-3, 5: CF-3). ``retrain`` is the audit's reference (``task.audit_attributes``); the
ones here each take SGD steps from the trained model on the training photos (flipped half the time),
with the training recipe's optimiser (SGD momentum 0.9, weight decay 5e-4; the head at ``head_lr``,
the trainable tail at ``body_lr``). "Remaining data" for this task (the attribute forgotten entirely,
S3 Table 2) are every training photo with the KEPT attributes' labels: the forgotten column masked.

* ``finetune``: plain fine-tuning of ALL trainable layers (tail + head) on the kept attributes' BCE, the
  usual "fine-tune on the remaining data" baseline (S0's FT; Golatkar et al. 2020's fine-tune). The
  forgotten column only fades as far as forgetting and weight decay take it.
* ``cf_k``: S3's CF-k [9] (Goel et al. 2022, "Towards adversarial evaluations for inexact machine
  unlearning"): the same loss, but only the last ``k`` layers are trained, earlier ones frozen. Layers
  are counted from the output as in the identity task's ``methods/cf_k.py`` (its ``trainable_layers``):
  the attribute head (1), then the body's trainable blocks back from the embedding ``fc`` (2). Default
  k = 3, S3's CF-3.
* ``random_labeling``: the random-labeling loss of S3's SalUN baseline [21] without its saliency mask:
  the forgotten attribute's labels are redrawn uniformly from {0, 1} at every step, the kept ones stay.
* ``unsir``: S3's UNSIR [10] (Tarun et al. 2023, "Fast yet effective machine unlearning") read for one
  attribute: error-maximising noise at the model's input level (``methods/unsir.error_maximising_noise``)
  for the forgotten output, half labelled 0 and half 1 (the attribute is forgotten for both values),
  each noise input optimised to MAXIMISE that output's BCE against its label; then ``impair_steps``
  steps on the photos' kept-attribute BCE plus the noise's forgotten-output BCE, then repair on the
  photos' kept-attribute BCE only.
* ``boundary_expanding``: Boundary Expanding (Chen et al. 2023, "Boundary unlearning", S3's [8] on
  decision-space methods; not in S3's tables) for a binary sigmoid output, see ``BoundaryExpanding``.
* ``gradient_ascent``: not among S3's baselines; the usual unlearning baseline (S0 Eq. 8) read for this
  task: ascend the forgotten attribute's BCE, descend the kept ones' (``lambda_retain``). Unbounded:
  it drives the forgotten output to the wrong answer (below chance), not to chance.

Each returns the unlearned copy (the input model is not changed).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InvalidParameter
from ..methods.base import UnlearningMethod, param
from ..methods.cf_k import trainable_layers
from ..methods.unsir import error_maximising_noise

if TYPE_CHECKING:
    from .task import AttributeData, AttributeModel


@dataclass
class AttributeBaseline:
    """A baseline's validated parameters (bounds as the registered methods', ``methods.base.param``)."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    iterations: int = param(100, 1, 100_000, "SGD steps")
    head_lr: float = param(0.01, 1e-8, 1.0, "learning rate of the attribute head (S3's 0.01)")
    body_lr: float = param(1e-4, 0.0, 1.0, "learning rate of the trainable tail (the training recipe's)")
    batch_size: int = param(64, 1, 4096, "photos per step (S3's 64)")

    __post_init__ = UnlearningMethod.__post_init__
    _validate = UnlearningMethod._validate
    parameters = classmethod(UnlearningMethod.parameters.__func__)

    def loss(self, logits: torch.Tensor, y: torch.Tensor, j: int, others: list[int], generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def step_loss(self, model: AttributeModel, x: torch.Tensor, y: torch.Tensor, j: int, others: list[int],
                  generator: torch.Generator) -> torch.Tensor:
        """One step's loss on a batch of photos (``loss`` on the logits unless a baseline needs more)."""
        return self.loss(model(x), y, j, others, generator)

    def param_groups(self, model: AttributeModel) -> list[dict[str, Any]]:
        """What the optimiser trains: the trainable tail at ``body_lr``, the head at ``head_lr``."""
        return [{"params": model.body.trainable_parameters(), "lr": self.body_lr}, {"params": list(model.head.parameters()), "lr": self.head_lr}]

    def setup(self, model: AttributeModel, data: AttributeData, j: int, generator: torch.Generator) -> None:
        """Work before the first step (noise, extra outputs)."""

    def finish(self, model: AttributeModel) -> None:
        """Work after the last step."""

    def run(self, model: AttributeModel, data: AttributeData, j: int, seed: int = 0) -> AttributeModel:
        from .task import AttributeTrainConfig
        recipe = AttributeTrainConfig()
        twin = model.clone()
        others = [k for k in range(len(data.attributes)) if k != j]
        generator = torch.Generator().manual_seed(seed)
        self.setup(twin, data, j, generator)
        optimiser = torch.optim.SGD(self.param_groups(twin), momentum=recipe.momentum, weight_decay=recipe.weight_decay)
        twin.train()
        for _ in range(self.iterations):
            idx = torch.randint(len(data.train), (min(self.batch_size, len(data.train)),), generator=generator)
            x, y = data.train.batch(idx, torch.rand(len(idx), generator=generator) < 0.5)
            optimiser.zero_grad()
            self.step_loss(twin, x, y.to(x.dtype), j, others, generator).backward()
            optimiser.step()
        twin.eval()
        self.finish(twin)
        return twin


def kept_bce(logits: torch.Tensor, y: torch.Tensor, others: list[int]) -> torch.Tensor:
    """The kept attributes' BCE: the remaining data's loss, the forgotten column masked."""
    return F.binary_cross_entropy_with_logits(logits[:, others], y[:, others])


@dataclass
class Finetune(AttributeBaseline):
    """Fine-tune every trainable layer on the remaining data (the kept attributes' BCE); not CF-k (``CFk``)."""

    name: ClassVar[str] = "finetune"
    summary: ClassVar[str] = "Fine-tune all trainable layers on the kept attributes only, the forgotten column masked"

    def loss(self, logits, y, j, others, generator):
        return kept_bce(logits, y, others)


@dataclass
class CFk(Finetune):
    """S3's CF-k [9] (Goel et al. 2022): ``finetune``'s loss on the last ``k`` layers only (S3 runs CF-3)."""

    name: ClassVar[str] = "cf_k"
    summary: ClassVar[str] = "Fine-tune only the last k layers (head = 1, embedding fc = 2, ...) on the kept attributes (S3's CF-k, Goel et al. 2022)"
    k: int = param(3, 1, 1000, "number of final layers fine-tuned (head = 1, embedding fc = 2, ...; S3's CF-3)")

    def param_groups(self, model):
        layers = [*trainable_layers(model.body), model.head]
        return [{"params": list(layer.parameters()), "lr": self.head_lr if layer is model.head else self.body_lr} for layer in layers[-self.k:]]


@dataclass
class RandomLabeling(AttributeBaseline):
    name: ClassVar[str] = "random_labeling"
    summary: ClassVar[str] = "Fine-tune with random labels for the forgotten attribute (SalUN's loss, S3's baseline, no saliency mask)"

    def loss(self, logits, y, j, others, generator):
        y = y.clone()
        y[:, j] = torch.randint(2, (len(y),), generator=generator).to(y.dtype)
        return F.binary_cross_entropy_with_logits(logits, y)


@dataclass
class UNSIR(AttributeBaseline):
    """S3's UNSIR [10] (Tarun et al. 2023) for one attribute: error-maximising noise, impair, repair.

    The noise (``noise_per_label`` inputs per value of the forgotten attribute, at the model's input
    level, shared with the identity task's ``methods/unsir.py``) maximises the forgotten output's BCE
    against its label; impair = the photos' kept-attribute BCE + the noise's forgotten-output BCE for
    the first ``impair_steps`` steps, repair = the photos' kept-attribute BCE for the rest. Measured on the
    test workspace (seed 0): the noise labelled "no" looks like "yes" to the model and vice versa, so the
    impair phase teaches the INVERTED attribute: ``male`` balanced accuracy 0.96 -> 0.07 (impair_steps 5:
    0.32), ``happy`` kept (0.77 -> 0.89); repair does not touch the masked column."""

    name: ClassVar[str] = "unsir"
    summary: ClassVar[str] = ("Train on error-maximising noise for the forgotten attribute with the kept attributes' photos, "
                              "then repair on the photos (S3's UNSIR, Tarun et al. 2023)")
    iterations: int = param(100, 1, 100_000, "impair + repair SGD steps")
    impair_steps: int = param(30, 0, 100_000, "steps on photos + noise before repair")
    noise_per_label: int = param(32, 1, 4096, "noise inputs per value (0 and 1) of the forgotten attribute")
    noise_steps: int = param(20, 1, 10_000, "Adam steps optimising the noise")
    noise_lr: float = param(0.1, 1e-6, 10.0, "Adam learning rate for the noise (times the inputs' std)")
    noise_reg: float = param(0.1, 0.0, 100.0, "weight of the noise's mean squared magnitude")

    def setup(self, model, data, j, generator):
        labels = torch.arange(2).repeat_interleave(self.noise_per_label).to(data.train.inputs.dtype)
        self._noise = error_maximising_noise(model, data.train.inputs, len(labels),
                                             lambda noise: F.binary_cross_entropy_with_logits(model(noise)[:, j], labels),
                                             self.noise_steps, self.noise_lr, self.noise_reg, generator)
        self._noise_labels, self._step = labels, 0

    def step_loss(self, model, x, y, j, others, generator):
        step, self._step = self._step, self._step + 1
        if step >= self.impair_steps:
            return kept_bce(model(x), y, others)
        logits = model(torch.cat([x, self._noise]))
        return kept_bce(logits[: len(x)], y, others) + F.binary_cross_entropy_with_logits(logits[len(x):, j], self._noise_labels)


@dataclass
class BoundaryExpanding(AttributeBaseline):
    """Boundary Expanding (Chen et al. 2023, S3's [8]) for one binary sigmoid output.

    Chen et al. add a "shadow" class to a softmax head, relabel the forget data to it, fine-tune on the
    forget data only, then prune the shadow neuron. Reading for a sigmoid output z: during unlearning
    the forgotten output becomes a 3-way softmax over {no, yes, shadow} with logits (-z/2, +z/2, s),
    s a new linear "shadow" output on the same scaled embedding (random direction, the head rows'
    mean norm; the head's mean bias); every training photo (the attribute is forgotten for all of them)
    is labelled shadow (cross-entropy), nothing else is trained on; the shadow output is then dropped
    and the output is sigmoid(z) again (softmax over {no, yes} of (-z/2, z/2) is exactly sigmoid(z)).
    Why the symmetric (-z/2, +z/2) and not (0, z): the cross-entropy's gradient on z is then
    (p_yes - p_no) / 2, which drives z towards 0 (both answers lose mass to the shadow equally, the
    forgotten output ends at chance), whereas with (0, z) the only movable logit is "yes", and the
    shadow label would push every photo to "no" (a confident wrong answer for half of them).
    The tail trains at Chen et al.'s lr 1e-5, the head and shadow at S3's 0.01. Measured on the test
    workspace (seed 0): the forget "data" are every photo, so the shadow pulls every embedding its way;
    at the tail's 1e-4 the kept ``happy`` fell to the constant guess (balanced accuracy 0.77 -> 0.50),
    at 1e-5 it holds (0.75) and ``male`` ends at the constant guess (0.50; every photo "no", not a coin
    toss: the shadow takes the mass before z reaches 0); head only (``body_lr=0``) overshoots ``male``
    to the inverted answer (0.06)."""

    name: ClassVar[str] = "boundary_expanding"
    summary: ClassVar[str] = ("Move the forgotten attribute's labels to a temporary shadow output (3-way softmax "
                              "no / yes / shadow), fine-tune, drop the shadow (Chen et al. 2023)")
    iterations: int = param(50, 1, 100_000, "SGD steps")
    body_lr: float = param(1e-5, 0.0, 1.0, "learning rate of the trainable tail (Chen et al.'s 1e-5)")

    def setup(self, model, data, j, generator):
        weight = model.head.weight.detach()
        self._shadow = nn.Linear(weight.shape[1], 1)
        with torch.no_grad():
            self._shadow.weight.copy_(F.normalize(torch.randn(1, weight.shape[1], generator=generator), dim=1) * weight.norm(dim=1).mean())
            self._shadow.bias.fill_(float(model.head.bias.detach().mean()))

    def param_groups(self, model):
        return [*super().param_groups(model), {"params": list(self._shadow.parameters()), "lr": self.head_lr}]

    def step_loss(self, model, x, y, j, others, generator):
        from .task import EMBEDDING_SCALE
        features = EMBEDDING_SCALE * model.embed(x)
        z, s = model.head(features)[:, j], self._shadow(features)[:, 0]
        logits = torch.stack([-z / 2, z / 2, s], dim=1)
        return F.cross_entropy(logits, torch.full((len(x),), 2, dtype=torch.long))

    def finish(self, model):
        del self._shadow  # pruned: the model's outputs are the original ones


@dataclass
class GradientAscent(AttributeBaseline):
    name: ClassVar[str] = "gradient_ascent"
    summary: ClassVar[str] = "Ascend the forgotten attribute's BCE, descend the kept ones' (S0 Eq. 8 read for this task)"
    iterations: int = param(30, 1, 100_000, "SGD steps")
    lambda_retain: float = param(1.0, 0.0, 100.0, "weight of the kept attributes' BCE")

    def loss(self, logits, y, j, others, generator):
        ascent = -F.binary_cross_entropy_with_logits(logits[:, j], y[:, j])
        if self.lambda_retain > 0 and others:
            ascent = ascent + self.lambda_retain * F.binary_cross_entropy_with_logits(logits[:, others], y[:, others])
        return ascent


BASELINES: dict[str, type[AttributeBaseline]] = {cls.name: cls for cls in (Finetune, CFk, RandomLabeling, UNSIR, BoundaryExpanding,
                                                                                 GradientAscent)}


def create_baseline(name: str, **params: Any) -> AttributeBaseline:
    """A baseline with checked parameters; unknown names or parameters raise ``InvalidParameter``."""
    if name not in BASELINES:
        raise InvalidParameter(f"unknown attribute baseline {name!r}; choose from {list(BASELINES)}")
    cls = BASELINES[name]
    unknown = set(params) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise InvalidParameter(f"{name} has no parameter(s) {sorted(unknown)}; it takes {sorted(cls.parameters())}")
    return cls(**params)
