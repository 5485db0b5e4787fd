"""The membership-attack interface, its registry, and the typed result.

An attack is a dataclass of parameters (validated on construction) with class-level metadata
(``summary``, ``help``, what it needs) and ``run(out, reference, seed) -> AttackResult``: it reads
one model's outputs on the audit sets (``ModelOutputs``) and, if it declares ``needs_reference``,
K reference models' outputs on the same sets (``References``). Score attacks (``ScoreAttack``) only state their
features per set and, for a fitted attack, the attack model; calibration on members vs
non-members and the forget-set numbers are shared.

Audit sets (keys of ``ModelOutputs``): ``members`` = retain training images, ``test`` = held-out
images of retained identities, ``unseen`` = unseen identities, ``forget`` = the forget
identities' training images, ``forget_heldout`` = their held-out images.
"""
from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator

from ..errors import InvalidParameter
from .functional import Roc, fit_attack, label_log_prob, roc, youden_threshold


def param(default: Any, low: float | None = None, high: float | None = None, help: str = "") -> Any:
    """A validated attack parameter: a finite number with ``low <= value <= high``."""
    return field(default=default, metadata={"low": low, "high": high, "help": help})


@dataclass
class ModelOutputs:
    """One model's logits (head, float64), normalised embeddings and labels per audit set.

    Any subset of the audit sets may be present (e.g. only ``members`` and ``test`` to calibrate a
    label-free attack); ``logits`` may be empty for attacks that read only embeddings.
    """

    embeddings: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    logits: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def sets(self) -> list[str]:
        return list(self.labels)

    def label_log_prob(self, name: str) -> np.ndarray:
        return label_log_prob(self.logits[name], self.labels[name])

    def accuracy(self, name: str) -> float:
        return float(np.mean(self.logits[name].argmax(1) == self.labels[name])) if len(self.labels[name]) else float("nan")


@dataclass
class References:
    """K reference models' outputs on the same audit sets as the audited model's, for the attacks
    that ``needs_reference``: ``member[k, c]`` says whether model k trained on head class c;
    ``unlearned[k]`` is model k after the audited unlearning of the forget identities it trained on
    (None: not unlearned, i.e. it never held them, or the audited model is compared with models
    that were not unlearned)."""

    outputs: list[ModelOutputs]
    member: np.ndarray
    unlearned: list[ModelOutputs | None]

    def __post_init__(self) -> None:
        if len(self.outputs) != len(self.member) or len(self.unlearned) != len(self.outputs):
            raise ValueError("one membership row and one unlearned slot per reference model")

    @property
    def k(self) -> int:
        return len(self.outputs)

    def trained(self, name: str, k: int) -> np.ndarray:
        """Per image of audit set ``name``: did model k train on its identity."""
        return self.member[k][self.outputs[k].labels[name]]


@dataclass
class AttackResult:
    """One attack on one model. ``forget_vs_heldout`` is the forgetting measure (0.5 = as under
    retrain); score attacks also carry their calibration on members vs non-members (``None``
    otherwise). ``to_dict()`` is the report's JSON block."""

    forget_vs_heldout: Roc
    forget_score_mean: float
    forget_scores: np.ndarray = field(repr=False)
    """Membership score of each forget training image (for ``beyond_retrain``; not in the JSON)."""
    params: dict[str, Any] = field(default_factory=dict)
    """The attack's parameters that the report shows (RMIA's ``gamma``)."""
    nonmembers: list[str] | None = None
    members_vs_nonmembers: Roc | None = None
    threshold: float | None = None
    member_test_rate: float | None = None
    nonmember_rate: float | None = None
    forget_member_rate: float | None = None
    forget_heldout_member_rate: float | None = None

    @property
    def auc(self) -> float:
        """AUC of forget training vs forget held-out images."""
        return self.forget_vs_heldout.auc

    @property
    def tpr_at_fpr(self) -> dict[str, float]:
        return self.forget_vs_heldout.tpr_at_fpr

    @property
    def n_members(self) -> int:
        return self.forget_vs_heldout.n_members

    @property
    def n_nonmembers(self) -> int:
        return self.forget_vs_heldout.n_nonmembers

    def to_dict(self) -> dict[str, Any]:
        calibrated = {} if self.members_vs_nonmembers is None else {
            "nonmembers": list(self.nonmembers or []),
            "members_vs_nonmembers": self.members_vs_nonmembers.to_dict(),
            "threshold": self.threshold,
            "member_test_rate": self.member_test_rate,
            "nonmember_rate": self.nonmember_rate,
            "forget_member_rate": self.forget_member_rate,
            "forget_heldout_member_rate": self.forget_heldout_member_rate,
        }
        calibrated = {k: v for k, v in calibrated.items() if v is not None}  # an attack without a threshold has no rates
        return {**self.params, **calibrated, "forget_vs_heldout": self.forget_vs_heldout.to_dict(), "forget_score_mean": self.forget_score_mean}


@dataclass
class Calibration:
    """A score attack calibrated on members vs non-members: ``score(features)`` gives membership
    scores, member = score >= ``threshold``. A fitted attack is trained on half of the members and
    non-members and measured on the other half (``held_out`` and the rates); a fixed-score attack
    is measured on all of them, with the threshold at Youden's J."""

    nonmembers: list[str]
    held_out: Roc
    threshold: float
    member_rate: float
    nonmember_rate: float
    nonmember_scores: np.ndarray = field(repr=False)
    """Every non-member's score (fixed-score attacks; empty for fitted ones)."""
    score: Callable[[np.ndarray], np.ndarray] = field(repr=False)


class MembershipAttack(ABC):
    """Base class. Subclasses are dataclasses whose fields are ``param(...)`` parameters."""

    name: ClassVar[str]
    summary: ClassVar[str] = ""
    """One line: what the attack is (CLI listings)."""
    help: ClassVar[str] = ""
    """One plain sentence for the reports: what it measures and what would be alarming."""
    order: ClassVar[int] = 100
    """Position in reports, tables and plots (lower first; ties by name)."""
    needs_reference: ClassVar[bool] = False
    """True when ``run`` needs a reference model's outputs; the audit skips the attack, saying
    why, when there is none."""
    uses_unseen: ClassVar[bool] = False
    """True when unseen identities are non-members too (label-free attacks only: label-aware
    ones need a head class, and the embedding attack needs two images per identity)."""
    compares_with_retrain: ClassVar[bool] = True
    """True when the audit reports ``beyond_retrain`` (the forget scores under the audited model
    vs under the retrain model); false where the retrain model's scores are degenerate."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value, low, high = getattr(self, f.name), f.metadata.get("low"), f.metadata.get("high")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
                raise InvalidParameter(f"{self.name}: {f.name} must be a finite number, got {value!r}")
            if isinstance(f.default, int) and not float(value).is_integer():
                raise InvalidParameter(f"{self.name}: {f.name} must be a whole number, got {value!r}")
            if (low is not None and value < low) or (high is not None and value > high):
                bounds = f">= {low:g}" if high is None else f"<= {high:g}" if low is None else f"in [{low:g}, {high:g}]"
                raise InvalidParameter(f"{self.name}: {f.name} must be {bounds}, got {value!r}")

    @classmethod
    def parameters(cls) -> dict[str, dict[str, Any]]:
        """Parameter name -> ``{"default", "low", "high", "help"}``."""
        return {f.name: {"default": f.default, **f.metadata} for f in dataclasses.fields(cls)}  # type: ignore[arg-type]

    def get_params(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    @abstractmethod
    def run(self, out: ModelOutputs, reference: References | None = None, seed: int = 0) -> AttackResult:
        """The attack on ``out`` (forget vs forget held-out, plus whatever calibration it has)."""


class ScoreAttack(MembershipAttack):
    """An attack that scores each image from its own features: fitted (``estimator`` returns an
    attack model, member = P(member) >= 0.5) or fixed (``estimator`` returns None: the single
    feature is the score, thresholded at Youden's J)."""

    @abstractmethod
    def features(self, out: ModelOutputs) -> dict[str, np.ndarray]:
        """Attack input per audit set present in ``out`` (rows = images); a fixed-score attack has one column."""

    def estimator(self, seed: int) -> BaseEstimator | None:
        return None

    def calibrate(self, features: dict[str, np.ndarray], seed: int = 0) -> Calibration:
        """Calibrate on ``members`` vs non-members (``test``, and ``unseen`` when ``uses_unseen`` and present)."""
        nonmember_sets = ["test"] + (["unseen"] if self.uses_unseen and len(features.get("unseen", ())) else [])
        nonmembers = np.concatenate([features[s] for s in nonmember_sets])
        estimator = self.estimator(seed)
        if estimator is None:
            members, nonmembers = features["members"][:, 0], nonmembers[:, 0]
            threshold = youden_threshold(members, nonmembers)
            return Calibration(nonmember_sets, roc(members, nonmembers), threshold, float(np.mean(members >= threshold)),
                               float(np.mean(nonmembers >= threshold)), nonmembers, lambda x: x[:, 0])
        groups = np.concatenate([np.full(len(features[s]), k) for k, s in enumerate(nonmember_sets)])
        fitted = fit_attack(features["members"], nonmembers, estimator, groups, seed=seed)
        return Calibration(nonmember_sets, fitted.held_out, 0.5, fitted.member_test_rate, fitted.nonmember_rate,
                           np.empty(0), fitted.member_probability)

    def run(self, out: ModelOutputs, reference: References | None = None, seed: int = 0) -> AttackResult:
        features = self.features(out)
        cal = self.calibrate(features, seed)
        forget, heldout = cal.score(features["forget"]), cal.score(features["forget_heldout"])
        return AttackResult(
            forget_vs_heldout=roc(forget, heldout), forget_score_mean=float(np.mean(forget)), forget_scores=forget,
            nonmembers=cal.nonmembers, members_vs_nonmembers=cal.held_out, threshold=float(cal.threshold),
            member_test_rate=cal.member_rate, nonmember_rate=cal.nonmember_rate,
            forget_member_rate=float(np.mean(forget >= cal.threshold)), forget_heldout_member_rate=float(np.mean(heldout >= cal.threshold)))


_REGISTRY: dict[str, type[MembershipAttack]] = {}


def register_attack(cls: type[MembershipAttack]) -> type[MembershipAttack]:
    """Class decorator: makes ``cls`` available as ``create_attack(cls.name)``."""
    if cls.name in _REGISTRY:
        raise ValueError(f"attack {cls.name!r} registered twice")
    if not cls.help:
        raise ValueError(f"attack {cls.name!r} has no help sentence for the reports")
    _REGISTRY[cls.name] = cls
    return cls


def list_attacks() -> list[str]:
    """Registered attacks in report order."""
    return sorted(_REGISTRY, key=lambda name: (_REGISTRY[name].order, name))


def attack_class(name: str) -> type[MembershipAttack]:
    if name not in _REGISTRY:
        raise InvalidParameter(f"unknown attack {name!r}; available: {list_attacks()}")
    return _REGISTRY[name]


def create_attack(name: str, **params: Any) -> MembershipAttack:
    """Instantiate a registered attack; unknown or out-of-range parameters raise ``InvalidParameter``."""
    cls = attack_class(name)
    unknown = set(params) - set(cls.parameters())
    if unknown:
        raise InvalidParameter(f"{name} has no parameter(s) {sorted(unknown)}; it takes {sorted(cls.parameters()) or 'none'}")
    return cls(**params)
