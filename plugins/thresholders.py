"""Per-AU threshold pickers: ``fixed``, ``search`` (the paper's) and ``f1``.

Each satisfies :class:`harness.protocols.Thresholder`: ``fit(probs[N,C],
labels[N,C]) -> self`` on validation predictions (never test rows) learns
``thresholds_[C]``; a score ``>=`` its AU's threshold predicts 1
(:meth:`predict`). Rows whose label is 999 are left out of that AU's fit.

The searches are exact and O(n log n) per AU: sort the scores once; the
candidates are the distinct scores; for the candidate ``t`` the predicted
positives are the rows with score ``>= t``, so cumulative sums of the sorted
labels give TP and FP at every candidate (FN = positives - TP, TN =
negatives - FP) and each candidate costs O(1). Tied scores form one
candidate. The objective is computed by :func:`harness.metrics.per_au_scores`,
the same function that scores submissions.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from harness import hookimpl
from harness.metrics import get_metric, per_au_scores
from harness.schema import POSITIVE, UNKNOWN

DEFAULT_THRESHOLD = 0.5

Objective = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def challenge_objective(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, tn: np.ndarray) -> np.ndarray:
    """``(acc + F1) / 2`` of one AU at each candidate: the challenge's ``final``, per AU."""
    acc, f1, _ = per_au_scores(tp, fp, fn, tn)
    return (acc + f1) / 2


def candidate_counts(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, ...]:
    """Every distinct score as a threshold, with its confusion counts.

    ``scores[n]`` and boolean ``positive[n]`` (known rows only). Returns
    ``(thresholds, tp, fp, fn, tn)``, thresholds in decreasing order, where
    the counts are those of predicting 1 for ``score >= threshold``.
    """
    order = np.argsort(-scores)  # ties are merged below, so the sort need not be stable
    s, y = scores[order], positive[order]
    tp = np.cumsum(y, dtype=np.int64)
    fp = np.arange(1, len(s) + 1, dtype=np.int64) - tp
    # the last row of each run of equal scores closes that candidate
    last = np.flatnonzero(np.append(s[1:] != s[:-1], True))
    tp, fp = tp[last], fp[last]
    n_pos = int(tp[-1]) if len(tp) else 0
    n_neg = len(s) - n_pos
    return s[last], tp, fp, n_pos - tp, n_neg - fp


def best_threshold(scores: np.ndarray, labels: np.ndarray, objective: Objective,
                   default: float = DEFAULT_THRESHOLD) -> float:
    """The threshold maximizing ``objective`` for one AU (999 rows dropped).

    ``default`` when the AU has no positive (or no known) row. Among equally
    good candidates the highest threshold wins (deterministic).
    """
    known = labels != UNKNOWN
    positive = labels[known] == POSITIVE
    if not positive.any():
        return default
    thresholds, *counts = candidate_counts(np.asarray(scores, dtype=np.float64)[known], positive)
    return float(thresholds[int(np.argmax(objective(*counts)))])


class _Thresholder:
    """Common part: ``thresholds_`` and ``predict``."""

    thresholds_: np.ndarray | None = None

    def predict(self, probs: np.ndarray) -> np.ndarray:
        """0/1 predictions ``[N,C]``: 1 where ``probs >= thresholds_``."""
        if self.thresholds_ is None:
            raise RuntimeError(f"{type(self).__name__}: call fit() before predict()")
        probs = np.asarray(probs)
        if probs.ndim != 2 or probs.shape[1] != len(self.thresholds_):
            raise ValueError(f"probs {probs.shape} do not have {len(self.thresholds_)} AU columns")
        return (probs >= self.thresholds_).astype(np.int64)


class FixedThresholder(_Thresholder):
    """One fixed threshold for every AU (0.5 by default) or a given list, one per AU."""

    def __init__(self, threshold: float | Sequence[float] = DEFAULT_THRESHOLD) -> None:
        self.threshold = threshold

    def fit(self, probs: np.ndarray, labels: np.ndarray | None = None) -> "FixedThresholder":
        n_aus = np.asarray(probs).shape[1]
        t = np.asarray(self.threshold, dtype=np.float64)
        if t.ndim == 0:
            t = np.full(n_aus, float(t))
        elif t.shape != (n_aus,):
            raise ValueError(f"threshold list has {t.size} entries for {n_aus} AUs")
        self.thresholds_ = t
        return self


class SearchThresholder(_Thresholder):
    """Per AU, the distinct validation score maximizing the benchmark's per-AU score (exact, O(n log n)).

    ``metric`` names a registered metric whose per-AU part is maximized: the
    default benchmark's (``enc2020``: ``(acc + F1) / 2``), ``mean_f1``: F1
    alone. Subclasses change :meth:`objective`. An AU without positives in the
    validation rows keeps ``default``.
    """

    def __init__(self, default: float = DEFAULT_THRESHOLD, metric: str | None = None) -> None:
        self.default = default
        self.metric = metric
        self._metric = get_metric(metric)  # an unknown name is refused when the thresholder is built

    def objective(self, tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, tn: np.ndarray) -> np.ndarray:
        return self._metric.objective(tp, fp, fn, tn)

    def fit(self, probs: np.ndarray, labels: np.ndarray) -> "SearchThresholder":
        probs, labels = np.asarray(probs), np.asarray(labels)
        if probs.shape != labels.shape or probs.ndim != 2:
            raise ValueError(f"probs {probs.shape} and labels {labels.shape} must both be [N, C]")
        self.thresholds_ = np.array([best_threshold(probs[:, c], labels[:, c], self.objective, self.default)
                                     for c in range(probs.shape[1])])
        return self


class F1Thresholder(SearchThresholder):
    """Per AU, the distinct validation score maximizing F1 alone."""

    def __init__(self, default: float = DEFAULT_THRESHOLD) -> None:
        super().__init__(default, "mean_f1")


@hookimpl
def auh_thresholders() -> dict[str, type]:
    return {"fixed": FixedThresholder, "search": SearchThresholder, "f1": F1Thresholder}
