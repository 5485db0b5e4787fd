"""The gallery index on Milvus: the same interface as ``index.GalleryIndex``, through ``pymilvus``'s
``MilvusClient``, so one client reaches Milvus Lite on a local file (``uri="gallery.db"``, the
embedded default: no server to run) or a Milvus server or cluster (``uri="http://host:19530"``,
``token`` for its credentials).

A collection holds ``id`` (INT64 primary key), ``label`` (INT64, the identity) and ``vector``
(FLOAT_VECTOR, unit length; metric IP = cosine) with an exact (FLAT) index. Deletes are Milvus's
own (by primary key, or ``label == x``), and so is persistence: reopening the same ``uri`` and
collection finds the rows. Measured against FAISS in process in docs/bench-scale.md (the reason
FAISS is the default; Milvus is the way to a shared, served gallery).
"""
from __future__ import annotations

import numpy as np

from .errors import InvalidParameter

MILVUS_REQUIREMENT = "pymilvus==3.0.2 milvus-lite==3.2.2"
MAX_TOP_K = 16_384
"""Milvus's largest ``limit`` per search."""
INSERT_BATCH = 5_000


class MilvusIndex:
    """Ids, labels and unit vectors in one Milvus collection (module docstring)."""

    kind = "milvus,flat"

    def __init__(self, uri: str, dim: int, collection: str = "gallery", token: str | None = None, replace: bool = False):
        """Open ``collection`` at ``uri``, created if missing (``replace``: dropped and created anew)."""
        try:
            from pymilvus import DataType, MilvusClient
        except ImportError as exc:
            raise InvalidParameter(f"the Milvus index needs pymilvus (and milvus-lite for a local file): pip install {MILVUS_REQUIREMENT}") from exc
        self.uri, self.dim, self.collection = uri, dim, collection
        self._client = MilvusClient(uri, token=token) if token else MilvusClient(uri)
        if replace and self._client.has_collection(collection):
            self._client.drop_collection(collection)
        if not self._client.has_collection(collection):
            schema = self._client.create_schema(auto_id=False)
            schema.add_field("id", DataType.INT64, is_primary=True)
            schema.add_field("label", DataType.INT64)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
            params = self._client.prepare_index_params()
            params.add_index(field_name="vector", index_type="FLAT", metric_type="IP")
            self._client.create_collection(collection, schema=schema, index_params=params)
        self._client.load_collection(collection)

    @classmethod
    def build(cls, uri: str, ids: np.ndarray, vectors: np.ndarray, labels: np.ndarray, collection: str = "gallery",
              token: str | None = None) -> MilvusIndex:
        """A new collection (an existing one of that name is dropped first) holding these rows."""
        vectors = _unit(vectors)
        index = cls(uri, vectors.shape[1], collection, token, replace=True)
        index.add(ids, vectors, labels)
        return index

    @property
    def count(self) -> int:
        rows = self._client.query(self.collection, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def add(self, ids: np.ndarray, vectors: np.ndarray, labels: np.ndarray) -> None:
        """Add rows (vectors are L2-normalised here); ids are non-negative and new to the collection."""
        ids, labels, vectors = np.asarray(ids, np.int64), np.asarray(labels, np.int64), _unit(vectors)
        if not len(ids) == len(labels) == len(vectors):
            raise InvalidParameter(f"add needs one id and one label per vector: {len(ids)} ids, {len(labels)} labels, {len(vectors)} vectors")
        if vectors.shape[1] != self.dim:
            raise InvalidParameter(f"this index holds {self.dim}-D vectors, got {vectors.shape[1]}-D")
        if len(ids) and ids.min() < 0:
            raise InvalidParameter("ids must be non-negative (search pads with -1)")
        if len(np.unique(ids)) != len(ids) or (self.labels_of(ids) >= 0).any():
            raise InvalidParameter("ids must be unique within the index")
        for start in range(0, len(ids), INSERT_BATCH):
            rows = slice(start, start + INSERT_BATCH)
            self._client.insert(self.collection, [{"id": int(i), "label": int(lab), "vector": v.tolist()}
                                                  for i, lab, v in zip(ids[rows], labels[rows], vectors[rows])])
        self._client.flush(self.collection)

    def delete(self, ids: np.ndarray | None = None, label: int | None = None) -> int:
        """Remove rows by id, or every row of one label (a person); returns how many were removed."""
        if (ids is None) == (label is None):
            raise InvalidParameter("delete takes ids or a label, not both")
        if label is not None:
            ids = self.ids_of(label)
        ids = np.asarray(ids, np.int64)
        present = ids[self.labels_of(ids) >= 0]
        if len(present):
            self._client.delete(self.collection, ids=[int(i) for i in present])
        return len(present)

    def ids_of(self, label: int) -> np.ndarray:
        rows = self._client.query(self.collection, filter=f"label == {int(label)}", output_fields=["id"])
        return np.sort(np.array([r["id"] for r in rows], np.int64))

    def labels_of(self, ids: np.ndarray) -> np.ndarray:
        """Labels of ids (-1 where the id is absent, e.g. search's padding)."""
        ids = np.asarray(ids, np.int64)
        wanted = [int(i) for i in np.unique(ids[ids >= 0])]
        found = {}
        for start in range(0, len(wanted), INSERT_BATCH):
            chunk = wanted[start : start + INSERT_BATCH]
            found.update({r["id"]: r["label"] for r in self._client.query(self.collection, filter=f"id in {chunk}", output_fields=["label"])})
        return np.vectorize(lambda i: found.get(int(i), -1), otypes=[np.int64])(ids) if ids.size else ids.copy()

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, ids)``, each ``(n_queries, k)``, best first by cosine; id -1 (score -inf) pads."""
        if not 1 <= k <= MAX_TOP_K:
            raise InvalidParameter(f"k must be in [1, {MAX_TOP_K}] for Milvus, got {k}")
        queries = _unit(np.atleast_2d(queries))
        hits = self._client.search(self.collection, data=[q.tolist() for q in queries], limit=k, search_params={"metric_type": "IP"})
        scores, ids = np.full((len(queries), k), -np.inf, np.float32), np.full((len(queries), k), -1, np.int64)
        for row, found in enumerate(hits):
            for col, hit in enumerate(found):
                scores[row, col], ids[row, col] = hit["distance"], hit["id"]
        return scores, ids

    def close(self) -> None:
        self._client.close()


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.array(x, dtype=np.float32, ndmin=2)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
