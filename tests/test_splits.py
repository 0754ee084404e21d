"""Iterative stratification (Sechidis et al. 2011) and the stratified train/val/test split."""
from __future__ import annotations

import numpy as np
import pytest

from harness.splits import iterative_stratification, train_val_test_split


def _labels(n: int = 3000, seed: int = 0) -> np.ndarray:
    """Correlated multi-label data with rare and common labels and some 999s."""
    rng = np.random.default_rng(seed)
    latent = rng.random((n, 1))
    rates = np.array([0.01, 0.02, 0.05, 0.1, 0.3, 0.5])
    y = (rng.random((n, len(rates))) < rates * (0.5 + latent)).astype(np.int64)
    y[rng.random(y.shape) < 0.03] = 999
    return y


def _worst_deviation(labels: np.ndarray, fold: np.ndarray, k: int) -> np.ndarray:
    """Per label: largest |positives in a fold - expected positives per fold|."""
    pos = labels == 1
    counts = np.stack([pos[fold == f].sum(0) for f in range(k)])
    return np.abs(counts - pos.sum(0) / k).max(0)


def test_each_row_in_exactly_one_fold_and_balanced_sizes():
    y = _labels()
    fold = iterative_stratification(y, 5, seed=1)
    assert fold.shape == (len(y),) and set(np.unique(fold)) == set(range(5))
    sizes = np.bincount(fold)
    assert sizes.max() - sizes.min() <= 2


def test_closer_to_label_proportions_than_random():
    y = _labels()
    strat = _worst_deviation(y, iterative_stratification(y, 5, seed=0), 5)
    rand = np.mean([_worst_deviation(y, np.random.default_rng(s).permutation(len(y)) % 5, 5)
                    for s in range(10)], axis=0)
    # Every label at most ~1 positive off its share; a random split is several off.
    assert (strat <= 1.5).all()
    assert strat.sum() < 0.3 * rand.sum()


def test_deterministic_and_seed_dependent():
    y = _labels()
    a = iterative_stratification(y, 5, seed=3)
    assert np.array_equal(a, iterative_stratification(y, 5, seed=3))
    assert not np.array_equal(a, iterative_stratification(y, 5, seed=4))


def test_999_is_not_positive():
    # Column 0 is unknown everywhere: it must not influence the assignment.
    y = _labels(500)
    with_unknown = np.column_stack([np.full(len(y), 999), y])
    with_zero = np.column_stack([np.zeros(len(y), dtype=np.int64), y])
    assert np.array_equal(iterative_stratification(with_unknown, 4, 0),
                          iterative_stratification(with_zero, 4, 0))


def test_hand_worked_two_folds():
    # Two rows carry the rare label 0; they must land in different folds.
    y = np.array([[1, 0], [1, 1], [0, 1], [0, 1], [0, 0], [0, 0]])
    fold = iterative_stratification(y, 2, seed=0)
    assert fold[0] != fold[1]
    assert (np.bincount(fold) == 3).all()
    assert (y[fold == 0, 1] == 1).sum() in (1, 2)


def test_train_val_test_split_fractions_and_partition():
    y = _labels(2000)
    split = train_val_test_split(y, (0.7, 0.1, 0.2), seed=0)
    rows = np.concatenate([split["train"], split["val"], split["test"]])
    assert np.array_equal(np.sort(rows), np.arange(len(y)))
    assert [len(split[k]) for k in ("train", "val", "test")] == pytest.approx([1400, 200, 400], abs=2)
    pos = y == 1
    for k in ("train", "val", "test"):
        assert np.abs(pos[split[k]].mean(0) - pos.mean(0)).max() < 0.01


def test_bad_arguments():
    with pytest.raises(ValueError):
        iterative_stratification(np.zeros(5), 2)
    with pytest.raises(ValueError):
        iterative_stratification(np.zeros((5, 2)), 2, proportions=[1.0])
