"""The challenge metric against scikit-learn, and the bootstrap against a brute-force loop."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score

from harness import metrics
from harness.metrics import (bootstrap_ci, bootstrap_finals, challenge_score, paired_bootstrap,
                             per_au_counts, per_au_scores)

AUS = [f"AU{i}" for i in range(6)]


def random_case(n: int = 200, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Random truth with 999s, an AU with no positive (col 3), an AU all 999 (col 4)."""
    rng = np.random.default_rng(seed)
    truth = (rng.random((n, len(AUS))) < 0.3).astype(np.int64)
    truth[rng.random(truth.shape) < 0.15] = 999
    truth[:, 3] = np.where(truth[:, 3] == 999, 999, 0)
    truth[:, 4] = 999
    pred = (rng.random((n, len(AUS))) < 0.35).astype(np.int64)
    pred[:, 3] = 0  # no positive anywhere for AU3: F1 must be 0, not NaN
    return pred, truth


def sklearn_oracle(pred: np.ndarray, truth: np.ndarray) -> tuple[list, list, list]:
    accs, f1s, ns = [], [], []
    for i in range(truth.shape[1]):
        keep = truth[:, i] != 999
        ns.append(int(keep.sum()))
        if keep.any():
            accs.append(accuracy_score(truth[keep, i], pred[keep, i]))
            f1s.append(f1_score(truth[keep, i], pred[keep, i], zero_division=0))
        else:
            accs.append(None)
            f1s.append(None)
    return accs, f1s, ns


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_matches_sklearn(seed):
    pred, truth = random_case(seed=seed)
    score = challenge_score(pred, truth, AUS)
    accs, f1s, ns = sklearn_oracle(pred, truth)
    for au, a, f, n in zip(AUS, accs, f1s, ns):
        entry = score["per_au"][au]
        assert entry["n"] == n
        if a is None:
            assert entry["accuracy"] is None and entry["f1"] is None
        else:
            assert entry["accuracy"] == pytest.approx(a, abs=1e-12)
            assert entry["f1"] == pytest.approx(f, abs=1e-12)
    defined_a = [a for a in accs if a is not None]
    defined_f = [f for f in f1s if f is not None]
    assert score["accuracy"] == pytest.approx(np.mean(defined_a), abs=1e-12)
    assert score["f1"] == pytest.approx(np.mean(defined_f), abs=1e-12)
    assert score["final"] == pytest.approx((np.mean(defined_a) + np.mean(defined_f)) / 2, abs=1e-12)
    assert score["n_images"] == len(truth)
    assert score["undefined_aus"] == ["AU4"]
    assert score["per_au"]["AU3"]["f1"] == 0.0


def test_json_shape_and_types():
    pred, truth = random_case()
    truth[:, 4] = 0  # every AU defined: exactly the documented keys
    score = challenge_score(pred, truth, AUS)
    assert set(score) == {"final", "accuracy", "f1", "n_images", "per_au"}
    assert list(score["per_au"]) == AUS
    assert all(set(v) == {"accuracy", "f1", "n"} for v in score["per_au"].values())
    assert type(score["final"]) is float and type(score["n_images"]) is int
    assert json.loads(json.dumps(score)) == score


def test_hand_worked_example():
    # AU0: TP=1 FP=1 FN=1 TN=1 -> acc 0.5, F1 0.5; AU1: all 999 but one TN -> acc 1, F1 0.
    truth = np.array([[1, 999], [1, 999], [0, 0], [0, 999]])
    pred = np.array([[1, 1], [0, 1], [1, 0], [0, 0]])
    tp, fp, fn, tn = per_au_counts(pred, truth)
    assert tp.tolist() == [1, 0] and fp.tolist() == [1, 0]
    assert fn.tolist() == [1, 0] and tn.tolist() == [1, 1]
    score = challenge_score(pred, truth, ["A", "B"])
    assert score["accuracy"] == 0.75 and score["f1"] == 0.25 and score["final"] == 0.5


def test_per_au_scores_undefined_and_zero_f1():
    acc, f1, n = per_au_scores(np.array([0, 0]), np.array([0, 0]), np.array([0, 0]), np.array([0, 5]))
    assert math.isnan(acc[0]) and math.isnan(f1[0]) and n[0] == 0
    assert acc[1] == 1.0 and f1[1] == 0.0 and n[1] == 5


def test_all_undefined_gives_none():
    truth = np.full((3, 2), 999)
    score = challenge_score(np.zeros((3, 2), int), truth, ["A", "B"])
    assert score["final"] is None and score["undefined_aus"] == ["A", "B"]


@pytest.mark.parametrize("bad", ["shape", "pred", "truth"])
def test_rejects_bad_arrays(bad):
    pred, truth = random_case(n=10)
    if bad == "shape":
        pred = pred[:5]
    elif bad == "pred":
        pred[0, 0] = 2
    else:
        truth[0, 0] = 5
    with pytest.raises(ValueError):
        challenge_score(pred, truth, AUS)


def brute_force_finals(preds, truth, n_resamples, seed):
    """The same resamples as bootstrap_finals (one chunk), scored one by one."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(truth), size=(n_resamples, len(truth)))
    out = np.empty((n_resamples, len(preds)))
    for b in range(n_resamples):
        for k, pred in enumerate(preds):
            final = challenge_score(pred[idx[b]], truth[idx[b]], AUS)["final"]
            out[b, k] = np.nan if final is None else final
    return out


def test_bootstrap_matches_brute_force():
    pred, truth = random_case(n=60)
    other = random_case(n=60, seed=9)[0]
    fast = bootstrap_finals([pred, other], truth, n_resamples=50, seed=7)
    slow = brute_force_finals([pred, other], truth, 50, 7)
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-12)


def test_bootstrap_chunks_do_not_change_the_draw_count(monkeypatch):
    pred, truth = random_case(n=40)
    monkeypatch.setattr(metrics, "_CHUNK_CELLS", 40 * 7)  # chunks of 7 resamples
    finals = bootstrap_finals([pred], truth, n_resamples=30, seed=3)
    assert finals.shape == (30, 1) and not np.isnan(finals).any()
    # seeded: the same call gives the same answer
    np.testing.assert_array_equal(finals, bootstrap_finals([pred], truth, n_resamples=30, seed=3))


def test_bootstrap_ci_brackets_the_score():
    pred, truth = random_case(n=400)
    lo, hi = bootstrap_ci(pred, truth, n_resamples=300, seed=0)
    final = challenge_score(pred, truth, AUS)["final"]
    assert lo < final < hi and hi - lo < 0.2
    slow = brute_force_finals([pred], truth, 300, 0)[:, 0]
    assert [lo, hi] == pytest.approx(list(np.nanpercentile(slow, [2.5, 97.5])), abs=1e-12)


def test_paired_bootstrap():
    pred, truth = random_case(n=300)
    perfect = np.where(truth == 999, 0, truth)
    result = paired_bootstrap(perfect, pred, truth, n_resamples=200, seed=1)
    assert result.p_a_better == 1.0
    assert result.diff == pytest.approx(
        challenge_score(perfect, truth, AUS)["final"] - challenge_score(pred, truth, AUS)["final"])
    assert 0 < result.diff_ci95[0] < result.diff < result.diff_ci95[1]
    # against itself: never strictly better
    assert paired_bootstrap(pred, pred, truth, n_resamples=50).p_a_better == 0.0
    slow = brute_force_finals([pred, perfect], truth, 200, 1)
    reverse = paired_bootstrap(pred, perfect, truth, n_resamples=200, seed=1)
    assert reverse.p_a_better == np.mean(slow[:, 0] > slow[:, 1]) == 0.0
