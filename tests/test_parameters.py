"""Parameters on every path (no face data, no model): ``create_method`` validation for each
method, the shared whole-number check, the app's Audit-tab parameters, and the CLI's one-line errors."""
from __future__ import annotations

import contextlib
import io

import pytest

import app
from unlearn_core.cli import main, parse_ints, parse_params
from unlearn_core.errors import InvalidParameter, UnlearnError, whole_number
from unlearn_core.methods import create_method, list_methods, method_class

pytestmark = pytest.mark.fast

BAD_PARAMETERS = [  # (method, parameters, words of the message); methods/test_*.py check the others next to their runs
    ("finetune", {"momentum": 1.5}, "momentum must be in"),
    ("gradient_ascent", {"lr": -1e-5}, "lr must be in"),
    ("gradient_ascent", {"iterations": 0}, "iterations must be in"),
    ("boundary_expanding", {"lr": 2.0}, "lr must be in"),
    ("boundary_shrink", {"epsilon": -0.1}, "epsilon must be in"),
    ("contrastive", {"tau": 0.0}, "tau must be in"),
    ("contrastive", {"mode": "pairs"}, "mode must be one of"),
    ("contrastive", {"repeats": 0}, "repeats must be in"),
    ("lipschitz", {"n_samples": 0}, "n_samples must be in"),
    ("lipschitz", {"noise_std": float("nan")}, "finite number"),
    ("random_labeling", {"lambda_retain": -1.0}, "lambda_retain must be in"),
    ("retrain", {"epochs": 0}, "epochs must be in"),
    ("retrain", {"batch_size": 2.5}, "whole number"),
    ("salun", {"saliency": 0.0}, "saliency must be in"),
    ("dispersion", {"saliency": 1.5}, "saliency must be in"),
    ("dispersion", {"margin": "wide"}, "finite number"),
    ("dispersion", {"lr": True}, "finite number"),
]


@pytest.mark.parametrize("name, params, message", BAD_PARAMETERS)
def test_out_of_range_parameters_are_rejected_with_the_method_and_parameter_named(name, params, message):
    with pytest.raises(InvalidParameter, match=message) as caught:
        create_method(name, **params)
    assert str(caught.value).startswith(f"{name}: ")


@pytest.mark.parametrize("name", list_methods())
def test_every_method_builds_from_its_defaults_and_presets_and_refuses_unknown_parameters(name):
    cls = method_class(name)
    method = create_method(name)
    assert method.name == name and method.data_needs() and set(method.data_needs()) <= {"forget", "support", "retain", "test", "forget_test"}
    for preset in cls.presets.values():
        create_method(name, **preset)
    for pname, spec in cls.parameters().items():  # each documented default is itself valid
        create_method(name, **{pname: spec["default"]})
    with pytest.raises(InvalidParameter, match=rf"{name} has no parameter\(s\) \['no_such_parameter'\]"):
        create_method(name, no_such_parameter=1)
    with pytest.raises(InvalidParameter, match="unknown method"):
        create_method(name + "_typo")


@pytest.mark.parametrize("value, ok", [
    (3, True), (3.0, True), (0, True), (10, True), (11, False), (-1, False), (2.5, False), (True, False),
    (None, False), ("3", False), (float("nan"), False), (float("inf"), False), (10**400, False),
])
def test_whole_number(value, ok):
    if ok:
        assert whole_number("iterations", value, 0, 10) == int(value) and isinstance(whole_number("n", value, 0, 10), int)
    else:
        with pytest.raises(InvalidParameter, match=r"iterations must be a whole number between 0 and 10, got"):
            whole_number("iterations", value, 0, 10)


# -- the app's Audit tab ----------------------------------------------------------------------
def test_flat_audit_parameters_go_to_the_methods_that_take_them():
    params, notes = app.audit_method_params(["dispersion", "ssd"], {"margin": 0.3, "alpha": 5.0})
    assert params == {"dispersion": {"margin": 0.3}, "ssd": {"alpha": 5.0}}
    assert notes == ["dispersion has no parameter alpha: it ran without.", "ssd has no parameter margin: it ran without."]
    assert app.audit_method_params(["dispersion", "hard_dispersion"], {"lr": 1e-3}) == (
        {"dispersion": {"lr": 1e-3}, "hard_dispersion": {"lr": 1e-3}}, [])
    assert app.audit_method_params(["dispersion"], {}) == ({"dispersion": {}}, [])


@pytest.mark.parametrize("methods, params, message", [
    (["dispersion", "ssd"], {"foo": 1}, r"No chosen method takes the parameter\(s\) \['foo'\]"),
    (["dispersion"], {"foo": 1, "margin": 0.3}, r"\['foo'\]"),
    (["dispersion", "ssd"], {"margin": 5}, "dispersion: margin must be in"),
    (["dispersion"], {"ssd": {"alpha": 5.0}}, "ssd, which is not among the chosen methods"),
    (["dispersion", "ssd"], {"ssd": {"margin": 0.3}}, r"ssd has no parameter\(s\) \['margin'\]"),
    (["dispersion", "ssd"], {"dispersion": {"margin": -1}}, "dispersion: margin must be in"),
])
def test_bad_audit_parameters_are_named(methods, params, message):
    with pytest.raises(InvalidParameter, match=message):
        app.audit_method_params(methods, params)


def test_the_audit_button_answers_an_unknown_parameter_with_a_message():
    """Validation comes before any gallery or model is touched: no data needed, and no TypeError."""
    outputs = app.run_audit("LFW", None, "", 2, 24, 0, 0, ["dispersion", "ssd"], 5, '{"foo": 1}', False, False, [], None, None)
    status, *results, state = outputs
    assert status.startswith("⚠️") and "foo" in status, status
    assert not any(results) and state is None


# -- the CLI -------------------------------------------------------------------------------------
def run_main(*argv: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(list(argv))
    return rc, err.getvalue()


@pytest.mark.parametrize("argv, message", [
    (("audit", "--param", "foo=1"), "dispersion has no parameter(s) ['foo']"),
    (("audit", "--method", "ssd", "--param", "margin=0.2"), "ssd has no parameter(s) ['margin']"),
    (("audit", "--param", "lr=7"), "lr must be in"),
    (("audit", "--param", "lr"), "--param expects NAME=VALUE"),
    (("audit", "--method", "nope"), "unknown method"),
    (("audit", "--preset", "fastest"), "has no preset 'fastest'"),
    (("forget-me", "--portrait", "x.jpg", "--param", "foo=1"), "projection has no parameter(s) ['foo']"),
    (("bench", "--seeds", "0,one"), "expected comma-separated integers"),
    (("bench", "--merge", "--json", "no-such-results.json"), "--merge needs --json FILE from an earlier run"),
    (("tune", "--methods", "scrub", "--merge"), "--merge needs --json FILE from an earlier run"),  # before any workspace is built
])
def test_cli_errors_are_one_line_with_exit_status_2(argv, message):
    rc, err = run_main(*argv)
    assert rc == 2 and message in err and "Traceback" not in err, err
    assert err.strip().count("\n") == 0


def test_cli_bad_photo_fails_before_any_work(tmp_path):
    bad = tmp_path / "not-a-photo.jpg"
    bad.write_bytes(b"hello")
    rc, err = run_main("forget-me", "--portrait", str(bad), "--device", "cpu")
    assert rc == 2 and "not an image" in err
    rc, err = run_main("forget-me", "--portrait", str(tmp_path / "missing.jpg"))
    assert rc == 2 and "cannot read" in err


def test_parse_helpers():
    assert parse_params(["lr=1e-4", "hard=true", "mode=class"]) == {"lr": 1e-4, "hard": True, "mode": "class"}
    assert parse_ints("0, 1,2,") == [0, 1, 2]
    with pytest.raises(UnlearnError):
        parse_params(["lr"])
