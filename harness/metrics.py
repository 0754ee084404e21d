"""The metric machinery: the one scorer for training, thresholds and ``auh score``.

For each AU the rows whose truth is 999 (unknown, in memory) are dropped; on
the ``n`` remaining rows::

    acc = (TP + TN) / n
    F1  = 2 TP / (2 TP + FP + FN)      (0 where 2 TP + FP + FN = 0)

``accuracy`` and ``f1`` are the means over the AUs with ``n > 0`` (an AU with
no known row is *undefined*: reported, and left out of the means), and
``final`` is the benchmark's :class:`Metric` of them: a component
(``auh_metrics``), such as ENC-2020's ``(accuracy + f1) / 2`` or the mean F1
of the ABAW, BP4D and DISFA benchmarks (:mod:`plugins.metrics`).

Uncertainty comes from a bootstrap over images. Every resample is a vector
of row multiplicities ``w`` (multinomial, drawn with ``bincount``), and its
confusion counts are one matrix product ``w @ indicators``: no Python loop
over rows or over the rows of a resample. Several submissions share the same
resamples (:func:`bootstrap_finals`), which gives both the 95% interval of
one submission and the paired comparison of two;
:func:`bootstrap_scores` keeps the per-AU accuracy and F1 of each resample.
"""
from __future__ import annotations

import collections
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from harness.schema import POSITIVE, UNKNOWN

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # the scorer packaged by `auh export` runs without it: it has no bootstrap
    threadpool_limits = None

DEFAULT_RESAMPLES = 1000
MAX_RESAMPLES = 100_000  # far past where an interval stops moving; more only exhausts memory
DEFAULT_SEED = 0
SCORE_KEYS = ("final", "accuracy", "f1")  # the headline keys of a challenge scorecard, in order
# A chunk of resamples shares one pass of the matrix product over the
# indicator matrix (which does not fit in cache): at most 16 resamples (more
# measured no faster at 325,000 rows) and 4M cells of multiplicities (~16 MB
# whatever the number of rows).
_RESAMPLES_AT_ONCE = 16
_CHUNK_CELLS = 1 << 22
# Counting runs on two threads from this many units per resample (smaller work
# gains less than a thread costs): 1.7x faster at 325,000 rows on 2 idle cores.
_THREADED_UNITS = 1 << 15
_COUNTING_THREADS = 2
_GROUP_ROWS_AT_ONCE = 1 << 16  # rows summed per group at a time (bounded memory)


@dataclass(frozen=True)
class Metric:
    """A benchmark's headline score from the per-AU accuracy and F1.

    ``final(accuracy, f1)`` maps the means over the defined AUs to the
    headline; ``per_au(acc, f1)`` is the same score of one AU, the objective a
    threshold search maximizes. Both are vectorized over any leading axes.
    ``headline`` names it for people ("mean F1"); ``description`` says it in
    terms of the means over the AUs, for challenge pages (default: the headline).
    """

    name: str
    headline: str
    final: Callable[[np.ndarray, np.ndarray], np.ndarray]
    per_au: Callable[[np.ndarray, np.ndarray], np.ndarray]
    description: str = ""

    @property
    def over_aus(self) -> str:
        """How ``final`` comes from the means over the AUs, e.g. ``(mean accuracy + mean F1) / 2``."""
        return self.description or self.headline

    def objective(self, tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, tn: np.ndarray) -> np.ndarray:
        """:attr:`per_au` from confusion counts (a thresholder's objective)."""
        acc, f1, _ = per_au_scores(tp, fp, fn, tn)
        return self.per_au(acc, f1)


def default_metric() -> Metric:
    """The metric of the default benchmark, for callers that name none."""
    from harness.benchmark import default_benchmark

    return get_metric(default_benchmark().metric)


def named(benchmark: str, metric: Metric) -> dict[str, str]:
    """What a scorecard says of its headline: ``benchmark``, ``metric`` and ``headline``
    ("mean F1"); nothing for the default benchmark, whose scorecards keep their keys."""
    from harness.benchmark import DEFAULT_BENCHMARK

    if benchmark == DEFAULT_BENCHMARK:
        return {}
    return {"benchmark": benchmark, "metric": metric.name, "headline": metric.headline}


def get_metric(name: str | None) -> Metric:
    """The registered metric ``name`` (``auh plugins --kind metric``); None: :func:`default_metric`."""
    if name is None:
        return default_metric()
    from harness.registry import get_registry

    return get_registry().create("metric", name)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Logits to the probabilities that thresholds and ensembles see (clipped: no overflow)."""
    return 1.0 / (1.0 + np.exp(-np.clip(logits, -60, 60)))


# ----------------------------------------------------------------- the metric
def per_au_counts(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, ...]:
    """Confusion counts per AU: ``(tp, fp, fn, tn)``, each an int64 array ``[C]``.

    ``pred[N, C]`` holds 0/1 predictions, ``truth[N, C]`` holds 1/0/999; rows
    whose truth is 999 are left out of that AU's counts.
    """
    pred, truth = _check(pred, truth)
    known = truth != UNKNOWN
    pos = truth == POSITIVE
    hit = pred == 1
    tp = np.count_nonzero(hit & pos, axis=0)
    fp = np.count_nonzero(hit & known & ~pos, axis=0)
    fn = np.count_nonzero(~hit & pos, axis=0)
    tn = np.count_nonzero(known, axis=0) - tp - fp - fn
    return tuple(np.asarray(x, dtype=np.int64) for x in (tp, fp, fn, tn))


def per_au_scores(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray,
                  tn: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(acc, f1, n)`` from confusion counts of any shape ``[..., C]``.

    ``acc`` and ``f1`` are NaN where ``n == 0`` (undefined AU); ``f1`` is 0
    where ``2TP + FP + FN == 0`` but ``n > 0`` (no positive in truth or prediction).
    """
    tp, fp, fn, tn = (np.asarray(x, dtype=np.float64) for x in (tp, fp, fn, tn))
    n = tp + fp + fn + tn
    denom = 2 * tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.where(n > 0, (tp + tn) / n, np.nan)
        f1 = np.where(denom > 0, 2 * tp / denom, 0.0)
    f1 = np.where(n > 0, f1, np.nan)
    return acc, f1, n.astype(np.int64)


def summarize(acc: np.ndarray, f1: np.ndarray,
              metric: Metric | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(final, accuracy, f1)``: the means over the defined AUs (last axis) and
    ``metric`` of them (default: :func:`default_metric`).

    NaN where no AU is defined.
    """
    defined = ~np.isnan(acc)
    count = defined.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_acc = np.where(defined, acc, 0.0).sum(axis=-1) / count
        mean_f1 = np.where(defined, f1, 0.0).sum(axis=-1) / count
    return (metric or default_metric()).final(mean_acc, mean_f1), mean_acc, mean_f1


def challenge_score(pred: np.ndarray, truth: np.ndarray, aus: Sequence[str],
                    metric: Metric | None = None) -> dict[str, Any]:
    """The challenge scorecard (final, accuracy, F1, per-AU table), without ``ci95``.

    ``{"final", "accuracy", "f1", "n_images", "per_au": {au: {"accuracy", "f1", "n"}}}``,
    Python floats, never rounded. An undefined AU (``n == 0``) has
    ``accuracy`` and ``f1`` set to ``None``; then (and only then) the object
    also has ``"undefined_aus": [...]``. With no defined AU at all,
    ``final``/``accuracy``/``f1`` are ``None``.
    """
    pred, truth = _check(pred, truth)
    if len(aus) != truth.shape[1]:
        raise ValueError(f"{len(aus)} AU names for {truth.shape[1]} label columns")
    acc, f1, n = per_au_scores(*per_au_counts(pred, truth))
    final, mean_acc, mean_f1 = summarize(acc, f1, metric)
    score: dict[str, Any] = {
        "final": _float(final),
        "accuracy": _float(mean_acc),
        "f1": _float(mean_f1),
        "n_images": int(truth.shape[0]),
        "per_au": {au: {"accuracy": _float(a), "f1": _float(f), "n": int(k)}
                   for au, a, f, k in zip(aus, acc, f1, n)},
    }
    undefined = [au for au, k in zip(aus, n) if k == 0]
    if undefined:
        score["undefined_aus"] = undefined
    return score


def final_score(pred: np.ndarray, truth: np.ndarray, metric: Metric | None = None) -> float:
    """Just ``final`` (NaN when no AU is defined): the objective for model selection."""
    acc, f1, _ = per_au_scores(*per_au_counts(pred, truth))
    return float(summarize(acc, f1, metric)[0])


# ------------------------------------------------------------------ bootstrap
def bootstrap_scores(preds: Sequence[np.ndarray], truth: np.ndarray,
                     n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED,
                     groups: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-AU ``(acc, f1)`` of each submission on the same bootstrap resamples.

    Both arrays are ``[B, K, C]`` (resample, submission, AU). Resample ``b``
    draws N rows with replacement (seeded: the same seed, data and
    ``n_resamples`` give the same arrays); an AU with no known row in a
    resample is NaN there, as in :func:`per_au_scores`. Memory stays bounded
    by processing resamples in chunks. With ``groups`` (``[N]`` ints from 0:
    the video of each frame), a resample draws groups with replacement, each
    bringing all its rows: the frames of one video are not independent draws.
    A group's rows always come together, so the indicators are summed per
    group once and a resample weighs those sums: the work per resample is
    proportional to the number of groups, not of rows.
    """
    truth = np.asarray(truth)
    checked = [_check(p, truth)[0] for p in preds]
    n_rows, n_aus = truth.shape
    if n_rows == 0:
        raise ValueError("cannot bootstrap zero rows")
    units = n_rows if groups is None else int(np.max(groups)) + 1
    if groups is None:
        # float32 sums of integers are exact below 2**24: every count is <= N.
        dtype = np.float32 if n_rows < 2 ** 24 else np.float64
        sums = _indicators(checked, truth).astype(dtype)  # [N, (2 + 2K) C]
    else:  # a resample's count can pass N (a large video drawn often): float64, exact to 2**53
        sums = np.concatenate([_group_sums(block, groups, units)
                               for block in _indicator_blocks(checked, truth)], axis=1)
    acc = np.empty((n_resamples, len(checked), n_aus))
    f1 = np.empty_like(acc)
    for start, counts in _resampled_sums(sums, units, n_resamples, seed):
        acc[start:start + len(counts)], f1[start:start + len(counts)] = _scores_from_sums(
            counts.reshape(len(counts), -1, n_aus))
    return acc, f1


def _resampled_sums(sums: np.ndarray, units: int, n_resamples: int,
                    seed: int) -> Iterator[tuple[int, np.ndarray]]:
    """``(start, counts)`` for each chunk of resamples, in order: ``counts[b]`` is
    resample ``start + b``'s multiplicities of the ``units`` times ``sums`` (int64).

    The draws come from one generator in order, whatever the chunking (a seed
    gives the same resamples); the counting, which releases the GIL, runs on
    two threads when the work is large enough to gain from it.
    """
    chunk = max(1, min(n_resamples, _RESAMPLES_AT_ONCE, _CHUNK_CELLS // units))
    # int32 draws are the int64 ones (below 2**32 numpy draws both from 32 random
    # bits), at half the cost.
    draw_dtype = np.int32 if units < 2 ** 31 else np.int64
    rng = np.random.default_rng(seed)
    buffers = threading.local()

    def count(draws: np.ndarray) -> np.ndarray:
        weights = getattr(buffers, "weights", None)
        if weights is None:  # one buffer per thread: fresh memory costs page faults
            weights = buffers.weights = np.empty((chunk, units), dtype=sums.dtype)
        for row, drawn in zip(weights, draws):  # one resample's counts stay in cache
            row[:] = np.bincount(drawn, minlength=units)
        return (weights[:len(draws)] @ sums).astype(np.int64)

    from harness.threads import usable_cores  # not in the exported scorer, which has no bootstrap

    workers = min(_COUNTING_THREADS, usable_cores()) if units >= _THREADED_UNITS else 1
    # One BLAS thread per product: each is small, and a multi-threaded OpenBLAS
    # that spins for cores other processes hold ran 10x slower in measurements
    # on a busy 2-core machine.
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(workers) as pool:
        pending: collections.deque = collections.deque()
        for start in range(0, n_resamples, chunk):
            draws = rng.integers(0, units, size=(min(chunk, n_resamples - start), units), dtype=draw_dtype)
            pending.append((start, pool.submit(count, draws)))
            if len(pending) > workers:  # a bounded number of chunks in flight
                begun, counted = pending.popleft()
                yield begun, counted.result()
        while pending:
            begun, counted = pending.popleft()
            yield begun, counted.result()


def bootstrap_finals(preds: Sequence[np.ndarray], truth: np.ndarray,
                     n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED,
                     metric: Metric | None = None, groups: np.ndarray | None = None) -> np.ndarray:
    """``final`` of each submission on the resamples of :func:`bootstrap_scores`: ``[B, K]``.

    An AU with no known row in a resample is left out of that resample's means.
    """
    return summarize(*bootstrap_scores(preds, truth, n_resamples, seed, groups), metric)[0]


def bootstrap_ci(pred: np.ndarray, truth: np.ndarray, n_resamples: int = DEFAULT_RESAMPLES,
                 seed: int = DEFAULT_SEED, level: float = 0.95, metric: Metric | None = None,
                 groups: np.ndarray | None = None) -> list[float]:
    """Percentile bootstrap interval ``[lo, hi]`` of ``final`` (95% by default)."""
    finals = bootstrap_finals([pred], truth, n_resamples, seed, metric, groups)[:, 0]
    tail = (1 - level) / 2 * 100
    lo, hi = np.nanpercentile(finals, [tail, 100 - tail])
    return [float(lo), float(hi)]


@dataclass(frozen=True)
class PairedResult:
    """Paired bootstrap of submissions A and B on the same resamples.

    ``p_a_better``: fraction of resamples where A's ``final`` is strictly
    higher; ``diff``: observed ``final(A) - final(B)``; ``diff_ci95``: 95%
    percentile interval of that difference.
    """

    p_a_better: float
    diff: float
    diff_ci95: tuple[float, float]


def paired_bootstrap(pred_a: np.ndarray, pred_b: np.ndarray, truth: np.ndarray,
                     n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED,
                     metric: Metric | None = None, groups: np.ndarray | None = None) -> PairedResult:
    """Probability that submission A beats B, from one shared set of resamples."""
    finals = bootstrap_finals([pred_a, pred_b], truth, n_resamples, seed, metric, groups)
    return paired_from_finals(finals[:, 0], finals[:, 1],
                              final_score(pred_a, truth, metric) - final_score(pred_b, truth, metric))


def paired_from_finals(finals_a: np.ndarray, finals_b: np.ndarray, diff: float) -> PairedResult:
    """:class:`PairedResult` from two columns of :func:`bootstrap_finals`."""
    delta = np.asarray(finals_a) - np.asarray(finals_b)
    lo, hi = np.nanpercentile(delta, [2.5, 97.5])
    return PairedResult(float(np.mean(delta > 0)), float(diff), (float(lo), float(hi)))


# ------------------------------------------------------------------- helpers
def _indicators(preds: Sequence[np.ndarray], truth: np.ndarray) -> np.ndarray:
    """Per-row 0/1 columns whose weighted sums give every confusion count:
    :func:`_indicator_blocks` side by side."""
    return np.concatenate(list(_indicator_blocks(preds, truth)), axis=1)


def _indicator_blocks(preds: Sequence[np.ndarray], truth: np.ndarray) -> Iterator[np.ndarray]:
    """Blocks of C boolean columns: known and positive, then per submission
    predicted-positive-and-known and predicted-positive-and-positive."""
    known = truth != UNKNOWN
    pos = truth == POSITIVE
    yield np.concatenate([known, pos], axis=1)
    for pred in preds:
        hit = pred == 1
        yield np.concatenate([hit & known, hit & pos], axis=1)


def _group_sums(block: np.ndarray, groups: np.ndarray, units: int) -> np.ndarray:
    """``[units, columns]`` float64: the column sums of ``block``'s rows per group."""
    if not (np.diff(groups) >= 0).all():  # group the rows (videos come in order: rarely needed)
        order = np.argsort(groups, kind="stable")
        groups, block = groups[order], block[order]
    sums = np.zeros((units, block.shape[1]), dtype=np.int64)
    # A chunk of rows at a time: one reduceat over the whole block ran 20x slower
    # (numpy's cast to int64 went through a block-sized buffer, page faults and all).
    for at in range(0, len(block), _GROUP_ROWS_AT_ONCE):
        chunk = groups[at:at + _GROUP_ROWS_AT_ONCE]
        runs = np.flatnonzero(np.r_[True, chunk[1:] != chunk[:-1]])  # each group's rows in the chunk
        sums[chunk[runs]] += np.add.reduceat(block[at:at + _GROUP_ROWS_AT_ONCE], runs, axis=0,
                                             dtype=np.int64)
    return sums.astype(np.float64)


def _scores_from_sums(sums: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-AU ``(acc, f1)`` per resample and submission from indicator sums ``[B, 2 + 2K, C]``."""
    n, positives = sums[:, 0], sums[:, 1]
    predicted, tp = sums[:, 2::2], sums[:, 3::2]  # [B, K, C]
    fp = predicted - tp
    fn = positives[:, None] - tp
    tn = n[:, None] - tp - fp - fn
    acc, f1, _ = per_au_scores(tp, fp, fn, tn)
    return acc, f1


def _check(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, truth = np.asarray(pred), np.asarray(truth)
    if truth.ndim != 2 or pred.shape != truth.shape:
        raise ValueError(f"predictions {pred.shape} and truth {truth.shape} must be the same [N, C] shape")
    # Equality tests, not np.isin: ~50x faster on [325000, 23].
    if not ((pred == 0) | (pred == 1)).all():
        raise ValueError("predictions must be 0 or 1")
    if not ((truth == 0) | (truth == POSITIVE) | (truth == UNKNOWN)).all():
        raise ValueError(f"truth labels must be 0, 1 or {UNKNOWN}")
    return pred, truth


def _float(x: Any) -> float | None:
    x = float(x)
    return None if np.isnan(x) else x
