"""Forget me: a Gradio demo and audit tool for face-identity unlearning (a thin shell over unlearn_core).

Run ``python app.py`` (127.0.0.1:7860). Every setting below can be changed with an ``UNLEARN_*``
environment variable or a flag (``--help``); a flag wins. Gradio's own ``GRADIO_SERVER_NAME`` and
``GRADIO_SERVER_PORT`` (set by Hugging Face Spaces and other hosts) win over ``UNLEARN_HOST``/``UNLEARN_PORT``.
Uploads are read into memory and the uploaded file is deleted at once; what a visitor uploaded (so
that a flow can run again with the same inputs) and their unlearned model live in their session
state only and are dropped when the session ends.
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import hashlib
import html
import json
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gradio as gr
import torch
from gradio.data_classes import ImageData

from unlearn_core import viz
from unlearn_core.attributes.baselines import BASELINES
from unlearn_core.attributes.table import ATTRIBUTES
from unlearn_core.attributes.task import DEFAULT_METHODS as ATTRIBUTE_DEFAULT_METHODS
from unlearn_core.attributes.task import METHODS as ATTRIBUTE_METHODS
from unlearn_core.attributes.task import AttributeTrainConfig, audit_attributes, method_params
from unlearn_core.audit import audit, audit_models
from unlearn_core.backbones.external import EmbedderSpec, load_embedder
from unlearn_core.data import Gallery, load_gallery, zip_gallery
from unlearn_core.errors import InvalidParameter, UnlearnError, whole_number
from unlearn_core.forget_me import FORGET_ME_PRESET, MAX_EXTRA_PHOTOS, ForgetMeConfig, forget_me, split_extra_photos
from unlearn_core.methods import create_method, list_methods, method_class, preset_params
from unlearn_core.pipeline import RECOMMENDED, AuditConfig, Workspace, WorkspaceConfig, device_name, resolve_device
from unlearn_core.types import Progress

try:  # Hugging Face ZeroGPU: borrow a GPU for the heavy calls only
    import spaces

    gpu = spaces.GPU(duration=180)
except ImportError:
    def gpu(fn: Callable) -> Callable:
        return fn
ZERO_GPU = os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "true", "yes")
"""On Hugging Face ZeroGPU a real GPU exists only inside ``gpu``-decorated calls (the main process may fake CUDA)."""

ROOT = Path(__file__).resolve().parent
GALLERIES = {"LFW": "lfw", "ORL (Olivetti)": "olivetti", "Uploaded zip": "zip"}
NO_GALLERY_HELP = (
    "**No face gallery is available offline.** The app needs one to compare your face against. Either set "
    "`SCIKIT_LEARN_DATA` to a folder holding scikit-learn's `lfw_home/` (LFW) or `olivetti_py3.pkz` and restart, "
    "run once with internet access so scikit-learn can download LFW, or, in the Audit tab, upload a zip of "
    "`<identity>/<image>` folders."
)


GRADIO_ENV = {"host": "GRADIO_SERVER_NAME", "port": "GRADIO_SERVER_PORT"}
"""Gradio's launch variables, which hosts that follow Gradio's conventions set; they win over ``UNLEARN_*``."""


def _env(name: str, default: Any) -> Any:
    """A setting from the environment: Gradio's own variable if it has one, then ``UNLEARN_<NAME>``, then ``default``."""
    for variable in (GRADIO_ENV.get(name), f"UNLEARN_{name.upper()}"):
        if variable and variable in os.environ:
            return type(default)(os.environ[variable])
    return default


@dataclasses.dataclass
class AppSettings:
    """Defaults chosen for a quick demo on a CPU; raise them on a GPU."""

    host: str = "127.0.0.1"
    port: int = 7860
    dataset: str = "lfw"
    n_forget: int = 4
    n_retain: int = 24
    max_images: int = 20
    min_images: int = 0
    """Photos a person needs to be forgotten or retained; 0: the gallery's own (see ``WorkspaceConfig.min_images``)."""
    distractors: int = 100
    device: str = "auto"
    train_from: str = "auto"
    iterations: int = 40
    audit_iterations: int = 1000
    """The Audit tab's iteration cap: enough for its default preset, which stops early (``AUDIT_PRESET``)."""
    concurrency: int = 1
    queue_size: int = 16
    session_ttl: int = 3600
    max_model_mb: int = 200
    """Largest checkpoint a visitor may upload to the Audit tab (an IResNet-50 is about 170 MB); also Gradio's upload cap."""
    warmup: bool = True

    @classmethod
    def from_env_and_args(cls, argv: list[str] | None = None) -> AppSettings:
        """Defaults, overridden by the environment (``_env``), overridden by command-line flags."""
        base = cls(**{f.name: _env(f.name, f.default) if f.type != "bool" else _env(f.name, int(f.default)) != 0
                      for f in dataclasses.fields(cls)})
        parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        for f in dataclasses.fields(cls):
            if f.type == "bool":
                parser.add_argument(f"--{f.name.replace('_', '-')}", action=argparse.BooleanOptionalAction, default=getattr(base, f.name))
            else:
                parser.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=getattr(base, f.name))
        return cls(**vars(parser.parse_args(argv)))

    def workspace(self, **overrides: Any) -> WorkspaceConfig:
        config = dict(dataset=self.dataset, n_forget=self.n_forget, seed=0, device=self.device, train_from=self.train_from,
                      n_distractors=self.distractors, max_images_per_identity=self.max_images, n_retain=self.n_retain,
                      min_images=self.min_images or None)
        return WorkspaceConfig(**{**config, **overrides})


SETTINGS = AppSettings()


class WorkspacePool:
    """Prepared workspaces shared by all sessions (read-only once built), a few kept (LRU)."""

    def __init__(self, size: int = 3):
        self.size = size
        self._items: OrderedDict[str, Workspace] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _key(config: WorkspaceConfig) -> str:
        return json.dumps(dataclasses.asdict(config), sort_keys=True, default=str)

    def add(self, ws: Workspace) -> None:
        """Offer an already prepared workspace (e.g. built by a test fixture)."""
        with self._lock:
            self._items[self._key(ws.config)] = ws

    def build(self, config: WorkspaceConfig, progress: Callable[[float, str], None] | None = None) -> Workspace:
        """The pooled workspace for ``config``, built once; on ZeroGPU on the CPU (``ZERO_GPU``)."""
        key = self._key(config)
        with self._lock:  # one build at a time; queued sessions then reuse it
            if key not in self._items:
                self._items[key] = Workspace(dataclasses.replace(config, device="cpu") if ZERO_GPU else config, progress)
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
            self._items.move_to_end(key)
            return self._items[key]

    def get(self, config: WorkspaceConfig, progress: Callable[[float, str], None] | None = None) -> Workspace:
        """``build``, on the device this call runs on (``config.device`` resolved now): inside a
        ZeroGPU call a workspace built on the CPU is copied onto the GPU (``Workspace.on``);
        elsewhere it is the pooled workspace itself."""
        return self.build(config, progress).on(resolve_device(config.device))


POOL = WorkspacePool()


def available_galleries() -> list[str]:
    """The built-in galleries readable offline right now."""
    found = []
    for label, spec in GALLERIES.items():
        if spec == "zip":
            continue
        try:
            load_gallery(spec, download_if_missing=False)
            found.append(label)
        except UnlearnError:
            pass
    return found


# -- uploads ----------------------------------------------------------------------------------
def keep_upload_path(image: gr.Image) -> gr.Image:
    """``image`` (``type="filepath"``), handing the function the upload's path unopened.

    Gradio's own preprocessing opens the file, which fails when a flow runs again: the app deletes
    the file once read (``SessionUploads``). The app decodes and checks images itself (``faces``).
    Set on the instance: a ``gr.Image`` subclass would make Gradio write a stub file beside app.py.
    """
    preprocess = image.preprocess

    def path_unopened(payload: ImageData | None) -> str | None:
        if payload is not None and payload.path and not (payload.url or "").startswith("data:"):
            return payload.path
        return preprocess(payload)

    image.preprocess = path_unopened
    return image


class SessionUploads:
    """What a visitor uploaded for one flow (``flow``), kept in their session state, in memory.

    Gradio stores an upload as a temporary file and sends its path again on every click. The file
    is read once and deleted at once; its bytes are kept under that path, so running the flow
    again with the same inputs works. Only the latest run's uploads are kept (a new upload replaces
    the old one), and ``release_session`` drops them with the rest of the state.
    """

    def __init__(self, state: dict | None, flow: str):
        self.flow = flow
        self.others: dict[str, dict[str, bytes]] = dict((state or {}).get("uploads", {}))
        self.previous = self.others.pop(flow, {})
        self.kept: dict[str, bytes] = {}

    def read(self, upload: Any) -> bytes:
        """The bytes of an upload (a path from Gradio, or raw bytes)."""
        if upload is None:
            raise InvalidParameter("Please upload a photo first.")
        if isinstance(upload, (bytes, bytearray)):
            return bytes(upload)
        path = Path(getattr(upload, "path", None) or getattr(upload, "name", None) or upload)
        key = str(path)
        if key in self.previous:
            self.kept[key] = self.previous[key]
        elif key not in self.kept:
            try:
                self.kept[key] = path.read_bytes()
            except OSError:
                raise InvalidParameter("The uploaded file could not be read; please upload it again.") from None
            discard_upload(path)
        return self.kept[key]

    def attach_to(self, state: dict | None) -> dict | None:
        """``state`` (the run's new session state, or the old one after an error) holding the uploads kept."""
        rest = {k: v for k, v in (state or {}).items() if k != "uploads"}
        held = {flow: files for flow, files in {**self.others, self.flow: self.kept}.items() if files}
        return {**rest, "uploads": held} if held else (rest or None)


def discard_upload(path: Path) -> None:
    """Delete a file Gradio stored for an upload (only inside Gradio's upload folder)."""
    folder = Path(gr.utils.get_upload_folder()).resolve()
    path = path.resolve()
    if folder in path.parents:
        path.unlink(missing_ok=True)
        if path.parent != folder:
            with contextlib.suppress(OSError):
                path.parent.rmdir()


def _progress(progress: gr.Progress | None) -> Callable[[float, str], None]:
    if progress is None:
        return lambda f, m: None
    return lambda f, m: progress(min(max(f, 0.0), 1.0), desc=m)


def _message(kind: str, text: str) -> str:
    icon = {"error": "⚠️", "ok": "✅", "info": "ℹ️"}[kind]
    return f"{icon} {text}"


def download_link(content: str, filename: str, mime: str, label: str) -> str:
    """A download link carrying its content as a data URI (nothing written on the server)."""
    uri = f"data:{mime};base64," + base64.b64encode(content.encode()).decode()
    return f'<a class="uc-download" download="{filename}" href="{uri}">{label}</a>'


def _params(text: str | None) -> dict[str, Any]:
    if not text or not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise InvalidParameter(f"Parameters must be JSON, e.g. {{\"margin\": 0.3}} ({err.msg}).") from None
    if not isinstance(value, dict):
        raise InvalidParameter("Parameters must be a JSON object, e.g. {\"margin\": 0.3}.")
    return value


def audit_method_params(methods: list[str], params: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The Audit tab's parameters per method, validated by ``create_method``, and notes for the status line.

    ``params`` is either ``{method: {...}}`` (each object goes to its method, which must be selected
    and take every parameter in it) or one flat object for all selected methods: each parameter is
    given to the methods that take it, and the others run without it (named in a note), so that a
    shared setting such as ``lr`` can be compared across methods; a parameter that no selected method
    takes is an error. Invalid values are an error naming the method.
    """
    registered = set(list_methods())
    nested = bool(params) and all(isinstance(v, dict) for v in params.values()) and set(params) <= registered
    notes = []
    if nested:
        unselected = sorted(set(params) - set(methods))
        if unselected:
            raise InvalidParameter(f"Parameters are given for {', '.join(unselected)}, which is not among the chosen methods.")
        chosen = {m: dict(params.get(m, {})) for m in methods}
    else:
        takes = {m: set(method_class(m).parameters()) for m in methods}
        unknown = sorted(p for p in params if not any(p in t for t in takes.values()))
        if unknown:
            raise InvalidParameter(f"No chosen method takes the parameter(s) {unknown}; "
                                   + "; ".join(f"{m} takes {sorted(t)}" for m, t in takes.items()) + ".")
        chosen = {m: {p: v for p, v in params.items() if p in takes[m]} for m in methods}
        for m in methods:
            ignored = sorted(set(params) - takes[m])
            if ignored:
                notes.append(f"{m} has no parameter {', '.join(ignored)}: it ran without.")
    for m, p in chosen.items():
        create_method(m, **p)  # out-of-range or ill-typed values: InvalidParameter naming the method
    return chosen, notes


def _fingerprint(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for _, p in model.named_trainable_parameters():
        digest.update(p.detach().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def release_session(state: dict | None) -> None:
    """Drop a session's model and uploads' derived data (called when the session ends)."""
    if state:
        state.clear()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# -- forget me ------------------------------------------------------------------------------


@gpu
def run_forget_me(portrait: Any, extras: list[Any] | None, method: str, iterations: Any, take_main: bool,
                  params: str | None, state: dict | None, progress: gr.Progress | None = gr.Progress()) -> tuple:
    """The "Forget me" button. Every user-facing problem becomes a message, never a crash."""
    empty = ("", "", None, "", "", "", "")
    uploads = SessionUploads(state, "forget_me")
    try:
        data = uploads.read(portrait)
        extra_data = [uploads.read(e) for e in (extras or [])]
        config = ForgetMeConfig(method=method, params=_params(params), iterations=whole_number("iterations", iterations, 1, 5000),
                                take_main_face=bool(take_main))
        report_progress = _progress(progress)
        report_progress(0.0, "preparing the gallery")
        ws = POOL.get(SETTINGS.workspace(), report_progress)
        started = time.perf_counter()
        enrolled, check = split_extra_photos(extra_data)
        result = forget_me(ws, data, enrolled, check, config, report_progress)
        wait = time.perf_counter() - started
    except UnlearnError as err:
        return (_message("error", str(err)), *empty, uploads.attach_to(state))
    report = {**result.report, "portrait_sha256": hashlib.sha256(data).hexdigest(), "model_sha256": _fingerprint(result.model)}
    report["timing_s"]["total"] = round(wait, 3)
    state = uploads.attach_to({"model": result.model, "report": report})
    v, r = result.visitor, result.retain
    crop = (f'<div class="uc-crop"><img src="{viz.image_uri(result.portrait.chip, 150)}" width="150" height="150">'
            f"<br>The face we found and aligned</div>")
    find = report["find"]
    found = "".join(f'<img src="{viz.image_uri(chip, 64)}" width="64" height="64">' for chip in result.found_chips[:12])
    if find["n_found"]:
        enrolled = f' ({find["n_true_found"]} of your {find["n_present"]} enrolled)' if find["n_present"] else ""
        crop += (f'<div class="uc-found"><b>We found {find["n_found"]} photo(s) of you</b> among the ones the service holds{enrolled}; '
                 f"they were forgotten with your portrait and deleted from the gallery.<br>{found}</div>")
    else:
        crop += '<div class="uc-found"><b>We found none of your photos</b> among the ones the service holds.</div>'
    headers, rows = viz.metrics_table({"you": v["before"], "retain": r["before"]},
                                      {"after": {"you": v["after"], "retain": r["after"]},
                                       "after deleting found photos": {"you": v["after_deletion"], "retain": r["after"]}},
                                      sets=("you", "retain"))
    bars = viz.before_after_bars({"your CS": (v["before"]["cs"], v["after"]["cs"]), "your mAP": (v["before"]["mAP"], v["after"]["mAP"]),
                                  "retain mAP": (r["before"]["mAP"], r["after"]["mAP"])}, "You vs. everyone else")
    table = viz.table_html(headers, rows) + viz.table_html(*viz.index_states_table(result.index))  # the search index's states
    before = viz.gallery_html(result.retrieval_before, "Before: who the model finds for your photos")
    after = viz.gallery_html(result.retrieval_after, "After unlearning")
    privacy = forget_me_privacy_text(result.mia)
    notes = "".join(f"\n- {n}" for n in result.notes)
    steps = f", {report['iterations_run']} steps" if report["iterations_run"] is not None else " (closed form)"
    deleted = v["after_deletion"]
    status = _message("ok", f"Done in {wait:.1f} s on {report['device']}: {config.method}{steps}. Your check photos' mAP "
                            f"{v['before']['mAP']:.2f} → {v['after']['mAP']:.2f} (model), {deleted['mAP']:.2f} after deleting what was found. "
                            f"Your photos were used in memory only and discarded.{notes}")
    html_report = viz.html_report("Forget me: report", report, [bars], [crop, table, before, after])
    download = (download_link(viz.to_json(report), "forget-me-report.json", "application/json", "Download report (JSON)") + " · "
                + download_link(html_report, "forget-me-report.html", "text/html", "Download report (HTML)"))
    return status, crop, table, bars, before, after, privacy, download, state


def forget_me_privacy_text(mia: dict | None) -> str:
    if not mia:
        return "Membership inference: not available in this build."
    b, a = mia["before"], mia["after"]
    lines = [f"**Membership inference ({mia['attack']}):** {mia['verdict']}.",
             f"- How tightly your photos cluster: {b['score']:.3f} before, {a['score']:.3f} after "
             f"(member threshold {a['threshold']:.3f}; 95% of held-out faces score above {a['nonmember_p05']:.3f}).",
             "- A tight cluster is what training leaves behind; after forgetting, your photos should cluster like a stranger's, no less."]
    if mia["streisand"]:
        lines.append("- ⚠️ Streisand warning: your photos now cluster *less* than unseen faces do, which itself reveals the removal.")
    return "\n".join(lines)


def session_info(state: dict | None) -> dict:
    """What this session holds (hashes only): lets tests check that sessions are isolated."""
    if not state:
        return {"empty": True}
    report = state.get("report", {})
    return {"empty": False, "portrait_sha256": report.get("portrait_sha256"), "model_sha256": report.get("model_sha256"),
            "method": report.get("method"), "flow": report.get("flow"),
            "uploads": {flow: len(files) for flow, files in state.get("uploads", {}).items()}}


# -- audit ----------------------------------------------------------------------------------
def audit_gallery(gallery: str, forget_names: str | None, n_forget: Any, n_retain: Any, min_images: Any, seed: Any) -> tuple[str, WorkspaceConfig]:
    """The Audit tab's gallery choice and people, checked: ``(gallery spec, workspace config)``."""
    spec = GALLERIES.get(gallery)
    if spec is None:
        raise InvalidParameter(f"Choose a gallery: {list(GALLERIES)}.")
    names = [n.strip() for n in (forget_names or "").split(",") if n.strip()]
    return spec, SETTINGS.workspace(
        dataset=spec, n_forget=whole_number("identities to forget", n_forget, 1, 100), seed=whole_number("seed", seed, 0, 2**31 - 1),
        n_retain=whole_number("retain identities", n_retain, 2, 1000), forget_ids=names or None,
        min_images=whole_number("minimum photos per person", min_images, 0, 1000) or None)


@contextlib.contextmanager
def uploaded_gallery(uploads: SessionUploads, zip_file: Any) -> Iterator[Gallery]:
    """The visitor's zip gallery, unpacked for the length of the ``with`` block."""
    upload = uploads.read(zip_file) if zip_file is not None else None
    if upload is None:
        raise InvalidParameter("Upload a zip of <identity>/<image> folders, or pick LFW or ORL.")
    with zip_gallery(upload) as folder_gallery:
        yield folder_gallery


def audit_workspace(spec: str, config: WorkspaceConfig, uploads: SessionUploads, zip_file: Any, progress: Progress) -> Workspace:
    """The audit's workspace: built from the uploaded zip (its folder gone once built), or the pool's for a named gallery."""
    progress(0.0, "preparing the gallery")
    if spec == "zip":
        with uploaded_gallery(uploads, zip_file) as folder_gallery:
            return Workspace(config, progress, gallery=folder_gallery)
    return POOL.get(config, progress)


@gpu
def run_audit(gallery: str, zip_file: Any, forget_names: str | None, n_forget: Any, n_retain: Any, min_images: Any, seed: Any,
              methods: list[str] | None, iterations: Any, params: str | None, one_shot: bool, with_retrain: bool,
              projections: list[str] | None, state: dict | None, progress: gr.Progress | None = gr.Progress()) -> tuple:
    """The "Run audit" button: one workspace, each chosen method, compared side by side."""
    empty = ("", None, None, None, "", "", "")
    uploads = SessionUploads(state, "audit")
    try:
        spec, config = audit_gallery(gallery, forget_names, n_forget, n_retain, min_images, seed)
        methods = list(methods or [])
        if not methods:
            raise InvalidParameter("Choose at least one method.")
        for m in methods:
            method_class(m)
        per_method, notes = audit_method_params(methods, _params(params))
        projections = [{"t-SNE": "tsne", "UMAP": "umap"}.get(p, p) for p in (projections or [])]
        iters = whole_number("iterations", iterations, 1, 100_000)
        audit_configs = [AuditConfig(m, per_method[m], iters, bool(one_shot), config) for m in methods]
        report_progress = _progress(progress)
        ws = audit_workspace(spec, config, uploads, zip_file, report_progress)
        result = audit(ws, audit_configs, with_retrain=with_retrain, privacy=with_retrain, progress=report_progress)
        report = result.to_json()
        models = {"before": ws.original, **{m: run.model for m, run in result.runs.items()}}
        report_progress(0.9, "drawing the maps")
        maps = viz.audit_maps(ws, models, projections, seed=config.seed) if projections else {}
    except UnlearnError as err:
        return (_message("error", str(err)), *empty, uploads.attach_to(state))
    headers, rows = viz.metrics_table(report["before"], {m: report["runs"][m]["after"] for m in methods}, report.get("retrain"))
    index_tables = (viz.table_html(*viz.index_states_table(report["runs"][m]["index"], "the forgotten people's")) for m in methods)
    table = viz.table_html(headers, rows) + "".join(f"<h4>The search index after {html.escape(m)}</h4>{t}" for m, t in zip(methods, index_tables))
    galleries = viz.gallery_html(viz.workspace_top_k(ws, ws.original), "Before") + "".join(
        viz.gallery_html(viz.workspace_top_k(ws, models[m]), f"After {m}") for m in methods)
    audited = {m: r["privacy"] for m, r in report["runs"].items() if r.get("privacy")}
    roc, privacy = viz.roc_figure(audited), viz.privacy_html(audited)
    figures = [f for f in (maps.get("tsne"), maps.get("umap"), roc) if f is not None]
    html_report = viz.html_report("Unlearning audit", report, figures, [table, privacy, galleries])
    download = (download_link(viz.to_json(report), "audit-report.json", "application/json", "Download report (JSON)") + " · "
                + download_link(html_report, "audit-report.html", "text/html", "Download report (HTML)"))
    timing = ", ".join(f"{m} {report['runs'][m]['timing_s']['unlearn']:.1f} s" for m in methods)
    status = _message("ok", f"Audit of {len(report['forget_identities'])} identities on {report['dataset']} ({report['device']}): {timing}."
                      + "".join(f" {note}" for note in notes))
    state = uploads.attach_to({"report": {**report, "flow": "audit"}, "models": {m: _fingerprint(models[m]) for m in methods}})
    return status, table, maps.get("tsne"), maps.get("umap"), roc, galleries, privacy, download, state


ATTRIBUTE_HELP = (
    "S3's multi-label task: a model predicting several facial attributes at once (one sigmoid output each, trained with "
    "binary cross-entropy on this gallery's training photos) is asked to forget one attribute entirely and keep the others. "
    + viz.ATTRIBUTE_NOTE + " It uses the gallery and people chosen above (their training photos train the model, their "
    "held-out photos test it) and trains two models (the original and the retrain reference), so it takes a few minutes on a CPU.")


def attribute_method_help() -> str:
    lines = ["- **weight_filtering** / **weight_pruning**: S3's own methods (select the weights that serve the forgotten "
             "attribute, zero or shrink them, then fine-tune on the kept attributes within epsilon); their parameters as in the Methods list."]
    for name, cls in BASELINES.items():
        params = ", ".join(f"`{p}`={spec['default']}" for p, spec in cls.parameters().items())
        lines.append(f"- **{name}** (baseline): {cls.summary}. Parameters: {params}.")
    return "\n".join(lines)


@gpu
def run_attribute_audit(gallery: str, zip_file: Any, forget_names: str | None, n_forget: Any, n_retain: Any, min_images: Any, seed: Any,
                        attribute: str | None, methods: list[str] | None, epochs: Any, params: str | None, state: dict | None,
                        progress: gr.Progress | None = gr.Progress()) -> tuple:
    """The "Forget an attribute" button: S3's multi-label task on the chosen gallery (``attributes.task.audit_attributes``)."""
    empty = ("", None, "", "")
    uploads = SessionUploads(state, "attributes")
    try:
        spec, config = audit_gallery(gallery, forget_names, n_forget, n_retain, min_images, seed)
        if attribute not in ATTRIBUTES:
            raise InvalidParameter(f"Choose the attribute to forget: one of {', '.join(ATTRIBUTES)}.")
        methods = list(methods or [])
        per_method = method_params(methods, _params(params))
        train = AttributeTrainConfig(epochs=whole_number("training epochs", epochs, 1, 200))
        report_progress = _progress(progress)
        ws = audit_workspace(spec, config, uploads, zip_file, report_progress)
        report = audit_attributes(ws, attribute, tuple(methods), config.seed, per_method, train, report_progress).to_json()
    except UnlearnError as err:
        return (_message("error", str(err)), *empty, gr.update(), uploads.attach_to(state))
    report.update(dataset=spec, seed=config.seed, epochs=train.epochs)
    table = viz.table_html(*viz.attribute_table(report))
    figure = viz.attribute_entropy_figure(report)
    privacy = viz.attribute_privacy_html(report)
    html_report = viz.html_report(f"Forgetting the attribute '{attribute}'", report, [figure], [table, privacy])
    download = (download_link(viz.to_json(report), "attribute-audit.json", "application/json", "Download report (JSON)") + " · "
                + download_link(html_report, "attribute-audit.html", "text/html", "Download report (HTML)"))
    forgot = report["methods"]
    timing = ", ".join(f"{m} {r['unlearn_s']:.1f} s" for m, r in forgot.items())
    status = _message("ok", f"Forgot '{attribute}' on {spec} ({report['n_train']} training / {report['n_test']} test photos; kept "
                      f"attributes: {', '.join(report['attributes'])}): training {report['timing_s']['train']:.1f} s, retrain "
                      f"{report['timing_s']['retrain']:.1f} s, {timing}. Labels are pseudo-labels.")
    state = uploads.attach_to({"report": {**report, "flow": "attributes"}})
    return status, table, figure, privacy, download, gr.update(choices=report["attributes"], value=attribute), state


@gpu
def run_model_audit(gallery: str, zip_file: Any, forget_names: str | None, n_forget: Any, n_retain: Any, min_images: Any, seed: Any,
                    before: Any, after: Any, reference: Any, spec_text: str | None, state: dict | None,
                    progress: gr.Progress | None = gr.Progress()) -> tuple:
    """The "Audit uploaded models" button: a visitor's before/after (and optional reference)
    checkpoints on the chosen gallery and people. The checkpoints stay in the session's memory."""
    empty = ("", None, None, None, "", "", "")
    uploads = SessionUploads(state, "models")
    try:
        spec_name, config = audit_gallery(gallery, forget_names, n_forget, n_retain, min_images, seed)
        spec = EmbedderSpec.from_json(spec_text or "")
        limit = SETTINGS.max_model_mb * 1_000_000
        device = resolve_device(config.device)
        if before is None or after is None:
            raise InvalidParameter("Upload both checkpoints: the model before unlearning and the one after.")
        models = {role: load_embedder(uploads.read(upload), spec, device, limit, f"{role} model")
                  for role, upload in (("before", before), ("after", after), ("reference", reference))
                  if upload is not None or role != "reference"}
        report_progress = _progress(progress)
        if spec_name == "zip":
            with uploaded_gallery(uploads, zip_file) as folder_gallery:
                result = audit_models(models, config, folder_gallery, report_progress)
        else:
            result = audit_models(models, config, load_gallery(spec_name), report_progress)
    except UnlearnError as err:
        return (_message("error", str(err)), *empty, uploads.attach_to(state))
    report = result.report
    headers, rows = viz.metrics_table(report["before"], {"after": report["after"]}, report.get("reference"), reference_name="reference")
    table = viz.table_html(headers, rows)
    galleries = "".join(viz.gallery_html(result.top_k(role), role.capitalize()) for role in models)
    findings = "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in report["findings"]) + "</ul>"
    download = download_link(viz.to_json(report), "model-audit.json", "application/json", "Download report (JSON)")
    status = _message("ok", f"Audit of {len(report['forget_identities'])} identities on {report['dataset']}: "
                      + ", ".join(f"{role} {m['format']} ({m['embed_dim']}-D)" for role, m in report["models"].items())
                      + f", {report['timing_s']['total']:.1f} s.")
    return status, table, None, None, None, galleries, findings, download, uploads.attach_to({"report": {**report, "flow": "models"}})


# -- layout ---------------------------------------------------------------------------------
SPEC_EXAMPLE = {"input_size": 112, "template": "arcface", "mean": 127.5, "std": 127.5, "colour": "rgb", "layout": "nchw"}
"""The Audit tab's starting spec: an ArcFace-style 112x112 model (fields: README, "Audit any face model")."""


def method_help() -> str:
    lines = []
    for name in list_methods():
        cls = method_class(name)
        params = ", ".join(f"`{p}`={spec['default']}" for p, spec in cls.parameters().items())
        presets = "".join(f" Preset *{p}*: `{json.dumps(v)}`." for p, v in cls.presets.items())
        lines.append(f"- **{name}**: {cls.summary}. Parameters: {params}.{presets}")
    return "\n".join(lines)


PRESET_SEPARATOR = " · "
DEFAULTS = "method defaults"
AUDIT_PRESET = f"dispersion{PRESET_SEPARATOR}retain-preserving"
"""The Audit tab's starting point, on a CPU and (lacking a GPU measurement) on a GPU alike."""


def audit_preset_note(device: str) -> str:
    """Which setting the Audit tab starts from, and why (measured on a 2-core CPU, see the README)."""
    where = ("measured on a CPU" if device.startswith("CPU")
             else "measured on a CPU; no GPU measurement yet, so the GPU starts from it too")
    return (f"Starting point: **{AUDIT_PRESET}**, the best setting {where}. On the default gallery (LFW, 4 people "
            "forgotten, 24 kept) it took the forgotten people's retrieval mAP from 1.00 to 0.33 in 90 steps (2.4 s on 2 "
            "cores) while the kept people's stayed at 0.997; the method's defaults at 40 steps reach only 0.79. It stops "
            "once the forgotten people's photos no longer cluster, so the 1000-step cap is only a safeguard. Choose "
            f"*{DEFAULTS}* for the paper's setting.")


def preset_choices() -> list[str]:
    return [DEFAULTS] + [f"{name}{PRESET_SEPARATOR}{preset}" for name in list_methods() for preset in method_class(name).presets]


def _preset(choice: str | None) -> tuple[str, dict[str, Any]] | None:
    if not choice or choice == DEFAULTS:
        return None
    name, preset = choice.split(PRESET_SEPARATOR, 1)
    return name, preset_params(name, preset)


def apply_preset(choice: str | None, method: str) -> tuple[Any, str]:
    """Forget-me tab: a preset picks its method and fills the parameters box."""
    chosen = _preset(choice)
    return (method, "") if chosen is None else (chosen[0], json.dumps(chosen[1]))


def apply_audit_preset(choice: str | None, methods: list[str] | None) -> tuple[list[str], str]:
    """Audit tab: a preset adds its method to the selection and sets its parameters ({method: {...}})."""
    chosen = _preset(choice)
    if chosen is None:
        return list(methods or []), ""
    name, params = chosen
    return sorted(set(methods or []) | {name}), json.dumps({name: params})


def example_portraits(settings: AppSettings, n: int = 4) -> tuple[list[list[str]], list[str]]:
    """A few held-out photos of gallery identities (picked at runtime from the default gallery's
    split, never committed), so a visitor without a selfie can try the flow as a person the
    service holds. Empty when the gallery is not readable offline or is not file-based."""
    config = settings.workspace()
    try:
        gallery = load_gallery(config.dataset, download_if_missing=False)
        split = config.split(gallery)
    except UnlearnError:
        return [], []
    paths, labels = [], []
    for identity in split.retain_ids[:n]:
        image = next(int(i) for i in split.retain_test if gallery.labels[i] == identity)
        if isinstance(gallery.sources[image], Path):
            paths.append([str(gallery.sources[image])])
            labels.append(f"Try it as {gallery.identities[identity].replace('_', ' ')}")
    return paths, labels


def build_demo(settings: AppSettings = SETTINGS) -> gr.Blocks:
    galleries = available_galleries()
    device = device_name(resolve_device("auto"))
    fm_choice = f"{RECOMMENDED['gallery_assisted']}{PRESET_SEPARATOR}{FORGET_ME_PRESET}"
    default_method, default_params = apply_preset(fm_choice, RECOMMENDED["gallery_assisted"])
    audit_methods, audit_params = apply_audit_preset(AUDIT_PRESET, [])
    with gr.Blocks(title="Forget me: face-identity unlearning", delete_cache=(600, 1800)) as demo:
        gr.Markdown("# Forget me\nAsk a face-retrieval model to forget your face, then check whether it did. "
                    f"Running on **{device}**. Photos are processed in memory and discarded; nothing is shared between visitors.")
        if settings.dataset not in [GALLERIES[g] for g in galleries]:
            gr.Markdown(NO_GALLERY_HELP, elem_id="no-gallery")
        state = gr.State(None, time_to_live=settings.session_ttl, delete_callback=release_session)
        with gr.Tab("Forget me"), gr.Row():
            with gr.Column(scale=1):
                portrait = keep_upload_path(gr.Image(label="Your portrait (one face)", type="filepath", image_mode=None,
                                                     sources=["upload", "webcam"], elem_id="portrait"))
                extras = gr.File(label=f"More photos of you (optional, up to {MAX_EXTRA_PHOTOS}): the first half stand in for photos "
                                       "a service already holds of you (found and forgotten), the rest only test the result",
                                 file_count="multiple", file_types=["image"], type="filepath", elem_id="extras")
                fm_preset = gr.Dropdown(preset_choices(), value=fm_choice, label="Preset (measured settings)", elem_id="fm-preset")
                fm_method = gr.Dropdown(list_methods(), value=default_method, label="Method")
                fm_iterations = gr.Slider(1, 500, value=settings.iterations, step=1, label="Iterations")
                fm_main_face = gr.Checkbox(False, label="If the photo shows several faces, use the main one (large and central)")
                fm_params = gr.Textbox(default_params, label="Method parameters (JSON, optional)", placeholder='{"margin": 0.2}')
                fm_button = gr.Button("Forget me", variant="primary", elem_id="forget-button")
                examples, example_labels = example_portraits(settings)
                if examples:
                    gr.Examples(examples, [portrait], example_labels=example_labels, label="No selfie at hand? Held-out photos of "
                                "people the service holds (they are found in its gallery, then forgotten)")
            with gr.Column(scale=2):
                fm_status = gr.Markdown(elem_id="fm-status")
                with gr.Row():
                    fm_crop = gr.HTML(elem_id="fm-crop")
                    fm_bars = gr.Plot(label="Compactness and retrieval", elem_id="fm-bars")
                fm_metrics = gr.HTML(elem_id="fm-metrics")
                fm_before = gr.HTML(elem_id="fm-before")
                fm_after = gr.HTML(elem_id="fm-after")
                fm_privacy = gr.Markdown(elem_id="fm-privacy")
                fm_download = gr.HTML(elem_id="fm-download")
        with gr.Tab("Audit"), gr.Row():
            with gr.Column(scale=1):
                choices = [*galleries, "Uploaded zip"]
                au_gallery = gr.Radio(choices, value=choices[0], label="Gallery")
                au_zip = gr.File(label="Gallery zip (<identity>/<image> folders)", file_types=[".zip"], type="filepath", elem_id="au-zip")
                au_names = gr.Textbox(label="Identities to forget (comma-separated; empty = random by seed)")
                au_n_forget = gr.Slider(1, 20, value=settings.n_forget, step=1, label="Random identities to forget")
                au_n_retain = gr.Slider(2, 300, value=settings.n_retain, step=1, label="Retain identities")
                au_min_images = gr.Number(settings.min_images, precision=0, minimum=0, elem_id="au-min-images",
                                          label="Minimum photos per person (0: the gallery's own: LFW 20 to forget / 10 to retain, "
                                                "ORL 10 / 4, zip 4, the least the protocol needs)")
                au_seed = gr.Number(0, precision=0, label="Seed")
                au_preset = gr.Dropdown(preset_choices(), value=AUDIT_PRESET, label="Preset (measured settings)", elem_id="au-preset")
                gr.Markdown(audit_preset_note(device), elem_id="au-preset-note")
                au_methods = gr.CheckboxGroup(list_methods(), value=audit_methods, label="Methods")
                au_iterations = gr.Slider(1, 2000, value=settings.audit_iterations, step=1, label="Iterations")
                au_params = gr.Textbox(audit_params, placeholder='{"margin": 0.2}',
                                       label="Parameters (JSON: {method: {...}}, or one object: each parameter goes to the methods that take it)")
                au_one_shot = gr.Checkbox(False, label="One-shot (one support image per identity)")
                au_retrain = gr.Checkbox(True, label="Compare with the retrain reference")
                au_proj = gr.CheckboxGroup(["t-SNE", "UMAP"], value=["t-SNE", "UMAP"], label="Embedding maps")
                au_button = gr.Button("Run audit", variant="primary", elem_id="audit-button")
                with gr.Accordion("Audit your own models (before / after checkpoints)", open=False, elem_id="byom"):
                    gr.Markdown(f"TorchScript, ONNX, or a state dict (safetensors or `torch.save`) of an architecture named in the spec; "
                                f"up to {settings.max_model_mb} MB each, held in this session's memory only. The gallery and people are "
                                "the ones chosen above.")
                    bm_before = gr.File(label="Before (original model)", type="filepath", elem_id="bm-before")
                    bm_after = gr.File(label="After (said to have forgotten)", type="filepath", elem_id="bm-after")
                    bm_reference = gr.File(label="Reference: retrained without them (optional)", type="filepath", elem_id="bm-reference")
                    bm_spec = gr.Code(json.dumps(SPEC_EXAMPLE, indent=1), language="json", label="Model spec", elem_id="bm-spec")
                    bm_button = gr.Button("Audit uploaded models", elem_id="bm-button")
                with gr.Accordion("Forget a facial attribute instead (S3's multi-label task)", open=False, elem_id="attributes"):
                    gr.Markdown(ATTRIBUTE_HELP)
                    at_attribute = gr.Dropdown(list(ATTRIBUTES), value="male", elem_id="at-attribute",
                                               label="Attribute to forget (after a run: the attributes that passed the consistency check)")
                    at_methods = gr.CheckboxGroup(list(ATTRIBUTE_METHODS), value=list(ATTRIBUTE_DEFAULT_METHODS), label="Methods",
                                                  elem_id="at-methods")
                    at_epochs = gr.Slider(1, 50, value=AttributeTrainConfig().epochs, step=1, elem_id="at-epochs",
                                          label="Training epochs (the attribute model and the retrain reference)")
                    at_params = gr.Textbox("", placeholder='{"gradient_ascent": {"iterations": 20}}', elem_id="at-params",
                                           label="Parameters (JSON: {method: {...}}, optional)")
                    at_button = gr.Button("Forget the attribute", elem_id="at-button")
                    gr.Markdown(attribute_method_help())
                with gr.Accordion("Methods", open=False):
                    gr.Markdown(method_help())
            with gr.Column(scale=2):
                au_status = gr.Markdown(elem_id="au-status")
                au_table = gr.HTML(elem_id="au-table")
                au_tsne = gr.Plot(label="t-SNE", elem_id="au-tsne")
                au_umap = gr.Plot(label="UMAP", elem_id="au-umap")
                au_roc = gr.Plot(label="Attack ROC", elem_id="au-roc")
                au_entropy = gr.Plot(label="Entropy of the forgotten attribute's output (attribute task)", elem_id="au-entropy")
                au_galleries = gr.HTML(elem_id="au-galleries")
                au_privacy = gr.HTML(elem_id="au-privacy")
                au_download = gr.HTML(elem_id="au-download")
        info = gr.JSON(visible=False)
        fm_preset.change(apply_preset, [fm_preset, fm_method], [fm_method, fm_params])
        au_preset.change(apply_audit_preset, [au_preset, au_methods], [au_methods, au_params])
        fm_button.click(run_forget_me, [portrait, extras, fm_method, fm_iterations, fm_main_face, fm_params, state],
                        [fm_status, fm_crop, fm_metrics, fm_bars, fm_before, fm_after, fm_privacy, fm_download, state],
                        api_name="forget_me")
        au_button.click(run_audit, [au_gallery, au_zip, au_names, au_n_forget, au_n_retain, au_min_images, au_seed, au_methods, au_iterations,
                                    au_params, au_one_shot, au_retrain, au_proj, state],
                        [au_status, au_table, au_tsne, au_umap, au_roc, au_galleries, au_privacy, au_download, state],
                        api_name="audit")
        bm_button.click(run_model_audit, [au_gallery, au_zip, au_names, au_n_forget, au_n_retain, au_min_images, au_seed, bm_before, bm_after,
                                          bm_reference, bm_spec, state],
                        [au_status, au_table, au_tsne, au_umap, au_roc, au_galleries, au_privacy, au_download, state], api_name="audit_models")
        # each flow clears the other flow's figures, so that what is shown belongs to the last run
        au_button.click(lambda: None, None, au_entropy, queue=False, api_visibility="private")
        at_button.click(lambda: (None, None, None, ""), None, [au_tsne, au_umap, au_roc, au_galleries], queue=False, api_visibility="private")
        at_button.click(run_attribute_audit, [au_gallery, au_zip, au_names, au_n_forget, au_n_retain, au_min_images, au_seed, at_attribute,
                                              at_methods, at_epochs, at_params, state],
                        [au_status, au_table, au_entropy, au_privacy, au_download, at_attribute, state], api_name="audit_attributes")
        gr.Button(visible=False).click(session_info, [state], [info], api_name="session_info")
    demo.queue(default_concurrency_limit=settings.concurrency, max_size=settings.queue_size)
    return demo


def warm_up(settings: AppSettings) -> None:
    """Prepare the default workspace in the background so the first visitor waits less."""
    def build() -> None:
        try:
            POOL.build(settings.workspace())
        except UnlearnError as err:
            print(f"[app] default gallery not ready: {err}")
    threading.Thread(target=build, daemon=True).start()


def launch(settings: AppSettings, block: bool = True) -> tuple[gr.Blocks, str]:
    """Build and start the app on ``settings.host:settings.port`` (never a public share link)."""
    global SETTINGS
    SETTINGS = settings
    demo = build_demo(settings)
    if settings.warmup:
        warm_up(settings)
    _, url, _ = demo.launch(server_name=settings.host, server_port=settings.port, share=False, show_error=False, quiet=not block,
                            css_paths=[ROOT / "assets" / "app.css"], max_file_size=f"{max(25, settings.max_model_mb)}mb",
                            prevent_thread_lock=not block)
    return demo, url


def main(argv: list[str] | None = None) -> None:
    launch(AppSettings.from_env_and_args(argv))


if __name__ == "__main__":
    main()
