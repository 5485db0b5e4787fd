"""The headless CLI: the audit report contract, and clean errors."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

from unlearn_core.cli import TqdmProgress

ROOT = Path(__file__).resolve().parents[1]
ATT = ROOT.parent / "shared" / "faces" / "att_faces"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "unlearn_core", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_audit_writes_the_report_contract(tmp_path):
    out = tmp_path / "report.json"
    result = run_cli("audit", "--dataset", "olivetti", "--forget", "3", "--method", "dispersion", "--iterations", "30",
                     "--preset", "retain-preserving", "--param", "lr=1e-3",
                     "--device", "cpu", "--distractors", "0", "--no-privacy", "--json", str(out))
    assert result.returncode == 0, result.stderr
    assert "forget" in result.stdout and "retain" in result.stdout
    report = json.loads(out.read_text())
    for key in ("method", "dataset", "backbone", "device", "seed", "forget_identities", "timing_s", "before", "after"):
        assert key in report
    assert {"unlearn", "total"} <= set(report["timing_s"]) and len(report["forget_identities"]) == 3
    assert report["params"]["retain_weight"] == 5.0 and report["params"]["lr"] == 1e-3  # the preset, then --param on top
    for when in ("before", "after"):
        for part in ("forget", "retain"):
            m = report[when][part]
            assert set(m) >= {"mAP", "rank1", "rank5", "cs", "centroid_acc", "n_queries"}
            assert all(0.0 <= m[k] <= 1.0 for k in ("mAP", "rank1", "rank5", "centroid_acc"))


def test_bad_input_gives_one_line_not_a_traceback():
    for args, message in [
        (("audit", "--method", "nope"), "unknown method"),
        (("audit", "--param", "lr=7"), "lr must be in"),
        (("audit", "--preset", "fastest"), "has no preset 'fastest'"),
        (("audit", "--dataset", "folder:/nonexistent"), "does not exist"),
        (("audit", "--dataset", "olivetti", "--forget", "99", "--device", "cpu"), "forgetting 99 needs 100"),
    ]:
        result = run_cli(*args)
        assert result.returncode == 2
        assert message in result.stderr and "Traceback" not in result.stderr


def test_methods_lists_parameters_and_presets():
    result = run_cli("methods", "-v")
    assert result.returncode == 0
    assert "dispersion" in result.stdout and "retain_weight" in result.stdout
    assert "preset retain-preserving: lr=0.002" in result.stdout


def test_progress_bar_shows_percentage_and_message_but_no_rate(capsys):
    progress = TqdmProgress()
    progress(0.0, "training the original model: epoch 1")
    progress(0.5, "training the original model: epoch 5")
    progress(1.0, "privacy audit")  # a new phase: the first bar is closed, a second one opened
    progress.close()
    err = capsys.readouterr().err
    assert "training the original model:  50%" in err and "epoch 5" in err and "privacy audit: 100%" in err
    assert "it/s" not in err and "s/it" not in err


def few_photos_folder(root: Path, n_people: int = 10) -> Path:
    """A reviewer's own gallery: ``n_people`` AT&T faces with 4, 5 or 6 photos each, copied under ``root``."""
    for k, person in enumerate(sorted((p for p in ATT.iterdir() if p.is_dir()), key=lambda p: int(p.name[1:]))[:n_people]):
        (root / person.name).mkdir(parents=True)
        for photo in sorted(person.glob("*.pgm"))[: 4 + k % 3]:
            shutil.copy(photo, root / person.name / photo.name)
    return root


def test_audit_on_a_folder_with_few_photos_per_person(tmp_path):
    gallery = few_photos_folder(tmp_path / "gallery")
    out = tmp_path / "report.json"
    result = run_cli("audit", "--dataset", f"folder:{gallery}", "--forget", "3", "--no-privacy", "--iterations", "20",
                     "--device", "cpu", "--json", str(out))
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert len(report["forget_identities"]) == 3 and report["n_retain_identities"] == 7
    result = run_cli("audit", "--dataset", f"folder:{gallery}", "--forget", "3", "--min-images", "6", "--device", "cpu")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "has 3 people with at least 6 photos each; forgetting 3 needs 4" in result.stderr, result.stderr
