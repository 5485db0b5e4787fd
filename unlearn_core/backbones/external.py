"""Face embedders from outside the project: a checkpoint plus a spec saying how to feed it.

Checkpoint formats, recognised from the bytes (never from the file name):

- **TorchScript** (``torch.jit.save``): loaded by ``torch.jit.load``, which reads TorchScript code
  and tensors, not arbitrary pickled Python.
- **ONNX**: run with ``onnxruntime`` (CPU; CUDA when onnxruntime-gpu and a GPU are present).
- **State dicts** of an architecture this module knows (``ARCHITECTURES``, the spec's ``arch``:
  facenet-pytorch's ``inception_resnet_v1``, ``dlib_resnet``, InsightFace's ``iresnet50``),
  as safetensors or as a ``torch.save`` file read with ``weights_only=True`` (no pickle execution).

The spec (``EmbedderSpec``, from JSON) gives the input size, the 5-point alignment template,
colour order, normalisation and layout, so the same aligned photos feed any model. Everything is
checked before an audit starts: the spec's fields, the checkpoint's format and keys, and one probe
batch through the network (its output must be a finite ``(N, D)`` matrix, D the spec's
``embed_dim`` when given). Each problem is one ``InvalidParameter`` line.
"""
from __future__ import annotations

import copy
import io
import json
import warnings
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load as load_safetensors
from torch import nn

from ..errors import InvalidParameter, WeightsUnavailable
from .base import ARCFACE_TEMPLATE, Backbone, InputSpec
from .dlib_resnet import TEMPLATE as DLIB_TEMPLATE
from .dlib_resnet import DlibResNet
from .iresnet import iresnet50

TEMPLATES = {"arcface": (ARCFACE_TEMPLATE, 112), "dlib": (DLIB_TEMPLATE, 150)}
"""Named 5-point templates and the chip size they are given for; a spec's size rescales them
(facenet-pytorch's 160x160 crops use ``arcface`` at 160)."""
SPEC_FIELDS = ("input_size", "template", "mean", "std", "colour", "layout", "embed_dim", "arch")
MAX_EMBED_DIM = 8192


def _facenet() -> nn.Module:
    from facenet_pytorch import InceptionResnetV1

    return InceptionResnetV1(pretrained=None, classify=False)


ARCHITECTURES: dict[str, tuple[Callable[[], nn.Module], tuple[str, ...]]] = {
    "inception_resnet_v1": (_facenet, ("logits.",)),
    "dlib_resnet": (DlibResNet, ()),
    "iresnet50": (iresnet50, ()),
}
"""State-dict architectures: name -> (builder, key prefixes a checkpoint may carry that the
embedder does not use, e.g. facenet-pytorch's VGGFace2 classifier ``logits.*``)."""


@dataclass(frozen=True)
class EmbedderSpec:
    """How to feed an external embedder (``inputs``), what it should output (``embed_dim``, None:
    whatever it outputs) and, for state dicts, which architecture the weights belong to."""

    inputs: InputSpec
    embed_dim: int | None = None
    arch: str | None = None

    @classmethod
    def from_json(cls, source: str | bytes | Mapping[str, Any]) -> EmbedderSpec:
        """Parse and check a spec: ``{"input_size": 112, "template": "arcface" | [[x, y] x 5],
        "mean": 127.5 | [r, g, b], "std": 128 | [r, g, b], "colour": "rgb" | "bgr",
        "layout": "nchw" | "nhwc", "embed_dim": 512, "arch": "inception_resnet_v1"}``
        (``input_size`` and ``template`` required; mean 0 and std 1 by default)."""
        if isinstance(source, Mapping):
            raw = dict(source)
        else:
            try:
                raw = json.loads(source)
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise InvalidParameter(f"the model spec is not valid JSON ({err})") from None
        if not isinstance(raw, dict):
            raise InvalidParameter("the model spec must be a JSON object, e.g. {\"input_size\": 112, \"template\": \"arcface\"}")
        unknown = sorted(set(raw) - set(SPEC_FIELDS))
        if unknown:
            raise InvalidParameter(f"unknown model spec field(s) {unknown}; the fields are {list(SPEC_FIELDS)}")
        for required in ("input_size", "template"):
            if required not in raw:
                raise InvalidParameter(f"the model spec needs {required!r} (fields: {list(SPEC_FIELDS)})")
        size = _whole(raw["input_size"], "input_size", 32, 1024)
        inputs = InputSpec(size=size, template=_template(raw["template"], size), mean=_channels(raw.get("mean", 0.0), "mean"),
                           std=_channels(raw.get("std", 1.0), "std", positive=True),
                           colour=_choice(raw.get("colour", "rgb"), "colour", ("rgb", "bgr")),
                           layout=_choice(raw.get("layout", "nchw"), "layout", ("nchw", "nhwc")))
        embed_dim = None if raw.get("embed_dim") is None else _whole(raw["embed_dim"], "embed_dim", 2, MAX_EMBED_DIM)
        arch = raw.get("arch")
        if arch is not None and arch not in ARCHITECTURES:
            raise InvalidParameter(f"unknown arch {arch!r}; state dicts are read for {sorted(ARCHITECTURES)}")
        return cls(inputs, embed_dim, arch)

    @classmethod
    def from_backbone(cls, backbone: Backbone) -> EmbedderSpec:
        return cls(backbone.inputs, backbone.embed_dim)

    def to_json(self) -> dict[str, Any]:
        i = self.inputs
        out = {"input_size": i.size, "template": np.round(i.template.astype(float), 4).tolist(), "mean": list(i.mean), "std": list(i.std),
               "colour": i.colour, "layout": i.layout, "embed_dim": self.embed_dim, "arch": self.arch}
        return {k: v for k, v in out.items() if v is not None}


def _whole(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidParameter(f"model spec {name} must be a whole number between {low} and {high}, got {value!r}")
    return value


def _choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise InvalidParameter(f"model spec {name} must be one of {list(choices)}, got {value!r}")
    return value


def _channels(value: Any, name: str, positive: bool = False) -> tuple[float, float, float]:
    values = [value] * 3 if isinstance(value, (int, float)) and not isinstance(value, bool) else value
    if not isinstance(values, list) or len(values) != 3 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values) \
            or not all(np.isfinite(values)) or (positive and min(values) <= 0):
        raise InvalidParameter(f"model spec {name} must be a {'positive ' if positive else ''}number or a list of 3 (one per channel), got {value!r}")
    return (float(values[0]), float(values[1]), float(values[2]))


def _template(value: Any, size: int) -> np.ndarray:
    if isinstance(value, str):
        if value not in TEMPLATES:
            raise InvalidParameter(f"unknown template {value!r}; use one of {sorted(TEMPLATES)} or 5 [x, y] points in chip pixels")
        points, native = TEMPLATES[value]
        return (points * (size / native)).astype(np.float32)
    try:
        points = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError):
        points = np.zeros(0)
    if points.shape != (5, 2) or not np.isfinite(points).all() or points.min() < 0 or points.max() > size:
        raise InvalidParameter("model spec template must be a name or 5 [x, y] points (left eye, right eye, nose, left and right "
                               f"mouth corner) inside the {size}x{size} chip, got {value!r}")
    return points


# -- loading ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExternalEmbedder:
    """A loaded checkpoint: ``embed`` maps aligned uint8 RGB chips to unit-length embeddings."""

    format: str
    spec: EmbedderSpec
    run: Callable[[np.ndarray], np.ndarray]
    """The network: a float32 input batch (the spec's layout) -> its raw output."""
    embed_dim: int

    def embed(self, chips: np.ndarray, batch_size: int = 64) -> np.ndarray:
        if len(chips) == 0:
            return np.zeros((0, self.embed_dim), np.float32)
        out = []
        for start in range(0, len(chips), batch_size):
            x = self.spec.inputs.preprocess(torch.as_tensor(np.ascontiguousarray(chips[start : start + batch_size]))).numpy()
            out.append(checked_output(self.run(x), len(x), self.format))
        emb = np.concatenate(out).astype(np.float32)
        return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)


def checked_output(y: np.ndarray, n: int, kind: str) -> np.ndarray:
    """A network's raw output for ``n`` photos, refused unless it is ``(n, D)`` and finite."""
    if y.ndim != 2 or y.shape[0] != n:
        raise InvalidParameter(f"the {kind} model should output one embedding per photo, shape ({n}, D); it output {tuple(y.shape)}")
    if not np.isfinite(y).all():
        raise InvalidParameter(f"the {kind} model output NaN or infinite values: the checkpoint is corrupt or the spec's "
                               "normalisation is wrong")
    return y


def load_embedder(source: bytes | str | Path, spec: EmbedderSpec, device: torch.device | str = "cpu",
                  max_bytes: int | None = None, label: str = "model") -> ExternalEmbedder:
    """Load a checkpoint (bytes or a path; ``label`` names it in messages) and probe it once."""
    data = _read(source, label, max_bytes)
    device = torch.device(device)
    kind = _format(data, label)
    if kind == "onnx":
        run = _onnx_runner(data, spec, label)
    else:
        module = _torchscript(data, label) if kind == "torchscript" else _state_dict_module(data, kind, spec, label)
        module = module.to(device).eval()

        @torch.no_grad()
        def run(x: np.ndarray) -> np.ndarray:
            return module(torch.from_numpy(x).to(device)).float().cpu().numpy()

    size = spec.inputs.size
    probe = np.full((2, size, size, 3), 128, np.uint8)
    try:
        out = checked_output(run(spec.inputs.preprocess(torch.from_numpy(probe)).numpy()), 2, kind)
    except InvalidParameter:
        raise
    except Exception as err:  # shape errors surface as runtime errors of the framework
        first = str(err).strip().splitlines()[0][:300] if str(err).strip() else type(err).__name__
        raise InvalidParameter(f"the {label} ({kind}) does not run on {size}x{size} inputs laid out {spec.inputs.layout}: {first}") from None
    if spec.embed_dim is not None and out.shape[1] != spec.embed_dim:
        raise InvalidParameter(f"the {label} outputs {out.shape[1]}-D embeddings; the spec says embed_dim {spec.embed_dim}")
    return ExternalEmbedder(kind, spec, run, out.shape[1])


def _read(source: bytes | str | Path, label: str, max_bytes: int | None) -> bytes:
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise WeightsUnavailable(f"the {label} checkpoint {path} does not exist")
        if max_bytes is not None and path.stat().st_size > max_bytes:
            raise InvalidParameter(f"the {label} is {path.stat().st_size / 1e6:.0f} MB; the limit is {max_bytes / 1e6:.0f} MB")
        source = path.read_bytes()
    if max_bytes is not None and len(source) > max_bytes:
        raise InvalidParameter(f"the {label} is {len(source) / 1e6:.0f} MB; the limit is {max_bytes / 1e6:.0f} MB")
    if not source:
        raise InvalidParameter(f"the {label} file is empty")
    return source


def _format(data: bytes, label: str) -> str:
    """``torchscript``, ``torch`` (a torch.save archive), ``safetensors`` or ``onnx``, from the bytes."""
    if data[:4] == b"PK\x03\x04":
        try:
            names = zipfile.ZipFile(io.BytesIO(data)).namelist()
        except zipfile.BadZipFile:
            raise InvalidParameter(f"the {label} is a damaged zip archive: a truncated or corrupt TorchScript or torch.save file") from None
        return "torchscript" if any(n.endswith("constants.pkl") or "/code/" in n for n in names) else "torch"
    if len(data) > 9 and data[8:9] == b"{" and int.from_bytes(data[:8], "little") < len(data):
        return "safetensors"
    if data[:1] == b"\x80":  # a pickle stream: torch.save's legacy format
        return "torch"
    return "onnx"


def _torchscript(data: bytes, label: str) -> nn.Module:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated upstream; face models still ship in it
            return torch.jit.load(io.BytesIO(data), map_location="cpu")
    except Exception as err:
        raise InvalidParameter(f"the {label} looks like TorchScript but does not load ({type(err).__name__}): "
                               "the file is truncated or corrupt") from None


def _state_dict_module(data: bytes, kind: str, spec: EmbedderSpec, label: str) -> nn.Module:
    try:
        state = load_safetensors(data) if kind == "safetensors" else torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
        raise InvalidParameter(f"the {label} is not a readable state dict ({type(err).__name__}: {first}); "
                               "only tensors are read (weights_only), never pickled code") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InvalidParameter(f"the {label} holds no state dict (a mapping of parameter names to tensors)")
    if spec.arch is None:
        raise InvalidParameter(f"the {label} is a state dict: the spec must name its architecture (arch: one of {sorted(ARCHITECTURES)})")
    build, ignored = ARCHITECTURES[spec.arch]
    module = build()
    state = {k.removeprefix("module."): v for k, v in state.items() if not k.removeprefix("module.").startswith(ignored)}
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        details = "; ".join(f"{what}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''} ({len(keys)})"
                            for what, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if keys)
        raise InvalidParameter(f"the {label}'s weights do not fit arch {spec.arch!r}: {details}")
    module.load_state_dict(state)
    return module


def _onnx_runner(data: bytes, spec: EmbedderSpec, label: str) -> Callable[[np.ndarray], np.ndarray]:
    try:
        import onnxruntime as ort
    except ImportError:
        raise WeightsUnavailable("reading ONNX models needs onnxruntime: pip install onnxruntime") from None
    providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
    try:
        session = ort.InferenceSession(data, providers=providers)
    except Exception as err:
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise InvalidParameter(f"the {label} is not a TorchScript, ONNX, safetensors or PyTorch checkpoint ({first})") from None
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise InvalidParameter(f"the {label} (ONNX) takes {len(inputs)} inputs; a face embedder takes one image batch")
    size = spec.inputs.size
    expected = (3, size, size) if spec.inputs.layout == "nchw" else (size, size, 3)
    declared = tuple(inputs[0].shape[1:])
    if len(declared) != 3 or any(isinstance(d, int) and d != e for d, e in zip(declared, expected)):
        raise InvalidParameter(f"the {label} (ONNX) expects inputs of shape {list(inputs[0].shape)}; the spec gives "
                               f"[N, {', '.join(map(str, expected))}] ({spec.inputs.layout}, input_size {size})")
    name = inputs[0].name
    return lambda x: np.asarray(session.run(None, {name: x.astype(np.float32)})[0])


# -- export -----------------------------------------------------------------------------------
class ExportedNetwork(nn.Module):
    """A model of this project as one network from preprocessed chips to raw embeddings."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self.model.backbone.forward_until(x, self.model.start))


def export_embedder(model: nn.Module, inputs: InputSpec, fmt: str = "torchscript") -> bytes:
    """A ``FaceModel`` (its frozen trunk and trainable stages) as a TorchScript or ONNX file."""
    net = ExportedNetwork(copy.deepcopy(model)).cpu().eval()  # a copy: the model itself stays where it is
    example = inputs.preprocess(torch.full((2, inputs.size, inputs.size, 3), 128, dtype=torch.uint8))
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation and tracer notices of torch.jit / torch.onnx
        if fmt == "torchscript":
            torch.jit.save(torch.jit.trace(net, example), buffer)
        elif fmt == "onnx":
            try:
                torch.onnx.export(net, (example,), buffer, dynamo=False, input_names=["chips"], output_names=["embedding"],
                                  dynamic_axes={"chips": {0: "n"}, "embedding": {0: "n"}})
            except Exception as err:
                raise WeightsUnavailable(f"ONNX export failed ({type(err).__name__}: {str(err)[:200]}); it needs the onnx package") from None
        else:
            raise InvalidParameter(f"unknown export format {fmt!r}; use 'torchscript' or 'onnx'")
    return buffer.getvalue()
