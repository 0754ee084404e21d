"""Speed of the paper's components against straightforward implementations.

Rows (each: harness time, baseline time, ratio, and whether both give the same answer):

* threshold search on 325,000 x 23 scores: the harness's exact O(n log n)
  search vs (a) the authors' approach written plainly, every distinct score
  tried by recounting all rows (O(n^2); timed on a subsample of candidates
  and extrapolated, labelled so) and (b) a loop of scikit-learn
  ``precision_recall_curve`` per AU;
* ML-ROS on 1,000,000 x 23 labels vs a clone-by-clone implementation that
  recounts the labels after every clone (timed on the first clones and
  extrapolated to the harness's clone count);
* the selective-learning loss, forward + backward at batch 256 x 23, vs a
  per-element Python loop.

Equality is checked where the baseline can run in full: on a smaller
problem for the extrapolated rows (stated in the row's ``check``).
Labels are synthetic, drawn with the per-AU positive and unknown rates of
the 22,592 ENC-2020 manual training labels, so nothing outside the project
is needed. ``run(quick=True)`` uses a tenth of the sizes.

    python -m plugins.bench.bench_components [--quick]
"""
from __future__ import annotations

import argparse
import math
import random
import time
from typing import Any

import numpy as np
import torch
from sklearn.metrics import precision_recall_curve

from harness.metrics import per_au_counts
from plugins.bench.rows import best_time, format_table, row
from plugins.losses.modules import SelectiveLoss
from plugins.samplers import LabelDraws, MLROSSampler, imbalance_ratios
from plugins.thresholders import SearchThresholder, challenge_objective

# Per-AU rates of the ENC-2020 manual training labels (AU1 ... AU56): the
# positive rate among known labels, and the rate of 999 (unknown).
ENC_POSITIVE_RATE = np.array([
    0.0619, 0.0300, 0.1204, 0.0364, 0.1915, 0.0212, 0.6425, 0.3832, 0.1846, 0.0224, 0.1529, 0.0055,
    0.4462, 0.4922, 0.0847, 0.0507, 0.0275, 0.1755, 0.1728, 0.1196, 0.0777, 0.0620, 0.0651])
ENC_UNKNOWN_RATE = np.array([
    0.0708, 0.0625, 0.0283, 0.0644, 0.0556, 0.0390, 0.0127, 0.1927, 0.0198, 0.0777, 0.0164, 0.0054,
    0.0168, 0.0467, 0.0390, 0.0151, 0.0523, 0.0, 0.0, 0.0, 0.0, 0.0005, 0.0005])
UNKNOWN = 999


def synthetic_labels(n: int, seed: int = 0) -> np.ndarray:
    """``[n, 23]`` labels with the ENC-2020 per-AU positive and unknown rates."""
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, 23)) < ENC_POSITIVE_RATE).astype(np.int64)
    labels[rng.random((n, 23)) < ENC_UNKNOWN_RATE] = UNKNOWN
    return labels


def synthetic_scores(labels: np.ndarray, seed: int = 1) -> np.ndarray:
    """Model-like float32 probabilities, higher on positives."""
    rng = np.random.default_rng(seed)
    z = rng.normal(-1.5, 1.0, labels.shape) + 2.0 * (labels == 1)
    return (1 / (1 + np.exp(-z))).astype(np.float32).astype(np.float64)


# ------------------------------------------------------------ threshold search
def per_au_objective(probs: np.ndarray, labels: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """(acc + F1) / 2 per AU of predicting ``probs >= thresholds``, by the challenge metric."""
    return challenge_objective(*per_au_counts((probs >= thresholds).astype(np.int64), labels))


def quadratic_search(probs: np.ndarray, labels: np.ndarray,
                     max_candidates: int | None = None) -> tuple[np.ndarray, int]:
    """The authors' approach, written plainly: try every distinct score as the
    threshold and recount all rows for each (O(n) per candidate, O(n^2) per AU).

    With ``max_candidates`` only that many candidates per AU are tried (for
    timing). Returns the thresholds and the number of candidates tried.
    """
    thresholds, tried = np.full(probs.shape[1], 0.5), 0
    for c in range(probs.shape[1]):
        known = labels[:, c] != UNKNOWN
        s, y = probs[known, c], labels[known, c] == 1
        if not y.any():
            continue
        best = -1.0
        for t in np.unique(s)[::-1][:max_candidates]:
            pred = s >= t
            tp = np.count_nonzero(pred & y)
            fp = np.count_nonzero(pred) - tp
            fn = np.count_nonzero(y) - tp
            tn = len(s) - tp - fp - fn
            objective = ((tp + tn) / len(s) + 2 * tp / (2 * tp + fp + fn)) / 2
            tried += 1
            if objective > best:
                best, thresholds[c] = objective, t
    return thresholds, tried


def sklearn_search(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per AU, ``precision_recall_curve`` gives TP at every distinct score; a
    ``searchsorted`` gives the predicted-positive counts, hence FP, FN, TN."""
    thresholds = np.full(probs.shape[1], 0.5)
    for c in range(probs.shape[1]):
        known = labels[:, c] != UNKNOWN
        s, y = probs[known, c], (labels[known, c] == 1).astype(int)
        if not y.any():
            continue
        _, recall, cand = precision_recall_curve(y, s)
        tp = recall[:-1] * y.sum()
        predicted = len(s) - np.searchsorted(np.sort(s), cand, side="left")
        fp = predicted - tp
        tn = (len(s) - y.sum()) - fp
        objective = ((tp + tn) / len(s) + 2 * tp / (2 * tp + fp + (y.sum() - tp))) / 2
        best = np.flatnonzero(objective == objective.max())[-1]  # the highest threshold on ties
        thresholds[c] = cand[best]
    return thresholds


def bench_threshold_search(quick: bool) -> list[dict[str, Any]]:
    n = 32_500 if quick else 325_000
    labels = synthetic_labels(n)
    probs = synthetic_scores(labels)
    searcher = SearchThresholder()
    harness_s = best_time(lambda: searcher.fit(probs, labels), 1 if quick else 3)
    ours = per_au_objective(probs, labels, searcher.thresholds_)
    workload = f"{n:,} x 23"

    # (a) O(n^2): time a few candidates on the full data, extrapolate to all of them
    sample_candidates = 20 if quick else 100
    start = time.perf_counter()
    _, tried = quadratic_search(probs, labels, sample_candidates)
    per_candidate = (time.perf_counter() - start) / tried
    all_candidates = sum(len(np.unique(probs[labels[:, c] != UNKNOWN, c])) for c in range(23))
    small = slice(0, 3000)  # equality: the full quadratic search on the first 3,000 rows
    quad_small, _ = quadratic_search(probs[small], labels[small])
    fit_small = SearchThresholder().fit(probs[small], labels[small])
    quad_equal = np.allclose(per_au_objective(probs[small], labels[small], quad_small),
                             per_au_objective(probs[small], labels[small], fit_small.thresholds_), rtol=0, atol=1e-12)
    rows = [row("threshold search", workload, harness_s,
                f"O(n^2) every-candidate recount (EXTRAPOLATED from {tried} candidates "
                f"to {all_candidates:,})", per_candidate * all_candidates, quad_equal,
                "same per-AU objective, full quadratic search on 3,000 x 23")]

    # (b) scikit-learn precision_recall_curve loop, full size
    sk_s = best_time(lambda: sklearn_search(probs, labels), 1 if quick else 3)
    sk_equal = np.allclose(per_au_objective(probs, labels, sklearn_search(probs, labels)), ours,
                           rtol=0, atol=1e-12)
    rows.append(row("threshold search", workload, harness_s,
                    "sklearn precision_recall_curve loop over AUs", sk_s, sk_equal,
                    "same per-AU objective at full size"))
    return rows


# ------------------------------------------------------------------------ ML-ROS
def recount_mlros(labels: np.ndarray, percent: float, seed: int,
                  max_clones: int | None = None) -> list[int]:
    """ML-ROS clone by clone, recounting every label over originals + clones
    after each clone (O(N C) per clone). Same per-label draws as the plugin."""
    present = labels == 1
    n, c = present.shape
    counts = present.sum(axis=0)
    irlbl, mean_ir = imbalance_ratios(counts)
    active = [int(l) for l in np.flatnonzero(irlbl > mean_ir)]
    bags = {l: np.flatnonzero(present[:, l]) for l in active}
    draws = LabelDraws(np.random.SeedSequence([seed, 0]), c)
    made = dict.fromkeys(active, 0)
    clones: list[int] = []
    budget = math.ceil(n * percent / 100) if max_clones is None else max_clones
    turn = active[0] if active else None
    while active and len(clones) < budget:
        u = draws.get(turn, np.array([made[turn]]))[0]
        clones.append(int(bags[turn][int(u * len(bags[turn]))]))
        made[turn] += 1
        counts = present[np.concatenate([np.arange(n), clones])].sum(axis=0)  # the full recount
        active = [l for l in active if counts.max() / counts[l] > mean_ir]
        later = [l for l in active if l > turn]
        turn = later[0] if later else (active[0] if active else None)
    return clones


def bench_mlros(quick: bool) -> list[dict[str, Any]]:
    n = 100_000 if quick else 1_000_000
    labels = synthetic_labels(n)
    sampler = MLROSSampler(percent=25)
    harness_s = best_time(lambda: sampler.plan(labels, seed=0), 1 if quick else 3)
    n_clones = len(sampler.plan(labels, seed=0).clones)
    timed = 5 if quick else 20
    start = time.perf_counter()
    recount_mlros(labels, 25, 0, max_clones=timed)
    per_clone = (time.perf_counter() - start) / timed
    small = synthetic_labels(2_000, seed=5)
    equal = recount_mlros(small, 25, 0) == sampler.plan(small, seed=0).clones.tolist()
    return [row("ML-ROS (P=25)", f"{n:,} x 23 ({n_clones:,} clones)", harness_s,
                f"clone-by-clone with full recount (EXTRAPOLATED from {timed} clones "
                f"to {n_clones:,})", per_clone * n_clones, equal,
                "identical clone sequence, full run on 2,000 x 23")]


# --------------------------------------------------------------- selective loss
def loop_selective(logits: torch.Tensor, labels: torch.Tensor, rates: list[float],
                   rng: random.Random) -> torch.Tensor:
    """Selective learning element by element: Python loops over AUs and rows."""
    n, c = labels.shape
    total, known = logits.new_zeros(()), 0
    for j in range(c):
        col = [int(labels[i, j]) for i in range(n)]
        pos = [i for i in range(n) if col[i] == 1]
        neg = [i for i in range(n) if col[i] == 0]
        k, p, q = len(pos) + len(neg), len(pos), len(neg)
        known += k
        rk = rates[j] * k
        weight = {i: 1.0 for i in pos + neg}
        if 0 < p < rk - 1e-9:
            for i in rng.sample(neg, q - math.ceil(k - rk - 1e-9)):
                weight[i] = 0.0
            for i in pos:
                weight[i] = rk / p
        elif p > rk + 1e-9 and q > 0:
            for i in rng.sample(pos, p - math.ceil(rk - 1e-9)):
                weight[i] = 0.0
            for i in neg:
                weight[i] = (k - rk) / q
        for i, w in weight.items():
            s = torch.sigmoid(logits[i, j])
            total = total - w * (torch.log(s) if col[i] == 1 else torch.log(1 - s))
    return total / max(known, 1)


def bench_selective_loss(quick: bool) -> list[dict[str, Any]]:
    n, c = 256, 23
    labels = torch.from_numpy(synthetic_labels(n, seed=3))
    rates = ENC_POSITIVE_RATE.tolist()
    logits = torch.randn(n, c, generator=torch.Generator().manual_seed(0), requires_grad=True)
    loss = SelectiveLoss(target=rates)

    def harness_step() -> None:
        logits.grad = None
        loss(logits, labels).backward()

    def loop_step() -> None:
        logits.grad = None
        loop_selective(logits, labels, rates, random.Random(0)).backward()

    # torch's first ~100 small calls run several times slower (allocator, dispatch caches)
    harness_s = best_time(harness_step, 20 if quick else 100, warmup=100)
    loop_s = best_time(loop_step, 1 if quick else 3, warmup=1)
    # equality: logits that depend only on (AU, label), so which elements are ignored cannot matter
    structured = (torch.linspace(-1, 1, c) + 0.7 * (labels == 1)).float()
    equal = math.isclose(loss(structured, labels).item(),
                         loop_selective(structured, labels, rates, random.Random(0)).item(), rel_tol=1e-5)
    return [row("selective loss fwd+bwd", f"batch {n} x {c}", harness_s,
                "per-element Python loop", loop_s, equal,
                "same loss on a batch whose logits depend only on (AU, label)")]


# ------------------------------------------------------------------------- main
def run(quick: bool = False) -> list[dict[str, Any]]:
    """Every benchmark row (see the module docstring)."""
    return bench_threshold_search(quick) + bench_mlros(quick) + bench_selective_loss(quick)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the sizes")
    print(format_table(run(parser.parse_args().quick)))
