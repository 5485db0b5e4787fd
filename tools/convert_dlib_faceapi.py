"""Convert face-api's tfjs networks (@vladmandic/face-api) to safetensors.

Reproducible: ``python tools/convert_dlib_faceapi.py`` runs ``npm pack @vladmandic/face-api@1.7.15``
(MIT licence; the weights are dlib's ``dlib_face_recognition_resnet_model_v1``, CC0) in a temporary
folder and writes ``checkpoints/dlib_resnet_v1.safetensors``. ``--net age_gender`` and
``--net face_expression`` convert the package's attribute nets (face-api's own, MIT) to
``checkpoints/faceapi_age_gender.safetensors`` and ``checkpoints/faceapi_face_expression.safetensors``
(the attribute labeller, ``unlearn_core/attributes/nets.py``).

The tfjs weights are uint8-quantised per tensor (``value = q * scale + min``), except the
``conv64_*`` filters which are stored as float32. We keep the uint8 codes and store each
tensor's ``scale`` and ``min`` beside it, so the file stays under 10 MB and dequantising at load
reproduces the tfjs values exactly. Filters stay in tfjs' HWIO layout; the loader transposes.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import tarfile
import tempfile
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

PACKAGE = "@vladmandic/face-api@1.7.15"
CHECKPOINTS = Path(__file__).parents[1] / "checkpoints"
NETS = {  # --net -> (face-api model name, default output file)
    "face_recognition": ("face_recognition_model", "dlib_resnet_v1.safetensors"),
    "age_gender": ("age_gender_model", "faceapi_age_gender.safetensors"),
    "face_expression": ("face_expression_model", "faceapi_face_expression.safetensors"),
}


def model_files(net: str) -> tuple[str, str]:
    """The tarball paths of ``net``'s tfjs manifest and weights binary."""
    model = NETS[net][0]
    return f"package/model/{model}-weights_manifest.json", f"package/model/{model}.bin"


def fetch_package(workdir: Path, net: str = "face_recognition") -> Path:
    """Download the npm tarball into ``workdir`` and unpack ``net``'s files; returns the unpacked root."""
    subprocess.run(["npm", "pack", PACKAGE, "--silent"], cwd=workdir, check=True, capture_output=True)
    tarball = next(workdir.glob("*.tgz"))
    with tarfile.open(tarball) as tar:
        tar.extractall(workdir, members=[m for m in tar.getmembers() if m.name in model_files(net)])
    return workdir


def convert(root: Path, net: str = "face_recognition") -> dict[str, np.ndarray]:
    """Read the tfjs manifest and binary; return tensors keyed ``<name>`` (+ ``.scale``/``.min``)."""
    manifest_path, weights_path = model_files(net)
    manifest = json.loads((root / manifest_path).read_text())
    blob = (root / weights_path).read_bytes()
    tensors: dict[str, np.ndarray] = {}
    offset = 0
    for spec in manifest[0]["weights"]:
        shape, quant = spec["shape"], spec.get("quantization")
        count = int(np.prod(shape))
        if quant:
            assert quant["dtype"] == "uint8", quant
            tensors[spec["name"]] = np.frombuffer(blob, np.uint8, count, offset).reshape(shape).copy()
            tensors[spec["name"] + ".scale"] = np.array(quant["scale"], np.float32)
            tensors[spec["name"] + ".min"] = np.array(quant["min"], np.float32)
            offset += count
        else:
            tensors[spec["name"]] = np.frombuffer(blob, np.float32, count, offset).reshape(shape).copy()
            offset += 4 * count
    assert offset == len(blob), f"read {offset} of {len(blob)} bytes"
    return tensors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package-dir", type=Path, help="an unpacked npm package (skips npm pack)")
    parser.add_argument("--net", choices=sorted(NETS), default="face_recognition")
    parser.add_argument("--out", type=Path, help="output file (default: checkpoints/<the net's file>)")
    args = parser.parse_args()
    args.out = args.out or CHECKPOINTS / NETS[args.net][1]
    with tempfile.TemporaryDirectory() as tmp:
        root = args.package_dir or fetch_package(Path(tmp), args.net)
        tensors = convert(root, args.net)
    save_file(tensors, str(args.out), metadata={"source": PACKAGE, "format": "tfjs-uint8-dequant"})
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB) sha256={digest}")


if __name__ == "__main__":
    main()
