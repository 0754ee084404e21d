"""View ensemblers: ``mean_prob`` (the paper's text), ``mean_logit`` (the paper's code), ``weighted``.

Each satisfies :class:`harness.protocols.Ensembler`: ``combine(probs_list,
logits=None) -> probs[N,C]`` maps the per-view sigmoid probabilities (and,
where given, logits) to one probability matrix; ``weighted`` declares
``"fit"`` and learns ``weights_`` on validation predictions only.
"""
from __future__ import annotations

import itertools
from typing import Sequence

import numpy as np

from harness import hookimpl
from harness.metrics import final_score, get_metric, sigmoid
from harness.protocols import Thresholder

_PROB_EPS = 1e-7  # clip before the logit so that probabilities 0 and 1 stay finite


def _stack(probs_list: Sequence[np.ndarray]) -> np.ndarray:
    """``[V,N,C]`` from a non-empty list of equally shaped ``[N,C]`` arrays."""
    if len(probs_list) == 0:
        raise ValueError("an ensemble needs at least one view")
    arrays = [np.asarray(p, dtype=np.float64) for p in probs_list]
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1 or arrays[0].ndim != 2:
        raise ValueError(f"every view must give the same [N, C] array, got shapes {sorted(shapes)}")
    return np.stack(arrays)


class MeanProb:
    """The mean of the views' probabilities, per AU."""

    def combine(self, probs_list: Sequence[np.ndarray], logits: Sequence[np.ndarray] | None = None) -> np.ndarray:
        return _stack(probs_list).mean(axis=0)


class MeanLogit:
    """The sigmoid of the mean of the views' logits.

    Uses ``logits`` when given, else recovers them from the probabilities
    (clipped to ``[1e-7, 1 - 1e-7]``).
    """

    def combine(self, probs_list: Sequence[np.ndarray], logits: Sequence[np.ndarray] | None = None) -> np.ndarray:
        if logits is None:
            p = np.clip(_stack(probs_list), _PROB_EPS, 1 - _PROB_EPS)
            z = np.log(p) - np.log1p(-p)
        else:
            z = _stack(logits)
        return sigmoid(z.mean(axis=0))


class Weighted:
    """A weighted mean of the views' probabilities.

    ``weights``: one per view (normalized to sum 1); equal weights when
    omitted. With ``fit_weights = true``, :meth:`fit` learns ``weights_`` on
    validation predictions: every point of the simplex grid with spacing
    ``grid_step`` is scored by the benchmark's ``final`` (``metric``, a registered
    metric the pipeline passes; default: the default benchmark's) after fitting
    the recipe's thresholder (what the pipeline applies next), and the best one
    is kept (the first on ties, in grid order). ``combine`` uses
    ``weights_`` once fitted, else ``weights``.
    """

    capabilities = frozenset({"fit"})
    weights_: np.ndarray | None = None

    def __init__(self, weights: Sequence[float] | None = None, fit_weights: bool = False,
                 grid_step: float = 0.1, metric: str | None = None) -> None:
        self.metric = metric
        self._metric = get_metric(metric)  # an unknown name is refused when the ensembler is built
        if weights is not None:
            weights = np.asarray(weights, dtype=np.float64)
            if weights.ndim != 1 or (weights < 0).any() or weights.sum() <= 0:
                raise ValueError(f"weights must be non-negative numbers, not all 0, got {weights.tolist()}")
        if not 0 < grid_step <= 1 or abs(round(1 / grid_step) * grid_step - 1) > 1e-9:
            raise ValueError(f"grid_step must divide 1 (0.5, 0.25, 0.1, ...), got {grid_step}")
        self.weights = weights
        self.fit_weights = fit_weights
        self.grid_step = grid_step

    def combine(self, probs_list: Sequence[np.ndarray], logits: Sequence[np.ndarray] | None = None) -> np.ndarray:
        stacked = _stack(probs_list)
        w = self.weights_ if self.weights_ is not None else self.weights
        w = np.full(len(stacked), 1.0) if w is None else np.asarray(w, dtype=np.float64)
        if len(w) != len(stacked):
            raise ValueError(f"{len(w)} ensemble weights for {len(stacked)} views")
        return np.tensordot(w / w.sum(), stacked, axes=1)

    def fit(self, probs_list: Sequence[np.ndarray], labels: np.ndarray, thresholder: Thresholder) -> "Weighted":
        if not self.fit_weights:
            return self
        stacked = _stack(probs_list)
        best, best_score = None, -np.inf
        for w in simplex_grid(len(stacked), round(1 / self.grid_step)):
            probs = np.tensordot(w, stacked, axes=1)
            score = final_score(thresholder.fit(probs, labels).predict(probs), labels, self._metric)
            if score > best_score:
                best, best_score = w, score
        self.weights_ = best
        return self


def simplex_grid(n_views: int, steps: int) -> list[np.ndarray]:
    """Every weight vector of ``n_views`` multiples of ``1/steps`` that sum to 1."""
    return [np.asarray(c, dtype=np.float64) / steps
            for c in itertools.product(range(steps + 1), repeat=n_views) if sum(c) == steps]


@hookimpl
def auh_ensemblers() -> dict[str, type]:
    return {"mean_prob": MeanProb, "mean_logit": MeanLogit, "weighted": Weighted}
