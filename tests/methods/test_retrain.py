"""retrain: the gold standard, rebuilt from the pretrained embedder on retained identities only."""
import torch

from unlearn_core.methods import Budget, create_method

STEPS = 4


def test_retrain_never_sees_forget_images_and_keeps_retained_identities(lfw_audit):
    run = lfw_audit.run("retrain", iterations=STEPS)
    assert run.received.forget is None and run.received.support is None
    lfw_audit.assert_retains(run, tolerance=0.05)
    # The retrained head never learnt the forget identities: it classifies none of their test images.
    assert run.after["forget"]["head_acc"] <= 0.1 < run.before["forget"]["head_acc"]


def test_retrain_starts_from_the_pretrained_weights_not_the_original(lfw_audit):
    ws = lfw_audit.ws
    scrambled = ws.original.clone()
    with torch.no_grad():
        for p in scrambled.trainable_parameters():
            p.add_(torch.randn_like(p) * p.std())
    method = create_method("retrain")
    from_original = method.unlearn(ws.original, ws.request(), Budget(iterations=STEPS), seed=0)
    from_scrambled = method.unlearn(scrambled, ws.request(), Budget(iterations=STEPS), seed=0)
    lfw_audit.assert_same_model(from_scrambled, from_original)
    assert not torch.equal(from_original.head.weight, ws.original.head.weight)


def test_retrain_is_deterministic(lfw_audit):
    lfw_audit.assert_deterministic("retrain", iterations=2)
