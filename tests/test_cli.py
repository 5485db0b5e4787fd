"""The headless CLI: the audit report contract, and clean errors."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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


@pytest.mark.fast
def test_methods_lists_parameters_and_presets():
    result = run_cli("methods", "-v")
    assert result.returncode == 0
    assert "dispersion" in result.stdout and "retain_weight" in result.stdout
    assert "preset retain-preserving: lr=0.002" in result.stdout


def test_one_shot_and_gallery_assisted_audits_run_their_recommended_method(tmp_path):
    for flag, protocol in (("--one-shot", "one_shot"), ("--gallery-assisted", "gallery_assisted")):
        out = tmp_path / f"{protocol}.json"
        result = run_cli("audit", "--dataset", "olivetti", "--forget", "3", flag, "--device", "cpu", "--distractors", "0",
                         "--no-privacy", "--json", str(out))
        assert result.returncode == 0, result.stderr
        report = json.loads(out.read_text())
        assert report["method"] == "projection" and report["protocol"] == protocol
        assert report["after"]["forget"]["mAP"] < report["before"]["forget"]["mAP"] - 0.3
    find = report["find"]
    assert find["precision"] == 1.0 and find["recall"] > 0.5 and "find:" in result.stdout
    assert find["thresholds"]["expanded"]["fmr"] <= 1e-4 + 1e-12
    both = run_cli("audit", "--one-shot", "--gallery-assisted")
    assert both.returncode == 2 and "not allowed with" in both.stderr


LFW = Path(__file__).resolve().parents[2] / "shared" / "sklearn_data" / "lfw_home" / "lfw_funneled"


def test_forget_me_cli_finds_and_forgets_a_person_outside_the_gallery(tmp_path):
    """John McCain has 7 LFW photos: too few to be a forget or retain identity of the workspace, too
    many to be a distractor, so the model never saw him. Portrait, 2 enrolled, 2 check photos."""
    photos = sorted((LFW / "John_McCain").glob("*.jpg"))[:5]
    out = tmp_path / "forget-me.json"
    result = run_cli("forget-me", "--portrait", str(photos[0]), "--enrolled", str(photos[1]), str(photos[2]),
                     "--check", str(photos[3]), str(photos[4]), "--retain", "24", "--distractors", "100",
                     "--device", "cpu", "--json", str(out))
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["method"] == "projection" and report["device"].startswith("CPU")
    assert report["find"]["n_found"] == 2 and report["find"]["precision"] == 1.0 and report["find"]["recall"] == 1.0
    visitor = report["visitor"]
    assert visitor["before"]["mAP"] > 0.9 and visitor["after"]["mAP"] < 0.6  # measured 1.00 -> 0.34
    assert visitor["after_deletion"]["n_queries"] == 2 and report["find"]["n_other_people"] == 0
    assert report["retain"]["before"]["mAP"] - report["retain"]["after"]["mAP"] < 0.01
    assert {"unlearn", "total"} <= set(report["timing_s"])


def test_forget_me_cli_bad_photo_is_one_line(tmp_path):
    bad = tmp_path / "not-a-photo.jpg"
    bad.write_bytes(b"hello")
    result = run_cli("forget-me", "--portrait", str(bad), "--device", "cpu")
    assert result.returncode == 2 and "Traceback" not in result.stderr and result.stderr.strip().count("\n") == 0
    missing = run_cli("forget-me", "--portrait", str(tmp_path / "nope.jpg"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr


@pytest.mark.fast
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
