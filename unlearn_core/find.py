"""The find step of gallery-assisted forgetting: a selfie is the key to the photos a service holds.

A service that trained on scraped faces holds photos of the person asking to be forgotten; the
selfie finds them by face verification. The match threshold is calibrated on identities the
service keeps (held-out photos of retained people against its training photos), so its false-match
rate is measured, not assumed: a candidate is taken only when its cosine similarity to the selfie
reaches the threshold at which impostor pairs match at most ``target_fmr`` of the time. Matches
below it are never used, so the step errs towards missing a photo rather than forgetting someone
else.

Labelled training photos are found by identity (``Finder.match_labels``): the selfie against
each identity's template, or any of the identity's photos found photo by photo, so a match brings
all of that identity's photos. Unlabelled gallery
photos are found in two passes (``Finder.find``): the selfie finds what reaches the single-photo
threshold; the centroid of the selfie and those photos (a far better estimate of the person than
one photo) then finds the rest at its own threshold, calibrated the same way by running the first
pass for every retained held-out photo. Photo by photo, LFW people never seen in training were
found at recall 0.40 (precision 1.00) at the per-search budget below, against identity templates
at 1.00 (README). A threshold is the ``1 - target_fmr`` quantile of impostor
similarities (ties resolved upwards), so with ``n`` impostor pairs no rate below ``1 / n`` can be
claimed and ``resolvable_fmr`` says so.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .errors import InvalidParameter
from .metrics import unit_rows

FALSE_MATCHES_PER_SEARCH = 0.01
"""Default budget: expected photos of other people taken by one search (the false-match rate
per pair is this over the number of photos searched, so larger holdings get stricter thresholds)."""


@dataclass(frozen=True)
class MatchThreshold:
    """A cosine threshold and what it was measured to do on the calibration pairs."""

    threshold: float
    target_fmr: float
    fmr: float
    """Impostor pairs at or above the threshold, as a fraction of all impostor pairs (the measured
    false-match rate; times the photos searched = expected photos of others taken per search)."""
    fnmr: float
    """Genuine pairs below the threshold, as a fraction of all genuine pairs."""
    n_impostor: int
    n_genuine: int

    @property
    def resolvable_fmr(self) -> float:
        """The smallest false-match rate these pairs can show (one impostor pair)."""
        return 1.0 / max(self.n_impostor, 1)

    def to_json(self) -> dict[str, float]:
        return {**asdict(self), "resolvable_fmr": self.resolvable_fmr}


def _pair_masks(query_labels: np.ndarray, candidate_labels: np.ndarray, query_ids: np.ndarray | None,
                candidate_ids: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Genuine and impostor pair masks, a photo never paired with itself."""
    valid = np.ones((len(query_labels), len(candidate_labels)), bool)
    if query_ids is not None and candidate_ids is not None:
        valid = query_ids[:, None] != candidate_ids[None, :]
    same = query_labels[:, None] == candidate_labels[None, :]
    return same & valid, ~same & valid


def calibrate(queries: np.ndarray, query_labels: np.ndarray, candidates: np.ndarray, candidate_labels: np.ndarray,
              target_fmr: float, query_ids: np.ndarray | None = None, candidate_ids: np.ndarray | None = None) -> MatchThreshold:
    """The threshold at which impostor (query, candidate) pairs match at a rate <= ``target_fmr``
    (pairs of a photo with itself, by id, are left out)."""
    if not 0 < target_fmr < 1:
        raise InvalidParameter(f"target_fmr must be in (0, 1), got {target_fmr!r}")
    sims = unit_rows(queries) @ unit_rows(candidates).T
    genuine_mask, impostor_mask = _pair_masks(query_labels, candidate_labels, query_ids, candidate_ids)
    impostor, genuine = sims[impostor_mask], sims[genuine_mask]
    if len(impostor) == 0 or len(genuine) == 0:
        raise InvalidParameter("calibrating a match threshold needs at least two identities with photos on both sides")
    threshold = float(np.quantile(impostor, 1 - target_fmr, method="higher")) + 1e-6
    return MatchThreshold(threshold, target_fmr, float(np.mean(impostor >= threshold)), float(np.mean(genuine < threshold)),
                          len(impostor), len(genuine))


def find_matches(selfies: np.ndarray, candidates: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``candidates`` whose best cosine to any selfie reaches ``threshold``, best first,
    with those scores."""
    if len(candidates) == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    scores = (unit_rows(np.atleast_2d(selfies)) @ unit_rows(candidates).T).max(0)
    found = np.flatnonzero(scores >= threshold)
    order = np.argsort(-scores[found])
    return found[order], scores[found][order]


def _centroid(selfies: np.ndarray, found: np.ndarray) -> np.ndarray:
    return unit_rows(np.concatenate([unit_rows(np.atleast_2d(selfies)), unit_rows(found)]).mean(0, keepdims=True))


@dataclass(frozen=True)
class Finder:
    """The find step's three calibrated thresholds.

    ``identity``: the selfie against identity templates (the normalised mean embedding of each
    identity's labelled training photos, as a service that trained on labelled faces holds them);
    a matched identity brings all its training photos. ``first`` and ``expanded``: the selfie, then
    the centroid of the selfie and the first pass's finds, against unlabelled gallery photos.
    """

    identity: MatchThreshold
    first: MatchThreshold
    expanded: MatchThreshold

    @classmethod
    def calibrate(cls, queries: np.ndarray, query_labels: np.ndarray, query_ids: np.ndarray, templates: np.ndarray,
                  template_labels: np.ndarray, photos: np.ndarray, photo_labels: np.ndarray, photo_ids: np.ndarray,
                  false_per_search: float = FALSE_MATCHES_PER_SEARCH) -> Finder:
        """All thresholds on identities the service keeps: each of their held-out photos plays the
        selfie. The per-pair targets are ``false_per_search`` over the number of templates, and
        over the number of gallery photos."""
        identity = calibrate(queries, query_labels, templates, template_labels, false_per_search / len(templates))
        target = false_per_search / len(photos)
        first = calibrate(queries, query_labels, photos, photo_labels, target, query_ids, photo_ids)
        centroids = []
        for q, qid in zip(queries, query_ids):
            others = np.flatnonzero(photo_ids != qid)
            centroids.append(_centroid(q, photos[others[find_matches(q, photos[others], first.threshold)[0]]]))
        return cls(identity, first, calibrate(np.concatenate(centroids), query_labels, photos, photo_labels, target, query_ids, photo_ids))

    def find_identities(self, selfies: np.ndarray, templates: np.ndarray) -> np.ndarray:
        """Rows of ``templates`` (identities) the person in ``selfies`` matches, best first."""
        return find_matches(selfies, templates, self.identity.threshold)[0]

    def match_labels(self, selfies: np.ndarray, templates: np.ndarray, template_labels: np.ndarray, photos: np.ndarray,
                     photo_labels: np.ndarray) -> np.ndarray:
        """The identity of labelled training data the person matches (at most one: a person is one
        identity): candidates are the identities whose template matches, and those with a photo the
        two-pass photo search finds (two calibrated tests, so the expected false candidates per
        search add up to twice the budget); of these, the one whose template is nearest the selfie.
        Its photos are then all found."""
        candidates = np.union1d(template_labels[self.find_identities(selfies, templates)], photo_labels[self.find(selfies, photos)])
        rows = np.flatnonzero(np.isin(template_labels, candidates))
        if len(rows) == 0:
            return rows
        scores = (unit_rows(np.atleast_2d(selfies)) @ unit_rows(templates[rows]).T).max(0)
        return template_labels[rows[[int(np.argmax(scores))]]]

    def find(self, selfies: np.ndarray, photos: np.ndarray) -> np.ndarray:
        """Rows of ``photos`` found for the person in ``selfies`` (one or more photos), best first."""
        found, _ = find_matches(selfies, photos, self.first.threshold)
        if len(found) == 0:
            return found
        second, _ = find_matches(_centroid(selfies, photos[found]), photos, self.expanded.threshold)
        return np.concatenate([second, np.setdiff1d(found, second)])

    def to_json(self) -> dict[str, dict[str, float]]:
        return {"identity": self.identity.to_json(), "first": self.first.to_json(), "expanded": self.expanded.to_json()}


@dataclass(frozen=True)
class FindOutcome:
    """How well a find step did against the truth (for audits; a live service does not know it)."""

    n_found: int
    n_true_found: int
    n_present: int
    """Photos of the person among the candidates."""

    @property
    def precision(self) -> float:
        return self.n_true_found / self.n_found if self.n_found else 1.0

    @property
    def recall(self) -> float:
        return self.n_true_found / self.n_present if self.n_present else float("nan")

    def to_json(self) -> dict[str, float]:
        return {"n_found": self.n_found, "n_true_found": self.n_true_found, "n_present": self.n_present,
                "precision": self.precision, "recall": self.recall}

    @staticmethod
    def total(outcomes: list[FindOutcome]) -> FindOutcome:
        return FindOutcome(*(sum(getattr(o, f) for o in outcomes) for f in ("n_found", "n_true_found", "n_present")))


def outcome(found: np.ndarray, candidate_labels: np.ndarray, label: int) -> FindOutcome:
    """Score one find against the candidates' true labels."""
    return FindOutcome(len(found), int(np.sum(candidate_labels[found] == label)), int(np.sum(candidate_labels == label)))
