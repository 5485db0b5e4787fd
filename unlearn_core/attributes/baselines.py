"""Baselines for S3's attribute task: fine-tuning, random labeling and gradient ascent on the BCE model.

S3 §7 compares Weight Filtering / Weight Pruning with Retrain, CF-k, SCRUB, UNSIR and SalUN. The three
here are the ones whose loss reads directly onto a multi-label BCE model, each a few SGD steps from the
trained model on the training photos (flipped half the time), with the training recipe's optimiser
(SGD momentum 0.9, weight decay 5e-4; the head at ``head_lr``, the trainable tail at ``body_lr``):

* ``finetune``: S3's CF-k baseline [9] ("catastrophic forgetting": fine-tune the last k layers on the
  remaining data only). Here all trainable layers (tail + head), on the kept attributes' BCE: the
  forgotten column is masked out of the loss and only fades as far as forgetting and weight decay take it.
* ``random_labeling``: the random-labeling loss of S3's SalUN baseline [21] without its saliency mask:
  the forgotten attribute's labels are redrawn uniformly from {0, 1} at every step, the kept ones stay.
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

from ..errors import InvalidParameter
from ..methods.base import UnlearningMethod, param

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

    def run(self, model: AttributeModel, data: AttributeData, j: int, seed: int = 0) -> AttributeModel:
        from .task import AttributeTrainConfig
        recipe = AttributeTrainConfig()
        twin = model.clone()
        others = [k for k in range(len(data.attributes)) if k != j]
        generator = torch.Generator().manual_seed(seed)
        optimiser = torch.optim.SGD([{"params": twin.body.trainable_parameters(), "lr": self.body_lr},
                                     {"params": twin.head.parameters(), "lr": self.head_lr}],
                                    momentum=recipe.momentum, weight_decay=recipe.weight_decay)
        twin.train()
        for _ in range(self.iterations):
            idx = torch.randint(len(data.train), (min(self.batch_size, len(data.train)),), generator=generator)
            x, y = data.train.batch(idx, torch.rand(len(idx), generator=generator) < 0.5)
            optimiser.zero_grad()
            self.loss(twin(x), y.to(x.dtype), j, others, generator).backward()
            optimiser.step()
        twin.eval()
        return twin


@dataclass
class Finetune(AttributeBaseline):
    name: ClassVar[str] = "finetune"
    summary: ClassVar[str] = "Fine-tune on the kept attributes only, the forgotten column masked (S3's CF-k baseline)"

    def loss(self, logits, y, j, others, generator):
        return F.binary_cross_entropy_with_logits(logits[:, others], y[:, others])


@dataclass
class RandomLabeling(AttributeBaseline):
    name: ClassVar[str] = "random_labeling"
    summary: ClassVar[str] = "Fine-tune with random labels for the forgotten attribute (SalUN's loss, S3's baseline, no saliency mask)"

    def loss(self, logits, y, j, others, generator):
        y = y.clone()
        y[:, j] = torch.randint(2, (len(y),), generator=generator).to(y.dtype)
        return F.binary_cross_entropy_with_logits(logits, y)


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


BASELINES: dict[str, type[AttributeBaseline]] = {cls.name: cls for cls in (Finetune, RandomLabeling, GradientAscent)}


def create_baseline(name: str, **params: Any) -> AttributeBaseline:
    """A baseline with checked parameters; unknown names or parameters raise ``InvalidParameter``."""
    if name not in BASELINES:
        raise InvalidParameter(f"unknown attribute baseline {name!r}; choose from {list(BASELINES)}")
    cls = BASELINES[name]
    unknown = set(params) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise InvalidParameter(f"{name} has no parameter(s) {sorted(unknown)}; it takes {sorted(cls.parameters())}")
    return cls(**params)
