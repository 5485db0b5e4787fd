"""The "forget me" flow: a visitor's portrait in, a model that no longer finds their face out.

Gallery-assisted by default, as a real service would do it: the service already holds photos of
the person (``enrolled``: in the demo, photos the visitor gives stand in for photos that were
scraped; they join the training data and the retrieval gallery of a private copy of the model, as
one more identity whose head row is their mean embedding). The portrait is the key that finds
them (``find.py``: a two-pass verification at a threshold calibrated on retained identities); the
portrait and what it found are forgotten (``projection`` by default) and the found rows are
deleted from the gallery. With nothing found the same method runs one-shot on the portrait alone.

The result is checked on ``check`` photos: never enrolled, never searched, never given to the
method; they stay in the evaluation gallery, so ``visitor.after`` measures the model, and
``visitor.after_deletion`` what deleting the found rows adds. Without check photos the check uses
``check_views`` augmented views of the portrait (weaker: they stem from the photo the method saw;
the report says so).

Everything stays in memory: uploads are decoded from bytes, never written to disk or cached.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .attacks import ModelOutputs, create_attack
from .errors import InvalidParameter, UnlearnError, whole_number
from .faces import AlignedFace, ImageSource, align_portrait
from .features import GALLERY_PARTS, FaceData, augment_chips
from .find import FindOutcome
from .methods import Budget, UnlearnRequest, create_method, preset_params
from .metrics import RetrievalRow, compactness, index_states, retrieval, top_k, unit_rows
from .model import FaceModel
from .pipeline import RECOMMENDED, Workspace, concat_face_data, device_name
from .types import Progress

VISITOR = "you"
MAX_EXTRA_PHOTOS = 10
FORGET_ME_PRESET = "one-person"
"""The recommended method's preset for one person per request (``methods/projection.py``)."""
VERDICT_ATTACK = "embedding"
"""The registered attack behind ``membership_verdict``: it needs no reference model and no head class."""



@dataclass
class ForgetMeConfig:
    """What the visitor (or the app's defaults) chose; validated on construction."""

    method: str = RECOMMENDED["gallery_assisted"]
    params: dict[str, Any] = field(default_factory=lambda: preset_params(RECOMMENDED["gallery_assisted"], FORGET_ME_PRESET))
    iterations: int = 60
    take_main_face: bool = False
    k: int = 5
    check_views: int = 6
    seed: int = 0

    def __post_init__(self) -> None:
        whole_number("iterations", self.iterations, 1, 5000)
        whole_number("k", self.k, 1, 20)
        whole_number("check_views", self.check_views, 2, 32)
        whole_number("seed", self.seed, 0, 2**31 - 1)
        create_method(self.method, **self.params)  # unknown method / out-of-range parameters raise here


@dataclass
class ForgetMeResult:
    portrait: AlignedFace
    notes: list[str]
    one_shot_check: bool
    retrieval_before: list[RetrievalRow]
    retrieval_after: list[RetrievalRow]
    visitor: dict[str, dict[str, float]]
    """``{"before", "after", "after_deletion"}`` -> cs, mAP, rank1 of the visitor's check photos."""
    index: dict[str, dict[str, float]]
    """``visitor_index_states``: the search index in each state of forgetting (``metrics.INDEX_STATES``)."""
    found_chips: np.ndarray
    """The photos the find step found (shown to the visitor: "we found these N photos of you")."""
    retain: dict[str, dict[str, float]]
    mia: dict[str, Any] | None
    timing_s: dict[str, float]
    model: FaceModel
    report: dict[str, Any]


def align_visitor(portrait: ImageSource, groups: dict[str, Sequence[ImageSource]], ws: Workspace,
                  take_main: bool) -> tuple[AlignedFace, dict[str, list[np.ndarray]], list[str]]:
    """The portrait's aligned face (errors propagate) and, per group of extra photos ("enrolled",
    "check"), the usable photos' chips (bad ones are skipped with a note, so one blurry photo does
    not stop the flow)."""
    n_extra = sum(len(g) for g in groups.values())
    if n_extra > MAX_EXTRA_PHOTOS:
        raise InvalidParameter(f"at most {MAX_EXTRA_PHOTOS} extra photos, got {n_extra}")
    size, template = ws.backbone.chip_size, ws.backbone.template
    notes = []
    face = align_portrait(portrait, template, size, allow_multiple=take_main)
    if face.n_faces > 1:
        notes.append(f"The portrait shows {face.n_faces} faces; the main one (large and central) was used.")
    chips: dict[str, list[np.ndarray]] = {}
    for group, photos in groups.items():
        chips[group] = []
        for i, photo in enumerate(photos, 1):
            try:
                aligned = align_portrait(photo, template, size, allow_multiple=True)
            except UnlearnError as err:
                notes.append(f"{group.capitalize()} photo {i} was skipped: {err}")
                continue
            if aligned.n_faces > 1:
                notes.append(f"{group.capitalize()} photo {i} shows {aligned.n_faces} faces; the main one (large and central) was used.")
            chips[group].append(aligned.chip)
    return face, chips, notes


def enrol(ws: Workspace, support: FaceData) -> FaceModel:
    """A per-session copy of the original model with the visitor as one more identity: its head
    row is their mean raw embedding (as the original head was initialised from class means)."""
    model = ws.original.clone()
    with torch.no_grad():
        centre = model(support.inputs).mean(0, keepdim=True)
        if model.head is not None:
            model.head.weight = torch.nn.Parameter(torch.cat([model.head.weight, centre.to(model.head.weight)]))
    return model.eval()


def forget_me(ws: Workspace, portrait: ImageSource, enrolled: Sequence[ImageSource] = (), check: Sequence[ImageSource] = (),
              config: ForgetMeConfig | None = None, progress: Progress | None = None) -> ForgetMeResult:
    """Run the whole flow on ``ws`` (left unchanged) for one visitor; nothing touches the disk."""
    config = config or ForgetMeConfig()
    progress = progress or (lambda f, m: None)
    timing: dict[str, float] = {}
    started = time.perf_counter()
    progress(0.02, "aligning your photos")
    face, chips, notes = align_visitor(portrait, {"enrolled": enrolled, "check": check}, ws, config.take_main_face)
    one_shot_check = not chips["check"]
    label = len(ws.classes)
    if one_shot_check:
        generator = torch.Generator().manual_seed(config.seed + 7919)
        views = augment_chips(np.repeat(face.chip[None], config.check_views, 0), generator)
        check_chips = views.round().clamp(0, 255).to(torch.uint8).cpu().numpy()
        notes.append("No check photos were given, so the check uses augmented views of your portrait; this is weaker "
                     "than testing on other photos of you (add a few for a stronger check).")
    else:
        check_chips = np.stack(chips["check"])

    def encode(photos: np.ndarray, first_id: int) -> FaceData:  # negative ids: not gallery images
        photos = photos.reshape(-1, *face.chip.shape)
        return ws.encoder.face_data(photos, np.full(len(photos), label), first_id - np.arange(len(photos)))

    selfie = encode(face.chip[None], -1)
    held = encode(np.stack(chips["enrolled"]), -2) if chips["enrolled"] else selfie.subset([])
    checks = encode(check_chips, -2 - len(held))
    timing["align"] = time.perf_counter() - started

    progress(0.1, "enrolling you in a private copy of the model")
    model_before = enrol(ws, held if len(held) else selfie)
    started = time.perf_counter()
    progress(0.15, "finding your photos among the ones the service holds")
    finder = ws.finder()
    selfie_emb = ws.embed_data(model_before, selfie)
    held_emb = ws.embed_data(model_before, held)
    templates, classes = ws.identity_templates()
    if len(held):  # the visitor's enrolled photos form one more labelled identity
        templates = np.concatenate([templates, unit_rows(held_emb.mean(0, keepdims=True))])
        classes = np.append(classes, label)
    trained = [ws.parts.forget_train, ws.parts.retain_train, held]
    trained_labels = np.concatenate([d.labels.cpu().numpy() for d in trained])
    trained_emb = np.concatenate([ws.embed(ws.original, "forget_train"), ws.embed(ws.original, "retain_train"),
                                  held_emb])
    matched = finder.match_labels(selfie_emb, templates, classes, trained_emb, trained_labels)
    trained_rows = np.flatnonzero(np.isin(trained_labels, matched))
    gallery = ws.parts.gallery()
    gallery_rows = finder.find(selfie_emb, np.concatenate([ws.embed(ws.original, p) for p in GALLERY_PARTS]))
    found_data = concat_face_data([take_rows(trained, trained_rows), take_rows(gallery, gallery_rows)])
    is_visitor = found_data.image_ids < 0
    find = FindOutcome(len(found_data), int(is_visitor.sum()), len(held))
    forget = concat_face_data([selfie, found_data])
    forget = dataclasses.replace(forget, labels=torch.full_like(forget.labels, label))
    timing["find"] = time.perf_counter() - started
    if len(found_data) == 0:
        notes.append("None of the photos the service holds matched your portrait, so the method forgets you from the portrait alone "
                     "(one-shot), which is weaker.")
    request = UnlearnRequest(forget_classes=[label], forget=forget, retain=ws.parts.retain_train, test=ws.parts.retain_test,
                             encode=lambda x: ws.encoder(x), pretrained=ws.backbone)
    method = create_method(config.method, **config.params)
    started = time.perf_counter()
    model_after = method.unlearn(model_before, request, Budget(iterations=config.iterations),
                                 lambda f, m: progress(0.2 + 0.65 * f, m), seed=config.seed)
    timing["unlearn"] = time.perf_counter() - started

    progress(0.88, "measuring before and after")
    started = time.perf_counter()
    names = [*ws.identity_names(range(len(ws.classes))), VISITOR]
    visitor_photos = concat_face_data([selfie, held, checks])
    deleted = set(found_data.image_ids.tolist())
    # enrolling adds a head row only, so the private copy embeds exactly as the original (cached)
    embedded = {"before": ws.embeddings(ws.original), "after": ws.embeddings(model_after)}
    models = {"before": model_before, "after": model_after}
    visitor_emb = {when: ws.embed_data(model, visitor_photos) for when, model in models.items()}
    views = {"before": ("before", set()), "after": ("after", set()), "after_deletion": ("after", deleted)}
    evaluation = {name: _visitor_view(ws, embedded[when], visitor_emb[when], visitor_photos, len(checks), names, config.k, drop)
                  for name, (when, drop) in views.items()}
    states = visitor_index_states(ws, embedded, visitor_emb, visitor_photos, len(held), len(checks), deleted, config.k)
    retain = {"before": ws.baseline()["retain"], "after": ws.evaluate(model_after, embeddings=embedded["after"])["retain"]}
    mia = membership_verdict(ws, models, embedded, concat_face_data([selfie, checks]))
    known = [int(c) for c in matched if c != label]
    gallery_identities = {name: _identity_check(ws, embedded, c, selfie_emb[0], config.k)
                          for name, c in zip(ws.identity_names(known), known)}
    timing["evaluate"] = time.perf_counter() - started
    timing["request"] = timing["find"] + timing["unlearn"]
    timing = {k: round(v, 3) for k, v in timing.items()}
    visitor_metrics = {name: e[1] for name, e in evaluation.items()}
    report = {
        "flow": "forget_me", "protocol": "gallery_assisted" if len(found_data) else "one_shot", "method": config.method,
        "params": method.get_params(), "iterations": config.iterations, "iterations_run": getattr(method, "n_iter_", None),
        "seed": config.seed, "device": device_name(ws.device),
        "workspace": {"dataset": ws.gallery.name, "n_retain_identities": len(ws.split.retain_ids),
                      "train_from": ws.backbone.stage_names[ws.start]},
        "n_faces_in_portrait": face.n_faces, "n_enrolled": len(held), "n_check": len(chips["check"]), "one_shot_check": one_shot_check,
        "find": {**find.to_json(), "n_other_people": int((~is_visitor).sum()), "n_gallery_rows": len(gallery_rows),
                 "thresholds": finder.to_json()},
        "visitor": visitor_metrics, "index": states, "gallery_identities": gallery_identities, "retain": retain, "privacy": mia,
        "timing_s": timing, "notes": notes,
    }
    progress(1.0, "done")
    return ForgetMeResult(face, notes, one_shot_check, evaluation["before"][0], evaluation["after"][0], visitor_metrics, states,
                          found_data.chips, retain, mia, timing, model_after, report)


def visitor_index_states(ws: Workspace, embedded: dict[str, dict[str, np.ndarray]], visitor_emb: dict[str, np.ndarray],
                         visitor: FaceData, n_held: int, n_check: int, deleted: set[int], k: int) -> dict[str, dict[str, float]]:
    """``metrics.index_states`` of the index holding the workspace's test gallery plus the visitor's
    photos (``visitor`` = selfie, ``n_held`` stored photos, ``n_check`` check photos): the check
    photos are the queries, the stored photos what the service keeps, the found rows (``deleted``,
    image ids) what "forget me" deletes."""
    labels = np.concatenate([ws.parts[p].labels.cpu().numpy() for p in GALLERY_PARTS] + [visitor.labels.cpu().numpy()])
    image_ids = np.concatenate([ws.parts[p].image_ids for p in GALLERY_PARTS] + [visitor.image_ids])
    vectors = {when: np.concatenate([embedded[when][p] for p in GALLERY_PARTS] + [visitor_emb[when]]) for when in ("before", "after")}
    first = len(labels) - len(visitor)  # the visitor's rows: selfie, stored, checks (uploads have negative image ids)
    stored = first + np.arange(1, 1 + n_held)
    return index_states(vectors["before"], vectors["after"], labels, checks=np.arange(len(labels) - n_check, len(labels)), stored=stored,
                        deleted=np.flatnonzero(np.isin(image_ids, list(deleted))), not_held=np.setdiff1d(np.arange(first, len(labels)), stored), k=k)


def split_extra_photos(photos: Sequence[ImageSource]) -> tuple[list[ImageSource], list[ImageSource]]:
    """The app's extra photos as ``(enrolled, check)``: the first half stands in for photos a service
    already holds of the visitor (found and forgotten), the rest only tests the result, so the
    check always runs on photos the method never saw. One extra photo is a check photo."""
    half = len(photos) // 2
    return list(photos[:half]), list(photos[half:])


def _identity_check(ws: Workspace, embedded: dict[str, dict[str, np.ndarray]], label: int, portrait: np.ndarray,
                    k: int) -> dict[str, dict[str, float]]:
    """When the portrait matched an identity the service trained on: that identity's held-out
    gallery photos as queries against the gallery (the portrait's own copy, cosine >= 0.999 under
    the original, left out), before and after. ``clean_top_k``: the share of queries whose top-k
    holds none of the person's other photos."""
    labels = np.concatenate([ws.parts[p].labels.cpu().numpy() for p in GALLERY_PARTS])
    ids = np.concatenate([ws.parts[p].image_ids for p in GALLERY_PARTS])
    twin = np.concatenate([embedded["before"][p] for p in GALLERY_PARTS]) @ portrait >= 0.999
    out = {}
    for when, emb in embedded.items():
        gallery = np.concatenate([emb[p] for p in GALLERY_PARTS])[~twin]
        g_labels, g_ids = labels[~twin], ids[~twin]
        queries = g_labels == label
        metrics = retrieval(gallery[queries], g_labels[queries], gallery, g_labels, g_ids[queries], g_ids, ranks=(1, k))
        out[when] = {"mAP": metrics["mAP"], "rank1": metrics["rank1"], f"clean_top{k}": 1.0 - metrics[f"rank{k}"],
                     "n_queries": metrics["n_queries"]}
    return out


def take_rows(parts: list[FaceData], rows: np.ndarray) -> FaceData:
    """Rows of the concatenation of ``parts`` (without concatenating them whole)."""
    offsets = np.cumsum([0] + [len(d) for d in parts])
    return concat_face_data([d.subset(rows[(rows >= a) & (rows < b)] - a) for d, a, b in zip(parts, offsets[:-1], offsets[1:])])


def _visitor_view(ws: Workspace, embedded: dict[str, np.ndarray], v_emb: np.ndarray, visitor: FaceData, n_check: int,
                  names: list[str], k: int, deleted: set[int]) -> tuple[list[RetrievalRow], dict[str, float]]:
    """Top-k rows for the visitor's check photos (the last ``n_check`` of ``visitor``, embedded
    ``v_emb`` under the same model as ``embedded``) and their metrics, against the workspace's test
    gallery plus all of the visitor's photos, less the ``deleted`` image ids."""
    g_emb = np.concatenate([embedded[p] for p in GALLERY_PARTS] + [v_emb])
    g_lab = np.concatenate([ws.parts[p].labels.cpu().numpy() for p in GALLERY_PARTS] + [visitor.labels.cpu().numpy()])
    g_ids = np.concatenate([ws.parts[p].image_ids for p in GALLERY_PARTS] + [visitor.image_ids])
    g_chips = np.concatenate([ws.parts[p].chips for p in GALLERY_PARTS] + [visitor.chips])
    keep = ~np.isin(g_ids, list(deleted))
    g_emb, g_lab, g_ids, g_chips = g_emb[keep], g_lab[keep], g_ids[keep], g_chips[keep]
    v_lab = visitor.labels.cpu().numpy()
    queries = slice(len(visitor) - n_check, None)
    q_ids = visitor.image_ids[queries]
    rows = top_k(v_emb[queries], v_lab[queries], q_ids, g_emb, g_lab, g_ids, visitor.chips[queries], g_chips, names, k)
    metrics = retrieval(v_emb[queries], v_lab[queries], g_emb, g_lab, q_ids, g_ids)
    metrics["cs"] = compactness(v_emb[queries], v_lab[queries])
    return rows[:4], metrics


@torch.no_grad()
def membership_verdict(ws: Workspace, models: dict[str, FaceModel], embedded: dict[str, dict[str, np.ndarray]],
                       visitor: FaceData) -> dict[str, Any]:
    """The privacy audit's embedding-space attack (``VERDICT_ATTACK``, from the attack registry)
    applied to the visitor.

    Score = leave-one-out centroid cosine: how tightly a person's photos cluster. The member
    threshold is the attack's calibration (Youden's J) on the workspace's members (retain training
    images) vs non-members (their held-out images) under the same model. The visitor is
    "member-like" when the mean score of their photos reaches it; a score below the 5th percentile
    of the non-members' is flagged (Streisand: the face now stands out as removed). Chosen because
    the visitor has no head class nor retrain reference, which the other attacks need.
    """
    attack = create_attack(VERDICT_ATTACK)
    out: dict[str, Any] = {"attack": "embedding (leave-one-out centroid cosine)"}
    for when, model in models.items():
        parts = {"members": "retain_train", "test": "retain_test"}
        calibration = attack.calibrate(attack.features(ModelOutputs(
            embeddings={s: embedded[when][p] for s, p in parts.items()},
            labels={s: ws.parts[p].labels.cpu().numpy() for s, p in parts.items()})))
        photos = ModelOutputs(embeddings={"visitor": model.embed(visitor.inputs).cpu().numpy()}, labels={"visitor": visitor.labels.cpu().numpy()})
        score = float(np.mean(calibration.score(attack.features(photos)["visitor"])))
        threshold = calibration.threshold
        out[when] = {"score": score, "threshold": threshold, "member_like": bool(score >= threshold),
                     "nonmember_p05": float(np.percentile(calibration.nonmember_scores, 5)), "member_rate": calibration.member_rate,
                     "nonmember_rate": calibration.nonmember_rate}
    after = out["after"]
    out["streisand"] = bool(after["score"] < after["nonmember_p05"])
    out["verdict"] = ("your photos still cluster like a training identity (member-like): the model has not forgotten you"
                      if after["member_like"] else "your photos no longer cluster like a training identity (not member-like)")
    if out["streisand"]:
        out["verdict"] += "; but they now cluster less than 95% of ordinary held-out faces, which itself shows that something was removed"
    return out
