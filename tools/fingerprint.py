"""How visible is a projection edit in the weights? A per-person attack on the embedding layer.

The attacker holds each person's mean raw embedding under the original model (a strong attacker)
and the retained photos' second moment, reads it through the edit's read-out (``S^-1 d`` for the
retain-preserving read-out, ``d`` for the orthogonal one) and scores the share of it in the edited
layer's ``m`` weakest left singular directions. AUC of forgotten vs retained identities: 0.5 hides
the edit, 1.0 (or 0.0) exposes it.

    PYTHONPATH=. python tools/fingerprint.py [--seed 0] [--one-shot] [--param readout=orthogonal] ...
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from unlearn_core.cli import parse_params
from unlearn_core.methods import Budget, create_method
from unlearn_core.methods.projection import embedding_layer, shrunk_second_moment
from unlearn_core.pipeline import Workspace, WorkspaceConfig


@torch.no_grad()
def raw_embeddings(model, data) -> torch.Tensor:
    return torch.cat([model(data.inputs[i:i + 512]) for i in range(0, len(data), 512)]).double()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--one-shot", action="store_true")
    parser.add_argument("--param", action="append", default=[], help="projection parameter NAME=VALUE")
    args = parser.parse_args()
    ws = Workspace(WorkspaceConfig(dataset="lfw", n_forget=10, n_retain=40, seed=args.seed, device="cpu", train_from="tail",
                                   n_distractors=1000))
    method = create_method("projection", **parse_params(args.param))
    model = method.unlearn(ws.original, ws.request(one_shot=args.one_shot, seed=args.seed), Budget(), seed=args.seed)
    retained = raw_embeddings(ws.original, ws.parts.retain_train)
    moment = shrunk_second_moment(retained, method.shrinkage)
    directions, forgotten = [], []
    for part, flag in ((ws.parts.forget_test, 1), (ws.parts.retain_test, 0)):
        emb, labels = raw_embeddings(ws.original, part), part.labels.numpy()
        for c in np.unique(labels):
            directions.append(emb[labels == c].mean(0))
            forgotten.append(flag)
    probe = torch.stack(directions)
    if method.readout == "retain-preserving":
        probe = torch.linalg.solve(moment, probe.T).T
    probe = probe / probe.norm(dim=1, keepdim=True)
    u = torch.linalg.svd(embedding_layer(model).weight.detach().double())[0]
    k = method.n_directions_
    after = ws.evaluate(model)
    report = {"params": method.get_params(), "one_shot": args.one_shot, "seed": args.seed, "n_directions": k,
              "forget_mAP_after": after["forget"]["mAP"]}
    for m in (k, 48):
        share = (probe @ u[:, -m:]).pow(2).sum(1).numpy()
        report[f"auc_weakest_{m}"] = roc_auc_score(forgotten, share)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
