"""bench-privacy: its rows (methods with presets) and its tables from hand-made results."""
import pytest

from unlearn_core.bench_privacy import Entry, render
from unlearn_core.errors import InvalidParameter


@pytest.mark.fast
def test_entries_name_a_method_and_an_optional_preset():
    entry = Entry.parse("dispersion:match-retrain")
    assert entry.label == "dispersion:match-retrain" and entry.params == {"stop_at": "retrain", "check_every": 1}
    assert Entry.parse("gradient_ascent").params == {}
    with pytest.raises(InvalidParameter, match="no preset"):
        Entry.parse("gradient_ascent:fast")
    with pytest.raises(InvalidParameter):
        Entry.parse("no_such_method")


def _run(forget_map: float, auc: float, tpr: float | None, relearn: int | None) -> dict:
    side = {"auc_ulira": auc, "tpr1_ulira": tpr, "relearn_1": relearn, "relearn_4": 3, "linear_probe": 0.9, "look_alikes": -0.01,
            "others": 0.0, "tow": 0.5}
    return {"forget_mAP": forget_map, "retain_mAP": 0.95, "iterations_run": 100, "unlearn_s": 10.0, "privacy_s": 60.0, "streisand": False,
            **side, "retrain": {**side, "auc_ulira": 0.5, "tow": 1.0}}


@pytest.mark.fast
def test_tables_give_mean_and_sample_std_and_count_what_a_run_could_not_measure():
    results = {"config": {"entries": ["dispersion"], "seeds": [0, 1], "references": 4,
                          "workspace": {"dataset": "lfw", "n_forget": 10, "n_retain": 40, "train_from": "tail"}},
               "machine": {"cpu": "cpu", "cores": 2, "torch": "2", "torch_threads": 2},
               "seeds": [{"seed": 0, "runs": {"dispersion": _run(0.1, 0.9, None, None)}},
                         {"seed": 1, "runs": {"dispersion": _run(0.3, 1.0, 0.5, 10)}}]}
    text = render(results)
    assert "# Privacy audit on lfw (2 seeds)" in text
    assert "| dispersion | 0.200 ± 0.141 | 0.950 ± 0.000 | 100 ± 0 | 10.0 ± 0.0 | 60.0 ± 0.0 |" in text
    assert "| 0.950 ± 0.071 | 0.500 (1 n/a) |" in text  # U-LiRA AUC over both seeds; TPR only where resolvable
    assert "| dispersion | 10 (1 n/a) | 3 ± 0 |" in text  # relearning beyond its budget on seed 0
    assert "| retrain reference |" in text
