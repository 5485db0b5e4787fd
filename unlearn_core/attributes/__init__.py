"""Facial attributes (S3's multi-label task): face-api's ported nets as a PSEUDO-labeller
(``nets``), the cached, consistency-checked attribute table (``table``), and the multi-label model
with one attribute forgotten by Weight Filtering / Weight Pruning (``task``)."""
from . import nets, table, task  # noqa: F401
