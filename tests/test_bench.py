"""``bench`` on real Olivetti faces: two seeds (two forget sets), two real methods and one that
always fails; the markdown it writes is parsed back and checked against its own per-seed JSON."""
from __future__ import annotations

import contextlib
import io
import json
import statistics

import numpy as np
import pytest

from unlearn_core import bench
from unlearn_core.cli import main
from unlearn_core.errors import InvalidParameter
from unlearn_core.methods import IterativeMethod, list_methods
from unlearn_core.methods import base as methods_base

SEEDS = [0, 1]
METHODS = ["dispersion", "hard_dispersion", "broken_for_test"]
PERCENT = {"Forget mAP ↓": ("forget", "mAP"), "Forget R@1 ↓": ("forget", "rank1"), "Forget acc ↓": ("forget", "centroid_acc"),
           "Retain mAP ↑": ("retain", "mAP"), "Retain R@1 ↑": ("retain", "rank1"), "Retain acc ↑": ("retain", "centroid_acc"),
           "Forget cls ↓": ("forget", "head_acc"), "Retain cls ↑": ("retain", "head_acc"),
           "Forget acc₀ ↓": ("forget", "original_centroid_acc"), "Retain acc₀ ↑": ("retain", "original_centroid_acc")}
PLAIN = {"Forget CS ↓": ("forget", "cs"), "Retain CS": ("retain", "cs")}


class BrokenForTest(IterativeMethod):
    """Reads no support sample (so the one-shot table must skip it) and raises on its first step."""

    name = "broken_for_test"
    needs = frozenset({"forget", "retain"})

    def loss(self, model, batch):
        raise RuntimeError("deliberate | failure\nsecond line")


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("bench")
    md, js = out / "bench.md", out / "bench.json"
    stdout = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(methods_base._REGISTRY, BrokenForTest.name, BrokenForTest)
        patch.setitem(bench.BUDGETS, "short", bench.BudgetProfile(40, {"retrain": 8}, "test budget"))  # a short reference keeps the test fast
        with contextlib.redirect_stdout(stdout):
            rc = main(["bench", "--dataset", "olivetti", "--forget", "5", "--distractors", "0", "--device", "cpu",
                       "--train-from", "tail", "--methods", ",".join(METHODS), "--seeds", ",".join(map(str, SEEDS)),
                       "--budget", "short", "--iterations", "6", "--protocols", "standard,one_shot,gallery_assisted",
                       "--out", str(md), "--json", str(js)])
    return {"rc": rc, "stdout": stdout.getvalue(), "markdown": md.read_text(), "results": json.loads(js.read_text())}


def parse_table(markdown: str, heading: str) -> dict[str, dict[str, str]]:
    """Rows of the markdown table under ``heading``, keyed by method, each a {column: cell} dict."""
    lines = markdown.split(heading, 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    table = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        table.append([c.strip() for c in line.strip().strip("|").split(" | ")])
    header, separator, *rows = table
    assert set(separator) == {"---"} and all(len(r) == len(header) for r in rows)
    return {row[0]: dict(zip(header, row)) for row in rows}


def expected(values: list[float], scale: float, decimals: int) -> str:
    values = [v * scale for v in values]
    return f"{statistics.mean(values):.{decimals}f} ± {statistics.stdev(values):.{decimals}f}"


def test_bench_cli_writes_the_table_and_prints_it(bench_run: dict) -> None:
    assert bench_run["rc"] == 0
    assert bench_run["markdown"].strip() == bench_run["stdout"].strip()
    header = bench_run["markdown"].split("## ", 1)[0]
    machine = bench_run["results"]["machine"]
    for fact in (machine["cpu"], f"{machine['cores']} cores", f"torch {machine['torch']}", "Device: CPU", "dlib_resnet",
                 "olivetti", "Seeds: 0, 1", "dispersion 6 (method default 1000)", "retrain 8", "Budget `short` (test budget)"):
        assert fact in header, fact
    assert [r["seed"] for r in bench_run["results"]["seeds"]] == SEEDS
    forget_sets = [tuple(r["forget_identities"]) for r in bench_run["results"]["seeds"]]
    assert len(set(forget_sets)) == len(SEEDS), "each seed must draw its own forget set"


def test_standard_table_rows_columns_and_mean_std(bench_run: dict) -> None:
    rows = parse_table(bench_run["markdown"], "## Standard setting")
    reference = ["retrain"] if "retrain" in list_methods() else []
    assert list(rows) == ["original", *reference, *METHODS]
    columns = ["Method", "Reads", *PERCENT, *PLAIN, "Forget+distr. mAP ↓", "Forget+distr. R@1 ↓", "ToW ↑", "Unlearn s", "Speed-up",
               "Forget mAP ÷ before ↓", "Retain mAP drop ↓",
               "Find P ↑", "Find R ↑", "Iterations", "Notes"]
    assert set(next(iter(rows.values()))) == set(columns)
    seeds = bench_run["results"]["seeds"]
    for name in ("original", "dispersion", "hard_dispersion"):
        metrics = [r["original"] if name == "original" else r["standard"][name]["metrics"] for r in seeds]
        for column, (part, key) in PERCENT.items():
            assert rows[name][column] == expected([m[part][key] for m in metrics], 100, 2), (name, column)
        for column, (part, key) in PLAIN.items():
            assert rows[name][column] == expected([m[part][key] for m in metrics], 1, 3), (name, column)
    for name in ("dispersion", "hard_dispersion"):
        runs = [r["standard"][name] for r in seeds]
        assert rows[name]["Unlearn s"] == expected([r["seconds"] for r in runs], 1, 1)
        assert rows[name]["Iterations"] == "6" and rows[name]["Reads"] == "forget"
        assert all(r["metrics"] != s["original"] for r, s in zip(runs, seeds)), "the method must change the model"
    assert rows["original"]["Unlearn s"] == "–" and rows["original"]["Notes"] == ""
    assert rows["original"]["Forget+distr. mAP ↓"] == "–", "no distractors in this run: the columns stay empty"
    if reference:
        ref = [r["standard"]["retrain"] for r in seeds]
        assert rows["retrain"]["Iterations"] == "8" and rows["retrain"]["Speed-up"] == "1.0 ± 0.0×"
        for name in ("original", "dispersion"):
            metrics = [r["original"] if name == "original" else r["standard"][name]["metrics"] for r in seeds]
            tow = [np.prod([1 - abs(m[part]["mAP"] - f["metrics"][part]["mAP"]) for part in ("forget_train", "retain_train", "retain")])
                   for m, f in zip(metrics, ref)]  # S2 Eq. 7: D_f, D_r, D_te
            assert rows[name]["ToW ↑"] == expected(tow, 100, 2)
        speedup = [f["seconds"] / r["standard"]["dispersion"]["seconds"] for f, r in zip(ref, seeds)]
        assert rows["dispersion"]["Speed-up"] == expected(speedup, 1, 1) + "×"


def test_a_failing_method_is_reported_not_fatal(bench_run: dict) -> None:
    row = parse_table(bench_run["markdown"], "## Standard setting")["broken_for_test"]
    assert row["Forget mAP ↓"] == "–" and row["Unlearn s"] == "–"
    for seed in SEEDS:
        assert f"seed {seed} failed: RuntimeError: deliberate \\| failure second line" in row["Notes"]
    assert all("error" in r["standard"]["broken_for_test"] for r in bench_run["results"]["seeds"])


def test_one_shot_table_runs_support_only_methods_and_says_why_others_are_skipped(bench_run: dict) -> None:
    rows = parse_table(bench_run["markdown"], "## One-shot setting")
    seeds = bench_run["results"]["seeds"]
    for name in ("dispersion", "hard_dispersion"):
        maps = [r["one_shot"][name]["metrics"]["forget"]["mAP"] for r in seeds]
        assert rows[name]["Forget mAP ↓"] == expected(maps, 100, 2)
        assert rows[name]["Reads"] == "support"
        assert [r["one_shot"][name]["metrics"] for r in seeds] != [r["standard"][name]["metrics"] for r in seeds]
    skipped = rows["broken_for_test"]
    assert skipped["Notes"] == "skipped: reads the full forget set only"
    assert skipped["Forget mAP ↓"] == "–"
    assert all("broken_for_test" not in r["one_shot"] for r in seeds)
    if "retrain" in list_methods():
        assert rows["retrain"]["Notes"] == "reference: full retain data (standard setting)"


@pytest.mark.fast
def test_formatting_and_one_shot_eligibility() -> None:
    column = bench.COLUMNS["forget.mAP"]
    assert bench.mean_std([0.5], column) == "50.00"
    assert bench.mean_std([], column) == "–"
    assert bench.mean_std([2.0, 4.0], bench.COLUMNS["speedup"]) == "3.0 ± 1.4×"
    assert bench.one_shot_skip_reason(frozenset({"forget", "support"})) is None
    assert bench.one_shot_skip_reason(frozenset({"support", "retain", "test"})) is None  # support-only by design
    assert "full forget set" in bench.one_shot_skip_reason(frozenset({"forget"}))
    assert "no forget-side" in bench.one_shot_skip_reason(frozenset({"retain"}))
    assert bench.one_shot_skip_reason(frozenset({"forget", "support", "retain", "test"})) is None  # S2 marks retain access


@pytest.mark.fast
def test_budget_profiles():
    assert bench.BenchConfig(budget="paper").cap("dispersion") is None  # the method's own default
    assert bench.BenchConfig(budget="paper").cap("lipschitz") is None  # its 1,000 steps, no longer capped
    assert bench.BenchConfig(budget="short").cap("gradient_ascent") == 40
    assert bench.BenchConfig(budget="short", iterations=7).cap("gradient_ascent") == 7
    with pytest.raises(InvalidParameter, match="budget must be one of"):
        bench.BenchConfig(budget="tiny")


def test_gallery_assisted_table_reports_the_find_step(bench_run: dict) -> None:
    rows = parse_table(bench_run["markdown"], "## Gallery-assisted setting")
    seeds = bench_run["results"]["seeds"]
    runs = [r["gallery_assisted"]["dispersion"] for r in seeds]
    assert rows["dispersion"]["Find P ↑"] == expected([r["find"]["precision"] for r in runs], 100, 1)
    assert rows["dispersion"]["Find R ↑"] == expected([r["find"]["recall"] for r in runs], 100, 1)
    ratios = [r["metrics"]["forget"]["mAP"] / r["before"]["forget"]["mAP"] for r in runs]
    assert rows["dispersion"]["Forget mAP ÷ before ↓"] == expected(ratios, 1, 3)
    assert all(r["find"]["precision"] == 1.0 for r in runs)
    assert rows["retrain"]["Notes"].startswith("reference")


def test_merge_replaces_only_the_rerun_methods(bench_run: dict) -> None:
    earlier = bench_run["results"]
    rerun = json.loads(json.dumps(earlier))  # a rerun of hard_dispersion on seed 1, with a different result
    rerun["config"]["methods"] = ["retrain", "hard_dispersion"]
    rerun["seeds"] = [r for r in rerun["seeds"] if r["seed"] == 1]
    rerun["seeds"][0]["standard"]["hard_dispersion"]["metrics"]["forget"]["mAP"] = 0.123
    rerun["seeds"][0]["standard"]["retrain"]["seconds"] = 999.0
    rerun["total_s"] = 90.0
    merged = bench.merge_runs(earlier, rerun)
    by_seed = {r["seed"]: r for r in merged["seeds"]}
    assert by_seed[1]["standard"]["hard_dispersion"]["metrics"]["forget"]["mAP"] == 0.123
    assert by_seed[0]["standard"]["hard_dispersion"] == earlier["seeds"][0]["standard"]["hard_dispersion"]
    assert by_seed[1]["standard"]["retrain"]["seconds"] != 999.0  # the reference keeps its earlier runs
    assert by_seed[1]["standard"]["dispersion"] == earlier["seeds"][1]["standard"]["dispersion"]
    assert "hard_dispersion, seeds 1, 1.5 min" in bench.render_markdown(merged)
    assert earlier["seeds"][1]["standard"]["hard_dispersion"]["metrics"]["forget"]["mAP"] != 0.123  # earlier left as it was

    other = json.loads(json.dumps(rerun))
    other["config"]["workspace"]["n_forget"] = 3
    with pytest.raises(InvalidParameter, match="workspace"):
        bench.merge_runs(earlier, other)
    other = json.loads(json.dumps(rerun))
    other["seeds"][0]["seed"] = 7
    with pytest.raises(InvalidParameter, match=r"seed\(s\) \[7\]"):
        bench.merge_runs(earlier, other)
