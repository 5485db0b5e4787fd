"""Hyper-parameter tuning on a validation split of the training identities (unlearn_core/tuning.py)."""
import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from unlearn_core.cli import main, parse_grid
from unlearn_core.errors import InvalidParameter, UnlearnError
from unlearn_core.methods import create_method, method_class
from unlearn_core.tuning import render_tuning, tune, validation_split, validation_tow


@pytest.mark.fast
def test_validation_tow_rewards_forgetting_and_punishes_collapse():
    original = {"forget_acc": 1.0, "retain_acc": 1.0, "retain_mAP": 0.9}
    assert validation_tow(original, original) == 0.0  # nothing forgotten
    assert validation_tow({"forget_acc": 0.0, "retain_acc": 1.0, "retain_mAP": 0.95}, original) == 1.0  # capped at the original's
    collapse = {"forget_acc": 0.0, "retain_acc": 0.1, "retain_mAP": 0.2}
    assert validation_tow(collapse, original) == pytest.approx(0.1 * 0.2 / 0.9)


@pytest.mark.fast
def test_parse_grid_and_its_errors():
    assert parse_grid(["lr=1e-4,1e-3", "clip_norm=null,5"]) == {"lr": [1e-4, 1e-3], "clip_norm": [None, 5]}
    for bad in (["lr=fast"], ["lr="], ["=1"]):
        with pytest.raises(UnlearnError):
            parse_grid(bad)


@pytest.mark.fast
def test_tuned_methods_declare_paper_grids_with_valid_values():
    for name in ("scrub", "unsir", "jit", "meta_unlearn"):
        grid = method_class(name).paper_grid
        assert grid, name
        for values in itertools.product(*grid.values()):
            create_method(name, **dict(zip(grid, values)))


def test_validation_split_leaves_out_the_forget_identities_and_test_photos(lfw_workspace):
    ws = lfw_workspace
    split = validation_split(ws, seed=0)
    simulated = set(split.request.forget_classes)
    assert len(simulated) == len(ws.forget_classes) and not simulated & set(ws.forget_classes)
    train_ids = set(ws.parts.retain_train.image_ids)
    for data in (split.forget, split.retain, split.request.retain, split.request.support):
        assert set(data.image_ids) <= train_ids  # training photos of retained identities only
    assert set(split.forget.labels.tolist()) == simulated and not simulated & set(split.retain.labels.tolist())
    assert split.request.forget_test is None
    one_shot = validation_split(ws, one_shot=True, seed=0)
    assert one_shot.request.forget is None and len(one_shot.request.support) == len(simulated)


def test_tune_runs_the_grid_and_picks_the_best_score(lfw_workspace):
    result = tune(lfw_workspace, "gradient_ascent", {"lr": [1e-8, 1e-4], "iterations": [5]}, seed=0)
    rows = result["rows"]
    assert [r["params"]["lr"] for r in rows] == [1e-8, 1e-4]
    # 1e-8 steps change nothing (the head still classifies the simulated forget identities); 1e-4 forgets
    assert rows[0]["forget_acc"] == pytest.approx(result["original"]["forget_acc"], abs=0.02)
    assert rows[1]["forget_acc"] < rows[0]["forget_acc"]
    scores = [r["score"] for r in rows]
    assert result["best"] == rows[int(np.argmax(scores))]["params"]
    text = render_tuning([result], "tune --methods gradient_ascent")
    assert "## gradient_ascent" in text and "**" in text and "NOT the chosen point" in text  # the default (50 steps) is not in this grid


def test_tune_rejects_a_method_without_a_grid_and_bad_points(lfw_workspace):
    with pytest.raises(InvalidParameter, match="no paper grid"):
        tune(lfw_workspace, "dispersion")
    with pytest.raises(InvalidParameter, match="lr"):
        tune(lfw_workspace, "jit", {"lr": [-1.0]})


def test_tune_cli_errors_are_one_line(capsys):
    assert main(["tune", "--methods", "scrub,jit", "--grid", "lr=1e-3"]) == 2
    assert "one method" in capsys.readouterr().err


@pytest.mark.fast
def test_shipped_defaults_are_the_tuned_points_in_the_docs():
    """docs/tuning-lfw.json is the record of the choice: a default changed without re-tuning fails here."""
    results = json.loads((Path(__file__).parents[1] / "docs" / "tuning-lfw.json").read_text())
    assert {r["method"] for r in results} == {"scrub", "unsir", "jit", "meta_unlearn"}
    for result in results:
        defaults = create_method(result["method"]).get_params()
        assert {k: defaults[k] for k in result["grid"]} == result["best"], result["method"]
