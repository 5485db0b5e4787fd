"""The one audit core: a prepared workspace and some methods in, a typed ``AuditReport`` out.

The CLI (``audit``), the app's Audit tab and ``bench`` all call ``audit``; they only render its
report, so the same audit gives the same numbers everywhere (``tests/test_audit.py``).
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

from .methods import Budget, create_method, method_class
from .model import FaceModel
from .pipeline import AuditConfig, Workspace, device_name, run_method
from .privacy import privacy_audit
from .types import Progress

Metrics = dict[str, dict[str, float]]


@dataclass
class MethodRun:
    """One method's result on a workspace."""

    method: str
    params: dict[str, Any]
    protocol: str
    iterations_run: int | None
    timing_s: dict[str, float]
    before: Metrics
    """The original model on the same photos as ``after`` (gallery-assisted: the selfies left out)."""
    after: Metrics
    model: FaceModel = field(repr=False)
    budget_counts: str | None = None
    """What the ``iterations`` cap counted for this method (None: closed form, no budget)."""
    find: dict[str, Any] | None = None
    privacy: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "model"}
        return {k: v for k, v in out.items() if v is not None or k in ("iterations_run", "budget_counts")}


@dataclass
class AuditReport:
    """A workspace's header, the original model's metrics, the optional retrain reference, and one
    ``MethodRun`` per method."""

    dataset: str
    backbone: str
    device: str
    train_from: str
    seed: int
    forget_identities: list[str]
    n_retain_identities: int
    n_images: dict[str, int]
    n_without_face: int
    workspace: dict[str, Any]
    """The workspace's configuration (``WorkspaceConfig``), to reproduce the audit."""
    workspace_timing_s: dict[str, float]
    before: Metrics
    runs: dict[str, MethodRun]
    retrain: Metrics | None = None

    def to_json(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("runs", "retrain")}
        out["runs"] = {name: run.to_json() for name, run in self.runs.items()}
        if self.retrain is not None:
            out["retrain"] = self.retrain
        return out

    def method_json(self, method: str) -> dict[str, Any]:
        """The single-method report of ``python -m unlearn_core audit --json`` (header, the run's
        fields at the top level, ``before``/``after`` and its timings)."""
        run = self.runs[method].to_json()
        header = {k: v for k, v in self.to_json().items() if k not in ("runs", "before", "retrain", "workspace_timing_s")}
        timing = {**{k: round(v, 3) for k, v in self.workspace_timing_s.items()},
                  **{k: round(v, 3) for k, v in run.pop("timing_s").items()}}
        return {"method": method, **header, **{k: v for k, v in run.items() if k not in ("method", "before", "after")},
                "one_shot": run["protocol"] == "one_shot", "timing_s": timing, "before": run["before"], "after": run["after"]}


def audit(ws: Workspace, configs: list[AuditConfig], with_retrain: bool = False, privacy: bool = False,
          progress: Progress | None = None) -> AuditReport:
    """Run each configured method on ``ws`` (left unchanged); ``with_retrain`` adds the retrain
    reference's metrics, ``privacy`` each run's privacy audit (membership inference against the
    retrain reference)."""
    progress = progress or (lambda f, m: None)
    report = AuditReport(
        dataset=ws.gallery.name, backbone=ws.backbone.name, device=device_name(ws.device),
        train_from=ws.backbone.stage_names[ws.start], seed=ws.config.seed, forget_identities=ws.identity_names(ws.forget_classes),
        n_retain_identities=len(ws.split.retain_ids), n_images={name: len(part) for name, part in ws.parts.items()},
        n_without_face=ws.n_without_face, workspace=dataclasses.asdict(ws.config), workspace_timing_s=dict(ws.timing), before=ws.baseline(), runs={})
    if with_retrain:
        progress(0.1, "training the retrain reference (cached afterwards)")
        report.retrain = ws.evaluate(ws.retrain_model(progress))
    for i, config in enumerate(configs):
        def step(f: float, message: str, i: int = i) -> None:
            progress(0.15 + 0.7 * (i + f) / len(configs), message)

        model, result = run_method(ws, config, step)
        run = MethodRun(method=config.method, params=result["params"], protocol=result["protocol"], iterations_run=result["iterations_run"],
                        timing_s=result["timing_s"], before=result.get("before", report.before), after=result["after"], model=model,
                        budget_counts=method_class(config.method).budget_counts, find=result.get("find"))
        if privacy:
            progress(0.15 + 0.7 * (i + 1) / len(configs), f"privacy audit of {config.method}: reference models")
            started = time.perf_counter()
            references = unlearn_references(ws, config)
            progress(0.15 + 0.7 * (i + 1) / len(configs), f"privacy audit of {config.method}")
            run.privacy = privacy_audit(ws, model, references, k=config.references)
            run.timing_s["privacy"] = time.perf_counter() - started
        report.runs[config.method] = run
    return report


def unlearn_references(ws: Workspace, config: AuditConfig) -> list[FaceModel | None]:
    """The workspace's ``config.references`` reference models, those that trained on the forget
    identities unlearned with ``config``'s method, parameters and iteration cap (None for the
    others), for the per-example attack. One-shot audits unlearn from the support sample;
    gallery-assisted ones from the forget identities' training photos (the find step belongs to
    the audited service, not to the references)."""
    pool = ws.reference_pool(config.references)
    out: list[FaceModel | None] = []
    for model, request in zip(pool.models, pool.requests):
        if request is not None and config.one_shot:
            request = dataclasses.replace(request, forget=None)
        out.append(None if request is None else
                   create_method(config.method, **config.params).unlearn(model, request, Budget(iterations=config.iterations), seed=ws.config.seed))
    return out


def run_audit(config: AuditConfig, progress: Progress | None = None, workspace: Workspace | None = None) -> dict[str, Any]:
    """The whole audit for one method, as the CLI's JSON report (``AuditReport.method_json``)."""
    started = time.perf_counter()
    ws = workspace or Workspace(config.workspace, progress)
    report = audit(ws, [config], privacy=config.privacy, progress=progress).method_json(config.method)
    report["timing_s"]["total"] = round(time.perf_counter() - started, 3)
    return report
