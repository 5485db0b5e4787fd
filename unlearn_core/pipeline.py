"""The audit pipeline: gallery -> aligned chips -> model inputs -> original model -> unlearning ->
evaluation -> report. ``Workspace`` holds everything expensive about one (gallery, backbone,
split, device) and is reused across methods; models are cached on disk.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from .backbones import Backbone, InputSpec, create_backbone
from .data import Gallery, Split, load_gallery, make_split
from .errors import DataUnavailable, InvalidParameter
from .faces import ChipCache, FaceDetector, align, content_digest, load_image
from .features import GALLERY_PARTS, PARTS, FaceData, InputEncoder, Parts
from .find import FALSE_MATCHES_PER_SEARCH, Finder, FindOutcome, outcome
from .methods import Budget, UnlearnRequest, create_method
from .metrics import centroids, protocol_metrics
from .model import CosFaceHead, FaceModel
from .references import DEFAULT_K, ReferencePool, check_k, forget_halves
from .storage import atomic_write
from .train import TrainConfig, train_cosface
from .types import Progress

PROTOCOLS = ("standard", "one_shot", "gallery_assisted")
"""standard: all training photos of the forget identities are known; one_shot: one support photo
each (S2); gallery_assisted: one selfie each, drawn from their held-out photos, finds their training
photos (``find.py``), which are then forgotten."""
RECOMMENDED = {"standard": "dispersion", "one_shot": "projection", "gallery_assisted": "projection"}
"""The method each protocol runs when none is named (measured: README, docs/bench-lfw.md)."""


@dataclass(frozen=True)
class FindReport:
    """The find step of one gallery-assisted request: the threshold and how well it found."""

    finder: Finder
    per_identity: dict[str, FindOutcome]
    selfie_ids: np.ndarray

    @property
    def total(self) -> FindOutcome:
        return FindOutcome.total(list(self.per_identity.values()))

    def to_json(self) -> dict[str, Any]:
        return {**self.total.to_json(), "thresholds": self.finder.to_json(),
                "per_identity": {name: o.to_json() for name, o in self.per_identity.items()}}


def cache_dir() -> Path:
    """``$UNLEARN_CACHE`` or ``~/.cache/unlearn_core`` (dataset chips and trained models only)."""
    path = Path(os.environ.get("UNLEARN_CACHE", Path.home() / ".cache" / "unlearn_core"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InvalidParameter("device 'cuda' was asked for but no CUDA GPU is available; use --device cpu")
    if not (device == "cpu" or device.startswith("cuda")):
        raise InvalidParameter(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}")
    return torch.device(device)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


@dataclass
class WorkspaceConfig:
    dataset: str = "lfw"
    n_forget: int = 10
    seed: int = 0
    backbone: str = "dlib_resnet"
    device: str = "auto"
    train_from: str = "auto"
    """'tail' (CPU fast path: cached trunk activations), 'full', a stage name, or 'auto' (full on GPU)."""
    n_distractors: int = 1000
    max_images_per_identity: int = 50
    forget_ids: list[str] | None = None
    n_retain: int | None = None
    """Keep only this many retain identities (None: all eligible)."""
    min_images: int | None = None
    """Photos a person needs to be forgotten or retained (at least 4); None: the gallery's own
    minimums (LFW 20 to forget / 10 to retain, Olivetti 10 / 4, folders and zips 4)."""
    train: TrainConfig = field(default_factory=TrainConfig)

    def split(self, gallery: Gallery) -> Split:
        """This configuration's protocol split of ``gallery`` (``data.make_split``)."""
        return make_split(gallery, self.n_forget, self.seed, n_distractors=self.n_distractors, max_images_per_identity=self.max_images_per_identity,
                          forget_ids=self.forget_ids, n_retain=self.n_retain, min_images=self.min_images)


@dataclass
class AlignedSplit:
    """A gallery's protocol split with its photos aligned for one ``InputSpec`` (chips cached on
    disk by content); photos without a detectable face are dropped from the split."""

    gallery: Gallery
    split: Split
    inputs: InputSpec
    chips: dict[int, np.ndarray]
    detections: dict[int, dict]
    n_without_face: int

    @classmethod
    def align(cls, gallery: Gallery, split: Split, inputs: InputSpec, device: torch.device) -> AlignedSplit:
        cache = ChipCache(cache_dir(), inputs.template, inputs.size)
        detector = FaceDetector.shared(str(device) if device.type == "cuda" else "cpu")
        needed = np.unique(np.concatenate([getattr(split, p) for p in PARTS]))
        chips: dict[int, np.ndarray] = {}
        detections: dict[int, dict] = {}
        results = cache.get_many([gallery.sources[i] for i in needed], detector, desc=f"aligning {gallery.name}")
        for i, (chip, record) in zip(needed, results):
            detections[int(i)] = record
            if chip is not None:
                chips[int(i)] = chip
        for part in PARTS:
            setattr(split, part, np.array([i for i in getattr(split, part) if int(i) in chips], dtype=np.int64))
        if len(split.forget_test) == 0 or len(split.retain_test) == 0:
            raise DataUnavailable(f"too few faces were detected in {gallery.name} to evaluate")
        return cls(gallery, split, inputs, chips, detections, len(needed) - len(chips))

    @property
    def classes(self) -> np.ndarray:
        """Gallery identity of each head class: the forget identities, then the retained ones."""
        return np.concatenate([self.split.forget_ids, self.split.retain_ids])

    def labels(self, image_ids: np.ndarray) -> np.ndarray:
        """Head class of gallery images (-1 for identities outside forget/retain)."""
        lookup = {int(c): k for k, c in enumerate(self.classes)}
        return np.array([lookup.get(int(self.gallery.labels[i]), -1) for i in image_ids], dtype=np.int64)

    def for_inputs(self, inputs: InputSpec, device: torch.device) -> AlignedSplit:
        """The same photos and faces aligned for another ``InputSpec`` (template and size): each
        face's landmarks from this split's detection records are reused, so nothing is detected
        again (records cached before landmarks were kept fall back to a detection)."""
        if inputs.size == self.inputs.size and np.array_equal(inputs.template, self.inputs.template):
            return dataclasses.replace(self, inputs=inputs)
        cache = ChipCache(cache_dir(), inputs.template, inputs.size)
        chips = {}
        for i in self.chips:
            content, digest = content_digest(self.gallery.sources[i])
            record, hit = self.detections[i], cache.read(digest)
            if hit is None and "landmarks" in record:
                hit = align(load_image(content), np.asarray(record["landmarks"]), inputs.template, inputs.size), record
                cache.put(digest, *hit)
            elif hit is None:
                hit = cache.get(self.gallery.sources[i], FaceDetector.shared(str(device) if device.type == "cuda" else "cpu"))
            chips[i] = hit[0]
        return dataclasses.replace(self, inputs=inputs, chips=chips)

    def part_chips(self, part: str) -> np.ndarray:
        """The aligned chips of one protocol part, ``(N, size, size, 3)`` uint8."""
        ids = getattr(self.split, part)
        size = self.inputs.size
        return np.stack([self.chips[int(i)] for i in ids]) if len(ids) else np.zeros((0, size, size, 3), np.uint8)


class Workspace:
    """Prepared data and the original model for one unlearning protocol."""

    def __init__(self, config: WorkspaceConfig, progress: Progress | None = None, gallery: Gallery | None = None):
        progress = progress or (lambda f, m: None)
        self.config = config
        self.device = resolve_device(config.device)
        self.timing: dict[str, float] = {}
        started = time.perf_counter()
        self.backbone: Backbone = create_backbone(config.backbone)
        self.backbone.module.to(self.device)
        train_from = config.train_from if config.train_from != "auto" else ("full" if self.device.type == "cuda" else "tail")
        self.start = self.backbone.stage_index(train_from)
        self.gallery = gallery or load_gallery(config.dataset)
        self.gallery_key = self.gallery.content_key()
        """Read now: a workspace keeps working from memory after its gallery's files are gone (an uploaded zip's folder)."""
        progress(0.05, f"aligning faces of {self.gallery.name}")
        self.images = AlignedSplit.align(self.gallery, config.split(self.gallery), self.backbone.inputs, self.device)
        self.split: Split = self.images.split
        self.n_without_face = self.images.n_without_face
        self.timing["align"] = time.perf_counter() - started
        self.classes = self.images.classes
        self.forget_classes = list(range(len(self.split.forget_ids)))
        self.encoder = InputEncoder(self.backbone, self.start, self.device)
        started = time.perf_counter()
        progress(0.4, "encoding faces with the frozen trunk")
        self.parts = Parts(**{part: self._face_data(part) for part in PARTS})
        self.timing["encode"] = time.perf_counter() - started
        self.original = self._trained_model("original", ("forget_train", "retain_train"), progress)
        self.timing["original"] = time.perf_counter() - started - self.timing["encode"]
        self._retrain: FaceModel | None = None
        self._pools: dict[int, ReferencePool] = {}
        self._finders: dict[float, Finder] = {}
        self._original_embeddings: dict[str, np.ndarray] = {}
        self._baseline: dict[str, dict[str, float]] | None = None

    # -- data ---------------------------------------------------------------------------------
    def label_of(self, image_ids: np.ndarray) -> np.ndarray:
        return self.images.labels(image_ids)

    def _face_data(self, part: str) -> FaceData:
        ids = getattr(self.split, part)
        return self.encoder.face_data(self.images.part_chips(part), self.label_of(ids), ids, desc=f"encoding {part}")

    def identity_names(self, classes: list[int] | np.ndarray) -> list[str]:
        return [self.gallery.identities[int(self.classes[c])] for c in classes]

    # -- models -------------------------------------------------------------------------------
    def _model_key(self, kind: str, parts: tuple[str, ...], classes_in: np.ndarray | None = None) -> str:
        spec = {
            "kind": kind, "gallery": self.gallery_key, "backbone": self.backbone.name, "start": self.start,
            "train": dataclasses.asdict(self.config.train), "seed": self.config.seed,
            "images": [getattr(self.split, p).tolist() for p in parts], "classes": self.classes.tolist(),
        }
        if classes_in is not None:
            spec["classes_in"] = classes_in.tolist()
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]

    def _trained_model(self, kind: str, parts: tuple[str, ...], progress: Progress, classes_in: np.ndarray | None = None,
                       seed: int | None = None) -> FaceModel:
        """The original recipe on ``parts`` (only the images of ``classes_in`` when given), cached on disk."""
        data = concat_face_data([self.parts[p] for p in parts])
        if classes_in is not None:
            data = data.subset(np.flatnonzero(np.isin(data.labels.cpu().numpy(), classes_in)))
        path = cache_dir() / "models" / f"{kind}-{self._model_key(kind, parts, classes_in)}.safetensors"
        if path.exists():
            model = FaceModel(self.backbone.module, self.start).clone()
            model.head = CosFaceHead(torch.zeros(len(self.classes), self.backbone.embed_dim), self.config.train.scale, self.config.train.margin)
            model.load_state_dict(load_file(str(path), device=str(self.device)), strict=False)
            return model.to(self.device).eval()
        progress(0.5, f"training the {kind} model (cached afterwards)")
        model = train_cosface(self.backbone, self.start, data, len(self.classes), self.config.train,
                              seed=self.config.seed if seed is None else seed,
                              progress=lambda f, m: progress(0.5 + 0.4 * f, f"{kind}: {m}"))
        trainable = {n: p.detach().contiguous().cpu() for n, p in model.named_trainable_parameters()}
        atomic_write(path, lambda tmp: save_file(trainable, str(tmp)))
        return model

    def on(self, device: torch.device) -> Workspace:
        """This workspace with its backbone, models and model inputs on ``device``; itself when they
        are there already. The copy shares the gallery, split and chips; its models are copies, so
        the original workspace is left as it was. For a GPU lent only for the length of a call
        (Hugging Face ZeroGPU), where the workspace was built on the CPU: the split point
        (``start``) stays as built."""
        if device == self.device:
            return self
        moved = copy.copy(self)
        module = copy.deepcopy(self.backbone.module).to(device)
        shared = {id(old): new for old, new in zip(self.backbone.module.stages, module.stages)}

        def move(model: FaceModel) -> FaceModel:
            return copy.deepcopy(model, dict(shared)).to(device)

        moved.device = device
        moved.backbone = dataclasses.replace(self.backbone, module=module)
        moved.encoder = InputEncoder(moved.backbone, self.start, device)
        moved.parts = self.parts.map(lambda data: data.to(device))
        moved.original = move(self.original)
        moved._retrain = None if self._retrain is None else move(self._retrain)
        moved._pools = {}
        return moved

    def retrain_model(self, progress: Progress | None = None) -> FaceModel:
        """The gold-standard reference: the original recipe on retain identities only (cached)."""
        if self._retrain is None:
            self._retrain = self._trained_model("retrain", ("retain_train",), progress or (lambda f, m: None))
        return self._retrain

    def reference_pool(self, k: int, progress: Progress | None = None) -> ReferencePool:
        """``k`` reference models, the original recipe with the forget identities in half of them
        and another training seed each (``references.forget_halves``; cached on disk and in
        memory), with the forget request of those that hold the forget identities."""
        if k not in self._pools:
            progress = progress or (lambda f, m: None)
            member = forget_halves(len(self.classes), self.forget_classes, k, self.config.seed)
            models, requests = [], []
            for i, row in enumerate(member):
                step = lambda f, m, i=i: progress((i + f) / k, f"reference model {i + 1}/{k}: {m}")
                models.append(self._trained_model(f"reference{i}of{k}", ("forget_train", "retain_train"), step,
                                                  classes_in=np.flatnonzero(row), seed=self.config.seed + 1 + i))
                requests.append(self.request(seed=self.config.seed) if row[self.forget_classes[0]] else None)
            self._pools[k] = ReferencePool(models, member, requests)
        return self._pools[k]

    # -- requests and evaluation -------------------------------------------------------------
    def identity_templates(self) -> tuple[np.ndarray, np.ndarray]:
        """``(templates, classes)``: each training identity's normalised mean embedding under the
        original model, as a service holding labelled training photos keeps them."""
        emb = np.concatenate([self.embed(self.original, p) for p in ("forget_train", "retain_train")])
        labels = np.concatenate([self.parts[p].labels.cpu().numpy() for p in ("forget_train", "retain_train")])
        classes = np.unique(labels)
        return centroids(emb, labels, len(self.classes))[classes], classes

    def finder(self, false_per_search: float = FALSE_MATCHES_PER_SEARCH) -> Finder:
        """The find step calibrated under the original model on the identities the service keeps:
        each of their held-out photos plays the selfie against the retained identities' templates
        and against every other gallery photo (forget identities never take part). Cached."""
        if false_per_search not in self._finders:
            templates, classes = self.identity_templates()
            kept = ~np.isin(classes, self.forget_classes)
            queries = self.parts.retain_test
            photos = [p for p in GALLERY_PARTS if p != "forget_test"]
            self._finders[false_per_search] = Finder.calibrate(
                self.embed(self.original, "retain_test"), queries.labels.cpu().numpy(), queries.image_ids,
                templates[kept], classes[kept], np.concatenate([self.embed(self.original, p) for p in photos]),
                np.concatenate([self.parts[p].labels.cpu().numpy() for p in photos]),
                np.concatenate([self.parts[p].image_ids for p in photos]), false_per_search)
        return self._finders[false_per_search]

    def gallery_assisted_request(self, seed: int = 0) -> tuple[UnlearnRequest, FindReport]:
        """One selfie per forget identity, drawn from its held-out photos, finds the training
        identities it matches (``Finder.match_labels``) and so their photos; the request's
        forget set is the selfies plus those photos, each labelled with the selfie's identity
        (a wrong match is forgotten too: precision matters). The evaluation gallery is not searched:
        its photos are the check."""
        finder = self.finder()
        templates, classes = self.identity_templates()
        train = concat_face_data([self.parts.forget_train, self.parts.retain_train])
        train_labels = train.labels.cpu().numpy()
        train_emb = np.concatenate([self.embed(self.original, p) for p in ("forget_train", "retain_train")])
        selfies = support_sample(self.parts.forget_test, seed)
        selfie_emb = self.embed_data(self.original, selfies)
        parts, outcomes = [], {}
        for row, label in enumerate(selfies.labels.cpu().numpy()):
            matched = finder.match_labels(selfie_emb[row], templates, classes, train_emb, train_labels)
            found = np.flatnonzero(np.isin(train_labels, matched))
            outcomes[self.identity_names([label])[0]] = outcome(found, train_labels, int(label))
            part = concat_face_data([selfies.subset([row]), train.subset(found)])
            parts.append(dataclasses.replace(part, labels=torch.full_like(part.labels, int(label))))
        request = dataclasses.replace(self.request(one_shot=True, seed=seed), forget=concat_face_data(parts), support=None)
        return request, FindReport(finder, outcomes, selfies.image_ids)

    def request(self, one_shot: bool = False, seed: int = 0) -> UnlearnRequest:
        """The unlearning request: forget training images (or one support image per forget identity)
        and the retain training images (removed again for methods that do not declare them)."""
        forget = self.parts.forget_train
        support = support_sample(forget, seed)
        return UnlearnRequest(
            forget_classes=self.forget_classes,
            forget=None if one_shot else forget,
            support=support,
            retain=self.parts.retain_train,
            test=self.parts.retain_test,
            forget_test=self.parts.forget_test,
            encode=lambda chips: self.encoder(chips),
            pretrained=self.backbone,
        )

    def embed(self, model: FaceModel, part: str) -> np.ndarray:
        """Normalised embeddings of one part (cached for the original model, which never changes)."""
        if model is not self.original:
            return self.embed_data(model, self.parts[part])
        if part not in self._original_embeddings:
            self._original_embeddings[part] = self.embed_data(model, self.parts[part])
        return self._original_embeddings[part]

    def embeddings(self, model: FaceModel) -> dict[str, np.ndarray]:
        """Every part's embeddings under ``model`` (compute once, pass to ``evaluate`` and friends)."""
        return {p: self.embed(model, p) for p in PARTS}

    @torch.no_grad()
    def embed_data(self, model: FaceModel, data: FaceData) -> np.ndarray:
        """Normalised embeddings of ``data`` under ``model``, in batches."""
        if len(data) == 0:
            return np.zeros((0, self.backbone.embed_dim), np.float32)
        return torch.cat([model.embed(data.inputs[i : i + 512]) for i in range(0, len(data), 512)]).cpu().numpy()

    def baseline(self) -> dict[str, dict[str, float]]:
        """``evaluate(original)``, computed once (the original model never changes)."""
        if self._baseline is None:
            self._baseline = self.evaluate(self.original)
        return self._baseline

    def evaluate(self, model: FaceModel, exclude: np.ndarray | None = None,
                 embeddings: dict[str, np.ndarray] | None = None) -> dict[str, dict[str, float]]:
        """``protocol_metrics`` of ``model`` on this workspace (S0 §5.3), with head accuracy.
        ``exclude``: gallery image ids left out of every query and gallery set (e.g. the selfies
        a gallery-assisted request used, so the check runs on photos the method never saw).
        ``embeddings``: ``self.embeddings(model)`` when already computed."""
        embeddings = embeddings or self.embeddings(model)
        keep = {p: ~np.isin(self.parts[p].image_ids, exclude if exclude is not None else []) for p in PARTS}
        # the CosFace head predicts the class whose normalised weight is nearest in cosine: the same
        # rule as centroid accuracy, with the head's weights as centroids (no second forward pass)
        head_weights = F.normalize(model.head.weight.detach(), dim=1).cpu().numpy() if model.head is not None else None
        original = {p: self.embed(self.original, p)[keep[p]] for p in ("forget_train", "retain_train")}
        labels = {p: self.parts[p].labels.cpu().numpy()[keep[p]] for p in PARTS}
        original_centroids = centroids(np.concatenate(list(original.values())), np.concatenate([labels[p] for p in original]), len(self.classes))
        return protocol_metrics({p: embeddings[p][keep[p]] for p in PARTS}, labels, {p: self.parts[p].image_ids[keep[p]] for p in PARTS},
                                len(self.classes), head_weights, original_centroids)


def concat_face_data(parts: list[FaceData]) -> FaceData:
    return FaceData(
        torch.cat([p.inputs for p in parts]), torch.cat([p.inputs_flipped for p in parts]), torch.cat([p.labels for p in parts]),
        np.concatenate([p.chips for p in parts]), np.concatenate([p.image_ids for p in parts]),
    )


def support_sample(forget: FaceData, seed: int) -> FaceData:
    """One image per forget identity, drawn by seed (the one-shot support set of S2)."""
    rng = np.random.default_rng(seed)
    labels = forget.labels.cpu().numpy()
    pick = [int(rng.choice(np.flatnonzero(labels == c))) for c in np.unique(labels)]
    return forget.subset(pick)


@dataclass
class AuditConfig:
    method: str = "dispersion"
    params: dict[str, Any] = field(default_factory=dict)
    iterations: int | None = None
    one_shot: bool = False
    workspace: WorkspaceConfig = field(default_factory=WorkspaceConfig)
    privacy: bool = True
    """Add the privacy audit (membership inference vs the retrain reference) under ``report['privacy']``."""
    references: int = DEFAULT_K
    """Reference models of the privacy audit's RMIA and U-LiRA (even, >= 4)."""
    gallery_assisted: bool = False
    """Forget what one held-out selfie per identity finds among the training photos (``PROTOCOLS``)."""

    def __post_init__(self) -> None:
        if self.one_shot and self.gallery_assisted:
            raise InvalidParameter("choose one protocol: one-shot or gallery-assisted, not both")
        check_k(self.references)

    @property
    def protocol(self) -> str:
        return "one_shot" if self.one_shot else "gallery_assisted" if self.gallery_assisted else "standard"


def run_method(ws: Workspace, config: AuditConfig, progress: Progress | None = None) -> tuple[FaceModel, dict[str, Any]]:
    """Unlearn with one method on a prepared workspace; returns the new model and its report."""
    progress = progress or (lambda f, m: None)
    method = create_method(config.method, **config.params)
    started = time.perf_counter()
    find: FindReport | None = None
    if config.gallery_assisted:
        progress(0.0, "find: matching each selfie against the training photos")
        request, find = ws.gallery_assisted_request(seed=ws.config.seed)
    else:
        request = ws.request(one_shot=config.one_shot, seed=ws.config.seed)
    if "reference" in method.stopping_needs():
        request = dataclasses.replace(request, reference=ws.retrain_model(progress))
    find_s = time.perf_counter() - started
    model = method.unlearn(ws.original, request, Budget(iterations=config.iterations), progress, seed=ws.config.seed)
    unlearn_s = time.perf_counter() - started - find_s
    exclude = find.selfie_ids if find is not None else None
    report = {
        "method": config.method,
        "params": method.get_params(),
        "protocol": config.protocol,
        "one_shot": config.one_shot,
        "iterations_run": getattr(method, "n_iter_", None),
        "timing_s": {"unlearn": unlearn_s, **({"find": find_s, "request": find_s + unlearn_s} if find else {})},
        "after": ws.evaluate(model, exclude),
    }
    if find is not None:
        report["find"] = find.to_json()
        report["before"] = ws.evaluate(ws.original, exclude)  # the same photos as "after": the selfies left out
    return model, report
