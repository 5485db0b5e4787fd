"""The unlearning-method interface, its registry, and the shared training loop.

A method is a dataclass of hyper-parameters (validated on construction, sklearn-style) with
``needs`` (which parts of the request it may read) and ``unlearn(model, request, ...) -> model``.
``unlearn`` always works on ``model.clone()``; the original is never modified. Iterative methods
subclass ``IterativeMethod`` and state only their loss (pytorch-metric-learning style).
"""
from __future__ import annotations

import dataclasses
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from ..backbones import Backbone
from ..errors import InvalidParameter
from ..features import FaceData
from ..metrics import compactness
from ..model import FaceModel, cosface_loss
from ..sampling import flip_mask, pk_batch, random_batch
from ..types import Progress
from .saliency import apply_mask, saliency_mask

DATA_PARTS = ("forget", "retain", "support")
HELD_OUT_PARTS = ("test", "forget_test")
"""Held-out images a method may read only when it declares them (in ``data_needs``)."""


def param(default: Any, low: float | None = None, high: float | None = None, help: str = "",
          choices: tuple | None = None, optional: bool = False) -> Any:
    """A validated hyper-parameter: ``low <= value <= high`` or ``value in choices`` (None allowed if optional)."""
    meta = {"low": low, "high": high, "help": help, "choices": choices, "optional": optional}
    return field(default=default, metadata=meta)


@dataclass
class UnlearnRequest:
    """What may be forgotten and with what.

    ``forget``: training images of the forget identities. ``support``: one image per forget
    identity (the one-shot setting). ``retain``: training images of retained identities.
    Parts a method does not declare in ``needs`` are removed before it runs.
    ``encode`` maps uint8/float chips to model inputs (frozen trunk), for augmented views.
    """

    forget_classes: list[int]
    forget: FaceData | None = None
    support: FaceData | None = None
    retain: FaceData | None = None
    encode: Callable[[Any], torch.Tensor] | None = None
    test: FaceData | None = None
    """Held-out images of retained identities, for methods that need unseen data (e.g. JiT-free attacks)."""
    forget_test: FaceData | None = None
    """Held-out images of the forget identities, for a termination rule that reads them (S4 Eq. 8)."""
    pretrained: Backbone | None = None
    """The pretrained embedder the original model was fine-tuned from (for ``retrain``)."""
    reference: FaceModel | None = None
    """A model never trained on the forget identities (the retrain reference), for the stopping
    rule that matches it (``stop_at="retrain"``); given only to a method that declares ``reference``."""

    def restricted_to(self, needs: frozenset[str]) -> UnlearnRequest:
        dropped = [p for p in (*DATA_PARTS, *HELD_OUT_PARTS, "reference") if p not in needs]
        return dataclasses.replace(self, **dict.fromkeys(dropped))

    def mapped(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> UnlearnRequest:
        """This request with every part's inputs (and ``encode``'s output) passed through ``fn``."""
        parts = {p: getattr(self, p).map_inputs(fn) for p in (*DATA_PARTS, *HELD_OUT_PARTS) if getattr(self, p) is not None}
        encode = (lambda chips, inner=self.encode: fn(inner(chips))) if self.encode is not None else None
        return dataclasses.replace(self, encode=encode, **parts)

    def forget_data(self) -> FaceData:
        """The forget-side data this request carries: the forget set, else the support sample."""
        data = self.forget if self.forget is not None else self.support
        if data is None:
            raise InvalidParameter("this request holds neither forget images nor a support sample")
        return data


@dataclass
class Budget:
    """Stop after ``iterations`` or ``seconds`` wall time, whichever comes first. What an
    iteration is, and whether a method takes a budget at all, is the method's ``budget_counts``."""

    iterations: int | None = None
    seconds: float | None = None


class UnlearningMethod(ABC):
    """Base class. Subclasses are dataclasses whose fields are ``param(...)`` hyper-parameters."""

    name: ClassVar[str]
    summary: ClassVar[str] = ""
    needs: ClassVar[frozenset[str]] = frozenset({"forget", "support"})
    """Request parts this method may read: any of 'forget', 'support', 'retain', 'test'.
    'retain' (and 'test') here means the method cannot run without them."""
    requires_head: ClassVar[bool] = False
    """True when the method reads the model's CosFace identity head (logits, class weights)."""
    presets: ClassVar[dict[str, dict[str, Any]]] = {}
    """Named, measured parameter sets beyond the defaults, offered by the CLI (``--preset``) and the app."""
    paper_grid: ClassVar[dict[str, tuple[Any, ...]]] = {}
    """The values the method's paper tunes over or states (its own value first), which
    ``tuning.tune`` searches on a validation split of the training identities; the shipped
    defaults are the chosen point (docs/tuning-lfw.md)."""
    budget_counts: ClassVar[str | None] = None
    """What ``Budget.iterations`` caps for this method (e.g. "optimisation steps"); None: a
    closed-form method that takes no budget (its result does not depend on one)."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            self._validate(f, getattr(self, f.name))

    def _validate(self, f: dataclasses.Field, value: Any) -> None:
        meta = f.metadata
        if not meta:
            return
        if value is None:
            if meta["optional"]:
                return
            raise InvalidParameter(f"{self.name}: {f.name} is required")
        if meta["choices"] is not None:
            if value not in meta["choices"]:
                raise InvalidParameter(f"{self.name}: {f.name} must be one of {list(meta['choices'])}, got {value!r}")
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
            raise InvalidParameter(f"{self.name}: {f.name} must be a finite number, got {value!r}")
        if isinstance(f.default, int) and not isinstance(f.default, bool) and not float(value).is_integer():
            raise InvalidParameter(f"{self.name}: {f.name} must be a whole number, got {value!r}")
        low, high = meta["low"], meta["high"]
        if (low is not None and value < low) or (high is not None and value > high):
            raise InvalidParameter(f"{self.name}: {f.name} must be in [{low}, {high}], got {value!r}")

    @classmethod
    def parameters(cls) -> dict[str, dict]:
        """Hyper-parameters with defaults, bounds and help, for the CLI and the UI."""
        return {f.name: {"default": f.default, **f.metadata} for f in dataclasses.fields(cls) if f.metadata}

    def data_needs(self) -> frozenset[str]:
        """Request parts this configured instance reads (may depend on its parameters)."""
        return self.needs

    def needs_head(self) -> bool:
        """Whether this configured instance reads the identity head (may depend on its parameters)."""
        return self.requires_head

    def stopping_needs(self) -> frozenset[str]:
        """Request parts the stopping rule reads, beyond ``data_needs`` (``reference`` for ``stop_at``)."""
        return frozenset()

    def get_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.parameters()}

    def unlearn(self, model: FaceModel, request: UnlearnRequest, budget: Budget | None = None,
                progress: Progress | None = None, seed: int = 0) -> FaceModel:
        """A new model with ``request`` forgotten. ``model`` is left exactly as it was."""
        needs = self.data_needs() | self.stopping_needs()
        if "reference" in needs and request.reference is None:
            raise InvalidParameter(f"{self.name}: stop_at='retrain' needs the retrain reference in the request (the audit supplies it)")
        if request.forget is None and request.support is None:
            raise InvalidParameter(f"{self.name}: the request holds neither forget images nor a support sample")
        if "retain" in needs and request.retain is None:
            raise InvalidParameter(f"{self.name} needs retain data in the request")
        if self.needs_head() and model.head is None:
            raise InvalidParameter(f"{self.name} needs a model with an identity head")
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        copy = model.clone()
        started = time.perf_counter()
        self._unlearn(copy, request.restricted_to(needs), budget or Budget(), progress or (lambda f, m: None), generator)
        self.seconds_ = time.perf_counter() - started
        return copy.eval()

    @abstractmethod
    def _unlearn(self, model: FaceModel, request: UnlearnRequest, budget: Budget, progress: Progress,
                 generator: torch.Generator) -> None:
        """Modify ``model`` (already a copy) in place."""


@dataclass
class Batch:
    """One optimisation step's data: forget-side inputs and labels, optional retain inputs and labels."""

    x: torch.Tensor
    y: torch.Tensor
    retain_x: torch.Tensor | None = None
    retain_y: torch.Tensor | None = None
    retain_target: torch.Tensor | None = None
    """Precomputed reference outputs for ``retain_x``, for methods that cache them."""


@dataclass
class IterativeMethod(UnlearningMethod):
    """SGD loop shared by gradient-based methods; subclasses define ``loss``.

    Batches are PK-sampled from the forget data (so anchors have positives) with random
    horizontal flips; when the method needs 'retain', a random retain batch rides along.
    Optional early stopping (``stop_cs``) checks the forget identities' compactness on the
    forget training images every ``check_every`` steps and stops once it is at or below target.
    """

    budget_counts = "optimisation steps (Budget.seconds also stops the loop)"

    iterations: int = param(1000, 1, 100_000, "optimisation steps")
    lr: float = param(1e-4, 1e-8, 1.0, "SGD learning rate")
    batch_size: int = param(32, 2, 1024, "forget batch size")
    momentum: float = param(0.0, 0.0, 0.999, "SGD momentum")
    weight_decay: float = param(0.0, 0.0, 1.0, "SGD weight decay")
    stop_cs: float | None = param(None, -1.0, 1.0, "stop once forget-train compactness <= this", optional=True)
    stop_at: str | None = param(None, help="stop once forget-train compactness <= the retrain reference's on the same photos",
                                choices=("retrain",), optional=True)
    """The "indistinguishable from retrain" notion of forgetting: stop as soon as the forget
    identities' training photos are no more compact (S0 Eq. 10) under the unlearned model than under
    a model that never saw them, rather than dispersing them as far as the loss goes (checked before
    the first step too: a model already there takes none). Compactness is what membership and
    per-example attacks read from a face model (a model pulls its training identities' photos
    together). Needs several training photos per identity (not the one-shot setting, where one photo
    has no compactness). Measured on LFW (the test workspace, tail-only model): the original is
    already there (forget-train CS 0.767 against the retrain reference's 0.782), so the rule takes
    no step; what still tells the original from never-seen models there is per photo (U-LiRA), not
    this aggregate."""
    check_every: int = param(10, 1, 10_000, "steps between early-stopping checks")
    saliency: float | None = param(None, 0.01, 1.0, "SalUn: update only this fraction of weights (largest forget-loss gradients)", optional=True)
    clip_norm: float | None = param(None, 1e-6, 1e6, "clip the gradient norm to this (None = no clipping)", optional=True)
    train_blocks: int | None = param(None, 1, 1000, "train only the last N blocks of the trainable part (None = all)", optional=True)
    """Fewer trainable blocks: the request's inputs are pushed through the frozen ones once
    (``FaceModel.split``), so each step runs only the last ``train_blocks`` blocks."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.stop_cs is not None and self.stop_at is not None:
            raise InvalidParameter(f"{self.name}: set stop_cs or stop_at, not both")

    def needs_head(self) -> bool:
        return self.requires_head or self.saliency is not None  # the saliency mask ranks CosFace-loss gradients

    def stopping_needs(self) -> frozenset[str]:
        return frozenset({"reference"}) if self.stop_at is not None else frozenset()

    def _optimiser(self, model: FaceModel) -> torch.optim.Optimizer:
        return torch.optim.SGD(model.trainable_parameters(), lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)

    def setup(self, model: FaceModel, request: UnlearnRequest, generator: torch.Generator) -> None:
        """Hook: prepare state (frozen references, masks) before the first step."""

    def sample(self, request: UnlearnRequest, generator: torch.Generator) -> Batch:
        batch = self.forget_batch(request.forget_data(), generator)
        if request.retain is not None:
            ridx = random_batch(len(request.retain), self.batch_size, generator).to(request.retain.labels.device)
            batch.retain_x, batch.retain_y = request.retain.batch(ridx, flip_mask(len(ridx), generator))
        return batch

    def forget_batch(self, data: FaceData, generator: torch.Generator) -> Batch:
        """A PK-sampled, randomly flipped batch of ``data`` (forget-side inputs only)."""
        idx = pk_batch(data.labels, self.batch_size, generator)
        return Batch(*data.batch(idx.to(data.labels.device), flip_mask(len(idx), generator)))

    def n_steps(self, request: UnlearnRequest) -> int:
        """Hook: the optimisation steps of a run (``iterations`` unless the method counts passes)."""
        return self.iterations

    @abstractmethod
    def loss(self, model: FaceModel, batch: Batch) -> torch.Tensor:
        """The scalar to minimise for this batch."""

    def saliency_loss(self, model: FaceModel, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The forget loss whose weight gradients rank the SalUn mask (``saliency``): the CosFace loss by default."""
        return cosface_loss(model, x, y)

    def after_step(self, model: FaceModel) -> None:
        """Hook: e.g. re-apply a weight mask."""

    def select(self, request: UnlearnRequest, generator: torch.Generator) -> UnlearnRequest:
        """Hook: the part of the request the loop will use (e.g. a subset of the retain images)."""
        return request

    def _unlearn(self, model: FaceModel, request: UnlearnRequest, budget: Budget, progress: Progress,
                 generator: torch.Generator) -> None:
        request = self.select(request, generator)
        self.stop_target_ = self.stop_cs if self.stop_at is None else self._reference_cs(request)
        n_frozen = len(model.trainable_blocks()) - self.train_blocks if self.train_blocks is not None else 0
        if n_frozen > 0:  # the frozen blocks run once per image here, not at every step
            progress(0.0, f"{self.name}: encoding through the {n_frozen} frozen blocks")
            prefix, model = model.split(self.train_blocks)
            request = request.mapped(prefix)
        self.setup(model, request, generator)
        mask = saliency_mask(model, request.forget_data(), self.saliency, self.saliency_loss) if self.saliency is not None else None
        optimiser = self._optimiser(model)
        steps = self.n_steps(request)
        steps = min(steps, budget.iterations or steps)
        started = time.perf_counter()
        self.loss_history_: list[float] = []
        self.n_iter_ = 0
        model.train()
        for step in range(steps):
            if step % self.check_every == 0 and self.should_stop(model, request):  # step 0 too: already there, no step
                break
            loss = self.loss(model, self.sample(request, generator))
            optimiser.zero_grad()
            loss.backward()
            if mask is not None:
                apply_mask(model, mask)
            if self.clip_norm is not None:
                torch.nn.utils.clip_grad_norm_(model.trainable_parameters(), self.clip_norm)
            optimiser.step()
            self.after_step(model)
            self.loss_history_.append(float(loss.detach()))
            self.n_iter_ = step + 1
            if step % 10 == 0 or step == steps - 1:
                progress((step + 1) / steps, f"{self.name}: step {step + 1}/{steps}, loss {self.loss_history_[-1]:.4f}")
            if budget.seconds is not None and time.perf_counter() - started > budget.seconds:
                break
        model.eval()

    def should_stop(self, model: FaceModel, request: UnlearnRequest) -> bool:
        """Hook, checked every ``check_every`` steps: early stopping at ``stop_target_`` by default
        (``stop_cs``, or the retrain reference's compactness for ``stop_at``)."""
        return self.stop_target_ is not None and self._forget_cs(model, request) <= self.stop_target_

    @torch.no_grad()
    def _reference_cs(self, request: UnlearnRequest) -> float:
        """The reference's compactness of the forget identities' training photos."""
        data = request.forget_data()
        if torch.bincount(data.labels.cpu()).max() <= 1:
            raise InvalidParameter(f"{self.name}: stop_at='retrain' compares training photos of each forget identity; "
                                   "the one-shot setting has one photo per person")
        return compactness(request.reference.embed(data.inputs).cpu().numpy(), data.labels.cpu().numpy())

    def stop_inputs(self, request: UnlearnRequest) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and labels whose compactness ``stop_cs`` watches: the forget-side training images."""
        data = request.forget_data()
        return data.inputs, data.labels

    @torch.no_grad()
    def _forget_cs(self, model: FaceModel, request: UnlearnRequest) -> float:
        inputs, labels = self.stop_inputs(request)
        was_training = model.training
        model.eval()
        emb = model.embed(inputs).cpu().numpy()
        model.train(was_training)
        return compactness(emb, labels.cpu().numpy())


_REGISTRY: dict[str, type[UnlearningMethod]] = {}


def register_method(cls: type[UnlearningMethod]) -> type[UnlearningMethod]:
    """Class decorator: makes ``cls`` available as ``create_method(cls.name)``."""
    if cls.name in _REGISTRY:
        raise ValueError(f"method {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def list_methods() -> list[str]:
    return sorted(_REGISTRY)


def method_class(name: str) -> type[UnlearningMethod]:
    if name not in _REGISTRY:
        raise InvalidParameter(f"unknown method {name!r}; available: {list_methods()}")
    return _REGISTRY[name]


def preset_params(name: str, preset: str) -> dict[str, Any]:
    """The parameters of a method's named preset (``InvalidParameter`` naming the choices if unknown)."""
    presets = method_class(name).presets
    if preset not in presets:
        raise InvalidParameter(f"{name} has no preset {preset!r}; " + (f"it has {sorted(presets)}" if presets else "it has none"))
    return dict(presets[preset])


def create_method(name: str, **params: Any) -> UnlearningMethod:
    """Instantiate a registered method; unknown or out-of-range parameters raise ``InvalidParameter``."""
    cls = method_class(name)
    unknown = set(params) - set(cls.parameters())
    if unknown:
        raise InvalidParameter(f"{name} has no parameter(s) {sorted(unknown)}; it takes {sorted(cls.parameters())}")
    return cls(**params)


@torch.no_grad()
def head_accuracy(model: FaceModel, data: FaceData, batch_size: int = 256) -> float:
    """Fraction of ``data`` the identity head classifies correctly (plain cosine, no margin)."""
    was_training = model.training
    model.eval()
    correct = sum(int((model.logits(data.inputs[i : i + batch_size]).argmax(1) == data.labels[i : i + batch_size]).sum())
                  for i in range(0, len(data), batch_size))
    model.train(was_training)
    return correct / max(1, len(data))


def cosine_pairs(embeddings: torch.Tensor) -> torch.Tensor:
    """Cosine similarity matrix of (unnormalised) embeddings."""
    x = F.normalize(embeddings, dim=1)
    return x @ x.t()
