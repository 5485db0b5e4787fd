"""Face verification on the official LFW test pairs with the pretrained port (dlib's 0.6 rule)."""
import numpy as np
import torch
from sklearn.datasets import fetch_lfw_pairs

from unlearn_core.backbones import create_backbone
from unlearn_core.faces import ChipCache, FaceDetector
from unlearn_core.pipeline import cache_dir


def test_lfw_pairs_verification_accuracy():
    pairs = fetch_lfw_pairs(subset="test", color=True, resize=1.0, slice_=None, download_if_missing=False)
    keep = np.r_[0:150, 500:650]  # 150 matched and 150 mismatched pairs
    images, same = pairs.pairs[keep], pairs.target[keep].astype(bool)
    backbone = create_backbone("dlib_resnet")
    cache = ChipCache(cache_dir(), backbone.template, backbone.chip_size)
    # scikit-learn returns floats in [0, 1]; the face pipeline takes them as they are
    chips = cache.get_many(list(images.reshape(-1, *images.shape[2:])), FaceDetector.shared())
    assert sum(c is None for c, _ in chips) <= 3
    fallback = np.zeros((150, 150, 3), np.uint8)
    stacked = torch.from_numpy(np.stack([c if c is not None else fallback for c, _ in chips]))
    with torch.no_grad():
        emb = backbone.module(backbone.preprocess(stacked)).numpy().reshape(len(keep), 2, -1)
    distance = np.linalg.norm(emb[:, 0] - emb[:, 1], axis=1)
    accuracy = np.mean((distance < 0.6) == same)
    print(f"LFW test pairs ({len(keep)}): verification accuracy {accuracy:.3f} at distance 0.6")
    assert accuracy > 0.95
