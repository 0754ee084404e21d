"""Ensemblers, worked by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest

from harness import create
from harness.errors import UserError

A = np.array([[0.2, 0.8], [0.5, 0.1]])
B = np.array([[0.4, 0.4], [0.5, 0.3]])


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_mean_prob():
    assert np.allclose(create("ensembler", "mean_prob").combine([A, B]), [[0.3, 0.6], [0.5, 0.2]])


def test_mean_logit_from_logits_and_from_probabilities():
    # logits 0 and 2 -> mean 1 -> sigmoid(1)
    logits = [np.array([[0.0, -3.0]]), np.array([[2.0, 1.0]])]
    probs = [np.array([[0.5, sigmoid(-3)]]), np.array([[sigmoid(2), sigmoid(1)]])]
    ens = create("ensembler", "mean_logit")
    expected = [[sigmoid(1), sigmoid(-1)]]
    assert np.allclose(ens.combine(probs, logits=logits), expected)
    assert np.allclose(ens.combine(probs), expected)
    assert np.isfinite(ens.combine([np.array([[0.0, 1.0]])])).all()


def test_weighted_given_and_equal_weights():
    assert np.allclose(create("ensembler", "weighted", weights=[3, 1]).combine([A, B]), 0.75 * A + 0.25 * B)
    assert np.allclose(create("ensembler", "weighted").combine([A, B]), (A + B) / 2)
    with pytest.raises(ValueError, match="2 views"):
        create("ensembler", "weighted", weights=[1, 1, 1]).combine([A, B])
    with pytest.raises(UserError, match="weights"):
        create("ensembler", "weighted", weights=[-1, 1])


def test_weighted_fit_finds_the_only_perfect_weighting():
    # view 1 separates perfectly by a thin margin (.51 vs .49); view 2 is inverted
    # (positives 0, negatives 1). Mix w: positives .51 w, negatives .49 w + (1 - w):
    # positives score higher only when w > 0.98, so on a 0.1 grid only w = 1 is perfect.
    truth = np.array([[1, 0], [0, 1], [1, 1], [0, 0], [0, 0]])
    view1 = np.where(truth == 1, 0.51, 0.49)
    view2 = np.where(truth == 1, 0.0, 1.0)
    ens = create("ensembler", "weighted", fit_weights=True)
    assert ens.fit([view1, view2], truth, create("thresholder", "search")) is ens
    assert ens.weights_.tolist() == [1.0, 0.0] and ens.weights is None  # learned, the parameter kept
    unfitted = create("ensembler", "weighted")
    unfitted.fit([view1, view2], truth, create("thresholder", "search"))
    assert unfitted.weights_ is None  # fit_weights is off: equal weights stay


def test_weighted_fit_scores_with_the_thresholder_it_is_given():
    # the same views as above; with every threshold fixed at 0.5, view 2 (inverted, 0 / 1)
    # predicts every label wrong and view 1 (.51 / .49) every label right, so w = 1 still
    # wins, while a mix thresholded at 0.5 (w .5: positives .255, negatives .745) is wrong
    # everywhere: the fixed thresholder, not the search, decided
    truth = np.array([[1, 0], [0, 1], [1, 1], [0, 0], [0, 0]])
    view1 = np.where(truth == 1, 0.51, 0.49)
    view2 = np.where(truth == 1, 0.0, 1.0)
    fixed = create("ensembler", "weighted", fit_weights=True, grid_step=0.5)
    fixed.fit([view1, view2], truth, create("thresholder", "fixed", threshold=0.5))
    assert fixed.weights_.tolist() == [1.0, 0.0]
    # a thresholder that accepts everything makes every weighting equally good: the first wins
    everything = create("ensembler", "weighted", fit_weights=True, grid_step=0.5)
    everything.fit([view1, view2], truth, create("thresholder", "fixed", threshold=0.0))
    assert everything.weights_.tolist() == [0.0, 1.0]


def test_views_must_agree_in_shape():
    with pytest.raises(ValueError, match="same"):
        create("ensembler", "mean_prob").combine([A, A[:1]])
    with pytest.raises(ValueError, match="at least one"):
        create("ensembler", "mean_prob").combine([])
