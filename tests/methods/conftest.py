"""Shared checks for unlearning-method tests (one place, used by every tests/methods/test_*.py).

Use the ``lfw_audit`` / ``olivetti_audit`` fixtures::

    def test_forgets(lfw_audit):
        run = lfw_audit.run("gradient_ascent", iterations=20, lr=1e-4)   # checks the contract too
        lfw_audit.assert_forgets(run, "centroid_acc", drop=0.5)
        lfw_audit.assert_retains(run, tolerance=0.05)

``run`` always checks the interface contract: the original model is bit-identical afterwards,
request parts the method does not declare in ``data_needs()`` never reach it (they are None in
the request it receives), progress is reported, and the returned model is a new object.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
import torch

from unlearn_core.errors import InvalidParameter
from unlearn_core.methods import Budget, UnlearningMethod, UnlearnRequest, create_method
from unlearn_core.model import FaceModel
from unlearn_core.pipeline import Workspace

REQUEST_PARTS = ("forget", "support", "retain", "test")


def state_snapshot(model: FaceModel) -> dict[str, torch.Tensor]:
    """A detached copy of every tensor in ``model.state_dict()``."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_state(model: FaceModel, snapshot: dict[str, torch.Tensor]) -> None:
    state = model.state_dict()
    assert state.keys() == snapshot.keys(), "the set of tensors in the model changed"
    changed = [k for k in state if not torch.equal(state[k], snapshot[k])]
    assert not changed, f"tensors changed: {changed[:5]}"


@dataclass
class MethodRun:
    """One unlearning run with what the method saw and the metrics before/after."""

    method: UnlearningMethod
    model: FaceModel
    received: UnlearnRequest
    before: dict[str, dict[str, float]]
    after: dict[str, dict[str, float]]
    progress: list[tuple[float, str]] = field(default_factory=list)

    def summary(self) -> str:
        keys = ("mAP", "cs", "centroid_acc", "head_acc")
        return " ".join(f"{p}.{k} {self.before[p][k]:.3f}->{self.after[p][k]:.3f}" for p in ("forget", "retain") for k in keys)


class MethodAudit:
    """Runs methods on one workspace and holds the common assertions."""

    def __init__(self, ws: Workspace):
        self.ws = ws
        self._before: dict[str, dict[str, float]] | None = None

    def evaluate(self, model: FaceModel) -> dict[str, dict[str, float]]:
        """``Workspace.evaluate``; its ``head_acc`` shows forgetting in the classification sense,
        where centroid accuracy may not move."""
        return self.ws.evaluate(model)

    @property
    def before(self) -> dict[str, dict[str, float]]:
        """Metrics of the original model (computed once)."""
        if self._before is None:
            self._before = self.evaluate(self.ws.original)
        return self._before

    def unlearn(self, name: str, iterations: int | None = None, one_shot: bool = False, seed: int = 0,
                **params: Any) -> tuple[UnlearningMethod, FaceModel, UnlearnRequest, list[tuple[float, str]]]:
        """Unlearn with the contract checks, without evaluating."""
        method = create_method(name, **params)
        original = self.ws.original
        snapshot = state_snapshot(original)
        seen: dict[str, UnlearnRequest] = {}
        inner = method._unlearn

        def spy(model, request, *args):
            seen["request"] = request
            return inner(model, request, *args)

        method._unlearn = spy  # instance attribute shadows the class method
        progress: list[tuple[float, str]] = []
        model = method.unlearn(original, self.ws.request(one_shot=one_shot, seed=self.ws.config.seed),
                               Budget(iterations=iterations), lambda f, m: progress.append((f, m)), seed=seed)
        assert_same_state(original, snapshot)
        assert model is not original
        received = seen["request"]
        for part in REQUEST_PARTS:
            if part not in method.data_needs():
                assert getattr(received, part) is None, f"{name} received '{part}' without declaring it"
        assert progress, f"{name} reported no progress"
        assert all(0.0 <= f <= 1.0 for f, _ in progress)
        return method, model, received, progress

    def run(self, name: str, iterations: int | None = None, one_shot: bool = False, seed: int = 0, **params: Any) -> MethodRun:
        """Unlearn (with the contract checks) and evaluate the result."""
        method, model, received, progress = self.unlearn(name, iterations, one_shot, seed, **params)
        return MethodRun(method, model, received, self.before, self.evaluate(model), progress)

    def assert_deterministic(self, name: str, iterations: int = 2, one_shot: bool = False, **params: Any) -> None:
        """Same seed, same model, bit for bit."""
        first = self.unlearn(name, iterations, one_shot, seed=3, **params)[1]
        second = self.unlearn(name, iterations, one_shot, seed=3, **params)[1]
        assert_same_state(second, state_snapshot(first))

    @staticmethod
    def assert_same_model(model: FaceModel, other: FaceModel) -> None:
        """Bit-identical state dicts."""
        assert_same_state(model, state_snapshot(other))

    @staticmethod
    def assert_rejects(name: str, **bad: Any) -> None:
        with pytest.raises(InvalidParameter):
            create_method(name, **bad)

    @staticmethod
    def assert_forgets(run: MethodRun, metric: str = "centroid_acc", drop: float = 0.2, part: str = "forget") -> None:
        """``metric`` on the forget identities fell by at least ``drop`` (absolute)."""
        before, after = run.before[part][metric], run.after[part][metric]
        assert after <= before - drop, f"{run.method.name}: {part} {metric} {before:.3f} -> {after:.3f}, expected a drop >= {drop}"

    @staticmethod
    def assert_retains(run: MethodRun, tolerance: float = 0.05, metrics: tuple[str, ...] = ("mAP", "centroid_acc")) -> None:
        """Retain ``metrics`` fell by at most ``tolerance`` (absolute)."""
        for metric in metrics:
            before, after = run.before["retain"][metric], run.after["retain"][metric]
            assert after >= before - tolerance, (
                f"{run.method.name}: retain {metric} {before:.3f} -> {after:.3f}, tolerance {tolerance}")

    @staticmethod
    def assert_close(run: MethodRun, part: str, metric: str, tolerance: float) -> None:
        """``metric`` moved by at most ``tolerance`` in either direction."""
        before, after = run.before[part][metric], run.after[part][metric]
        assert abs(after - before) <= tolerance, f"{run.method.name}: {part} {metric} {before:.3f} -> {after:.3f}"


@pytest.fixture(scope="session")
def lfw_audit(lfw_workspace: Workspace) -> MethodAudit:
    return MethodAudit(lfw_workspace)


@pytest.fixture(scope="session")
def olivetti_audit(olivetti_workspace: Workspace) -> MethodAudit:
    return MethodAudit(olivetti_workspace)
