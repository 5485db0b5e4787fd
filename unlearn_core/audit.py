"""The one audit core: a prepared workspace and some methods in, a typed ``AuditReport`` out.

The CLI (``audit``), the app's Audit tab and ``bench`` all call ``audit``; they only render its
report, so the same audit gives the same numbers everywhere (``tests/test_audit.py``).
``audit_models`` audits checkpoints made elsewhere (``backbones.external``) on the same split and
with the same metrics.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .backbones.external import ExternalEmbedder
from .data import Gallery, load_gallery
from .errors import InvalidParameter
from .features import GALLERY_PARTS, PARTS
from .methods import Budget, create_method, method_class
from .metrics import RetrievalRow, centroids, forget_top_k, index_states, protocol_metrics
from .model import FaceModel
from .pipeline import AlignedSplit, AuditConfig, Workspace, WorkspaceConfig, device_name, resolve_device, run_method
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
    index: dict[str, dict[str, float]] | None = None
    """``gallery_index_states``: deletion vs unlearning vs stale embeddings in the search index."""

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
                        budget_counts=method_class(config.method).budget_counts, find=result.get("find"),
                        index=gallery_index_states(ws, model))
        if privacy:
            progress(0.15 + 0.7 * (i + 1) / len(configs), f"privacy audit of {config.method}: reference models")
            started = time.perf_counter()
            references = unlearn_references(ws, config)
            progress(0.15 + 0.7 * (i + 1) / len(configs), f"privacy audit of {config.method}")
            run.privacy = privacy_audit(ws, model, references, k=config.references)
            run.timing_s["privacy"] = time.perf_counter() - started
        report.runs[config.method] = run
    return report


def gallery_index_states(ws: Workspace, model: FaceModel, k: int = 5) -> dict[str, dict[str, float]]:
    """``metrics.index_states`` for the forgotten identities: an index of the test gallery plus their
    training photos (``forget_train``: the rows the service stores of them, which a deletion
    removes); their held-out photos (``forget_test``, in the gallery) are the new photos queried."""
    parts = ("forget_train", *GALLERY_PARTS)
    labels = np.concatenate([ws.parts[p].labels.cpu().numpy() for p in parts])
    before, after = (np.concatenate([ws.embed(m, p) for p in parts]) for m in (ws.original, model))
    stored = np.arange(len(ws.parts.forget_train))
    checks = len(stored) + np.arange(len(ws.parts.forget_test))
    return index_states(before, after, labels, checks=checks, stored=stored, deleted=stored, not_held=checks, k=k)


def unlearn_references(ws: Workspace, config: AuditConfig) -> list[FaceModel | None]:
    """The workspace's ``config.references`` reference models, those that trained on the forget
    identities unlearned with ``config``'s method, parameters and iteration cap (None for the
    others), for the per-example attack. One-shot audits unlearn from the support sample;
    gallery-assisted ones from the forget identities' training photos (the find step belongs to
    the audited service, not to the references)."""
    pool = ws.reference_pool(config.references)
    method = create_method(config.method, **config.params)
    # a stopping rule that matches the retrain reference matches the workspace's (it never saw the forget identities either)
    reference = ws.retrain_model() if "reference" in method.stopping_needs() else None
    out: list[FaceModel | None] = []
    for model, request in zip(pool.models, pool.requests):
        if request is not None:
            request = dataclasses.replace(request, forget=None if config.one_shot else request.forget, reference=reference)
        out.append(None if request is None else method.unlearn(model, request, Budget(iterations=config.iterations), seed=ws.config.seed))
    return out


def run_audit(config: AuditConfig, progress: Progress | None = None, workspace: Workspace | None = None) -> dict[str, Any]:
    """The whole audit for one method, as the CLI's JSON report (``AuditReport.method_json``)."""
    started = time.perf_counter()
    ws = workspace or Workspace(config.workspace, progress)
    report = audit(ws, [config], privacy=config.privacy, progress=progress).method_json(config.method)
    report["timing_s"]["total"] = round(time.perf_counter() - started, 3)
    return report


# -- external models --------------------------------------------------------------------------
MODEL_ROLES = ("before", "after", "reference")
"""The checkpoints of ``audit_models``: the original, the one said to have forgotten, and
(optional) a reference retrained without the forgotten people."""
NO_MEMBERSHIP = ("Membership inference is not run: it needs to know which photos trained each model, and checkpoints do not say. "
                 "Retrieval, compactness and top-k are measured on the photos given.")


@dataclass
class ModelAudit:
    """``audit_models``' result: the JSON report and what the views need (photos, embeddings)."""

    report: dict[str, Any]
    images: AlignedSplit
    embeddings: dict[str, dict[str, np.ndarray]]
    """Role -> protocol part -> unit embeddings."""

    def top_k(self, role: str, n_queries: int = 3, k: int = 5) -> list[RetrievalRow]:
        """``metrics.forget_top_k`` under ``role``'s model (the photos as aligned for the first model)."""
        parts = GALLERY_PARTS
        split = self.images.split
        return forget_top_k({p: self.embeddings[role][p] for p in parts}, {p: self.images.labels(getattr(split, p)) for p in parts},
                            {p: getattr(split, p) for p in parts}, {p: self.images.part_chips(p) for p in parts},
                            [self.images.gallery.identities[int(c)] for c in self.images.classes], range(len(split.forget_ids)), n_queries, k)


def audit_models(models: Mapping[str, ExternalEmbedder], config: WorkspaceConfig, gallery: Gallery | None = None,
                 progress: Progress | None = None) -> ModelAudit:
    """Audit checkpoints made elsewhere: ``models`` maps ``"before"``, ``"after"`` and optionally
    ``"reference"`` to loaded embedders. ``config`` picks the gallery split exactly as ``audit``
    does (same seed, same people, same photos), so a model of this project exported and audited
    here gives ``audit``'s numbers; the training photos serve only as centroids.

    The report holds each model's ``protocol_metrics`` and ``findings``: plain sentences on what the
    figures show, and what they cannot show without a reference or without the training set."""
    progress = progress or (lambda f, m: None)
    missing = [role for role in ("before", "after") if role not in models]
    unknown = sorted(set(models) - set(MODEL_ROLES))
    if missing or unknown:
        raise InvalidParameter(f"audit_models needs 'before' and 'after' models (and optionally 'reference'); missing {missing}, unknown {unknown}")
    started = time.perf_counter()
    gallery = gallery or load_gallery(config.dataset)
    device = resolve_device(config.device)
    progress(0.05, f"aligning faces of {gallery.name}")
    first = models["before"].spec.inputs
    images = AlignedSplit.align(gallery, config.split(gallery), first, device)
    aligned = {(first.size, first.template.tobytes()): images}
    labels = {p: images.labels(getattr(images.split, p)) for p in PARTS}
    ids = {p: getattr(images.split, p) for p in PARTS}
    embeddings = {}
    for i, (role, model) in enumerate(models.items()):
        progress(0.2 + 0.7 * i / len(models), f"embedding the gallery with the {role} model")
        inputs = model.spec.inputs
        key = (inputs.size, inputs.template.tobytes())
        if key not in aligned:  # same photos and faces, aligned for this model's template
            aligned[key] = images.for_inputs(inputs, device)
        embeddings[role] = {p: model.embed(aligned[key].part_chips(p)) for p in PARTS}
    train = ("forget_train", "retain_train")
    before_centroids = centroids(np.concatenate([embeddings["before"][p] for p in train]), np.concatenate([labels[p] for p in train]),
                                 len(images.classes))
    metrics = {role: protocol_metrics(embeddings[role], labels, ids, len(images.classes), original_centroids=before_centroids) for role in models}
    report = {
        "dataset": gallery.name, "seed": config.seed, "forget_identities": [gallery.identities[int(c)] for c in images.split.forget_ids],
        "n_retain_identities": len(images.split.retain_ids), "n_images": {p: len(ids[p]) for p in PARTS},
        "n_without_face": images.n_without_face, "workspace": dataclasses.asdict(config),
        "models": {role: {"format": m.format, "embed_dim": m.embed_dim, "spec": m.spec.to_json()} for role, m in models.items()},
        **metrics, "findings": model_findings(metrics), "timing_s": {"total": round(time.perf_counter() - started, 3)},
    }
    return ModelAudit(report, images, embeddings)


def model_findings(metrics: Mapping[str, Metrics], tolerance: float = 0.05) -> list[str]:
    """What an external audit's figures say, one sentence each (``tolerance``: the mAP difference read as "about the same")."""
    before, after, reference = metrics["before"], metrics["after"], metrics.get("reference")
    f0, f1 = before["forget"]["mAP"], after["forget"]["mAP"]
    r0, r1 = before["retain"]["mAP"], after["retain"]["mAP"]
    lines = [f"Forgotten people: retrieval mAP {f0:.3f} -> {f1:.3f}, rank-1 {before['forget']['rank1']:.3f} -> {after['forget']['rank1']:.3f}, "
             f"compactness {before['forget']['cs']:.3f} -> {after['forget']['cs']:.3f}"
             + (" (the after model finds them less)." if f1 < f0 - tolerance else " (about the same: the after model still finds them)."),
             f"Retained people: mAP {r0:.3f} -> {r1:.3f}" + (" (about the same)." if abs(r1 - r0) <= tolerance else " (collateral damage)."
                                                            if r1 < r0 else " (higher).")]
    if reference is None:
        lines.append("Without a reference model (retrained without these people) the audit cannot tell forgetting from over-forgetting: "
                     "a face model that never saw a person usually still finds them (this tool's own retrain keeps LFW forget mAP near 0.98), "
                     "so a fall far below that is a visible trace of unlearning, not proof of it.")
    else:
        gap = f1 - reference["forget"]["mAP"]
        lines.append(f"Against the reference: forget mAP {f1:.3f} vs {reference['forget']['mAP']:.3f} ({gap:+.3f}); "
                     + ("the after model treats these people as a model that never saw them does." if abs(gap) <= tolerance else
                        "the after model finds them more than a model that never saw them: incomplete forgetting." if gap > 0 else
                        "the after model finds them less than a model that never saw them: the edit itself is visible (Streisand effect)."))
    lines.append(NO_MEMBERSHIP)
    return lines
