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
    ens.fit([view1, view2], truth)
    assert ens.weights.tolist() == [1.0, 0.0]
    unfitted = create("ensembler", "weighted")
    unfitted.fit([view1, view2], truth)
    assert unfitted.weights is None  # fit_weights is off: equal weights stay


def test_views_must_agree_in_shape():
    with pytest.raises(ValueError, match="same"):
        create("ensembler", "mean_prob").combine([A, A[:1]])
    with pytest.raises(ValueError, match="at least one"):
        create("ensembler", "mean_prob").combine([])
