"""``bench-privacy``: the privacy audit of a few methods over several seeds (``docs/privacy-lfw.md``).

Each seed's workspace (its own forget set) runs each entry through ``audit.audit`` with the privacy
audit on: the attacks' AUC on the forgotten people (with the references that held them unlearned
the same way), U-LiRA's TPR at 1 % FPR, the deep-forgetting probes, ToW (S2 Eq. 7), retrieval and
cost. An entry is a method with a preset (``dispersion:match-retrain``). The retrain reference's
row is the retrain side of the first entry's audit, except for U-LiRA, whose retrain figure
depends on how the references were unlearned (one figure per entry, in the JSON). Numbers are the
mean ± sample standard deviation over seeds; a figure a run could not produce (a TPR the sample
cannot resolve, relearning beyond its step budget) is left out of the mean and counted.
"""
from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .audit import audit
from .bench import machine
from .errors import InvalidParameter
from .methods import create_method, preset_params
from .pipeline import AuditConfig, Workspace, WorkspaceConfig, device_name
from .privacy import REPORTED_ATTACKS
from .probes import RELEARN_PHOTOS, RELEARN_STEPS
from .types import Progress

DEFAULT_ENTRIES = ("dispersion", "dispersion:match-retrain", "dispersion:retain-preserving", "gradient_ascent", "contrastive")
"""The paper's dispersion, its two presets, and two of the strongest baselines of ``docs/bench-lfw.md``
by forget mAP (contrastive 91.8, gradient ascent 92.3; boundary shrink's 91.5 is left out while
its image-space version is being rebuilt)."""


@dataclass(frozen=True)
class Entry:
    """One row: ``method`` with ``preset``'s parameters (none: the method's defaults)."""

    method: str
    preset: str | None = None

    @classmethod
    def parse(cls, text: str) -> Entry:
        method, _, preset = text.partition(":")
        entry = cls(method.strip(), preset.strip() or None)
        create_method(entry.method, **entry.params)  # unknown methods, presets or parameters fail here
        return entry

    @property
    def label(self) -> str:
        return self.method + (f":{self.preset}" if self.preset else "")

    @property
    def params(self) -> dict[str, Any]:
        return preset_params(self.method, self.preset) if self.preset else {}


def figures(privacy: dict[str, Any], who: str) -> dict[str, float | None]:
    """The table's figures for one side (``unlearned`` or ``retrain``) of a privacy report."""
    out: dict[str, float | None] = {}
    for attack in REPORTED_ATTACKS:
        if attack in privacy:
            game = privacy[attack][who]["forget_vs_heldout"]
            out[f"auc_{attack}"] = game["auc"]
            out[f"tpr1_{attack}"] = game["tpr_at_fpr"]["0.01"]
    probes = privacy["deep_forgetting"][who]
    for run in probes["relearning"]:
        out[f"relearn_{run['photos']}"] = run["steps"]
    out["linear_probe"] = probes["linear_probe"]["accuracy"]
    out["look_alikes"] = probes["look_alikes"]["look_alike_map_change"]
    out["others"] = probes["look_alikes"]["other_map_change"]
    out["tow"] = privacy["tug_of_war"][who] if who != "retrain" else 1.0
    return out


def run_privacy_bench(workspace: WorkspaceConfig, entries: list[Entry], seeds: list[int], references: int,
                      progress: Progress | None = None, log: Callable[[str], None] | None = None,
                      on_seed: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Every entry on every seed; the raw results (JSON-serialisable). ``on_seed`` gets them after each seed."""
    if not entries or not seeds:
        raise InvalidParameter("bench-privacy needs at least one method and one seed")
    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    started = time.perf_counter()
    results: dict[str, Any] = {"config": {"entries": [e.label for e in entries], "seeds": seeds, "references": references,
                                          "workspace": dataclasses.asdict(workspace)},
                               "machine": machine(), "seeds": []}
    for seed in seeds:
        log(f"[seed {seed}] preparing {workspace.dataset}")
        ws = Workspace(dataclasses.replace(workspace, seed=seed), progress)
        record: dict[str, Any] = {"seed": seed, "forget_identities": ws.identity_names(ws.forget_classes), "runs": {}}
        for entry in entries:
            log(f"[{time.perf_counter() - started:.0f} s] seed {seed} {entry.label}")
            config = AuditConfig(entry.method, entry.params, references=references, workspace=ws.config)
            run = audit(ws, [config], privacy=True, progress=progress).runs[entry.method]
            record["runs"][entry.label] = {
                "forget_mAP": run.after["forget"]["mAP"], "retain_mAP": run.after["retain"]["mAP"],
                "iterations_run": run.iterations_run, "unlearn_s": run.timing_s["unlearn"], "privacy_s": run.timing_s["privacy"],
                "streisand": run.privacy["streisand"]["flag"], **figures(run.privacy, "unlearned"),
                "retrain": figures(run.privacy, "retrain"),
            }
            log(f"    -> forget mAP {run.after['forget']['mAP']:.3f}, U-LiRA AUC {record['runs'][entry.label].get('auc_ulira')}, "
                f"unlearn {run.timing_s['unlearn']:.0f} s, privacy {run.timing_s['privacy']:.0f} s")
        results["seeds"].append(record)
        results.update(device=device_name(ws.device), dataset=ws.gallery.name, total_s=time.perf_counter() - started)
        if on_seed is not None:
            on_seed(results)
    return results


def _cell(values: list[Any], decimals: int = 3) -> str:
    """Mean ± sample std of the values that exist, and how many runs had none ('–' for none at all)."""
    present = [float(v) for v in values if v is not None]
    text = "–" if not present else f"{np.mean(present):.{decimals}f}" + (f" ± {np.std(present, ddof=1):.{decimals}f}" if len(present) > 1 else "")
    missing = len(values) - len(present)
    return text + (f" ({missing} n/a)" if missing and present else "")


def _decimals(key: str) -> int:
    """Seconds to 0.1, counts (steps) whole, the rest to 0.001."""
    return 1 if key.endswith("_s") else 0 if key.startswith(("iterations", "relearn")) else 3


ATTACK_COLUMNS = [(f"auc_{a}", f"AUC {a}") for a in REPORTED_ATTACKS] + [("tpr1_ulira", "U-LiRA TPR@1%")]
PROBE_COLUMNS = ([(f"relearn_{n}", f"relearn steps, {n} photo(s)") for n in RELEARN_PHOTOS]
                 + [("linear_probe", "linear probe acc"), ("look_alikes", "Δ mAP look-alikes"), ("others", "Δ mAP others"), ("tow", "ToW")])


def render(results: dict[str, Any]) -> str:
    """The markdown of docs/privacy-lfw.md."""
    seeds = results["seeds"]
    labels = results["config"]["entries"]
    m, ws = results["machine"], results["config"]["workspace"]

    def rows(columns: list[tuple[str, str]], with_retrain: bool = True) -> list[str]:
        lines = ["| method | " + " | ".join(name for _, name in columns) + " |", "|---" * (len(columns) + 1) + "|"]
        for label in labels:
            runs = [s["runs"][label] for s in seeds if label in s["runs"]]
            lines.append(f"| {label} | " + " | ".join(_cell([r.get(key) for r in runs], _decimals(key)) for key, _ in columns) + " |")
        if with_retrain:
            first = [s["runs"][labels[0]]["retrain"] for s in seeds]
            lines.append("| retrain reference | " + " | ".join(_cell([r.get(key) for r in first], _decimals(key)) for key, _ in columns) + " |")
        return lines

    cost = [("forget_mAP", "forget mAP"), ("retain_mAP", "retain mAP"), ("iterations_run", "steps"), ("unlearn_s", "unlearn s"),
            ("privacy_s", "privacy s")]
    header = [
        f"# Privacy audit on {results.get('dataset', ws['dataset'])} ({len(seeds)} seed{'s' * (len(seeds) != 1)})",
        "",
        f"Written by `make bench-privacy` (`python -m unlearn_core bench-privacy`). Machine: {m['cpu']}, {m['cores']} cores, "
        f"torch {m['torch']} ({m['torch_threads']} threads), {results.get('device', 'cpu')}; "
        f"{results.get('total_s', 0) / 60:.1f} min in all. Workspace: {ws['n_forget']} forget identities, "
        f"{ws['n_retain'] or 'all'} retained, train from `{ws['train_from']}`, seeds {', '.join(str(s['seed']) for s in seeds)}; "
        f"K = {results['config']['references']} reference models per seed. Mean ± sample std over seeds.",
        "",
        "## Forgetting and its cost",
        "",
        *rows(cost, with_retrain=False),
        "",
        "## Membership attacks on the forgotten people (AUC: 0.5 = cannot tell them from non-members, as under retrain; "
        "well below 0.5 = Streisand)",
        "",
        "Non-members: held-out photos of the same people (U-LiRA: the same photos under reference models that never saw them). "
        "U-LiRA's retrain figure here is from the first row's audit (it depends on how the references were unlearned).",
        "",
        *rows(ATTACK_COLUMNS),
        "",
        "## Deep-forgetting probes",
        "",
        f"Relearning: fine-tuning steps on 1 or 4 photos of each forgotten person until forget mAP is back to 0.5 "
        f"(n/a: not within {RELEARN_STEPS} steps). Linear probe: accuracy of a linear read-out naming the forgotten people. "
        "Δ mAP: retrieval change of the retained people most like the forgotten ones, and of the others.",
        "",
        *rows(PROBE_COLUMNS),
    ]
    return "\n".join(header) + "\n"
