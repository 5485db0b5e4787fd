"""``bench``: every registered method on the same forget sets, tabulated like S0 Tables 1-2 and
S2 Tables 1-4.

One ``Workspace`` per seed (each seed samples a different forget set, as S0 §5.3 averages over
three forget sets); on it the original model is evaluated, then every method runs through
``audit.audit`` in the standard setting (full forget set) and, when it can work from a support
sample, in the one-shot setting (one image per forget identity, S2 §3). ``retrain`` (when
registered) is the reference: the speed-up column is its unlearning time over each method's, and
ToW (S2 Eq. 7) compares each method's mAP with its mAP.

Choices: numbers are mean ± sample standard deviation (ddof=1) over seeds, the mean alone for one
seed; mAP, R@1, centroid accuracy and ToW are in percent. ToW is S2 Eq. 7 with its three factors
(``tow_maps``: forget and retain training photos, held-out photos of retained people). A method that
raises is recorded with its error and the benchmark goes on.
"""
from __future__ import annotations

import copy
import dataclasses
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .attacks.functional import tug_of_war
from .audit import audit
from .errors import InvalidParameter
from .features import PARTS
from .methods import create_method, list_methods, method_class
from .metrics import tow_maps
from .pipeline import PROTOCOLS, AuditConfig, Workspace, WorkspaceConfig, device_name
from .types import Progress


@dataclass(frozen=True)
class BudgetProfile:
    """A default iteration cap for every method plus per-method caps.

    ``overrides`` keys are a method ``name`` or one method in one setting (``name@one_shot`` /
    ``name@standard``); a cap of ``None`` means the method's own default (no cap)."""

    iterations: int | None
    overrides: dict[str, int | None]
    note: str


BUDGETS: dict[str, BudgetProfile] = {
    "paper": BudgetProfile(None, {}, "each method's own default (the papers' budgets where they state one)"),
    "short": BudgetProfile(40, {"retrain": 100, "dispersion": 300, "hard_dispersion": 300},
                           "40 steps for every method, 300 for the dispersion losses (most of their effect arrives by then), "
                           "100 for retrain (its time, and so every speed-up, refers to that shortened run)"),
}
"""``paper`` fits LFW (40 retain identities) x 3 seeds x all methods in well under an hour on a 2-core
CPU; ``short`` in about a quarter of that."""

REFERENCE = "retrain"
SETTINGS = PROTOCOLS
Log = Callable[[str], None]


@dataclass
class BenchConfig:
    """What to benchmark. ``workspace`` is the template; each seed replaces its ``seed``."""

    methods: list[str] = field(default_factory=list)
    """Methods to compare (empty: all registered). ``retrain`` runs as the reference when registered."""
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    budget: str = "paper"
    """A ``BUDGETS`` profile: the default cap and the per-method caps."""
    iterations: int | None = None
    """Replaces the profile's default cap (per-method caps still apply)."""
    workspace: WorkspaceConfig = field(default_factory=WorkspaceConfig)
    protocols: list[str] = field(default_factory=lambda: list(SETTINGS))
    """Which protocols to run (``pipeline.PROTOCOLS``); 'standard' always runs (the reference lives there)."""

    def __post_init__(self) -> None:
        unknown = set(self.protocols) - set(SETTINGS)
        if unknown:
            raise InvalidParameter(f"unknown protocol(s) {sorted(unknown)}; choose from {list(SETTINGS)}")
        self.protocols = [p for p in SETTINGS if p in self.protocols or p == "standard"]
        if self.budget not in BUDGETS:
            raise InvalidParameter(f"budget must be one of {sorted(BUDGETS)}, got {self.budget!r}")
        if self.iterations is None:
            self.iterations = BUDGETS[self.budget].iterations
        if not self.seeds:
            raise InvalidParameter("bench needs at least one seed")
        if len(set(self.seeds)) != len(self.seeds):
            raise InvalidParameter(f"seeds must be distinct, got {self.seeds}")
        if self.iterations is not None and self.iterations < 1:
            raise InvalidParameter(f"iterations must be >= 1, got {self.iterations}")
        for name in self.methods:
            method_class(name)  # unknown names fail here, before any expensive work

    @property
    def overrides(self) -> dict[str, int | None]:
        """The budget profile's per-method caps."""
        return BUDGETS[self.budget].overrides

    def method_names(self) -> list[str]:
        """The reference first (when registered), then the requested methods."""
        names = [n for n in (self.methods or list_methods()) if n != REFERENCE]
        return ([REFERENCE] if REFERENCE in list_methods() else []) + names

    def cap(self, name: str, setting: str = "standard") -> int | None:
        for key in (f"{name}@{setting}", name):
            if key in self.overrides:
                return self.overrides[key]
        return self.iterations


def one_shot_skip_reason(needs: frozenset[str]) -> str | None:
    """Why a method with these data needs does not belong in the one-shot table (None: it does).

    S2 §5.1: a method must unlearn from the support sample (it reads 'support'; in the one-shot
    request the forget set is absent). Whether it also reads retain data is what the "Reads" column
    says, as S2's Tables 1-4 mark it in their "access to dataset" column (Bad Teacher and SCRUB
    read retain data and sit in the same tables as the data-free methods).
    """
    if "support" not in needs:
        return "reads the full forget set only" if "forget" in needs else "reads no forget-side data"
    return None


def machine() -> dict[str, Any]:
    """CPU model, cores and software versions, for the table header."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(), "platform": platform.platform()}


def _run(ws: Workspace, name: str, cap: int | None, setting: str, progress: Progress) -> dict[str, Any]:
    """One method on one workspace; failures become an ``error`` entry instead of an exception.
    ``seconds`` is the request's time (find + unlearn in the gallery-assisted setting);
    ``run_s``/``cpu_s``: wall and process CPU time of the request plus evaluation (for planning runs)."""
    wall, cpu = time.perf_counter(), time.process_time()
    config = AuditConfig(method=name, iterations=cap, one_shot=setting == "one_shot", gallery_assisted=setting == "gallery_assisted")
    try:
        result = audit(ws, [config], progress=progress).runs[name]
    except Exception as err:
        return {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc(limit=-4)}
    timing = result.timing_s
    run = {"metrics": result.after, "seconds": timing.get("request", timing["unlearn"]), "iterations_run": result.iterations_run,
           "run_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}
    if result.find is not None:
        run.update(find={k: result.find[k] for k in ("n_found", "n_present", "precision", "recall")}, before=result.before)
    return run


def runs_in(setting: str, needs: frozenset[str]) -> str | None:
    """Why a method with these data needs does not run in ``setting`` (None: it does)."""
    if setting == "one_shot":
        return one_shot_skip_reason(needs)
    if setting == "gallery_assisted" and "forget" not in needs:
        return "reads no forget set (the found photos)"
    return None


def run_bench(config: BenchConfig, progress: Progress | None = None, log: Log | None = None,
              on_seed: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run every method on every seed; returns the raw per-seed results (JSON-serialisable).
    ``on_seed`` receives the results so far after each seed (so a cut run keeps what it measured)."""
    progress = progress or (lambda f, m: None)
    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    names = config.method_names()
    needs: dict[str, frozenset[str] | None] = {}
    skipped: dict[str, str] = {}
    for name in names:
        try:
            needs[name] = create_method(name).data_needs()
        except Exception as err:
            needs[name] = None
            skipped[name] = f"cannot be created: {type(err).__name__}: {err}"
            continue
        for setting in config.protocols[1:]:
            reason = "the reference, trained on retain data" if name == REFERENCE else runs_in(setting, needs[name])
            if reason:
                skipped.setdefault(setting, {})[name] = reason
    runnable = {s: [n for n in names if n not in skipped.get(s, {}) and (s == "standard" or n not in skipped.get("standard", {}))]
                for s in config.protocols}
    total = len(config.seeds) * sum(len(v) for v in runnable.values())
    started, done = time.perf_counter(), 0
    results: dict[str, Any] = {
        "config": {"methods": names, "seeds": config.seeds, "budget": config.budget, "budget_note": BUDGETS[config.budget].note,
                   "iterations": config.iterations, "overrides": config.overrides,
                   "workspace": dataclasses.asdict(config.workspace)},
        "machine": machine(),
        "budgets": {n: {"cap": config.cap(n), "one_shot_cap": config.cap(n, "one_shot"),
                        "default": method_class(n).parameters().get("iterations", {}).get("default")} for n in names},
        "needs": {n: sorted(v) if v is not None else None for n, v in needs.items()},
        "protocols": config.protocols,
        "skipped": {s: {n: r for n, r in v.items() if n != REFERENCE} for s, v in skipped.items()},
        "seeds": [],
    }
    for seed in config.seeds:
        log(f"[seed {seed}] preparing {config.workspace.dataset} (align, encode, original model)")
        wall, cpu = time.perf_counter(), time.process_time()
        ws = Workspace(dataclasses.replace(config.workspace, seed=seed), progress)
        record: dict[str, Any] = {
            "seed": seed, "forget_identities": ws.identity_names(ws.forget_classes), "n_retain_identities": len(ws.split.retain_ids),
            "n_images": {p: len(ws.parts[p]) for p in PARTS}, "workspace_timing_s": dict(ws.timing),
            "original": ws.evaluate(ws.original), **{setting: {} for setting in config.protocols},
        }
        record.update(prepare_s=time.perf_counter() - wall, prepare_cpu_s=time.process_time() - cpu)
        results.update(device=device_name(ws.device), backbone=ws.backbone.name, train_from=ws.backbone.stage_names[ws.start],
                       dataset=ws.gallery.name)
        for setting in config.protocols:
            for name in runnable[setting]:
                done += 1
                label = f"seed {seed} {name} ({setting.replace('_', '-')})"
                log(f"[{done}/{total} | {time.perf_counter() - started:.0f} s] {label}")
                run = _run(ws, name, config.cap(name, setting), setting, lambda f, m, label=label: progress(f, f"{label}: {m}"))
                record[setting][name] = run
                log(f"    -> {run['error']}" if "error" in run else
                    f"    -> unlearn {run['seconds']:.1f} s ({run['iterations_run']} it; with evaluation {run['run_s']:.1f} s, "
                    f"CPU {run['cpu_s']:.1f} s), forget mAP {run['metrics']['forget']['mAP']:.3f}, retain mAP {run['metrics']['retain']['mAP']:.3f}")
        results["seeds"].append(record)
        results["total_s"] = time.perf_counter() - started
        if on_seed is not None:
            on_seed(results)
    return results


def merge_runs(earlier: dict[str, Any], rerun: dict[str, Any]) -> dict[str, Any]:
    """``earlier`` with the runs of ``rerun``'s methods replaced (e.g. one method rerun after a fix).

    Both must come from the same workspaces, budget and protocols, and ``rerun``'s seeds must be
    among ``earlier``'s. The reference keeps its earlier runs (the rerun's own reference is only its
    speed-up baseline). ``reruns`` records what was rerun, on which machine and in how long.
    """
    for key in ("workspace", "budget", "iterations"):
        if earlier["config"][key] != rerun["config"][key]:
            raise InvalidParameter(f"cannot merge: the earlier run's {key} was {earlier['config'][key]!r}, "
                                   f"this run's is {rerun['config'][key]!r}")
    if earlier["protocols"] != rerun["protocols"]:
        raise InvalidParameter(f"cannot merge: the earlier run's protocols were {earlier['protocols']}, this run's are {rerun['protocols']}")
    merged = copy.deepcopy(earlier)
    merged_seeds = {r["seed"]: r for r in merged["seeds"]}
    missing = [r["seed"] for r in rerun["seeds"] if r["seed"] not in merged_seeds]
    if missing:
        raise InvalidParameter(f"cannot merge: seed(s) {missing} are not in the earlier run (it has {sorted(merged_seeds)})")
    names = [n for n in rerun["config"]["methods"] if n != REFERENCE]
    merged["config"]["methods"] += [n for n in names if n not in merged["config"]["methods"]]
    for part in ("budgets", "needs"):
        merged[part].update({n: rerun[part][n] for n in names})
    for setting in merged["protocols"]:
        skipped = merged["skipped"].setdefault(setting, {})
        for name in names:
            skipped.pop(name, None)
            if name in rerun["skipped"].get(setting, {}):
                skipped[name] = rerun["skipped"][setting][name]
    for record in rerun["seeds"]:
        for setting in merged["protocols"]:
            target = merged_seeds[record["seed"]][setting]
            for name in names:
                target.pop(name, None)
                if name in record[setting]:
                    target[name] = record[setting][name]
    merged.setdefault("reruns", []).append({"methods": names, "seeds": [r["seed"] for r in rerun["seeds"]],
                                            "total_s": rerun.get("total_s", 0.0), "machine": rerun["machine"]})
    return merged


# -- tables ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Column:
    header: str
    scale: float
    decimals: int
    suffix: str = ""


COLUMNS: dict[str, Column] = {
    "forget.mAP": Column("Forget mAP ↓", 100, 2), "forget.rank1": Column("Forget R@1 ↓", 100, 2),
    "forget_extended.mAP": Column("Forget+distr. mAP ↓", 100, 2), "forget_extended.rank1": Column("Forget+distr. R@1 ↓", 100, 2),
    "forget.cs": Column("Forget CS ↓", 1, 3), "forget.centroid_acc": Column("Forget acc ↓", 100, 2),
    "forget.original_centroid_acc": Column("Forget acc₀ ↓", 100, 2), "forget.head_acc": Column("Forget cls ↓", 100, 2),
    "retain.mAP": Column("Retain mAP ↑", 100, 2), "retain.rank1": Column("Retain R@1 ↑", 100, 2),
    "retain.cs": Column("Retain CS", 1, 3), "retain.centroid_acc": Column("Retain acc ↑", 100, 2),
    "retain.original_centroid_acc": Column("Retain acc₀ ↑", 100, 2), "retain.head_acc": Column("Retain cls ↑", 100, 2),
    "tow": Column("ToW ↑", 100, 2), "seconds": Column("Unlearn s", 1, 1), "speedup": Column("Speed-up", 1, 1, "×"),
    "forget_ratio": Column("Forget mAP ÷ before ↓", 1, 3), "retain_drop": Column("Retain mAP drop ↓", 1, 3),
    "find.precision": Column("Find P ↑", 100, 1), "find.recall": Column("Find R ↑", 100, 1),
}


def seed_values(record: dict[str, Any], setting: str, name: str) -> dict[str, float] | None:
    """The table's numbers for one method on one seed (None when it failed or did not run).
    ``name`` may be 'original'; the reference's numbers come from the standard setting."""
    original = record["original"]
    if name == "original":
        metrics, seconds, run = original, None, {}
    else:
        run = record["standard" if name == REFERENCE else setting].get(name)
        if run is None or "error" in run:
            return None
        metrics, seconds = run["metrics"], run["seconds"]
        original = run.get("before", original)  # gallery-assisted: the same photos, selfies left out
    values = {key: metrics[part][metric] for key in COLUMNS if "." in key for part, metric in [key.split(".")]
              if part in metrics and metric in metrics[part]}
    values.update({f"find.{k}": v for k, v in run.get("find", {}).items() if k in ("precision", "recall")})
    if name != "original":
        values["forget_ratio"] = metrics["forget"]["mAP"] / original["forget"]["mAP"]
        values["retain_drop"] = original["retain"]["mAP"] - metrics["retain"]["mAP"]
    reference = record["standard"].get(REFERENCE)
    if reference is not None and "error" not in reference:
        ref = reference["metrics"]
        values["tow"] = tug_of_war(tow_maps(metrics), tow_maps(ref))
        if seconds is not None and seconds > 0:
            values["speedup"] = reference["seconds"] / seconds
    if seconds is not None:
        values["seconds"] = seconds
    return values


def mean_std(values: list[float], column: Column) -> str:
    """``"88.70 ± 1.00"`` (sample std over seeds), or the mean alone for one value; '–' for none."""
    if not values:
        return "–"
    scaled = np.asarray(values, dtype=float) * column.scale
    text = f"{scaled.mean():.{column.decimals}f}"
    if len(scaled) > 1:
        text += f" ± {scaled.std(ddof=1):.{column.decimals}f}"
    return text + column.suffix


def _cell(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _reads(needs: list[str] | None, setting: str) -> str:
    """The request parts a method reads in a setting: the support sample stands in for the forget set."""
    if needs is None:
        return "?"
    unused, used = ("forget", "support") if setting == "one_shot" else ("support", "forget")
    return "+".join(n for n in needs if n != unused or used not in needs)


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def results_table(results: dict[str, Any], setting: str) -> str:
    """One markdown table: rows original, reference, methods; columns as ``COLUMNS`` plus notes."""
    seeds = results["seeds"]
    skipped = results["skipped"].get(setting, {})
    names = ["original"] + [n for n in results["config"]["methods"] if n == REFERENCE or n not in skipped]
    lines = [_row(["Method", "Reads"] + [c.header for c in COLUMNS.values()] + ["Iterations", "Notes"]),
             _row(["---"] * (len(COLUMNS) + 4))]
    for name in names:
        per_seed = [seed_values(record, setting, name) for record in seeds]
        ok = [v for v in per_seed if v is not None]
        cells = [mean_std([v[key] for v in ok if key in v], col) for key, col in COLUMNS.items()]
        notes = []
        if name == REFERENCE and setting != "standard":
            notes.append("reference: full retain data (standard setting)")
        runs = [] if name == "original" else [r["standard" if name == REFERENCE else setting][name] for r in seeds]
        for record, run in zip(seeds, runs):
            if "error" in run:
                notes.append(f"seed {record['seed']} failed: {run['error']}")
        done = [run["iterations_run"] for run in runs if "error" not in run and run.get("iterations_run") is not None]
        iterations = f"{np.mean(done):.0f}" if done else "–"
        reads = "–" if name == "original" else _reads(results["needs"].get(name), "standard" if name == REFERENCE else setting)
        lines.append(_row([name, reads, *cells, iterations, _cell("; ".join(notes)) if notes else ""]))
    for name, reason in skipped.items():
        lines.append(_row([name, _reads(results["needs"].get(name), "standard")] + ["–"] * len(COLUMNS) + ["–", _cell(f"skipped: {reason}")]))
    return "\n".join(lines)


def render_markdown(results: dict[str, Any]) -> str:
    """The whole report: header (machine, device, data, budgets) and the two tables."""
    m, seeds, cfg = results["machine"], results["seeds"], results["config"]
    sizes = {p: [r["n_images"][p] for r in seeds] for p in PARTS}
    size_text = ", ".join(f"{p} {np.mean(v):.0f}" for p, v in sizes.items())
    def cap(value: int | None) -> str:
        return "uncapped" if value is None else str(value)

    budgets = ", ".join(f"{n} {cap(b['cap'])}" + (f" (one-shot {cap(b['one_shot_cap'])})" if b["one_shot_cap"] != b["cap"] else "")
                        + (f" (method default {b['default']})" if b["default"] is not None else "")
                        for n, b in results["budgets"].items())
    setup = np.mean([r["prepare_s"] for r in seeds])
    header = [
        f"# Unlearning benchmark on {results.get('dataset', cfg['workspace']['dataset'])}",
        "",
        f"- Machine: {m['cpu']}, {m['cores']} cores ({m['platform']}), Python {m['python']}, torch {m['torch']} ({m['torch_threads']} threads)",
        f"- Device: {results.get('device', '?')}",
        f"- Backbone: {results.get('backbone', '?')}, trained from stage `{results.get('train_from', '?')}`",
        f"- Seeds: {', '.join(str(s) for s in cfg['seeds'])} (one forget set each: {cfg['workspace']['n_forget']} forget identities, "
        f"{np.mean([r['n_retain_identities'] for r in seeds]):.0f} retain identities on average)",
        f"- Images per seed (mean): {size_text}",
        f"- Budget `{cfg.get('budget', '?')}` ({cfg.get('budget_note', '')}); caps per method: {budgets}",
        f"- Wall time: {results['total_s'] / 60:.1f} min in all, of which {setup:.0f} s per seed preparing data and evaluating the original model",
        *(f"- Rerun later (`--merge`) on the same workspaces: {', '.join(r['methods'])}, seeds {', '.join(map(str, r['seeds']))}, "
          f"{r['total_s'] / 60:.1f} min with the reference, on {r['machine']['cpu']}" for r in results.get("reruns", [])),
        "- Metrics: forget = forget-test queries against forget+retain test images; retain = retain-test queries; "
        "Forget+distr. = the same queries with the one-photo distractor identities added to the gallery; "
        "CS = cluster compactness (S0 Eq. 10); acc = nearest-centroid accuracy against the evaluated model's own class centroids; "
        "acc₀ = against the original model's centroids, fixed before unlearning (S0's reading); cls = the CosFace identity head's accuracy "
        "(forgetting in the classification sense); ToW = S2 Eq. 7's product over forget-train, retain-train and retain-test mAP "
        f"against `{REFERENCE}`; speed-up = `{REFERENCE}` seconds / method seconds (with `{REFERENCE}` capped as above). "
        "Mean ± sample std over seeds.",
    ]
    titles = {"standard": "Standard setting: full forget set (S0 Tables 1-2)",
              "one_shot": "One-shot setting: one support image per forget identity (S2 Tables 1-4)",
              "gallery_assisted": "Gallery-assisted setting: one held-out selfie per forget identity finds its training photos, "
                                  "which are forgotten (Unlearn s = find + unlearn; the selfies are left out of the evaluation)"}
    body = [line for setting in results.get("protocols", ["standard", "one_shot"])
            for line in ("", f"## {titles[setting]}", "", results_table(results, setting))]
    return "\n".join(header + body + [""])
