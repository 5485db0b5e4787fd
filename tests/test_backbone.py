"""The dlib ResNet port reproduces dlib, the checkpoint is verified, and facenet fails clearly offline."""
import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from unlearn_core.backbones import create_backbone, list_backbones
from unlearn_core.backbones.dlib_resnet import CHECKPOINT, load_checkpoint
from unlearn_core.errors import InvalidParameter, WeightsUnavailable
from unlearn_core.faces import FaceDetector, align, central_face, load_image

LFW = Path(os.environ["SCIKIT_LEARN_DATA"]) / "lfw_home" / "lfw_funneled"


@pytest.fixture(scope="module")
def dlib_backbone():
    return create_backbone("dlib_resnet")


@pytest.fixture(scope="module")
def lfw_chips(dlib_backbone):
    files = sorted(LFW.glob("A*/*.jpg"))[::40][:24]
    detector = FaceDetector.shared()
    chips = []
    for f in files:
        image = load_image(f)
        dets = detector.detect(image)
        chips.append(align(image, dets[central_face(dets, image.size)].landmarks, dlib_backbone.template, 150))
    return np.stack(chips)


@pytest.mark.fast
def test_checkpoint_is_small_enough_for_a_space():
    assert CHECKPOINT.stat().st_size < 10 * 1024 * 1024


def test_port_matches_dlib(dlib_backbone, lfw_chips):
    import dlib

    model_path = Path(importlib.util.find_spec("face_recognition_models").origin).parent / "models" / "dlib_face_recognition_resnet_model_v1.dat"
    reference = dlib.face_recognition_model_v1(str(model_path))
    theirs = np.stack([np.array(reference.compute_face_descriptor(chip)) for chip in lfw_chips])
    with torch.no_grad():
        ours = dlib_backbone.module(dlib_backbone.preprocess(torch.from_numpy(lfw_chips))).numpy()
    cosine = (ours * theirs).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)
    assert cosine.min() >= 0.999
    # BGR input is the classic porting mistake: it must be measurably worse
    with torch.no_grad():
        bgr = dlib_backbone.module(dlib_backbone.preprocess(torch.from_numpy(lfw_chips[..., ::-1].copy()))).numpy()
    cos_bgr = (bgr * theirs).sum(1) / np.linalg.norm(bgr, axis=1) / np.linalg.norm(theirs, axis=1)
    assert cos_bgr.mean() < cosine.mean() - 0.005


def test_staged_forward_equals_whole(dlib_backbone, lfw_chips):
    x = dlib_backbone.preprocess(torch.from_numpy(lfw_chips[:4]))
    with torch.no_grad():
        whole = dlib_backbone.module(x)
        staged = dlib_backbone.module.forward_from(dlib_backbone.module.forward_until(x, dlib_backbone.tail_start), dlib_backbone.tail_start)
    assert torch.allclose(whole, staged)


@pytest.mark.fast
def test_corrupt_checkpoint_is_rejected(tmp_path):
    bad = tmp_path / "w.safetensors"
    data = bytearray(CHECKPOINT.read_bytes())
    data[-1] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(WeightsUnavailable, match="corrupt or altered"):
        load_checkpoint(bad)
    with pytest.raises(WeightsUnavailable, match="convert_dlib_faceapi"):
        load_checkpoint(tmp_path / "missing.safetensors")


@pytest.mark.fast
def test_facenet_offline_says_how_to_provide_weights(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    import socket

    def no_network(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    with pytest.raises(WeightsUnavailable, match=r"20180402-114759-vggface2\.pt"):
        create_backbone("facenet_vggface2")


@pytest.mark.fast
def test_registry():
    assert {"dlib_resnet", "facenet_vggface2"} <= set(list_backbones())
    with pytest.raises(InvalidParameter, match="unknown backbone"):
        create_backbone("resnet9000")
