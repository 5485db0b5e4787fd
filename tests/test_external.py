"""Bring your own models: specs, checkpoint loading (TorchScript, ONNX, state dicts) and
``audit_models``, which must reproduce ``audit``'s numbers for this project's own exported models."""
from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import save as save_safetensors
from test_app_api import LFW
from test_cli import run_cli
from torch import nn

from unlearn_core.audit import audit_models
from unlearn_core.backbones.external import EmbedderSpec, export_embedder, load_embedder
from unlearn_core.errors import InvalidParameter
from unlearn_core.pipeline import AuditConfig, run_method

SPEC = {"input_size": 32, "template": "arcface"}
METRICS = ("mAP", "rank1", "rank5", "cs", "centroid_acc", "original_centroid_acc", "n_queries")


class Pool(nn.Module):
    """A toy embedder: mean colour per channel, times ``scale``."""

    def __init__(self, scale: float = 1.0):
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3)) * self.scale + 1.0


class Identity(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def torchscript(module: nn.Module, size: int = 32) -> bytes:
    buffer = io.BytesIO()
    with pytest.warns(FutureWarning):  # torch.jit is deprecated upstream (still how many face models ship)
        torch.jit.save(torch.jit.trace(module, torch.zeros(2, 3, size, size)), buffer)
    return buffer.getvalue()


def onnx(module: nn.Module, size: int = 32, dynamic_batch: bool = True) -> bytes:
    buffer = io.BytesIO()
    with pytest.warns(DeprecationWarning):
        torch.onnx.export(module, (torch.zeros(2, 3, size, size),), buffer, dynamo=False, input_names=["x"],
                          dynamic_axes={"x": {0: "n"}} if dynamic_batch else None)
    return buffer.getvalue()


@pytest.mark.fast
@pytest.mark.parametrize("spec, message", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    ({"input_size": 112}, "needs 'template'"),
    ({**SPEC, "normalise": 1}, r"unknown model spec field\(s\) \['normalise'\]"),
    ({**SPEC, "input_size": 7}, "input_size must be a whole number between 32 and 1024"),
    ({**SPEC, "template": "mtcnn"}, "unknown template 'mtcnn'"),
    ({**SPEC, "template": [[1, 2]] * 4}, "5 \\[x, y\\] points"),
    ({**SPEC, "template": [[1, 2]] * 4 + [[99, 2]]}, "inside the 32x32 chip"),
    ({**SPEC, "std": [1, 0, 1]}, "std must be a positive number or a list of 3"),
    ({**SPEC, "colour": "grey"}, "colour must be one of"),
    ({**SPEC, "arch": "resnet18"}, "unknown arch 'resnet18'"),
])
def test_bad_specs_say_what_is_wrong(spec, message):
    with pytest.raises(InvalidParameter, match=message):
        EmbedderSpec.from_json(spec if isinstance(spec, (str, dict)) else json.dumps(spec))


@pytest.mark.fast
def test_spec_round_trips_and_scales_named_templates():
    spec = EmbedderSpec.from_json({"input_size": 224, "template": "arcface", "mean": [1, 2, 3], "std": 2, "colour": "bgr", "embed_dim": 512})
    assert spec.inputs.template[0, 0] == pytest.approx(38.2946 * 2)
    again = EmbedderSpec.from_json(json.dumps(spec.to_json()))
    assert again.inputs.mean == (1.0, 2.0, 3.0) and again.inputs.std == (2.0,) * 3 and again.inputs.colour == "bgr"
    assert np.allclose(again.inputs.template, spec.inputs.template, atol=1e-4) and again.embed_dim == 512


@pytest.mark.fast
def test_preprocess_follows_colour_and_layout():
    chips = torch.zeros(1, 32, 32, 3, dtype=torch.uint8)
    chips[..., 0] = 200  # red
    rgb = EmbedderSpec.from_json({**SPEC, "mean": 100, "std": 50}).inputs.preprocess(chips)
    bgr = EmbedderSpec.from_json({**SPEC, "colour": "bgr", "layout": "nhwc"}).inputs.preprocess(chips)
    assert rgb.shape == (1, 3, 32, 32) and rgb[0, 0, 0, 0] == 2.0 and rgb[0, 2, 0, 0] == -2.0
    assert bgr.shape == (1, 32, 32, 3) and bgr[0, 0, 0, 2] == 200 and bgr[0, 0, 0, 0] == 0


@pytest.mark.fast
@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_both_formats_embed_alike(fmt):
    spec = EmbedderSpec.from_json({**SPEC, "embed_dim": 3})
    model = load_embedder(torchscript(Pool()) if fmt == "torchscript" else onnx(Pool()), spec)
    chips = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    expected = chips.mean((1, 2)) + 1.0
    assert model.format == fmt and model.embed_dim == 3
    assert np.allclose(model.embed(chips), expected / np.linalg.norm(expected, axis=1, keepdims=True), atol=1e-5)


@pytest.mark.fast
@pytest.mark.parametrize("checkpoint, spec, message", [
    (b"", SPEC, "file is empty"),
    (b"\x01\x02garbage" * 50, SPEC, "not a TorchScript, ONNX, safetensors or PyTorch checkpoint"),
    ("truncated", SPEC, "damaged zip archive: a truncated or corrupt TorchScript"),
    ("corrupt", SPEC, "looks like TorchScript but does not load"),
    ("nan", SPEC, "NaN or infinite"),
    ("no-embedding", SPEC, r"one embedding per photo, shape \(2, D\)"),
    ("pool", {**SPEC, "embed_dim": 512}, "outputs 3-D embeddings; the spec says embed_dim 512"),
    ("onnx-static", {**SPEC, "input_size": 40}, r"expects inputs of shape \[.*32, 32\]"),
    ("state-dict", SPEC, "the spec must name its architecture"),
    ("state-dict", {**SPEC, "arch": "dlib_resnet"}, "do not fit arch 'dlib_resnet': missing: .*unexpected: weight"),
    ("pickle", {**SPEC, "arch": "dlib_resnet"}, "not a readable state dict .*never pickled code"),
])
def test_bad_checkpoints_give_one_line_errors(checkpoint, spec, message):
    made = {
        "truncated": lambda: torchscript(Pool())[:3000],
        "corrupt": lambda: torchscript(Pool()).replace(b"Pool", b"P00l"),  # a readable archive with broken code
        "nan": lambda: torchscript(Pool(float("nan"))),
        "no-embedding": lambda: torchscript(Identity()),
        "pool": lambda: torchscript(Pool()),
        "onnx-static": lambda: onnx(Pool(), dynamic_batch=False),  # fixed batch and size
        "state-dict": lambda: save_safetensors({"weight": torch.zeros(3, 3)}),
        "pickle": lambda: __import__("pickle").dumps({"weight": print}),
    }
    data = made[checkpoint]() if isinstance(checkpoint, str) else checkpoint
    with pytest.raises(InvalidParameter, match=message) as err:
        load_embedder(data, EmbedderSpec.from_json(spec))
    assert "\n" not in str(err.value)


@pytest.mark.fast
def test_size_limit():
    with pytest.raises(InvalidParameter, match="the after model is 0 MB; the limit is 0 MB"):
        load_embedder(b"x" * 2000, EmbedderSpec.from_json(SPEC), max_bytes=1000, label="after model")


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_exported_models_reproduce_the_audit(lfw_workspace, fmt):
    """The project's own original and unlearned models, exported and audited as strangers' checkpoints, give ``audit``'s numbers."""
    ws = lfw_workspace
    unlearned, result = run_method(ws, AuditConfig(method="projection", workspace=ws.config))
    spec = EmbedderSpec.from_json(json.dumps(EmbedderSpec.from_backbone(ws.backbone).to_json()))  # through JSON, as a user would
    models = {role: load_embedder(export_embedder(model, ws.backbone.inputs, fmt), spec) for role, model in
              (("before", ws.original), ("after", unlearned))}
    report = audit_models(models, ws.config).report
    assert report["forget_identities"] == ws.identity_names(ws.forget_classes)
    assert report["n_images"] == {name: len(part) for name, part in ws.parts.items()}
    for role, expected in (("before", ws.baseline()), ("after", result["after"])):
        for part in ("forget", "forget_extended", "retain"):
            for metric in METRICS:
                assert report[role][part][metric] == pytest.approx(expected[part][metric], abs=1e-4), (role, part, metric)
    assert report["after"]["forget"]["mAP"] < report["before"]["forget"]["mAP"] - 0.1  # the projection did forget
    assert any("Without a reference model" in line for line in report["findings"])
    assert ws.original.device.type == "cpu" and all(p.grad is None for p in ws.original.parameters())


def test_facenet_state_dict_audited_from_a_spec_file(tmp_path):
    """facenet-pytorch's InceptionResnetV1 as state dicts (safetensors before, torch.save after) and a
    spec file: the CLI audits them. The weights are built here (seeded), since no pretrained copy
    can be downloaded offline; the audit's plumbing is the same for trained weights."""
    from facenet_pytorch import InceptionResnetV1

    torch.manual_seed(0)
    net = InceptionResnetV1(pretrained=None, classify=False).eval()
    before = {k: v.contiguous() for k, v in net.state_dict().items()}
    after = dict(before, **{"last_linear.weight": before["last_linear.weight"] * torch.linspace(0, 1, 512)[:, None]})
    (tmp_path / "before.safetensors").write_bytes(save_safetensors(before))
    torch.save(after, tmp_path / "after.pt")
    spec = {"input_size": 160, "template": "arcface", "mean": 127.5, "std": 128, "embed_dim": 512, "arch": "inception_resnet_v1"}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    person = tmp_path / "Colin_Powell"  # the person audited: photos from elsewhere, added to the gallery
    person.mkdir()
    for k in range(1, 7):
        shutil.copy(LFW / "Colin_Powell" / f"Colin_Powell_{k:04d}.jpg", person)
    out = tmp_path / "report.json"
    result = run_cli("audit-models", "--before", str(tmp_path / "before.safetensors"), "--after", str(tmp_path / "after.pt"),
                     "--spec", str(tmp_path / "spec.json"), "--gallery", "olivetti", "--forget-folder", str(person), "--retain", "6",
                     "--distractors", "0", "--device", "cpu", "--json", str(out))
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert {m["format"] for m in report["models"].values()} == {"safetensors", "torch"}
    assert report["models"]["before"]["embed_dim"] == 512 and report["forget_identities"] == ["Colin_Powell"]
    assert report["dataset"] == "olivetti+Colin_Powell" and report["n_images"]["forget_test"] == 2
    for role in ("before", "after"):
        assert 0 < report[role]["forget"]["mAP"] <= 1 and report[role]["forget"]["n_queries"] > 0
    assert report["before"] != report["after"]  # the edited projection changes the embeddings (random weights: the retain set shows it)
    assert "forget" in result.stdout and "Membership inference is not run" in result.stdout


def test_audit_models_cli_errors_are_one_line(tmp_path):
    (tmp_path / "model.pt").write_bytes(b"\x80\x04not a state dict")
    for args, message in [
        (("--spec", '{"input_size": 112}'), "needs 'template'"),
        (("--spec", str(tmp_path / "missing.json")), "no such file"),
        (("--spec", json.dumps({**SPEC, "arch": "dlib_resnet"})), "not a readable state dict"),
    ]:
        result = run_cli("audit-models", "--before", str(tmp_path / "model.pt"), "--after", str(tmp_path / "model.pt"), *args)
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr, result.stderr


@pytest.mark.fast
def test_an_arcface_iresnet50_state_dict_fits_the_upload_limit():
    """InsightFace's IResNet-50 parameter names load into ``iresnet50``; its checkpoint is within the app's default upload limit."""
    import app
    from unlearn_core.backbones.iresnet import iresnet50

    torch.manual_seed(0)
    data = save_safetensors(iresnet50().state_dict())
    assert 150e6 < len(data) < app.AppSettings().max_model_mb * 1e6
    spec = EmbedderSpec.from_json({"input_size": 112, "template": "arcface", "mean": 127.5, "std": 127.5, "arch": "iresnet50", "embed_dim": 512})
    model = load_embedder(data, spec, max_bytes=app.AppSettings().max_model_mb * 1_000_000)
    assert model.format == "safetensors" and model.embed_dim == 512
    chips = np.random.default_rng(0).integers(0, 256, (3, 112, 112, 3), dtype=np.uint8)
    assert np.allclose(np.linalg.norm(model.embed(chips), axis=1), 1.0, atol=1e-5)


def test_a_second_template_reuses_the_detected_landmarks(lfw_workspace, monkeypatch):
    """Aligning the workspace's split for another input spec (facenet's 160 px chips) detects no
    face again: the landmarks kept in the detection records give the chips a fresh detection gives."""
    from unlearn_core.faces import FaceDetector, align, central_face, load_image

    images = lfw_workspace.images
    spec = EmbedderSpec.from_json({"input_size": 160, "template": "arcface", "mean": 127.5, "std": 128})
    first = int(images.split.forget_test[0])
    photo = load_image(images.gallery.sources[first])
    found = FaceDetector("cpu").detect(photo)
    fresh = align(photo, found[central_face(found, photo.size)].landmarks, spec.inputs.template, 160)

    def no_detection(self, images):
        raise AssertionError("detected again")

    monkeypatch.setattr(FaceDetector, "detect_many", no_detection)
    other = images.for_inputs(spec.inputs, lfw_workspace.device)
    assert set(other.chips) == set(images.chips) and other.part_chips("forget_test").shape[1:] == (160, 160, 3)
    assert np.abs(other.chips[first].astype(int) - fresh.astype(int)).max() <= 2  # landmarks kept to 1e-3 px
    assert images.for_inputs(images.inputs, lfw_workspace.device).chips is images.chips
