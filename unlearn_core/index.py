"""The gallery index: face embeddings behind one small interface, backed by FAISS in process.

``GalleryIndex`` holds unit-length vectors with a 64-bit id and an identity label each: ``add``,
``delete`` (by ids or by label: "forget me" deletes a person's rows), ``search`` (top-k by cosine),
``count``, ``save`` / ``load``. Below ``EXACT_BELOW`` vectors the index is exact (``IndexFlatIP``
in an ``IndexIDMap2``: the same ranking as a dense numpy similarity); from there on it is an
inverted file (``IndexIVFFlat``: k-means cells, ``nprobe`` of them searched per query), whose
recall against exact search ``bench-scale`` measures (docs/bench-scale.md). Both delete in place
(``remove_ids``) and persist with ``faiss.write_index``; HNSW is not offered because FAISS's HNSW
cannot delete.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from .errors import InvalidParameter

EXACT_BELOW = 100_000
"""Galleries smaller than this are searched exactly (a flat scan of 100k 128-D vectors is a few ms)."""
IVF_TRAIN_POINTS = 64
"""Training vectors per IVF cell (k-means on a sample of this many per cell, at most all of them)."""
IVF_MIN_POINTS = 39
"""The fewest training vectors per IVF cell (FAISS's k-means warns below this)."""


@dataclass(frozen=True)
class IVFParams:
    """An inverted file's cells and the cells searched per query (measured in docs/bench-scale.md)."""

    nlist: int
    nprobe: int

    @staticmethod
    def for_size(n: int) -> IVFParams:
        """``nlist`` ~ sqrt(n) (1,024 at 1M), ``nprobe`` = nlist / 16, at least 32: measured recall@10
        0.99 at LFW's 13k and a synthetic 100k, 0.97 at 1M, where nlist / 32 gave 0.91
        (docs/bench-scale.md)."""
        nlist = int(2 ** round(np.log2(max(np.sqrt(n), 16))))
        return IVFParams(nlist, min(max(nlist // 16, 32), nlist))


class GalleryIndex:
    """Ids, labels and unit vectors of a gallery; exact or IVF search over them (module docstring)."""

    def __init__(self, dim: int, ivf: IVFParams | None = None):
        self.dim, self.ivf = dim, ivf
        if ivf is None:
            self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        else:
            quantizer = faiss.IndexFlatIP(dim)
            self._index = faiss.IndexIVFFlat(quantizer, dim, ivf.nlist, faiss.METRIC_INNER_PRODUCT)
            self._index.nprobe = ivf.nprobe
        self._ids = np.zeros(0, np.int64)
        """The ids held, sorted; ``_labels`` in the same order."""
        self._labels = np.zeros(0, np.int64)

    @classmethod
    def build(cls, ids: np.ndarray, vectors: np.ndarray, labels: np.ndarray, exact_below: int = EXACT_BELOW,
              ivf: IVFParams | None = None, seed: int = 0) -> GalleryIndex:
        """An index of these rows: exact below ``exact_below`` vectors, otherwise an IVF (``ivf``
        or ``IVFParams.for_size``) trained on a seeded sample of them."""
        vectors = _as_vectors(vectors)
        if len(vectors) < exact_below:
            index = cls(vectors.shape[1])
        else:
            index = cls(vectors.shape[1], ivf or IVFParams.for_size(len(vectors)))
            if len(vectors) < index.ivf.nlist * IVF_MIN_POINTS:
                raise InvalidParameter(f"{len(vectors)} vectors are too few to train {index.ivf.nlist} IVF cells "
                                       f"(at least {IVF_MIN_POINTS} per cell); use the exact index")
            rng = np.random.default_rng(seed)
            n_train = min(len(vectors), index.ivf.nlist * IVF_TRAIN_POINTS)
            index._index.train(vectors[np.sort(rng.choice(len(vectors), n_train, replace=False))])
        index.add(ids, vectors, labels)
        return index

    @property
    def kind(self) -> str:
        return "exact" if self.ivf is None else f"ivf{self.ivf.nlist},nprobe{self.ivf.nprobe}"

    def set_nprobe(self, nprobe: int) -> None:
        """Search ``nprobe`` IVF cells per query from now on (more: higher recall, slower)."""
        if self.ivf is None or not 1 <= nprobe <= self.ivf.nlist:
            raise InvalidParameter(f"nprobe must be in [1, nlist] of an IVF index; this index is {self.kind}")
        self.ivf = IVFParams(self.ivf.nlist, nprobe)
        self._index.nprobe = nprobe

    @property
    def count(self) -> int:
        return int(self._index.ntotal)

    def add(self, ids: np.ndarray, vectors: np.ndarray, labels: np.ndarray) -> None:
        """Add rows (vectors are L2-normalised here); ids are non-negative and new to the index."""
        ids = np.asarray(ids, dtype=np.int64)
        labels = np.asarray(labels, dtype=np.int64)
        vectors = _as_vectors(vectors)
        if not len(ids) == len(labels) == len(vectors):
            raise InvalidParameter(f"add needs one id and one label per vector: {len(ids)} ids, {len(labels)} labels, {len(vectors)} vectors")
        if vectors.shape[1] != self.dim:
            raise InvalidParameter(f"this index holds {self.dim}-D vectors, got {vectors.shape[1]}-D")
        if len(ids) and ids.min() < 0:
            raise InvalidParameter("ids must be non-negative (search pads with -1)")
        if len(np.unique(ids)) != len(ids) or np.isin(ids, self._ids).any():
            raise InvalidParameter("ids must be unique within the index")
        self._index.add_with_ids(vectors, ids)
        self._set_rows(np.concatenate([self._ids, ids]), np.concatenate([self._labels, labels]))

    def _set_rows(self, ids: np.ndarray, labels: np.ndarray) -> None:
        order = np.argsort(ids, kind="stable")
        self._ids, self._labels = ids[order], labels[order]

    def delete(self, ids: np.ndarray | None = None, label: int | None = None) -> int:
        """Remove rows by id, or every row of one label (a person); returns how many were removed."""
        if (ids is None) == (label is None):
            raise InvalidParameter("delete takes ids or a label, not both")
        if label is not None:
            ids = self.ids_of(label)
        ids = np.asarray(ids, dtype=np.int64)
        removed = int(self._index.remove_ids(faiss.IDSelectorBatch(ids))) if len(ids) else 0
        keep = ~np.isin(self._ids, ids)
        self._ids, self._labels = self._ids[keep], self._labels[keep]
        return removed

    def ids_of(self, label: int) -> np.ndarray:
        """The ids of one label's rows."""
        return self._ids[self._labels == label]

    def labels_of(self, ids: np.ndarray) -> np.ndarray:
        """Labels of ids (-1 where the id is absent, e.g. search's padding)."""
        ids = np.asarray(ids, dtype=np.int64)
        if not len(self._ids):
            return np.full(ids.shape, -1, np.int64)
        at = np.minimum(np.searchsorted(self._ids, ids), len(self._ids) - 1)
        return np.where(self._ids[at] == ids, self._labels[at], -1)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, ids)``, each ``(n_queries, k)``, best first by cosine; id -1 (score -inf)
        pads when the index holds fewer than ``k`` rows (or the IVF cells searched do)."""
        if k < 1:
            raise InvalidParameter(f"k must be at least 1, got {k}")
        scores, ids = self._index.search(_as_vectors(np.atleast_2d(queries)), k)
        return np.where(ids < 0, -np.inf, scores), ids

    def save(self, folder: str | Path) -> Path:
        """Write the index (``index.faiss``) and its ids and labels (``labels.npz``, ``meta.json``) to ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self._index, str(folder / "index.faiss"))
        np.savez(folder / "labels.npz", ids=self._ids, labels=self._labels)
        ivf = None if self.ivf is None else {"nlist": self.ivf.nlist, "nprobe": self.ivf.nprobe}
        (folder / "meta.json").write_text(json.dumps({"dim": self.dim, "ivf": ivf, "count": self.count}))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> GalleryIndex:
        folder = Path(folder)
        meta = json.loads((folder / "meta.json").read_text())
        index = cls(meta["dim"], None if meta["ivf"] is None else IVFParams(**meta["ivf"]))
        index._index = faiss.read_index(str(folder / "index.faiss"))
        if index.ivf is not None:
            index._index.nprobe = index.ivf.nprobe
        stored = np.load(folder / "labels.npz")
        index._set_rows(stored["ids"], stored["labels"])
        if index.count != meta["count"] or len(index._ids) != index.count:
            raise InvalidParameter(f"{folder} is inconsistent: {index.count} vectors, {len(index._labels)} labels, meta says {meta['count']}")
        return index


def _as_vectors(x: np.ndarray) -> np.ndarray:
    """A float32 copy with unit rows (inner product = cosine)."""
    x = np.array(x, dtype=np.float32, order="C", ndmin=2)
    faiss.normalize_L2(x)
    return x
