"""A cached table of PSEUDO-labelled facial attributes for a gallery's aligned chips.

The labels come from face-api's age/gender and expression nets (``nets.py``), not from people:
they are pseudo-labels. Each candidate binary attribute is checked before use:

* flip agreement (all attributes): the label of the mirrored chip equals the label of the chip;
* identity agreement (identity-level attributes: gender, age band): over the identities with at
  least two labelled photos, the share of photos whose label equals their identity's majority label
  (every photo of one person should carry the same gender; the age band may drift across years).

``AttributeTable.kept`` are the attributes passing both (thresholds ``MIN_FLIP_AGREEMENT`` and
``MIN_IDENTITY_AGREEMENT``); ``consistency()`` reports the numbers.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import nets

FACE_BOX = slice(15, 135)
"""face-api's input crop inside a 150x150 dlib-template chip: dlib's chip at padding 0.25 puts the
68-landmark box at pixels 25..125; face-api pads that box by 10% a side (``alignMinBbox(0.2)``)."""
AGE_BAND = 40.0
"""``age_40_plus`` is the estimated age >= 40 (LFW is mostly public figures in mid-career)."""
ATTRIBUTES = ("male", "age_40_plus", "happy", "neutral")
IDENTITY_LEVEL = ("male", "age_40_plus")
MIN_FLIP_AGREEMENT = 0.9
MIN_IDENTITY_AGREEMENT = 0.9
LABELLER_VERSION = "faceapi-1.7.15-" + nets.AGE_GENDER_FILE[1][:8] + nets.EXPRESSION_FILE[1][:8]


@torch.no_grad()
def label_chips(chips: np.ndarray, batch_size: int = 64) -> dict[str, np.ndarray]:
    """Raw labeller outputs for (N, 150, 150, 3) dlib-template chips: ``p_male``, ``age``,
    ``expression`` (N, 7 softmax), each also for the mirrored chip (``*_flip``)."""
    if chips.ndim != 4 or chips.shape[1:] != (150, 150, 3):
        raise ValueError(f"expected (N, 150, 150, 3) dlib-template chips, got {chips.shape}")
    age_gender, expression = nets.load_age_gender(), nets.load_expression()
    out: dict[str, list[np.ndarray]] = {k: [] for k in ("p_male", "age", "expression", "p_male_flip", "age_flip", "expression_flip")}
    for start in range(0, len(chips), batch_size):
        crops = torch.from_numpy(np.ascontiguousarray(chips[start : start + batch_size, FACE_BOX, FACE_BOX]))
        for suffix, x in (("", crops), ("_flip", crops.flip(2))):
            age, gender = age_gender(x)
            out["p_male" + suffix].append(torch.softmax(gender, 1)[:, 0].numpy())
            out["age" + suffix].append(age.numpy())
            out["expression" + suffix].append(torch.softmax(expression(x), 1).numpy())
    return {k: np.concatenate(v) if v else np.zeros((0, 7) if "expression" in k else 0, np.float32) for k, v in out.items()}


def binarise(raw: dict[str, np.ndarray], suffix: str = "") -> np.ndarray:
    """(N, len(ATTRIBUTES)) 0/1 pseudo-labels from raw labeller outputs."""
    expr = raw["expression" + suffix].argmax(1)
    return np.stack([raw["p_male" + suffix] > 0.5, raw["age" + suffix] >= AGE_BAND,
                     expr == nets.EXPRESSIONS.index("happy"), expr == nets.EXPRESSIONS.index("neutral")], 1).astype(np.float32)


def identity_agreement(labels: np.ndarray, identities: np.ndarray) -> tuple[float, int]:
    """Share of photos agreeing with their identity's majority label, over identities with >= 2
    photos; and how many such identities there are."""
    agree = total = n_ids = 0
    for ident in np.unique(identities):
        values = labels[identities == ident]
        if len(values) < 2:
            continue
        agree += max(values.sum(), len(values) - values.sum())
        total += len(values)
        n_ids += 1
    return (float(agree / total) if total else float("nan")), n_ids


@dataclass
class AttributeTable:
    """Pseudo-labels of gallery images (``image_ids``) with their identities and the raw outputs."""

    image_ids: np.ndarray
    identities: np.ndarray
    raw: dict[str, np.ndarray]

    @property
    def labels(self) -> np.ndarray:
        return binarise(self.raw)

    def consistency(self) -> dict[str, dict[str, float]]:
        """Per attribute: positive rate, flip agreement, identity agreement (identity-level ones), kept."""
        labels, flipped = self.labels, binarise(self.raw, "_flip")
        report = {}
        for k, name in enumerate(ATTRIBUTES):
            row = {"positive_rate": float(labels[:, k].mean()), "flip_agreement": float((labels[:, k] == flipped[:, k]).mean())}
            passed = row["flip_agreement"] >= MIN_FLIP_AGREEMENT
            if name in IDENTITY_LEVEL:
                row["identity_agreement"], row["n_identities"] = identity_agreement(labels[:, k], self.identities)
                passed = passed and row["identity_agreement"] >= MIN_IDENTITY_AGREEMENT
            row["kept"] = bool(passed and 0 < row["positive_rate"] < 1)
            report[name] = row
        return report

    @property
    def kept(self) -> list[str]:
        return [name for name, row in self.consistency().items() if row["kept"]]

    def columns(self, image_ids: np.ndarray, attributes: list[str]) -> np.ndarray:
        """(len(image_ids), len(attributes)) pseudo-labels of those images."""
        row = {int(i): r for r, i in enumerate(self.image_ids)}
        missing = [int(i) for i in image_ids if int(i) not in row]
        if missing:
            raise KeyError(f"{len(missing)} images have no attribute labels (e.g. {missing[:3]})")
        cols = [ATTRIBUTES.index(a) for a in attributes]
        return self.labels[[row[int(i)] for i in image_ids]][:, cols]


def attribute_table(chips: dict[int, np.ndarray], identities: dict[int, int], cache: Path | None = None) -> AttributeTable:
    """Label every chip (``image id -> 150x150 dlib-template chip``); cached in ``cache`` (a folder)
    by the labeller's version and the chips' bytes."""
    ids = np.array(sorted(chips), dtype=np.int64)
    digest = hashlib.sha256(LABELLER_VERSION.encode())
    for i in ids:
        digest.update(int(i).to_bytes(8, "little") + chips[int(i)].tobytes())
    path = cache / f"attributes-{digest.hexdigest()[:16]}.npz" if cache else None
    if path and path.is_file():
        with np.load(path) as stored:
            raw = {k: stored[k] for k in stored.files}
    else:
        raw = label_chips(np.stack([chips[int(i)] for i in ids]) if len(ids) else np.zeros((0, 150, 150, 3), np.uint8))
        if path:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(path, **raw)
    return AttributeTable(ids, np.array([identities[int(i)] for i in ids], dtype=np.int64), raw)
