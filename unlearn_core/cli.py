"""Headless command line: ``python -m unlearn_core audit|audit-models|forget-me|methods|bench ...``.

Errors a user can act on (bad parameters, missing data, bad images) print one clear line and
exit with status 2; they never show a stack trace.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import faiss
import torch
from tqdm.auto import tqdm

from .attributes.table import ATTRIBUTES
from .attributes.task import DEFAULT_METHODS as DEFAULT_ATTRIBUTE_METHODS
from .attributes.task import METHODS as ATTRIBUTE_METHODS
from .attributes.task import audit_attributes
from .attributes.task import check_params as check_attribute_params
from .attributes.task import render_bench as render_attribute_bench
from .audit import audit_models, run_audit
from .backbones import create_backbone
from .backbones.external import EmbedderSpec, load_embedder
from .bench import BUDGETS, BenchConfig, merge_runs, render_markdown, run_bench
from .bench_privacy import DEFAULT_ENTRIES, Entry, run_privacy_bench
from .bench_privacy import render as render_privacy
from .bench_scale import render as render_scale
from .bench_scale import run_bench_scale
from .data import load_gallery, person_photos
from .errors import UnlearnError
from .faces import load_image
from .forget_me import FORGET_ME_PRESET, ForgetMeConfig, forget_me
from .index import GalleryIndex
from .ingest import ChipEmbedder, ingest
from .methods import create_method, list_methods, method_class, preset_params
from .pipeline import RECOMMENDED, AuditConfig, Workspace, WorkspaceConfig, cache_dir, resolve_device
from .privacy import format_privacy_table
from .references import DEFAULT_K
from .tuning import render_tuning, tune

METRIC_COLUMNS = ("mAP", "rank1", "rank5", "cs", "centroid_acc", "original_centroid_acc", "head_acc")
MIN_IMAGES_HELP = ("photos a person needs to be forgotten or retained, at least 4 (2 to train on, 2 to test); "
                   "default: the gallery's own (lfw 20 to forget / 10 to retain, olivetti 10 / 4, folder 4)")


def _width(column: str) -> int:
    return max(13, len(column) + 2)


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """``["lr=1e-4", "hard=true"]`` -> ``{"lr": 1e-4, "hard": True}`` (values parsed as JSON when possible)."""
    params = {}
    for pair in pairs:
        if "=" not in pair:
            raise UnlearnError(f"--param expects NAME=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


def format_table(report: dict[str, Any]) -> str:
    """The before/after metrics as a fixed-width text table."""
    lines = [f"{'set':<16}{'when':<8}" + "".join(f"{c:>{_width(c)}}" for c in METRIC_COLUMNS)]
    for part in ("forget", "forget_extended", "retain"):
        for when in ("before", "after"):
            if part in report[when]:
                m = report[when][part]
                lines.append(f"{part:<16}{when:<8}" + "".join(f"{m[c]:>{_width(c)}.3f}" if c in m else f"{'-':>{_width(c)}}" for c in METRIC_COLUMNS))
    return "\n".join(lines)


class TqdmProgress:
    """Progress callback drawing one tqdm bar per phase (the message prefix before ':').

    The bar shows the fraction done, the time elapsed and the message, never a rate: progress
    arrives as jumps of a fraction, so an items-per-second figure would be meaningless.
    """

    BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {elapsed}{postfix}"

    def __init__(self) -> None:
        self.bar: tqdm | None = None
        self.phase = ""

    def __call__(self, fraction: float, message: str) -> None:
        phase = message.split(":")[0]
        if phase != self.phase:
            self.close()
            self.phase = phase
            self.bar = tqdm(total=1000, desc=phase, leave=False, file=sys.stderr, bar_format=self.BAR_FORMAT)
        assert self.bar is not None
        self.bar.n = int(1000 * min(max(fraction, 0.0), 1.0))
        self.bar.set_postfix_str(message[len(phase) + 1 :].strip()[:60], refresh=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def method_and_params(args: argparse.Namespace, protocol: str, default_preset: str | None = None) -> tuple[str, dict[str, Any]]:
    """``--method`` (default: the protocol's recommended method, with ``default_preset`` unless
    ``--preset`` names another), its ``--preset`` and ``--param``s, validated."""
    method = args.method or RECOMMENDED[protocol]
    preset = args.preset or (default_preset if args.method is None else None)
    params = {**(preset_params(method, preset) if preset else {}), **parse_params(args.param)}
    create_method(method, **params)  # unknown or out-of-range parameters fail here, before any expensive work
    return method, params


def format_attribute_audit(report: dict[str, Any]) -> str:
    """The attribute task's before/after table: accuracy (balanced accuracy) per attribute, AIA, entropy, runtime."""
    runs = {"before": report["before"], "retrain": report["retrain"], **report["methods"]}
    lines = [f"{'attribute':<22}" + "".join(f"{name:>20}" for name in runs)]
    for attr in report["attributes"]:
        tag = " (forgotten)" if attr == report["forget_attribute"] else ""
        lines.append(f"{attr + tag:<22}" + "".join(
            f"{r['attributes'][attr]['accuracy']:>11.3f} ({r['attributes'][attr]['balanced_accuracy']:.3f})" for r in runs.values()))
    lines.append(f"{'AIA (probe bal. acc.)':<22}" + "".join(f"{r['aia']:>20.3f}" for r in runs.values()))
    if all("mia" in r for r in runs.values()):
        lines.append(f"{'MIA AUC (forgotten)':<22}" + "".join(f"{r['mia']['auc']:>20.3f}" for r in runs.values()))
    lines.append(f"{'entropy (forgotten)':<22}" + "".join(f"{r['entropy_mean']:>20.3f}" for r in runs.values()))
    seconds = {"before": report["timing_s"]["train"], "retrain": report["timing_s"]["retrain"],
               **{m: r["unlearn_s"] for m, r in report["methods"].items()}}
    lines.append(f"{'runtime (s)':<22}" + "".join(f"{seconds[name]:>20.1f}" for name in runs))
    lines.append(f"{'speed-up vs retrain':<22}{'':>20}{'1.0':>20}" + "".join(f"{r['speedup']:>20.1f}" for r in report["methods"].values()))
    return "\n".join(lines)


def attribute_methods(text: str | None) -> tuple[str, ...]:
    """``--method`` for the attribute task: one name, several comma-separated, ``all``, or the default (WF and WP)."""
    if not text:
        return DEFAULT_ATTRIBUTE_METHODS
    methods = ATTRIBUTE_METHODS if text == "all" else tuple(m.strip() for m in text.split(",") if m.strip())
    wrong = [m for m in methods if m not in ATTRIBUTE_METHODS]
    if wrong or not methods:
        raise UnlearnError(f"--task attributes runs {', '.join(ATTRIBUTE_METHODS)} (comma-separated, or all), not {text!r}")
    return methods


def cmd_audit_attributes(args: argparse.Namespace) -> int:
    if args.forget_attribute not in ATTRIBUTES:
        raise UnlearnError(f"--task attributes needs --forget-attribute NAME, one of {', '.join(ATTRIBUTES)} (got {args.forget_attribute!r})")
    if args.one_shot or args.gallery_assisted or args.preset:
        raise UnlearnError("--one-shot, --gallery-assisted and --preset apply to the identity task only")
    methods = attribute_methods(args.method)
    params = parse_params(args.param)
    if params and len(methods) != 1:
        raise UnlearnError("--param needs a single --method with --task attributes (the methods have different parameters)")
    for method in methods:
        check_attribute_params(method, params)  # out-of-range parameters fail before any expensive work
    progress = TqdmProgress()
    ws = Workspace(WorkspaceConfig(dataset=args.dataset, n_forget=args.forget, seed=args.seed, backbone=args.backbone,
                                   device="cpu", train_from="tail", n_distractors=0, n_retain=args.retain,
                                   min_images=args.min_images), progress)
    progress.close()
    report = audit_attributes(ws, args.forget_attribute, methods, args.seed, dict.fromkeys(methods, params)).to_json()
    report.update(dataset=args.dataset, seed=args.seed)
    print(f"forgetting the attribute {report['forget_attribute']!r} entirely on {args.dataset} (seed {args.seed}); "
          f"{report['n_train']} training / {report['n_test']} test photos")
    print("labels are PSEUDO-labels from face-api's age/gender and expression nets; kept after the consistency check: "
          + ", ".join(report["attributes"]))
    print("test accuracy (balanced accuracy; 0.5 = chance for any constant guess)")
    print(format_attribute_audit(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
        print(f"report written to {args.json}")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    if args.task == "attributes":
        return cmd_audit_attributes(args)
    if args.forget_attribute:
        raise UnlearnError("--forget-attribute needs --task attributes")
    protocol = "one_shot" if args.one_shot else "gallery_assisted" if args.gallery_assisted else "standard"
    method, params = method_and_params(args, protocol)
    config = AuditConfig(
        method=method,
        params=params,
        iterations=args.iterations,
        one_shot=args.one_shot,
        gallery_assisted=args.gallery_assisted,
        privacy=not args.no_privacy,
        references=args.references,
        workspace=WorkspaceConfig(dataset=args.dataset, n_forget=args.forget, seed=args.seed, backbone=args.backbone,
                                  device=args.device, train_from=args.train_from, n_distractors=args.distractors,
                                  n_retain=args.retain, min_images=args.min_images),
    )
    progress = TqdmProgress()
    report = run_audit(config, progress)
    progress.close()
    print(f"{report['method']} on {report['dataset']} ({report['backbone']}, {report['device']}, "
          f"train_from={report['train_from']}, seed {report['seed']})")
    print(f"forget identities: {', '.join(report['forget_identities'])}")
    print(format_table(report))
    if "find" in report:
        find = report["find"]
        print(f"find: {find['n_found']} photos found, precision {find['precision']:.3f}, recall {find['recall']:.3f} "
              f"(false-match rate at the threshold {find['thresholds']['expanded']['fmr']:.1e} on retained identities)")
    print(format_index_states(report["index"], "their held-out photos", "them (their training photos)"))
    if "privacy" in report:
        print(format_privacy_table(report["privacy"]))
    print("timing (s): " + ", ".join(f"{k} {v:.1f}" for k, v in report["timing_s"].items()))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
        print(f"report written to {args.json}")
    return 0


def read_photo(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as err:
        raise UnlearnError(f"cannot read {path}: {err.strerror or err}") from None


def format_index_states(states: dict[str, dict[str, float]], checks: str = "your check photos", whom: str = "you") -> str:
    """The search index in each state of forgetting (``metrics.INDEX_STATES``) as a text table."""
    columns = list(dict.fromkeys(c for m in states.values() for c in m))
    lines = [f"search index: {checks} as queries; stored_*: the rows the service keeps of {whom} as queries",
             f"{'state':<18}" + "".join(f"{c:>12}" for c in columns)]
    lines += [f"{state:<18}" + "".join(f"{m[c]:>12.3f}" if c in m else f"{'deleted':>12}" for c in columns) for state, m in states.items()]
    return "\n".join(lines)


def cmd_forget_me(args: argparse.Namespace) -> int:
    method, params = method_and_params(args, "gallery_assisted", FORGET_ME_PRESET)
    config = ForgetMeConfig(method=method, params=params, iterations=args.iterations, take_main_face=args.main_face, seed=args.seed)
    portrait, enrolled, check = read_photo(args.portrait), [read_photo(p) for p in args.enrolled], [read_photo(p) for p in args.check]
    load_image(portrait)  # a file that is not an image fails here, before the workspace is built
    progress = TqdmProgress()
    started = time.perf_counter()
    ws = Workspace(WorkspaceConfig(dataset=args.dataset, n_forget=args.forget, seed=args.seed, device=args.device,
                                   train_from=args.train_from, n_distractors=args.distractors, n_retain=args.retain,
                                   max_images_per_identity=args.max_images), progress)
    warm = time.perf_counter()
    result = forget_me(ws, portrait, enrolled, check, config, progress)
    progress.close()
    report = result.report
    report["timing_s"].update(total=round(time.perf_counter() - warm, 3), workspace=round(warm - started, 3))
    find = report["find"]
    print(f"{report['method']} on {report['workspace']['dataset']} ({report['device']}), protocol {report['protocol']}")
    print(f"find: {find['n_found']} photos found ({find['n_true_found']} of your {find['n_present']} enrolled, "
          f"{find['n_other_people']} of other people); precision {find['precision']:.3f}, recall {find['recall']:.3f}")
    rows = [("you (check photos)", report["visitor"], ("before", "after", "after_deletion")),
            ("retained identities", report["retain"], ("before", "after"))]
    print(f"{'set':<22}{'when':<16}{'mAP':>8}{'rank1':>8}{'cs':>8}")
    for name, block, whens in rows:
        for when in whens:
            m = block[when]
            print(f"{name:<22}{when:<16}" + "".join(f"{m[k]:>8.3f}" if k in m else f"{'-':>8}" for k in ("mAP", "rank1", "cs")))
    print(format_index_states(report["index"]))
    for note in result.notes:
        print(f"note: {note}")
    print("timing (s): " + ", ".join(f"{k} {v:.2f}" for k, v in report["timing_s"].items()))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=float))
        print(f"report written to {args.json}")
    return 0


def read_spec(text: str) -> EmbedderSpec:
    """``--spec``: a JSON file's path, or the JSON itself."""
    path = Path(text)
    if not text.lstrip().startswith("{"):
        if not path.is_file():
            raise UnlearnError(f"--spec {text}: no such file (give a JSON file or the JSON itself)")
        text = path.read_text()
    return EmbedderSpec.from_json(text)


def cmd_audit_models(args: argparse.Namespace) -> int:
    spec = read_spec(args.spec)
    names = [n.strip() for n in (args.forget or "").split(",") if n.strip()]
    if names and args.forget_folder:
        raise UnlearnError("give the people to forget by name (--forget) or as a folder of photos (--forget-folder), not both")
    config = WorkspaceConfig(dataset=args.gallery, n_forget=args.n_forget, seed=args.seed, device=args.device, n_distractors=args.distractors,
                             n_retain=args.retain, min_images=args.min_images, forget_ids=names or None)
    gallery = None
    if args.forget_folder:
        folder = Path(args.forget_folder)
        gallery = load_gallery(args.gallery).with_identity(folder.name, person_photos(folder))
        config = dataclasses.replace(config, forget_ids=[folder.name])
    device = resolve_device(args.device)
    models = {role: load_embedder(path, spec, device, label=f"{role} model ({path})")
              for role, path in (("before", args.before), ("after", args.after), ("reference", args.reference)) if path}
    progress = TqdmProgress()
    result = audit_models(models, config, gallery, progress)
    progress.close()
    report = result.report
    models_line = ", ".join(f"{role}: {m['format']} {m['embed_dim']}-D" for role, m in report["models"].items())
    print(f"{models_line} on {report['dataset']}")
    print(f"forget identities: {', '.join(report['forget_identities'])}")
    lines = [f"{'set':<16}{'model':<11}" + "".join(f"{c:>{_width(c)}}" for c in METRIC_COLUMNS[:-1])]
    for part in ("forget", "forget_extended", "retain"):
        for role in models:
            if part in report[role]:
                lines.append(f"{part:<16}{role:<11}" + "".join(f"{report[role][part][c]:>{_width(c)}.3f}" for c in METRIC_COLUMNS[:-1]))
    print("\n".join(lines))
    for finding in report["findings"]:
        print(f"- {finding}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=float))
        print(f"report written to {args.json}")
    return 0


def pretrained_embedder(args: argparse.Namespace) -> ChipEmbedder:
    """The pretrained ``--backbone`` on ``--device`` with ``--threads`` CPU threads (torch and faiss)."""
    if args.threads:
        torch.set_num_threads(args.threads)
        faiss.omp_set_num_threads(args.threads)
    device = resolve_device(args.device)
    backbone = create_backbone(args.backbone)
    backbone.module.to(device)
    return ChipEmbedder(backbone, device=str(device))


def cmd_ingest(args: argparse.Namespace) -> int:
    embedder = pretrained_embedder(args)
    device = embedder.device
    runner = None
    if args.workers or args.ray_address:
        from .distributed import RayRunner

        runner = RayRunner(args.ray_address, args.workers or 2, gpus_per_worker=args.gpus_per_worker)
    result = ingest(load_gallery(args.dataset), embedder, cache_dir(), args.batch_size, runner=runner)
    stats = result.stats
    print(f"{len(result.rows)} faces of {stats.n_images} images ({stats.n_images - len(result.rows)} without a face), {device}; "
          f"this run aligned {stats.aligned} ({stats.rate('align'):.1f} img/s) and embedded {stats.embedded} ({stats.rate('embed'):.1f} img/s); "
          f"{stats.shards_read} batches read from the cache, {stats.shards_written} written; {stats.timing_s['wall']:.1f} s in all")
    if args.index:
        started = time.perf_counter()
        index = GalleryIndex.build(result.rows, result.vectors, result.labels)
        index.save(args.index)
        print(f"{index.kind} index of {index.count} vectors built in {time.perf_counter() - started:.2f} s, saved to {args.index}")
    if args.milvus:
        from .index_milvus import MilvusIndex

        started = time.perf_counter()
        milvus = MilvusIndex.build(args.milvus, result.rows, result.vectors, result.labels, args.collection, os.environ.get("MILVUS_TOKEN"))
        print(f"Milvus collection {args.collection!r} at {args.milvus}: {milvus.count} vectors written in {time.perf_counter() - started:.2f} s")
        milvus.close()
    return 0


def cmd_bench_scale(args: argparse.Namespace) -> int:
    embedder = pretrained_embedder(args)
    results = run_bench_scale(load_gallery(args.dataset), embedder, cache_dir(), parse_ints(args.sizes), args.rate_sample,
                              ray_workers=args.ray_workers, milvus=args.milvus)
    text = render_scale(results)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


def cmd_bench_privacy(args: argparse.Namespace) -> int:
    entries = [Entry.parse(text) for text in args.methods.split(",") if text.strip()]
    workspace = WorkspaceConfig(dataset=args.dataset, n_forget=args.forget, backbone=args.backbone, device=args.device,
                                train_from=args.train_from, n_retain=args.retain)

    def save(results: dict[str, Any]) -> None:  # after every seed: a cut run keeps what it measured
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2, default=float))
        if args.out:
            Path(args.out).write_text(render_privacy(results))

    results = run_privacy_bench(workspace, entries, parse_ints(args.seeds), args.references, TqdmProgress(), on_seed=save)
    print(render_privacy(results))
    return 0


def parse_grid(pairs: list[str]) -> dict[str, list[Any]]:
    """``["lr=1e-4,1e-3", "clip_norm=null,5"]`` -> ``{"lr": [1e-4, 1e-3], "clip_norm": [None, 5]}``."""
    grid = {}
    for pair in pairs:
        key, _, values = pair.partition("=")
        try:
            grid[key] = json.loads(f"[{values}]")
        except json.JSONDecodeError:
            raise UnlearnError(f"--grid expects NAME=V1,V2,... with numbers, true/false or null, got {pair!r}") from None
        if not key or not grid[key]:
            raise UnlearnError(f"--grid expects NAME=V1,V2,..., got {pair!r}")
    return grid


def earlier_results(args: argparse.Namespace) -> Any:
    """With ``--merge``: the earlier run's results in ``--json``, which this run updates; None without it."""
    if not args.merge:
        return None
    if not args.json or not Path(args.json).exists():
        raise UnlearnError("--merge needs --json FILE from an earlier run")
    return json.loads(Path(args.json).read_text())


def cmd_tune(args: argparse.Namespace) -> int:
    names = [m.strip() for m in args.methods.split(",") if m.strip()]
    grid = parse_grid(args.grid)
    if grid and len(names) != 1:
        raise UnlearnError("--grid applies to one method: give one name in --methods")
    for name in names:
        method_class(name)
    earlier = earlier_results(args)
    ws = Workspace(WorkspaceConfig(dataset=args.dataset, n_forget=args.forget, seed=args.seed, device=args.device, n_retain=args.retain),
                   TqdmProgress())
    command = (f"python -m unlearn_core tune --methods {args.methods} --dataset {args.dataset} --forget {args.forget} "
               f"--retain {args.retain} --seed {args.seed}")
    results = [r for r in earlier if r["method"] not in names] if earlier is not None else []  # keep the other methods' results
    for name in names:
        one_shot = args.one_shot or name in ONE_SHOT_TUNED
        results.append(tune(ws, name, grid or None, one_shot=one_shot, seed=args.seed, progress=TqdmProgress()))
        text = render_tuning(results, command)
        if args.out:
            Path(args.out).write_text(text)
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2, default=float))
    print(text)
    return 0


ONE_SHOT_TUNED = ("jit", "meta_unlearn")
"""Tuned in the one-shot setting, where S2 runs them (one support photo per identity)."""


def cmd_methods(args: argparse.Namespace) -> int:
    for name in list_methods():
        cls = method_class(name)
        print(f"{name:<20}{cls.summary}")
        if args.verbose:
            print(f"    budget: {cls.budget_counts or 'none (closed form)'}")
            for pname, spec in cls.parameters().items():
                bounds = f"{spec['choices']}" if spec["choices"] else f"[{spec['low']}, {spec['high']}]"
                print(f"    {pname:<16}default {spec['default']!r:<10} {bounds:<20} {spec['help']}")
            for preset, values in cls.presets.items():
                print(f"    preset {preset}: " + " ".join(f"{k}={v}" for k, v in values.items()))
    return 0


def cmd_bench_attributes(args: argparse.Namespace) -> int:
    if args.forget_attribute not in ATTRIBUTES:
        raise UnlearnError(f"--task attributes needs --forget-attribute NAME, one of {', '.join(ATTRIBUTES)} (got {args.forget_attribute!r})")
    command = (f"python -m unlearn_core bench --task attributes --forget-attribute {args.forget_attribute} --dataset {args.dataset} "
               f"--forget {args.forget} --retain {args.retain} --seeds {args.seeds} --methods {args.methods}")
    methods = attribute_methods(args.methods)
    reports = []
    for seed in parse_ints(args.seeds):
        ws = Workspace(WorkspaceConfig(dataset=args.dataset, n_forget=args.forget, seed=seed, backbone=args.backbone, device="cpu",
                                       train_from="tail", n_distractors=0, n_retain=args.retain, min_images=args.min_images))
        reports.append({**audit_attributes(ws, args.forget_attribute, methods, seed).to_json(), "seed": seed})
        text = render_attribute_bench(reports, command)
        if args.out:
            Path(args.out).write_text(text)
        if args.json:
            Path(args.json).write_text(json.dumps(reports, indent=2))
    print(text)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    if args.task == "attributes":
        return cmd_bench_attributes(args)
    config = BenchConfig(
        methods=[] if args.methods == "all" else [m.strip() for m in args.methods.split(",") if m.strip()],
        seeds=parse_ints(args.seeds),
        budget=args.budget,
        iterations=args.iterations,
        protocols=[p.strip() for p in args.protocols.split(",") if p.strip()],
        workspace=WorkspaceConfig(dataset=args.dataset, n_forget=args.forget, backbone=args.backbone, device=args.device,
                                  train_from=args.train_from, n_distractors=args.distractors, n_retain=args.retain,
                                  min_images=args.min_images),
    )

    earlier = earlier_results(args)  # replace some methods' runs in an earlier run's results

    def save(results: dict) -> None:
        if earlier is not None:
            results = merge_runs(earlier, results)
        if args.out:
            Path(args.out).write_text(render_markdown(results))
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2))
        if args.out or args.json:
            print(f"results after {len(results['seeds'])} seed(s) written to {args.out or ''} {args.json or ''}", file=sys.stderr)

    progress = TqdmProgress()
    results = run_bench(config, progress, log=lambda m: tqdm.write(m, file=sys.stderr), on_seed=save)
    progress.close()
    print(render_markdown(results if earlier is None else merge_runs(earlier, results)))
    return 0


def parse_ints(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UnlearnError(f"expected comma-separated integers, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m unlearn_core", description="Face-identity unlearning: audit and benchmark.")
    sub = parser.add_subparsers(dest="command", required=True)
    audit = sub.add_parser("audit", help="unlearn identities with one method and report before/after metrics")
    audit.add_argument("--dataset", default="lfw", help="lfw, olivetti, or folder:PATH (<root>/<identity>/<image>)")
    audit.add_argument("--task", choices=("identities", "attributes"), default="identities",
                       help="identities: forget people (default); attributes: S3's multi-label task, forget one facial attribute "
                       "(pseudo-labels; weight_filtering and weight_pruning, CPU tail training)")
    audit.add_argument("--forget-attribute", help=f"with --task attributes: the attribute to forget ({', '.join(ATTRIBUTES)})")
    audit.add_argument("--forget", type=int, default=10, help="number of identities to forget (sampled by seed; "
                       "with --task attributes they only shape the split: their photos are training/test photos too)")
    audit.add_argument("--retain", type=int, default=None, help="keep only this many retain identities (default all)")
    audit.add_argument("--min-images", type=int, default=None, help=MIN_IMAGES_HELP)
    audit.add_argument("--method", default=None, help="see `python -m unlearn_core methods` (default: the protocol's recommended "
                       f"method: {', '.join(f'{p} {m}' for p, m in RECOMMENDED.items())}); with --task attributes one or more "
                       f"(comma-separated, or all) of {', '.join(ATTRIBUTE_METHODS)}, default weight_filtering,weight_pruning")
    audit.add_argument("--preset", help="a named parameter set of the method (see `methods -v`); --param values override it")
    audit.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="method hyper-parameter (repeatable)")
    audit.add_argument("--iterations", type=int, default=None, help="cap on optimisation steps")
    protocol = audit.add_mutually_exclusive_group()
    protocol.add_argument("--one-shot", action="store_true", help="forget from one support image per identity")
    protocol.add_argument("--gallery-assisted", action="store_true",
                          help="one held-out selfie per identity finds its training photos, which are forgotten")
    audit.add_argument("--seed", type=int, default=0)
    audit.add_argument("--backbone", default="dlib_resnet")
    audit.add_argument("--device", default="auto", help="auto, cpu or cuda")
    audit.add_argument("--train-from", default="auto", help="tail (CPU fast path), full, a stage name, or auto")
    audit.add_argument("--distractors", type=int, default=1000, help="one-image identities added to the forget gallery")
    audit.add_argument("--json", help="write the JSON report here")
    audit.add_argument("--no-privacy", action="store_true", help="skip the privacy audit (membership inference vs the retrain model)")
    audit.add_argument("--references", type=int, default=DEFAULT_K,
                       help=f"reference models of the privacy audit's RMIA and U-LiRA (even, >= 4; default {DEFAULT_K})")
    audit.set_defaults(func=cmd_audit)
    fm = sub.add_parser("forget-me", help="one person's portrait finds and forgets them in a private model copy")
    fm.add_argument("--portrait", required=True, help="the person's portrait (one face)")
    fm.add_argument("--enrolled", nargs="*", default=[], metavar="PATH",
                    help="photos of the person the service already holds (joined to the private copy's data; the find step should find them)")
    fm.add_argument("--check", nargs="*", default=[], metavar="PATH", help="photos used only to test the result (never enrolled or forgotten)")
    fm.add_argument("--dataset", default="lfw", help="the service's gallery: lfw, olivetti, or folder:PATH")
    fm.add_argument("--method", default=None, help=f"default {RECOMMENDED['gallery_assisted']}")
    fm.add_argument("--preset", help="a named parameter set of the method")
    fm.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    fm.add_argument("--iterations", type=int, default=1000, help="cap on optimisation steps (iterative methods)")
    fm.add_argument("--seed", type=int, default=0)
    fm.add_argument("--forget", type=int, default=4, help="gallery identities set aside as the workspace's forget set")
    fm.add_argument("--retain", type=int, default=40, help="retained gallery identities")
    fm.add_argument("--max-images", type=int, default=20, help="photos per gallery identity at most")
    fm.add_argument("--distractors", type=int, default=1000, help="one-image identities in the gallery")
    fm.add_argument("--main-face", action="store_true", help="use the main face (large and central) when a photo shows several")
    fm.add_argument("--device", default="auto")
    fm.add_argument("--train-from", default="auto")
    fm.add_argument("--json", help="write the JSON report here")
    fm.set_defaults(func=cmd_forget_me)
    am = sub.add_parser("audit-models", help="audit a before/after pair of face models made elsewhere (TorchScript, ONNX or state dicts)")
    am.add_argument("--before", required=True, help="the original model's checkpoint")
    am.add_argument("--after", required=True, help="the checkpoint said to have forgotten the people")
    am.add_argument("--reference", help="optional: a model retrained without them (the gold standard)")
    am.add_argument("--spec", required=True, help="model spec: a JSON file or inline JSON, e.g. "
                    '\'{"input_size": 112, "template": "arcface", "mean": 127.5, "std": 127.5}\' (see README)')
    am.add_argument("--gallery", default="lfw", help="lfw, olivetti, or folder:PATH (<root>/<identity>/<image>)")
    am.add_argument("--forget", help="comma-separated names of gallery identities to audit (default: --n-forget drawn by seed)")
    am.add_argument("--forget-folder", help="a folder of one person's photos (at least 4), added to the gallery and audited")
    am.add_argument("--n-forget", type=int, default=10, help="identities drawn by seed when none are named")
    am.add_argument("--retain", type=int, default=None, help="keep only this many retain identities (default all)")
    am.add_argument("--min-images", type=int, default=None, help=MIN_IMAGES_HELP)
    am.add_argument("--distractors", type=int, default=1000, help="one-image identities added to the forget gallery")
    am.add_argument("--seed", type=int, default=0)
    am.add_argument("--device", default="auto", help="auto, cpu or cuda")
    am.add_argument("--json", help="write the JSON report here")
    am.set_defaults(func=cmd_audit_models)
    ing = sub.add_parser("ingest", help="align and embed a whole gallery in resumable batches (and save its search index)")
    ing.add_argument("--dataset", default="lfw", help="lfw, olivetti, or folder:PATH")
    ing.add_argument("--backbone", default="dlib_resnet")
    ing.add_argument("--batch-size", type=int, default=256)
    ing.add_argument("--device", default="auto", help="auto, cpu or cuda")
    ing.add_argument("--threads", type=int, default=None,
                     help="CPU threads for torch and faiss (default theirs; 1 is faster on a CPU shared with other jobs)")
    ing.add_argument("--index", help="save the gallery's search index (GalleryIndex) to this folder")
    ing.add_argument("--milvus", help="also write the vectors to Milvus: a Milvus Lite file (gallery.db) or a server URI "
                     "(http://HOST:19530; credentials in $MILVUS_TOKEN)")
    ing.add_argument("--collection", default="gallery", help="the Milvus collection (replaced if it exists)")
    ing.add_argument("--workers", type=int, default=None, help="compute the batches on this many Ray workers (local Ray unless --ray-address)")
    ing.add_argument("--ray-address", default=None, help="a Ray cluster to run the workers on: 'auto' on a cluster node, or ray://HEAD:10001")
    ing.add_argument("--gpus-per-worker", type=float, default=0.0, help="GPUs per Ray worker (0: CPU workers)")
    ing.set_defaults(func=cmd_ingest)
    scale = sub.add_parser("bench-scale", help="ingestion rates; index build, latency, recall and deletes at 13k (LFW), 100k, 1M vectors")
    scale.add_argument("--dataset", default="lfw", help="the real gallery (lfw, olivetti, or folder:PATH)")
    scale.add_argument("--sizes", default="100000,1000000", help="synthetic gallery sizes (vectors)")
    scale.add_argument("--rate-sample", type=int, default=200, help="images aligned and embedded from scratch to measure the rates")
    scale.add_argument("--backbone", default="dlib_resnet")
    scale.add_argument("--device", default="auto", help="auto, cpu or cuda")
    scale.add_argument("--threads", type=int, default=None, help="CPU threads for torch and faiss (default theirs)")
    scale.add_argument("--ray-workers", type=int, default=0, help="also measure ingestion on this many local Ray workers (needs Ray)")
    scale.add_argument("--milvus", action="store_true", help="also measure the Milvus backend (Milvus Lite) on the real gallery")
    scale.add_argument("--out", help="write the markdown report here")
    scale.set_defaults(func=cmd_bench_scale)
    bp = sub.add_parser("bench-privacy", help="the privacy audit of a few methods over seeds (docs/privacy-lfw.md)")
    bp.add_argument("--dataset", default="lfw")
    bp.add_argument("--methods", default=",".join(DEFAULT_ENTRIES), help="comma-separated METHOD or METHOD:PRESET")
    bp.add_argument("--seeds", default="0,1,2")
    bp.add_argument("--forget", type=int, default=10)
    bp.add_argument("--retain", type=int, default=40)
    bp.add_argument("--references", type=int, default=DEFAULT_K, help="reference models per seed (even, >= 4)")
    bp.add_argument("--backbone", default="dlib_resnet")
    bp.add_argument("--train-from", default="tail")
    bp.add_argument("--device", default="auto")
    bp.add_argument("--out", help="write the markdown report here (after every seed)")
    bp.add_argument("--json", help="write the raw results here (after every seed)")
    bp.set_defaults(func=cmd_bench_privacy)
    tn = sub.add_parser("tune", help="choose hyper-parameters on a validation split of the training identities (docs/tuning-lfw.md)")
    tn.add_argument("--methods", default="scrub,unsir,jit,meta_unlearn", help="comma-separated methods with a paper grid")
    tn.add_argument("--grid", action="append", default=[], metavar="NAME=V1,V2", help="replace the method's paper grid (repeatable)")
    tn.add_argument("--one-shot", action="store_true", help=f"tune every method in the one-shot setting ({', '.join(ONE_SHOT_TUNED)} always are)")
    tn.add_argument("--dataset", default="lfw")
    tn.add_argument("--forget", type=int, default=10, help="as in the bench: the real forget identities (left out) and the simulated request's size")
    tn.add_argument("--retain", type=int, default=40)
    tn.add_argument("--seed", type=int, default=0)
    tn.add_argument("--device", default="auto")
    tn.add_argument("--out", help="write the markdown report here (after every method)")
    tn.add_argument("--json", help="write the raw results here (after every method)")
    tn.add_argument("--merge", action="store_true", help="keep the results of other methods already in --json (re-tune some methods only)")
    tn.set_defaults(func=cmd_tune)
    methods = sub.add_parser("methods", help="list the registered unlearning methods")
    methods.add_argument("-v", "--verbose", action="store_true", help="show hyper-parameters")
    methods.set_defaults(func=cmd_methods)
    bench = sub.add_parser("bench", help="compare methods over several forget sets (markdown table, mean ± std)")
    bench.add_argument("--dataset", default="lfw", help="lfw, olivetti, or folder:PATH")
    bench.add_argument("--task", choices=("identities", "attributes"), default="identities",
                       help="attributes: S3's multi-label task (--methods: all = weight_filtering, weight_pruning and the baselines "
                       f"{', '.join(ATTRIBUTE_METHODS[2:])}; --budget, --protocols do not apply)")
    bench.add_argument("--forget-attribute", help=f"with --task attributes: the attribute to forget ({', '.join(ATTRIBUTES)})")
    bench.add_argument("--methods", default="all", help="comma-separated method names, or 'all'")
    bench.add_argument("--seeds", default="0,1,2", help="comma-separated seeds, one forget set each")
    bench.add_argument("--budget", default="paper", choices=sorted(BUDGETS), help="iteration caps: the methods' own defaults (paper) or short ones")
    bench.add_argument("--iterations", type=int, default=None, help="replace the budget's default cap (its per-method caps still apply)")
    bench.add_argument("--forget", type=int, default=10, help="identities to forget per seed")
    bench.add_argument("--retain", type=int, default=None, help="keep only this many retain identities (default all)")
    bench.add_argument("--min-images", type=int, default=None, help=MIN_IMAGES_HELP)
    bench.add_argument("--distractors", type=int, default=1000, help="one-image identities added to the forget gallery")
    bench.add_argument("--backbone", default="dlib_resnet")
    bench.add_argument("--device", default="auto", help="auto, cpu or cuda")
    bench.add_argument("--train-from", default="auto", help="tail (CPU fast path), full, a stage name, or auto")
    bench.add_argument("--protocols", default="standard,one_shot", help="comma-separated: standard, one_shot, gallery_assisted")
    bench.add_argument("--out", help="write the markdown table here")
    bench.add_argument("--json", help="write the raw per-seed numbers here")
    bench.add_argument("--merge", action="store_true",
                       help="replace only these methods' runs in the earlier results in --json (same workspaces, budget, protocols)")
    bench.set_defaults(func=cmd_bench)
    return parser




def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UnlearnError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
