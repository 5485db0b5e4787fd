"""The attribute labeller (face-api's nets ported to PyTorch) on real LFW faces."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from unlearn_core.attributes import nets
from unlearn_core.errors import WeightsUnavailable

REFERENCE = Path(__file__).parent / "data" / "faceapi_attribute_reference.npz"
"""tfjs outputs of face-api's own nets (``tools/make_attribute_reference.py``, tfjs 4.22 CPU backend)."""


def reference_crops(ref) -> torch.Tensor:
    root = Path(os.environ["SCIKIT_LEARN_DATA"]) / "lfw_home" / "lfw_funneled"
    box = tuple(int(v) for v in ref["crop_box"])
    crops = np.stack([np.asarray(Image.open(root / str(p)).convert("RGB").crop(box)) for p in ref["photos"]])
    assert np.allclose(crops.reshape(len(crops), -1).mean(1), ref["crop_mean"]), "the LFW photos differ from the reference's"
    return torch.from_numpy(crops)


def test_ported_nets_match_tfjs_outputs():
    ref = np.load(REFERENCE)
    crops = reference_crops(ref)
    with torch.no_grad():
        age, gender = nets.load_age_gender()(crops)
        expression = nets.load_expression()(crops)
    np.testing.assert_allclose(age.numpy(), ref["age"], atol=1e-3)
    np.testing.assert_allclose(gender.numpy(), ref["gender_logits"], atol=1e-3)
    np.testing.assert_allclose(expression.numpy(), ref["expression_logits"], atol=1e-3)
    # the reference photos' genders (3 men, 3 women, LFW names) are what the port predicts
    expected_male = [p.split("/")[0] in ("Aaron_Peirsol", "George_W_Bush", "Colin_Powell") for p in ref["photos"]]
    assert (gender.argmax(1) == 0).tolist() == expected_male


@pytest.mark.fast
def test_tf_resize_matches_legacy_tensorflow_sampling():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    out = nets.tf_resize_bilinear(x, 2)  # src = dst * 2: picks rows/cols 0 and 2, no interpolation
    assert out[0, 0].tolist() == [[0.0, 2.0], [8.0, 10.0]]
    up = nets.tf_resize_bilinear(torch.tensor([[[[0.0, 4.0]]]]).expand(1, 1, 2, 2), 4)
    assert up[0, 0, 0].tolist() == [0.0, 2.0, 4.0, 4.0]  # edge clamps, unlike half-pixel resizing


@pytest.mark.fast
def test_bad_crops_and_missing_weights_are_clear(monkeypatch, tmp_path):
    with pytest.raises(ValueError, match="square RGB crops"):
        nets.load_expression()(torch.zeros(1, 100, 120, 3))
    monkeypatch.setattr(nets, "CHECKPOINTS", tmp_path)
    with pytest.raises(WeightsUnavailable, match="--net age_gender"):
        nets.load_age_gender()
