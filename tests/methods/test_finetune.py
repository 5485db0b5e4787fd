"""finetune: more CosFace training on retained identities only, from the original model."""

STEPS = 10


def test_finetune_reads_only_retain_data_and_keeps_retained_identities(lfw_audit):
    run = lfw_audit.run("finetune", iterations=STEPS)
    assert run.received.forget is None and run.received.support is None
    lfw_audit.assert_retains(run, tolerance=0.02, metrics=("mAP", "centroid_acc", "head_acc"))
    changed = [n for (n, p), q in zip(run.model.named_trainable_parameters(), lfw_audit.ws.original.trainable_parameters())
               if not p.detach().equal(q.detach())]
    assert changed, "fine-tuning left every weight untouched"


def test_finetune_is_deterministic(lfw_audit):
    lfw_audit.assert_deterministic("finetune")
