"""The CosFace original model learns the gallery without collapsing (S0 §5.5)."""
import numpy as np

from unlearn_core.metrics import mean_cross_identity_cosine
from unlearn_core.model import FaceModel


def test_original_model_knows_the_gallery_and_is_centred(lfw_workspace):
    ws = lfw_workspace
    before = ws.evaluate(ws.original)
    pretrained = FaceModel(ws.backbone.module, ws.start)
    emb_pre = ws.embed(pretrained, "retain_test")
    emb = ws.embed(ws.original, "retain_test")
    labels = ws.parts.retain_test.labels.numpy()
    # raw dlib descriptors are not centred (mean cosine between people ~0.84); fine-tuning centres them
    assert mean_cross_identity_cosine(emb_pre, labels) > 0.7
    assert mean_cross_identity_cosine(emb, labels) < 0.3
    # no collapse: identities stay compact but distinct, and retrieval is near perfect
    assert 0.4 < before["retain"]["cs"] < 0.95
    assert before["retain"]["mAP"] > 0.9 and before["forget"]["mAP"] > 0.9
    assert before["retain"]["centroid_acc"] > 0.9


def test_original_model_is_cached_and_reloads_identically(lfw_workspace):
    ws = lfw_workspace
    reloaded = ws._trained_model("original", ("forget_train", "retain_train"), lambda f, m: None)
    x = ws.parts.forget_test.inputs[:8]
    assert np.allclose(reloaded.embed(x).detach().numpy(), ws.original.embed(x).detach().numpy(), atol=1e-6)


def test_trained_model_carries_no_gradients_cold_or_warm(lfw_workspace):
    """A freshly trained original (cold cache) and a reloaded one (warm cache) look the same to
    methods: no ``.grad`` left on any parameter, and clones start without gradients either."""
    from unlearn_core.train import train_cosface

    ws = lfw_workspace
    small = ws.parts.retain_train.subset(list(range(32)))
    trained = train_cosface(ws.backbone, ws.start, small, len(ws.classes), ws.config.train.__class__(epochs=1.0))
    assert all(p.grad is None for p in trained.parameters())
    dirty = ws.original.clone()
    dirty.embed(ws.parts.forget_test.inputs[:4]).sum().backward()
    assert any(p.grad is not None for p in dirty.trainable_parameters())
    assert all(p.grad is None for p in dirty.clone().parameters())
    assert all(p.grad is None for p in ws.original.parameters())
