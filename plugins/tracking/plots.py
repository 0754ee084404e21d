"""Figures of a run (per-AU F1 bars, precision-recall and threshold curves) and of a
comparison (per-seed paired finals, per-AU differences).

Built on ``matplotlib.figure.Figure`` (Agg canvas, no pyplot state), so they
work headless and from any thread. Labels use the 1 / 0 / 999 coding; rows
with 999 are left out per AU, as the challenge metric does.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import precision_recall_curve, roc_curve

from harness.schema import UNKNOWN


def threshold_curve(scores: np.ndarray, truth: np.ndarray) -> dict[str, np.ndarray] | None:
    """Accuracy, F1 and their mean for every distinct threshold of one AU.

    ``truth`` is 0/1/999; predict positive when ``score >= threshold``. Exact
    (cumulative counts from ``roc_curve`` without dropping points), sorted by
    decreasing threshold. ``None`` when the known rows lack a positive or a negative.
    """
    known = truth != UNKNOWN
    y, s = truth[known] == 1, scores[known]
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == len(y):
        return None
    fpr, tpr, thr = roc_curve(y, s, drop_intermediate=False)
    fpr, tpr, thr = fpr[1:], tpr[1:], thr[1:]  # the first point (threshold inf) predicts nothing
    tp, fp = tpr * n_pos, fpr * (len(y) - n_pos)
    tn, fn = (len(y) - n_pos) - fp, n_pos - tp
    acc = (tp + tn) / len(y)
    f1 = 2 * tp / (2 * tp + fp + fn)
    return {"threshold": thr, "accuracy": acc, "f1": f1, "final": (acc + f1) / 2}


def _grid(n: int, title: str) -> tuple[Figure, list[Any]]:
    cols = max(1, math.ceil(math.sqrt(n)))
    rows = max(1, math.ceil(n / cols))
    fig = Figure(figsize=(3.0 * cols, 2.6 * rows), dpi=80, layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel().tolist()
    for ax in axes[n:]:
        ax.set_visible(False)
    fig.suptitle(title)
    return fig, axes[:n]


def _no_curve(ax: Any, au: str) -> None:
    ax.set_title(au, fontsize=9)
    ax.text(0.5, 0.5, "needs positives\nand negatives", ha="center", va="center",
            transform=ax.transAxes, fontsize=8)


def pr_curves(probs: np.ndarray, labels: np.ndarray, aus: Sequence[str], path: str | Path) -> Path:
    """One precision-recall panel per AU (with the positive rate as the chance line)."""
    fig, axes = _grid(len(aus), "Precision-recall per AU (validation)")
    for j, (ax, au) in enumerate(zip(axes, aus)):
        known = labels[:, j] != UNKNOWN
        y = labels[known, j] == 1
        if y.all() or not y.any():
            _no_curve(ax, au)
            continue
        precision, recall, _ = precision_recall_curve(y, probs[known, j])
        ax.plot(recall, precision, lw=1.2)
        ax.axhline(y.mean(), color="grey", lw=0.8, ls=":")
        ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="recall", ylabel="precision")
        ax.set_title(f"{au} (n={known.sum()}, pos={y.sum()})", fontsize=9)
    return _save(fig, path)


def threshold_curves(probs: np.ndarray, labels: np.ndarray, aus: Sequence[str], path: str | Path,
                     thresholds: Sequence[float] | None = None) -> Path:
    """One panel per AU: accuracy, F1 and (accuracy + F1) / 2 against the threshold,
    with the chosen threshold (if given) as a vertical line."""
    fig, axes = _grid(len(aus), "Accuracy, F1 and their mean vs threshold (validation)")
    for j, (ax, au) in enumerate(zip(axes, aus)):
        curve = threshold_curve(probs[:, j], labels[:, j])
        if curve is None:
            _no_curve(ax, au)
            continue
        for key, style in (("accuracy", ":"), ("f1", "--"), ("final", "-")):
            ax.plot(curve["threshold"], curve[key], ls=style, lw=1.1, label=key)
        if thresholds is not None:
            ax.axvline(float(thresholds[j]), color="black", lw=0.8)
        ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="threshold")
        ax.set_title(au, fontsize=9)
    if axes:
        axes[0].legend(fontsize=7, loc="lower left")
    return _save(fig, path)


def f1_bars(score: dict[str, Any], path: str | Path,
            baselines: dict[str, dict[str, Any]] | None = None) -> Path:
    """Per-AU F1 bars of a scorecard (``per_au``), undefined AUs left empty, with each
    baseline's per-AU F1 as markers and the mean F1 as a line."""
    aus = list(score["per_au"])
    x = np.arange(len(aus))
    fig = Figure(figsize=(max(6.0, 0.42 * len(aus) + 2), 3.8), dpi=80, layout="constrained")
    ax = fig.subplots()
    ax.bar(x, [_num(score["per_au"][au]["f1"]) for au in aus], color="tab:blue", label="model")
    for (name, base), marker in zip((baselines or {}).items(), "o^sDv<>"):
        ax.plot(x, [_num(base["per_au"].get(au, {}).get("f1")) for au in aus], ls="none",
                marker=marker, ms=4, label=name)
    if score.get("f1") is not None:
        ax.axhline(score["f1"], color="tab:blue", ls="--", lw=0.8, label=f"mean F1 {score['f1']:.3f}")
    ax.set_xticks(x, aus, rotation=90, fontsize=8)
    ax.set(ylim=(0, 1), ylabel="F1", title="F1 per AU")
    ax.legend(fontsize=7, ncols=2)
    return _save(fig, path)


def paired_finals(verdict: Any, path: str | Path) -> Path:
    """A comparison's per-seed finals: one line per seed from arm A to arm B
    (``verdict`` is a ``harness.verdict.Verdict``)."""
    final = verdict.metrics["final"]
    fig = Figure(figsize=(4.2, 4.0), dpi=80, layout="constrained")
    ax = fig.subplots()
    for seed, a, b in zip(verdict.seeds, final.a, final.b):
        ax.plot([0, 1], [a, b], marker="o", lw=1.2,
                color="tab:green" if b > a else "tab:red" if b < a else "grey", label=f"seed {seed}")
    ax.set_xticks([0, 1], ["A", "B"])
    ax.set(xlim=(-0.3, 1.3), ylabel="final", title=f"final per seed: {verdict.verdict}\n"
           f"mean B - A {final.mean_diff:+.4f}, P(B > A) {final.p_b_better:.2f}")
    ax.title.set_fontsize(9)
    if len(verdict.seeds) <= 12:
        ax.legend(fontsize=7)
    return _save(fig, path)


def au_differences(verdict: Any, path: str | Path) -> Path:
    """Per-AU B - A of F1 and accuracy with their two-level bootstrap 95% intervals."""
    rows = verdict.per_au
    x = np.arange(len(rows))
    fig = Figure(figsize=(max(6.0, 0.42 * len(rows) + 2), 3.8), dpi=80, layout="constrained")
    ax = fig.subplots()
    for offset, key, color in ((-0.15, "f1", "tab:blue"), (0.15, "accuracy", "tab:orange")):
        diffs = np.array([_num(getattr(r, f"{key}_diff")) for r in rows])
        ivs = [getattr(r, f"{key}_interval") or (math.nan, math.nan) for r in rows]
        lo = diffs - np.array([iv[0] for iv in ivs])
        hi = np.array([iv[1] for iv in ivs]) - diffs
        ax.errorbar(x + offset, diffs, yerr=[lo, hi], fmt="o", ms=3, lw=1, color=color, label=key)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xticks(x, [r.au for r in rows], rotation=90, fontsize=8)
    ax.set(ylabel="B - A", title="per-AU difference, 95% interval (seeds and images)")
    ax.legend(fontsize=7)
    return _save(fig, path)


def _num(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
