"""Thresholders: the exact search against brute force and scikit-learn oracles."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_recall_curve

from harness import create

X = 999


def sk_objective(scores: np.ndarray, truth: np.ndarray, t: float, f1_only: bool = False) -> float:
    """(acc + F1) / 2 (or F1) of predicting ``scores >= t``, by scikit-learn, 999 rows dropped."""
    keep = truth != X
    pred, y = (scores[keep] >= t).astype(int), truth[keep]
    f1 = f1_score(y, pred, zero_division=0)
    return f1 if f1_only else (accuracy_score(y, pred) + f1) / 2


def brute_force_best(scores: np.ndarray, truth: np.ndarray, f1_only: bool = False) -> float:
    """The best objective value over every distinct known score, one candidate at a time."""
    known = truth != X
    return max(sk_objective(scores, truth, t, f1_only) for t in np.unique(scores[known]))


def random_case(seed: int, n: int = 80, c: int = 6):
    rng = np.random.default_rng(seed)
    truth = (rng.random((n, c)) < rng.uniform(0.05, 0.5, c)).astype(int)
    truth[rng.random((n, c)) < 0.15] = X
    scores = np.clip(0.3 * truth + rng.normal(0.35, 0.2, (n, c)), 0, 1)
    if seed % 2:
        scores = np.round(scores, 1)  # many ties
    return scores, truth


@pytest.mark.parametrize("seed", range(8))
def test_search_reaches_the_brute_force_optimum(seed):
    scores, truth = random_case(seed)
    thresholds = create("thresholder", "search").fit(scores, truth).thresholds_
    for c in range(truth.shape[1]):
        known = truth[:, c] != X
        assert thresholds[c] in scores[known, c]  # a distinct validation score
        assert sk_objective(scores[:, c], truth[:, c], thresholds[c]) == pytest.approx(
            brute_force_best(scores[:, c], truth[:, c]), abs=1e-12)


def test_tied_scores_are_one_candidate():
    # scores .9 .7 .7 .7 .2 with truth 1 1 0 0 1:
    #   t=.9: TP1 FP0 FN2 TN2 -> (3/5 + 2/4)/2 = .55
    #   t=.7: TP2 FP2 FN1 TN0 -> (2/5 + 4/7)/2 = .486
    #   t=.2: TP3 FP2 FN0 TN0 -> (3/5 + 6/8)/2 = .675   <- best
    # splitting the tie (the positive .7 first) would fake TP2 FP0 -> .8 at t=.7
    scores = np.array([[0.9], [0.7], [0.7], [0.7], [0.2]])
    truth = np.array([[1], [1], [0], [0], [1]])
    assert create("thresholder", "search").fit(scores, truth).thresholds_.tolist() == [0.2]


def test_unknown_rows_are_dropped_and_au_without_positives_keeps_the_default():
    scores, truth = random_case(3)
    thresholder = create("thresholder", "search")
    full = thresholder.fit(scores, truth).thresholds_
    truth_no_pos = truth.copy()
    truth_no_pos[:, 1] = np.where(truth[:, 1] == X, X, 0)
    truth_no_pos[:, 2] = X
    # an unknown row with an extreme score changes nothing
    extra_scores = np.vstack([scores, np.full((1, scores.shape[1]), 1.0)])
    extra_truth = np.vstack([truth_no_pos, np.full((1, truth.shape[1]), X)])
    assert thresholder.fit(extra_scores, extra_truth) is thresholder  # fit returns self
    t = thresholder.thresholds_
    assert t[1] == 0.5 and t[2] == 0.5
    assert np.array_equal(np.delete(t, [1, 2]), np.delete(full, [1, 2]))


def test_f1_matches_sklearn_precision_recall_curve():
    for seed in range(6):
        scores, truth = random_case(seed, n=200)
        thresholds = create("thresholder", "f1").fit(scores, truth).thresholds_
        for c in range(truth.shape[1]):
            keep = truth[:, c] != X
            precision, recall, _ = precision_recall_curve(truth[keep, c], scores[keep, c])
            with np.errstate(invalid="ignore", divide="ignore"):
                best = np.nanmax(2 * precision * recall / (precision + recall))
            assert sk_objective(scores[:, c], truth[:, c], thresholds[c], f1_only=True) == pytest.approx(best)


def test_predict_uses_greater_or_equal():
    thresholder = create("thresholder", "search")
    scores = np.array([[0.9], [0.7], [0.7], [0.7], [0.2]])
    thresholder.fit(scores, np.array([[1], [1], [0], [0], [1]]))
    assert thresholder.predict(np.array([[0.2], [0.19], [0.5]])).tolist() == [[1], [0], [1]]


def test_fixed_thresholds():
    probs = np.array([[0.5, 0.49, 0.7]])
    fixed = create("thresholder", "fixed")
    assert fixed.fit(probs, None).thresholds_.tolist() == [0.5, 0.5, 0.5]
    assert fixed.predict(probs).tolist() == [[1, 0, 1]]
    listed = create("thresholder", "fixed", threshold=[0.4, 0.4, 0.8])
    assert listed.fit(probs, None).thresholds_.tolist() == [0.4, 0.4, 0.8]
    assert listed.predict(probs).tolist() == [[1, 1, 0]]
    with pytest.raises(ValueError, match="3 AUs"):
        create("thresholder", "fixed", threshold=[0.4, 0.4]).fit(probs, None)
    with pytest.raises(RuntimeError, match="fit"):
        create("thresholder", "search").predict(probs)


def test_search_maximizes_the_benchmarks_per_au_score():
    """With metric = "mean_f1" the search picks, per AU, the candidate of best F1 alone
    (brute force over every distinct score with scikit-learn), which is not the
    candidate of best (accuracy + F1) / 2 on these rows."""
    from sklearn.metrics import accuracy_score, f1_score

    from plugins.thresholders import SearchThresholder

    rng = np.random.default_rng(11)
    labels = rng.choice([0, 1, 999], size=(400, 3), p=[0.45, 0.45, 0.1])
    probs = np.clip(0.15 * (labels == 1) + rng.random(labels.shape), 0, 1)

    def brute(score):
        best = []
        for c in range(3):
            known = labels[:, c] != 999
            y, p = labels[known, c], probs[known, c]
            cands = np.unique(p)
            values = [score(y, (p >= t).astype(int)) for t in cands]
            best.append(cands[int(np.argmax(values))])
        return np.array(best)

    f1_only = brute(lambda y, q: f1_score(y, q, zero_division=0))
    enc = brute(lambda y, q: (f1_score(y, q, zero_division=0) + accuracy_score(y, q)) / 2)
    assert not np.array_equal(f1_only, enc)
    np.testing.assert_array_equal(SearchThresholder(metric="mean_f1").fit(probs, labels).thresholds_, f1_only)
    np.testing.assert_array_equal(SearchThresholder().fit(probs, labels).thresholds_, enc)
