"""Reference outputs of face-api's tfjs attribute nets on real LFW faces, for the parity test.

``python tools/make_attribute_reference.py --package-dir /tmp/fa`` (an unpacked
``@vladmandic/face-api@1.7.15`` with ``@tensorflow/tfjs`` installed beside it; the package's
node-wasm bundle also requires ``@tensorflow/tfjs-backend-wasm``, which may be a stub since the CPU
backend runs) crops the deep-funneled (aligned) LFW photos in ``PHOTOS`` with ``crop_box`` and writes
the tfjs outputs to ``tests/data/faceapi_attribute_reference.npz``. The crops are not stored.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "data" / "faceapi_attribute_reference.npz"
PHOTOS = ("Aaron_Peirsol/Aaron_Peirsol_0001.jpg", "Serena_Williams/Serena_Williams_0003.jpg",
          "George_W_Bush/George_W_Bush_0010.jpg", "Jennifer_Aniston/Jennifer_Aniston_0002.jpg",
          "Colin_Powell/Colin_Powell_0005.jpg", "Laura_Bush/Laura_Bush_0004.jpg")
CROP_BOX = (61, 61, 189, 189)
"""The central 128x128 of a 250x250 deep-funneled LFW photo: the face, roughly as face-api's box."""


def lfw_root() -> Path:
    data = Path(os.environ.get("SCIKIT_LEARN_DATA", ROOT.parent / "shared" / "sklearn_data"))
    return data / "lfw_home" / "lfw_funneled"


def crops(root: Path | None = None) -> np.ndarray:
    """(len(PHOTOS), 128, 128, 3) uint8 RGB crops of the reference photos."""
    root = root or lfw_root()
    return np.stack([np.asarray(Image.open(root / p).convert("RGB").crop(CROP_BOX)) for p in PHOTOS])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package-dir", type=Path, required=True)
    args = parser.parse_args()
    batch = crops()
    with tempfile.NamedTemporaryFile(suffix=".bin") as f:
        f.write(batch.tobytes())
        f.flush()
        run = subprocess.run(["node", str(ROOT / "tools" / "faceapi_reference.js"), str(args.package_dir), f.name,
                              str(len(batch)), str(batch.shape[1])], check=True, capture_output=True, text=True)
    out = json.loads(run.stdout)
    np.savez(OUT, photos=np.array(PHOTOS), crop_box=np.array(CROP_BOX), age=np.array(out["age"], np.float32),
             gender_logits=np.array(out["gender_logits"], np.float32),
             expression_logits=np.array(out["expression_logits"], np.float32),
             crop_mean=batch.reshape(len(batch), -1).mean(1))
    print(f"wrote {OUT} (tfjs {out['tfjs']}, backend {out['backend']})")


if __name__ == "__main__":
    main()
