"""Multi-label stratified splits: cross-validation folds and train/val/test.

:func:`iterative_stratification` is the algorithm of Sechidis, Tsoumakas and
Vlahavas, "On the stratification of multi-label data" (ECML PKDD 2011): the
rarest label is distributed first, each of its rows going to the fold that
still wants the most of that label. It keeps every label's positive rate
close to equal across folds, which a random split does not for rare AUs.
Labels are coded 1 / 0 / 999; only 1 counts as positive.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from harness.schema import POSITIVE

SPLIT_NAMES: tuple[str, str, str] = ("train", "val", "test")


def iterative_stratification(labels: np.ndarray, n_folds: int = 5, seed: int = 0,
                             proportions: Sequence[float] | None = None) -> np.ndarray:
    """Assign every row of ``labels[N, C]`` to one of ``n_folds`` folds.

    ``proportions`` (default: equal) gives each fold's share of the rows.
    Returns ``fold[N]`` (int64, values ``0 .. n_folds-1``). Deterministic for
    a given ``(labels, n_folds, seed, proportions)``.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be [N, C], got shape {labels.shape}")
    if proportions is None:
        proportions = np.full(n_folds, 1.0 / n_folds)
    ratio = np.asarray(proportions, dtype=np.float64)
    if len(ratio) != n_folds or (ratio < 0).any() or ratio.sum() <= 0:
        raise ValueError(f"need {n_folds} non-negative proportions, got {list(proportions)}")
    ratio = ratio / ratio.sum()
    rng = np.random.default_rng(seed)
    positive = labels == POSITIVE
    n = len(labels)

    # Desired remaining rows per fold, and desired remaining positives per (label, fold).
    want_rows = ratio * n
    want = positive.sum(0)[:, None] * ratio[None, :]
    fold = np.full(n, -1, dtype=np.int64)
    remaining = positive.sum(0).astype(np.int64)
    # Rows carrying each label, visited in a seeded random order.
    row_order = rng.permutation(n)
    members = [row_order[positive[row_order, c]] for c in range(labels.shape[1])]
    row_labels = [np.flatnonzero(r) for r in positive]

    while (remaining > 0).any():
        # The label with the fewest positives left to place goes next (ties: lowest column).
        rarest = int(np.argmin(np.where(remaining > 0, remaining, np.iinfo(np.int64).max)))
        for row in members[rarest]:
            if fold[row] >= 0:
                continue
            f = _pick_fold(want[rarest], want_rows, rng)
            fold[row] = f
            cols = row_labels[row]
            want[cols, f] -= 1
            want_rows[f] -= 1
            remaining[cols] -= 1

    # Rows with no positive label fill each fold up to its desired size.
    rest = np.flatnonzero(fold < 0)
    if len(rest):
        rest = rest[rng.permutation(len(rest))]
        fold[rest] = _fill(want_rows, len(rest), ratio)
    return fold


def _pick_fold(want_label: np.ndarray, want_rows: np.ndarray, rng: np.random.Generator) -> int:
    # Most wanted for this label; ties by most wanted rows; remaining ties at random.
    best = np.flatnonzero(want_label == want_label.max())
    if len(best) > 1:
        best = best[want_rows[best] == want_rows[best].max()]
    return int(best[0] if len(best) == 1 else rng.choice(best))


def _fill(want_rows: np.ndarray, count: int, ratio: np.ndarray) -> np.ndarray:
    """Fold ids for ``count`` rows, shared in proportion to each fold's remaining want
    (largest-remainder rounding), so every fold ends close to its share."""
    need = np.maximum(want_rows, 0)
    target = (need if need.sum() > 0 else ratio) * count / (need.sum() if need.sum() > 0 else 1.0)
    quota = np.floor(target).astype(np.int64)
    quota[np.argsort(quota - target, kind="stable")[: count - quota.sum()]] += 1
    return np.repeat(np.arange(len(quota)), quota)


def train_val_test_split(labels: np.ndarray, fractions: Sequence[float] = (0.7, 0.1, 0.2),
                         seed: int = 0) -> dict[str, np.ndarray]:
    """Stratified ``{"train", "val", "test"}`` row indices (sorted) with the given fractions."""
    if len(fractions) != 3:
        raise ValueError(f"fractions must be (train, val, test), got {list(fractions)}")
    part = iterative_stratification(labels, 3, seed=seed, proportions=fractions)
    return {name: np.flatnonzero(part == i) for i, name in enumerate(SPLIT_NAMES)}
