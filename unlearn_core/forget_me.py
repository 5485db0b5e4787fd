"""The "forget me" flow: a visitor's portrait in, a model that no longer clusters their face out.

Steps: align the portrait (and any extra photos of the same person), enrol the visitor in a
per-session copy of the workspace's original model as a new identity (its head row is the mean
embedding of their photos), run an unlearning method with the portrait as the one-shot support
sample, and measure before/after: top-k retrieval of the visitor's photos against the
workspace's gallery, the visitor's cluster compactness (CS, S0 Eq. 10) and the retain-side cost.

Choices where the papers are silent:
- The request holds only the portrait as support (``forget=None``); methods make their own
  augmented views from one image per identity (e.g. dispersion, S0 §6).
- Extra photos are evaluation data only ("can the model still find me?"), never training data.
  Without extra photos the check uses ``check_views`` augmented views of the portrait drawn
  with a different seed from the method's; this is weaker (the views stem from the image the
  method saw) and the result says so.
- Everything stays in memory: uploads are decoded from bytes, never written to disk or cached.
"""
from __future__ import annotations

import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch

from .errors import InvalidParameter, UnlearnError
from .faces import AlignedFace, ImageSource, align_portrait
from .features import FaceData, augment_chips
from .methods import Budget, UnlearnRequest, create_method
from .metrics import compactness, retrieval
from .model import FaceModel
from .pipeline import Workspace, device_name
from .viz import RetrievalRow, top_k

Progress = Callable[[float, str], None]
VISITOR = "you"
MAX_EXTRA_PHOTOS = 10
GALLERY_PARTS = ("forget_test", "retain_test", "distractors")


@dataclass
class ForgetMeConfig:
    """What the visitor (or the app's defaults) chose; validated on construction."""

    method: str = "dispersion"
    params: dict[str, Any] = field(default_factory=dict)
    iterations: int = 60
    take_largest_face: bool = False
    k: int = 5
    check_views: int = 6
    seed: int = 0

    def __post_init__(self) -> None:
        _check_int("iterations", self.iterations, 1, 5000)
        _check_int("k", self.k, 1, 20)
        _check_int("check_views", self.check_views, 2, 32)
        _check_int("seed", self.seed, 0, 2**31 - 1)
        create_method(self.method, **self.params)  # unknown method / out-of-range parameters raise here


def _check_int(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer() or not low <= value <= high:
        raise InvalidParameter(f"{name} must be a whole number between {low} and {high}, got {value!r}")


@dataclass
class ForgetMeResult:
    portrait: AlignedFace
    notes: list[str]
    one_shot_check: bool
    retrieval_before: list[RetrievalRow]
    retrieval_after: list[RetrievalRow]
    visitor: dict[str, dict[str, float]]
    """``{"before": {...}, "after": {...}}`` with cs, mAP, rank1 of the visitor's photos."""
    retain: dict[str, dict[str, float]]
    mia: dict[str, Any] | None
    timing_s: dict[str, float]
    model: FaceModel
    report: dict[str, Any]


def align_visitor(portrait: ImageSource, extras: Sequence[ImageSource], ws: Workspace,
                  take_largest: bool) -> tuple[AlignedFace, list[np.ndarray], list[str]]:
    """The portrait's aligned face (errors propagate) and the usable extra photos' chips (bad
    extras are skipped with a note, so one blurry photo does not stop the flow)."""
    if len(extras) > MAX_EXTRA_PHOTOS:
        raise InvalidParameter(f"at most {MAX_EXTRA_PHOTOS} extra photos, got {len(extras)}")
    size, template = ws.backbone.chip_size, ws.backbone.template
    notes = []
    face = align_portrait(portrait, template, size, allow_multiple=take_largest)
    if face.n_faces > 1:
        notes.append(f"The portrait shows {face.n_faces} faces; the largest one was used.")
    chips = []
    for i, extra in enumerate(extras, 1):
        try:
            aligned = align_portrait(extra, template, size, allow_multiple=True)
        except UnlearnError as err:
            notes.append(f"Extra photo {i} was skipped: {err}")
            continue
        if aligned.n_faces > 1:
            notes.append(f"Extra photo {i} shows {aligned.n_faces} faces; the largest one was used.")
        chips.append(aligned.chip)
    return face, chips, notes


_BASELINES: "weakref.WeakKeyDictionary[Workspace, dict]" = weakref.WeakKeyDictionary()


def baseline(ws: Workspace) -> dict[str, dict[str, float]]:
    """``ws.evaluate(ws.original)``, computed once per workspace."""
    if ws not in _BASELINES:
        _BASELINES[ws] = ws.evaluate(ws.original)
    return _BASELINES[ws]


def enrol(ws: Workspace, support: FaceData) -> FaceModel:
    """A per-session copy of the original model with the visitor as one more identity: its head
    row is their mean raw embedding (as the original head was initialised from class means)."""
    model = ws.original.clone()
    with torch.no_grad():
        centre = model(support.inputs).mean(0, keepdim=True)
        if model.head is not None:
            model.head.weight = torch.nn.Parameter(torch.cat([model.head.weight, centre.to(model.head.weight)]))
    return model.eval()


def forget_me(ws: Workspace, portrait: ImageSource, extras: Sequence[ImageSource] = (), config: ForgetMeConfig | None = None,
              progress: Progress | None = None) -> ForgetMeResult:
    """Run the whole flow on ``ws`` (left unchanged) for one visitor; nothing touches the disk."""
    config = config or ForgetMeConfig()
    progress = progress or (lambda f, m: None)
    timing: dict[str, float] = {}
    started = time.perf_counter()
    progress(0.02, "aligning your photos")
    face, extra_chips, notes = align_visitor(portrait, extras, ws, config.take_largest_face)
    one_shot_check = not extra_chips
    visitor_label = len(ws.classes)
    if one_shot_check:
        generator = torch.Generator().manual_seed(config.seed + 7919)
        views = augment_chips(np.repeat(face.chip[None], config.check_views, 0), generator)
        check_chips = views.round().clamp(0, 255).to(torch.uint8).cpu().numpy()
        notes.append("Only one photo was given, so the check uses augmented views of it; this is weaker "
                     "than testing on other photos of you (add a few for a stronger check).")
    else:
        check_chips = np.stack(extra_chips)
    visitor_chips = np.concatenate([face.chip[None], check_chips])
    visitor = ws.encoder.face_data(visitor_chips, np.full(len(visitor_chips), visitor_label),
                                   -1 - np.arange(len(visitor_chips)))  # negative ids: not gallery images
    support = visitor.subset([0])
    timing["align"] = time.perf_counter() - started

    progress(0.1, "enrolling you in a private copy of the model")
    model_before = enrol(ws, visitor)
    request = UnlearnRequest(forget_classes=[visitor_label], forget=None, support=support, retain=ws.data["retain_train"],
                             test=ws.data["retain_test"], encode=lambda chips: ws.encoder(chips), pretrained=ws.backbone)
    method = create_method(config.method, **config.params)
    started = time.perf_counter()
    model_after = method.unlearn(model_before, request, Budget(iterations=config.iterations),
                                 lambda f, m: progress(0.15 + 0.7 * f, m), seed=config.seed)
    timing["unlearn"] = time.perf_counter() - started

    progress(0.88, "measuring before and after")
    started = time.perf_counter()
    names = ws.identity_names(range(len(ws.classes))) + [VISITOR]
    evaluation = {name: _visitor_view(ws, model, visitor, names, config.k) for name, model in
                  (("before", model_before), ("after", model_after))}
    retain = {"before": baseline(ws)["retain"], "after": ws.evaluate(model_after)["retain"]}
    mia = membership_verdict(ws, {"before": model_before, "after": model_after}, visitor)
    timing["evaluate"] = time.perf_counter() - started
    timing = {k: round(v, 3) for k, v in timing.items()}
    visitor_metrics = {name: e[1] for name, e in evaluation.items()}
    report = {
        "flow": "forget_me", "method": config.method, "params": method.get_params(), "iterations": config.iterations,
        "iterations_run": getattr(method, "n_iter_", None), "seed": config.seed, "device": device_name(ws.device),
        "workspace": {"dataset": ws.gallery.name, "n_retain_identities": len(ws.split.retain_ids),
                      "train_from": ws.backbone.stage_names[ws.start]},
        "n_faces_in_portrait": face.n_faces, "n_extra_photos": len(extra_chips), "one_shot_check": one_shot_check,
        "visitor": visitor_metrics, "retain": retain, "privacy": mia, "timing_s": timing, "notes": notes,
    }
    progress(1.0, "done")
    return ForgetMeResult(face, notes, one_shot_check, evaluation["before"][0], evaluation["after"][0], visitor_metrics,
                          retain, mia, timing, model_after, report)


@torch.no_grad()
def _visitor_view(ws: Workspace, model: FaceModel, visitor: FaceData, names: list[str],
                  k: int) -> tuple[list[RetrievalRow], dict[str, float]]:
    """Top-k rows for the visitor's check photos and their metrics, against the workspace's
    test gallery plus all of the visitor's photos (the portrait included)."""
    v_emb = model.embed(visitor.inputs).cpu().numpy()
    v_lab, v_ids = visitor.labels.cpu().numpy(), visitor.image_ids
    g_emb = np.concatenate([ws.embed(model, p) for p in GALLERY_PARTS] + [v_emb])
    g_lab = np.concatenate([ws.data[p].labels.cpu().numpy() for p in GALLERY_PARTS] + [v_lab])
    g_ids = np.concatenate([ws.data[p].image_ids for p in GALLERY_PARTS] + [v_ids])
    g_chips = np.concatenate([ws.data[p].chips for p in GALLERY_PARTS] + [visitor.chips])
    queries = slice(1, None)  # the check photos; the portrait is what the method saw
    rows = top_k(v_emb[queries], v_lab[queries], v_ids[queries], g_emb, g_lab, g_ids, visitor.chips[queries], g_chips, names, k)
    metrics = retrieval(v_emb[queries], v_lab[queries], g_emb, g_lab, v_ids[queries], g_ids)
    metrics["cs"] = compactness(v_emb, v_lab)
    return rows[:4], metrics


@torch.no_grad()
def membership_verdict(ws: Workspace, models: dict[str, FaceModel], visitor: FaceData) -> dict[str, Any]:
    """The embedding-space membership attack of ``unlearn_core.privacy`` applied to the visitor.

    Score = leave-one-out centroid cosine (``attacks.centroid_similarity``): how tightly a
    person's photos cluster. The member threshold is Youden's J on the workspace's members
    (retain training images) vs non-members (their held-out images) under the same model. The
    visitor is "member-like" when the mean score of their photos reaches it; a score below the
    5th percentile of the non-members' is flagged (Streisand: the face now stands out as
    removed). Chosen here because the visitor has no head class nor retrain reference, which
    the other attacks need.
    """
    from . import attacks

    out: dict[str, Any] = {"attack": "embedding (leave-one-out centroid cosine)"}
    for when, model in models.items():
        emb = np.concatenate([ws.embed(model, p) for p in ("retain_train", "retain_test")])
        lab = np.concatenate([ws.data[p].labels.cpu().numpy() for p in ("retain_train", "retain_test")])
        scores = np.nan_to_num(attacks.centroid_similarity(emb, lab), nan=0.0)
        members, nonmembers = scores[: len(ws.data["retain_train"])], scores[len(ws.data["retain_train"]):]
        threshold = attacks.youden_threshold(members, nonmembers)
        score = float(np.nanmean(attacks.centroid_similarity(model.embed(visitor.inputs).cpu().numpy(), visitor.labels.cpu().numpy())))
        out[when] = {"score": score, "threshold": threshold, "member_like": bool(score >= threshold),
                     "nonmember_p05": float(np.percentile(nonmembers, 5)), "member_rate": float(np.mean(members >= threshold)),
                     "nonmember_rate": float(np.mean(nonmembers >= threshold))}
    after = out["after"]
    out["streisand"] = bool(after["score"] < after["nonmember_p05"])
    out["verdict"] = ("your photos still cluster like a training identity (member-like): the model has not forgotten you"
                      if after["member_like"] else "your photos no longer cluster like a training identity (not member-like)")
    if out["streisand"]:
        out["verdict"] += "; but they now cluster less than 95% of ordinary held-out faces, which itself shows that something was removed"
    return out
