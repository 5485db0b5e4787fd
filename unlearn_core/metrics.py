"""Retrieval and geometry metrics (S0 §5.3): pure functions of embeddings and labels.

Embeddings are L2-normalised rows; similarity is cosine.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import average_precision_score

from .errors import InvalidParameter
from .index import GalleryIndex


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (cosine similarity is then a dot product)."""
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def retrieval(query: np.ndarray, query_labels: np.ndarray, gallery: np.ndarray, gallery_labels: np.ndarray,
              query_ids: np.ndarray | None = None, gallery_ids: np.ndarray | None = None,
              ranks: tuple[int, ...] = (1, 5)) -> dict[str, float]:
    """mAP and CMC rank-k of cosine retrieval.

    Where ``query_ids``/``gallery_ids`` are given, a gallery item with the query's own id (the
    same image) is removed from that query's ranking (exact self-matches removed, S0 §5.2).
    Queries with no positive left in the gallery are not scored; ``n_queries`` counts the scored.
    """
    sims = unit_rows(query) @ unit_rows(gallery).T
    valid = np.ones(sims.shape, bool)
    if query_ids is not None and gallery_ids is not None:
        valid = query_ids[:, None] != gallery_ids[None, :]
    return _ranked(sims, query_labels[:, None] == gallery_labels[None, :], valid, ranks)


def index_retrieval(index: GalleryIndex, query: np.ndarray, query_labels: np.ndarray, query_ids: np.ndarray | None = None,
                    ranks: tuple[int, ...] = (1, 5)) -> dict[str, float]:
    """``retrieval`` against the rows of a ``GalleryIndex`` (each query's ranking from ``search``;
    an IVF index ranks only the cells it probes); ``query_ids``: the queries' own ids in the index."""
    sims, ids = index.search(query, max(index.count, 1))
    valid = ids >= 0
    if query_ids is not None:
        valid &= ids != query_ids[:, None]
    return _ranked(sims, index.labels_of(ids) == query_labels[:, None], valid, ranks)


def tow_maps(metrics: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """S2 Eq. 7's three sets from ``protocol_metrics``: forget = D_f (forget training photos),
    retain = D_r (retain training photos), test = D_te (held-out photos of retained people)."""
    return {"forget": metrics["forget_train"]["mAP"], "retain": metrics["retain_train"]["mAP"], "test": metrics["retain"]["mAP"]}


INDEX_STATES = {
    "before": ("before", False, False),
    "deletion_only": ("before", True, False),
    "unlearning_only": ("after", False, False),
    "both": ("after", True, False),
    "stale": ("after", False, True),
}
"""State -> (model, the person's found rows deleted, the person's stored rows keep the old model's
vectors). ``deletion_only``: the rows are deleted, the model is unchanged (new photos of the person
still match each other); ``unlearning_only``: the model changed and the index was re-embedded,
nothing deleted; ``both``: what "forget me" does; ``stale``: the model changed and the index was
re-embedded except the person's stored rows, which keep the old model's vectors."""


def index_states(before: np.ndarray, after: np.ndarray, labels: np.ndarray, checks: np.ndarray, stored: np.ndarray,
                 deleted: np.ndarray, not_held: np.ndarray, k: int = 5) -> dict[str, dict[str, float]]:
    """A search index (``GalleryIndex`` over rows ``0..N-1``; ``before``/``after``: every row's vector
    under the original and the unlearned model) in each of ``INDEX_STATES``, searched two ways:
    ``mAP`` / ``rank1`` / ``top{k}``: the ``checks`` rows (new photos of the forgotten people, in the
    index) as queries with that state's vectors (does a new photo find the person?); ``stored_*``:
    the ``stored`` rows (what the service keeps of them) as queries with the vectors the index holds
    for them, against the service's holdings (every row but ``not_held``; not measured where
    ``deleted`` removed them). ``deleted``: the rows a deletion removes."""
    rows = np.arange(len(labels))
    out = {}
    for state, (when, delete, stale) in INDEX_STATES.items():
        vectors = (before if when == "before" else after).copy()
        if stale:
            vectors[stored] = before[stored]
        index = GalleryIndex.build(rows, vectors, labels)
        if delete:
            index.delete(ids=deleted)
        metrics = index_retrieval(index, vectors[checks], labels[checks], checks, ranks=(1, k))
        out[state] = {"mAP": metrics["mAP"], "rank1": metrics["rank1"], f"top{k}": metrics[f"rank{k}"]}
        if not delete and len(stored):
            index.delete(ids=not_held)
            held = index_retrieval(index, vectors[stored], labels[stored], stored, ranks=(1, k))
            out[state].update({"stored_mAP": held["mAP"], "stored_rank1": held["rank1"], f"stored_top{k}": held[f"rank{k}"]})
    return out


def _ranked(sims: np.ndarray, positives: np.ndarray, valid: np.ndarray, ranks: tuple[int, ...]) -> dict[str, float]:
    """mAP and rank-k from each query's similarities, which of them are positives, and which count."""
    aps, hits = [], {k: [] for k in ranks}
    for sim, pos, keep in zip(sims, positives, valid):
        sim, pos = sim[keep], pos[keep]
        if not pos.any():
            continue
        aps.append(average_precision_score(pos, sim))
        # rank of the first positive (ties broken against the query)
        first = int((sim > sim[pos].max()).sum() + (sim[~pos] == sim[pos].max()).sum())
        for k in ranks:
            hits[k].append(first < k)
    out = {"mAP": float(np.mean(aps)) if aps else float("nan")}
    out.update({f"rank{k}": float(np.mean(h)) if h else float("nan") for k, h in hits.items()})
    out["n_queries"] = len(aps)
    return out


def compactness(embeddings: np.ndarray, labels: np.ndarray, identities: np.ndarray | None = None) -> float:
    """Cluster Compactness Score (S0 Eq. 10): mean over identities of the mean pairwise cosine
    between distinct images of that identity. Identities with a single image are skipped."""
    x = unit_rows(embeddings)
    scores = []
    for p in (np.unique(labels) if identities is None else identities):
        members = x[labels == p]
        n = len(members)
        if n < 2:
            continue
        total = members.sum(0)
        scores.append((total @ total - n) / (n * (n - 1)))  # sum_{i != j} x_i.x_j, unit rows
    return float(np.mean(scores)) if scores else float("nan")


def centroids(embeddings: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Normalised mean embedding per class (zero rows for absent classes)."""
    sums = np.zeros((n_classes, embeddings.shape[1]))
    np.add.at(sums, labels, unit_rows(embeddings))
    return unit_rows(sums)


def centroid_accuracy(test: np.ndarray, test_labels: np.ndarray, class_centroids: np.ndarray) -> float:
    """Fraction of test embeddings whose nearest class centroid (cosine) is their own class.

    S0 does not define the centroids; we use the normalised mean embedding of each identity's
    *training* images under the model being evaluated, over all gallery identities.
    """
    if len(test) == 0:
        return float("nan")
    predicted = np.argmax(unit_rows(test) @ class_centroids.T, axis=1)
    return float(np.mean(predicted == test_labels))


def mean_cross_identity_cosine(embeddings: np.ndarray, labels: np.ndarray, max_pairs: int = 200_000, seed: int = 0) -> float:
    """Mean cosine between images of different identities (a centring diagnostic)."""
    rng = np.random.default_rng(seed)
    x = unit_rows(embeddings)
    i = rng.integers(len(x), size=max_pairs)
    j = rng.integers(len(x), size=max_pairs)
    keep = labels[i] != labels[j]
    return float(np.mean(np.sum(x[i[keep]] * x[j[keep]], axis=1)))


def protocol_metrics(emb: Mapping[str, np.ndarray], labels: Mapping[str, np.ndarray], ids: Mapping[str, np.ndarray], n_classes: int,
                     head_weights: np.ndarray | None = None, original_centroids: np.ndarray | None = None) -> dict[str, dict[str, float]]:
    """Retrieval, compactness and centroid accuracy for forget and retain identities (S0 §5.3),
    from each protocol part's embeddings, class labels and gallery image ids (keys: ``forget_train,
    forget_test, retain_train, retain_test, distractors``).

    ``forget``: forget held-out photos query the gallery of all held-out photos; ``retain``: retain
    held-out photos query their own; ``forget_extended`` (when there are distractors) adds the
    one-photo distractor identities to the forget gallery. ``forget_train`` (retrieval only): forget
    training photos query all training photos; ``retain_train``: retain training photos query their
    own; with ``retain``, these are S2's D_f, D_r and D_te for Tug-of-War (``attacks.tug_of_war``).

    ``centroid_acc`` uses the evaluated model's own class centroids (mean training embedding);
    ``original_centroids`` (one unit row per class, the original model's) adds
    ``original_centroid_acc``, nearest-centroid accuracy against centroids fixed before unlearning,
    which is how S0's numbers read (a classification baseline that moves every embedding of a
    person together keeps its own-centroid accuracy). ``head_weights`` (unit rows) add
    ``head_acc``, the identity head's accuracy.
    """
    class_centroids = centroids(np.concatenate([emb["forget_train"], emb["retain_train"]]),
                                np.concatenate([labels["forget_train"], labels["retain_train"]]), n_classes)
    train_parts = ("forget_train", "retain_train")

    def ranking(queries: str, gallery_parts: tuple[str, ...]) -> dict[str, float]:
        g_emb = np.concatenate([emb[p] for p in gallery_parts])
        g_lab = np.concatenate([labels[p] if p != "distractors" else np.full(len(labels[p]), -1) for p in gallery_parts])
        g_ids = np.concatenate([ids[p] for p in gallery_parts])
        return retrieval(emb[queries], labels[queries], g_emb, g_lab, ids[queries], g_ids)

    def block(queries: str, gallery_parts: tuple[str, ...]) -> dict[str, float]:
        out = ranking(queries, gallery_parts)
        out["cs"] = compactness(emb[queries], labels[queries])
        out["centroid_acc"] = centroid_accuracy(emb[queries], labels[queries], class_centroids)
        if original_centroids is not None:
            out["original_centroid_acc"] = centroid_accuracy(emb[queries], labels[queries], original_centroids)
        if head_weights is not None:  # forgetting in the classification sense: the head no longer names the person
            out["head_acc"] = centroid_accuracy(emb[queries], labels[queries], head_weights)
        return out

    result = {"forget": block("forget_test", ("forget_test", "retain_test")), "retain": block("retain_test", ("retain_test",))}
    if len(emb["distractors"]):
        result["forget_extended"] = block("forget_test", ("forget_test", "retain_test", "distractors"))
    result["forget_train"] = ranking("forget_train", train_parts)
    result["retain_train"] = ranking("retain_train", ("retain_train",))
    return result


# -- top-k retrieval --------------------------------------------------------------------------
@dataclass
class Hit:
    chip: np.ndarray
    similarity: float
    correct: bool
    name: str


@dataclass
class RetrievalRow:
    query_chip: np.ndarray
    query_name: str
    hits: list[Hit]


def top_k(query: np.ndarray, query_labels: np.ndarray, query_ids: np.ndarray, gallery: np.ndarray,
          gallery_labels: np.ndarray, gallery_ids: np.ndarray, query_chips: np.ndarray, gallery_chips: np.ndarray,
          names: Sequence[str], k: int = 5) -> list[RetrievalRow]:
    """The ``k`` most similar gallery images for each query (cosine, through an exact
    ``GalleryIndex`` of the gallery's rows), the query's own image excluded; a hit is correct when
    it shows the query's identity. Label -1 = an unnamed distractor."""
    if not 1 <= k <= 50:
        raise InvalidParameter(f"k must be between 1 and 50, got {k}")
    index = GalleryIndex.build(np.arange(len(gallery)), gallery, gallery_labels, exact_below=len(gallery) + 1)
    scores, found = index.search(query, min(k + 1, max(index.count, 1)))
    rows = []
    for q, (q_scores, q_found) in enumerate(zip(scores, found)):
        kept = [(s, j) for s, j in zip(q_scores, q_found) if j >= 0 and gallery_ids[j] != query_ids[q]][:k]
        hits = [Hit(gallery_chips[j], float(s), bool(gallery_labels[j] == query_labels[q]),
                    names[gallery_labels[j]] if gallery_labels[j] >= 0 else "distractor") for s, j in kept]
        rows.append(RetrievalRow(query_chips[q], names[query_labels[q]], hits))
    return rows


def forget_top_k(emb: Mapping[str, np.ndarray], labels: Mapping[str, np.ndarray], ids: Mapping[str, np.ndarray], chips: Mapping[str, np.ndarray],
                 names: Sequence[str], forget_classes: Sequence[int], n_queries: int = 3, k: int = 5,
                 gallery_parts: tuple[str, ...] = ("forget_test", "retain_test", "distractors")) -> list[RetrievalRow]:
    """``top_k`` rows for the first held-out photo (``forget_test``) of each of the first
    ``n_queries`` forget classes, against the test gallery (``gallery_parts``), from per-part
    embeddings, class labels (-1: distractor), gallery image ids and chips."""
    q = labels["forget_test"]
    first = [int(np.flatnonzero(q == c)[0]) for c in list(forget_classes)[:n_queries] if (q == c).any()]

    def joined(values: Mapping[str, np.ndarray]) -> np.ndarray:
        return np.concatenate([values[p] for p in gallery_parts])

    return top_k(emb["forget_test"][first], q[first], ids["forget_test"][first], joined(emb), joined(labels), joined(ids),
                 chips["forget_test"][first], joined(chips), names, k)
