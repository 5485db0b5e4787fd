"""One audit core: the CLI, the app's Audit tab and ``bench`` run the same audit through
``unlearn_core.audit.audit`` and so report the same numbers."""
import json

import app
from unlearn_core.audit import AuditReport, audit
from unlearn_core.bench import BenchConfig, run_bench
from unlearn_core.cli import main
from unlearn_core.pipeline import AuditConfig, WorkspaceConfig

# Olivetti, 3 forgotten / 37 retained people, the deterministic closed-form method: what the app's
# Audit tab builds for ("ORL (Olivetti)", 3 to forget, 37 to retain, seed 0) on a CPU
FORGET, RETAIN = 3, 37


def test_cli_app_and_bench_report_the_same_numbers(tmp_path):
    out = tmp_path / "audit.json"
    assert main(["audit", "--dataset", "olivetti", "--forget", str(FORGET), "--retain", str(RETAIN), "--method", "projection",
                 "--device", "cpu", "--train-from", "tail", "--distractors", "0", "--no-privacy", "--json", str(out)]) == 0
    cli = json.loads(out.read_text())

    status, *_, state = app.run_audit("ORL (Olivetti)", None, "", FORGET, RETAIN, 0, 0, ["projection"], 1, "", False, False, [],
                                      None, None)
    assert status.startswith("✅"), status
    ui = state["report"]["runs"]["projection"]

    workspace = WorkspaceConfig(dataset="olivetti", n_forget=FORGET, n_retain=RETAIN, device="cpu", train_from="tail",
                                n_distractors=0)
    bench = run_bench(BenchConfig(methods=["projection"], seeds=[0], workspace=workspace, protocols=["standard"]),
                      log=lambda m: None)
    seed = bench["seeds"][0]

    assert cli["forget_identities"] == state["report"]["forget_identities"]
    for part in ("forget", "retain"):
        for metric in ("mAP", "rank1", "cs"):
            numbers = {cli["after"][part][metric], ui["after"][part][metric], seed["standard"]["projection"]["metrics"][part][metric]}
            assert len(numbers) == 1, (part, metric, numbers)
        assert cli["before"][part]["mAP"] == state["report"]["before"][part]["mAP"]


def test_report_is_typed_and_serialises(olivetti_workspace):
    report = audit(olivetti_workspace, [AuditConfig("projection", one_shot=True)], with_retrain=True)
    assert isinstance(report, AuditReport) and list(report.runs) == ["projection"]
    run = report.runs["projection"]
    assert run.protocol == "one_shot" and run.model is not olivetti_workspace.original
    data = json.loads(json.dumps(report.to_json()))
    assert "model" not in data["runs"]["projection"] and data["retrain"]["forget"]["mAP"] > 0.5
    flat = report.method_json("projection")
    assert flat["one_shot"] and flat["after"] == data["runs"]["projection"]["after"] and "workspace_timing_s" not in flat
