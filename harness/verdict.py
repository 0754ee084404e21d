"""Did B help? The paired verdict of two arms run on the same seeds.

Arms A and B are each run once per seed; seed ``s`` gives both the same
splits and test rows, so the comparison is paired twice over: by seed and,
within a seed, by test image. For each metric (``final``, ``accuracy``,
``f1``) the verdict reports:

* the per-seed values of both arms and their paired differences ``d_s = B - A``;
* a 95% **t-interval across seeds**: ``mean(d) +- t(0.975, n-1) sd(d) / sqrt(n)``
  (the seed-to-seed spread only; the test images are fixed per seed);
* a **two-level paired bootstrap**: each resample draws ``n`` seeds with
  replacement and, for each drawn seed, one resample of that seed's test
  images, the same images for both arms; its statistic is the mean over the
  drawn seeds of ``B - A``. The 95% percentile interval of that statistic
  holds both sources of variance (seeds and test images), and ``P(B > A)``
  is the fraction of resamples where it is positive. The image resamples of
  a seed come from one pool per seed (:func:`harness.metrics.bootstrap_scores`),
  which the seed level draws from.

The rule (:data:`RULE`): "B helped" when the bootstrap interval and the
t-interval both lie above 0 and ``P(B > A) >= 0.75``; "B hurt" when both lie
below 0 and ``P(B > A) <= 0.25``; otherwise "no evidence at this number of
seeds", with the number of seeds at which the observed effect and spread
would give an interval excluding 0. Why both intervals: a percentile
bootstrap that resamples a handful of seeds understates the seed-to-seed
spread (its variance is ``(n-1)/n`` of the sample's, with normal rather than
t quantiles): in simulated A/A comparisons at 5 seeds with training noise
dominating, the bootstrap interval alone excluded 0 in 12-17% of repetitions,
with the t-interval also required in 3-7%. The t-interval alone misses the
test-image variance, which the bootstrap holds.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from harness import metrics

HELPED, HURT, NO_EVIDENCE = "B helped", "B hurt", "no evidence at this number of seeds"
LEVEL = 0.95
P_HELPED = 0.75
METRICS = ("final", "accuracy", "f1")
RULE = (f"'{HELPED}' when the two-level bootstrap's 95% interval of mean(B - A) and the 95% "
        f"t-interval across seeds both lie above 0 and P(B > A) >= {P_HELPED}; '{HURT}' when both "
        f"lie below 0 and P(B > A) <= {1 - P_HELPED:.2f}; otherwise '{NO_EVIDENCE}'")
MAX_SEEDS_NEEDED = 10_000  # past this "seeds needed" is reported as not finite


@dataclass(frozen=True)
class MetricVerdict:
    """The paired comparison of one metric.

    Attributes
    ----------
    metric : "final", "accuracy" or "f1".
    a, b : the metric of arm A and of arm B at each seed (the order of ``Verdict.seeds``).
    mean_diff : mean over seeds of ``b - a``.
    sd_diff : sample standard deviation (ddof 1) of ``b - a`` over seeds.
    t_interval : 95% t-interval of the mean difference across seeds.
    bootstrap_interval : 95% interval of the two-level paired bootstrap (seeds and images).
    p_b_better : fraction of bootstrap resamples where B's mean is strictly higher.
    verdict : :data:`HELPED`, :data:`HURT` or :data:`NO_EVIDENCE`.
    seeds_needed : the smallest ``n >= 2`` with ``t(0.975, n-1) spread / sqrt(n) < |mean|``,
        where ``spread`` is the larger of ``sd_diff`` and the bootstrap's per-seed spread
        (its sd times ``sqrt(seeds)``); more than the seeds run when the verdict is
        "no evidence"; ``None`` when no number up to 10,000 would do (a mean of 0).
    """

    metric: str
    a: tuple[float, ...]
    b: tuple[float, ...]
    mean_diff: float
    sd_diff: float
    t_interval: tuple[float, float]
    bootstrap_interval: tuple[float, float]
    p_b_better: float
    verdict: str
    seeds_needed: int | None


@dataclass(frozen=True)
class AUDifference:
    """B - A of one AU's F1 and accuracy: mean over seeds and the two-level bootstrap interval.

    ``None`` where the AU has no known test label at any seed.
    """

    au: str
    f1_diff: float | None
    f1_interval: tuple[float, float] | None
    accuracy_diff: float | None
    accuracy_interval: tuple[float, float] | None


@dataclass(frozen=True)
class Verdict:
    """What ``auh compare`` prints and ``harness.compare`` returns.

    Attributes
    ----------
    a_name, b_name : what the arms are (recipe names or the overrides of B).
    seeds : the seeds both arms ran on, in order.
    n_images : test images per seed.
    metrics : one :class:`MetricVerdict` per metric in :data:`METRICS`.
    per_au : one :class:`AUDifference` per AU, in the schema's order.
    resamples : bootstrap resamples (both levels).
    rule : the decision rule, in words.
    runs : ``{"A": [run folder per seed], "B": [...]}``.
    """

    a_name: str
    b_name: str
    seeds: tuple[int, ...]
    n_images: tuple[int, ...]
    metrics: dict[str, MetricVerdict]
    per_au: tuple[AUDifference, ...]
    resamples: int
    rule: str = RULE
    runs: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        """The verdict on ``final``, the challenge's score."""
        return self.metrics["final"].verdict

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``json.dumps`` (dataclasses as dicts; tuples stay tuples, written as lists)."""
        return asdict(self)

    def render(self) -> str:
        """The human-readable report: per-seed finals, the three metrics, the per-AU table."""
        final = self.metrics["final"]
        lines = [f"A: {self.a_name}", f"B: {self.b_name}",
                 f"{len(self.seeds)} seeds, {'/'.join(map(str, sorted(set(self.n_images))))} "
                 f"test images per seed, paired by seed and image", "",
                 f"{'seed':>6}{'A final':>10}{'B final':>10}{'B - A':>10}"]
        for s, a, b in zip(self.seeds, final.a, final.b):
            lines.append(f"{s:>6}{a:>10.4f}{b:>10.4f}{b - a:>+10.4f}")
        lines += ["", f"{'metric':<10}{'mean B-A':>10}{'t 95% (seeds)':>22}{'bootstrap 95%':>22}"
                      f"{'P(B>A)':>8}  verdict"]
        for m in self.metrics.values():
            need = ""
            if m.verdict == NO_EVIDENCE:
                need = (f" (about {m.seeds_needed} seeds at this effect and spread)"
                        if m.seeds_needed else " (no finite number of seeds at this effect)")
            lines.append(f"{m.metric:<10}{m.mean_diff:>+10.4f}{_interval(m.t_interval):>22}"
                         f"{_interval(m.bootstrap_interval):>22}{m.p_b_better:>8.2f}  {m.verdict}{need}")
        lines += ["", f"{'AU':<6}{'F1 B-A':>9}{'95%':>20}{'Acc B-A':>10}{'95%':>20}"]
        for d in self.per_au:
            lines.append(f"{d.au:<6}{_num(d.f1_diff):>9}{_interval(d.f1_interval):>20}"
                         f"{_num(d.accuracy_diff):>10}{_interval(d.accuracy_interval):>20}")
        lines += ["", f"rule: {self.rule}; {self.resamples} bootstrap resamples",
                  f"verdict on final: {self.verdict}"]
        return "\n".join(lines)


def paired_verdict(seeds: Sequence[int], preds_a: Sequence[np.ndarray], preds_b: Sequence[np.ndarray],
                   truths: Sequence[np.ndarray], aus: Sequence[str], *, a_name: str = "A",
                   b_name: str = "B", resamples: int = metrics.DEFAULT_RESAMPLES, seed: int = 0,
                   runs: dict[str, Sequence[str]] | None = None,
                   metric: metrics.Metric | None = None) -> Verdict:
    """The verdict from each seed's test predictions of both arms.

    Parameters
    ----------
    seeds : the seeds, at least two.
    preds_a, preds_b : per seed, the arm's 0/1 test predictions ``[N_s, C]``, rows
        in the same order in both arms (the same test images).
    truths : per seed, the test labels ``[N_s, C]`` (1 / 0 / 999).
    aus : the C AU names.
    resamples : bootstrap resamples, for the image pool of each seed and for the seed level.
    seed : seeds the bootstrap (the same inputs and seed give the same verdict).
    metric : the benchmark's metric, which ``final`` is (default: the default benchmark's).
    """
    n = len(seeds)
    if n < 2:
        raise ValueError("a paired verdict needs at least two seeds")
    if not (len(preds_a) == len(preds_b) == len(truths) == n):
        raise ValueError(f"{n} seeds but {len(preds_a)}/{len(preds_b)}/{len(truths)} prediction sets")
    if not 1 <= resamples <= metrics.MAX_RESAMPLES:
        raise ValueError(f"resamples must be in 1..{metrics.MAX_RESAMPLES}")
    observed = [[_observed(p, t, metric) for p, t in zip(preds, truths)] for preds in (preds_a, preds_b)]
    pools = [_diff_pool(pa, pb, t, resamples, seed + i, metric)
             for i, (pa, pb, t) in enumerate(zip(preds_a, preds_b, truths))]
    boot = _two_level(pools, resamples, np.random.default_rng([seed, n]))

    verdicts = {}
    for m in METRICS:
        a = np.array([o[m] for o in observed[0]])
        b = np.array([o[m] for o in observed[1]])
        verdicts[m] = metric_verdict(m, a, b, boot[m])
    per_au = []
    for j, au in enumerate(aus):
        cells = {}
        for m in ("f1", "accuracy"):
            diff = np.array([ob[f"au_{m}"][j] - oa[f"au_{m}"][j] for oa, ob in zip(*observed)])
            ok = ~np.isnan(diff)
            cells[m] = (float(diff[ok].mean()), _percentiles(boot[f"au_{m}"][:, j])) if ok.any() else (None, None)
        per_au.append(AUDifference(au, cells["f1"][0], cells["f1"][1], cells["accuracy"][0], cells["accuracy"][1]))
    return Verdict(a_name, b_name, tuple(int(s) for s in seeds), tuple(len(t) for t in truths), verdicts,
                   tuple(per_au), resamples, runs={k: tuple(v) for k, v in (runs or {}).items()})


def metric_verdict(metric: str, a: np.ndarray, b: np.ndarray, boot: np.ndarray) -> MetricVerdict:
    """One metric's verdict from per-seed values and the bootstrap statistic ``mean(B - A)``."""
    d = b - a
    n = len(d)
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    t_lo, t_hi = t_interval(d)
    lo, hi = _percentiles(boot)
    p = float(np.mean(boot > 0))
    if lo > 0 and t_lo > 0 and p >= P_HELPED:
        verdict = HELPED
    elif hi < 0 and t_hi < 0 and p <= 1 - P_HELPED:
        verdict = HURT
    else:
        verdict = NO_EVIDENCE
    # The per-seed spread both intervals see: across seeds, and the bootstrap's
    # (its statistic is a mean of n seeds, so its sd times sqrt(n)).
    boot = boot[~np.isnan(boot)]
    spread = max(sd, float(boot.std(ddof=1)) * math.sqrt(n) if len(boot) > 1 else 0.0)
    needed = seeds_needed(mean, spread)
    if verdict == NO_EVIDENCE and needed is not None:
        needed = max(needed, n + 1)
    return MetricVerdict(metric, tuple(map(float, a)), tuple(map(float, b)), mean, sd,
                         (t_lo, t_hi), (lo, hi), p, verdict, needed)


def seeds_needed(mean: float, sd: float, limit: int = MAX_SEEDS_NEEDED) -> int | None:
    """The smallest ``n >= 2`` with ``t(0.975, n-1) sd / sqrt(n) < |mean|``, or ``None``."""
    if mean == 0 or not math.isfinite(mean) or not math.isfinite(sd):
        return None
    if sd == 0:
        return 2
    # t(0.975, n-1)/sqrt(n) decreases in n: bisect on [2, limit].
    if t_quantile(limit - 1) * sd / math.sqrt(limit) >= abs(mean):
        return None
    lo, hi = 2, limit
    while lo < hi:
        mid = (lo + hi) // 2
        if t_quantile(mid - 1) * sd / math.sqrt(mid) < abs(mean):
            hi = mid
        else:
            lo = mid + 1
    return lo


def t_interval(values: Sequence[float]) -> tuple[float, float]:
    """The 95% t-interval of the mean of ``values`` (at least two):
    ``mean +- t(0.975, n-1) sd / sqrt(n)``."""
    v = np.asarray(values, dtype=float)
    mean, half = float(v.mean()), t_quantile(len(v) - 1) * float(v.std(ddof=1)) / math.sqrt(len(v))
    return (mean - half, mean + half)


def t_quantile(df: int) -> float:
    """The two-sided 95% quantile of Student's t with ``df`` degrees of freedom."""
    from scipy.stats import t

    return float(t.ppf(0.5 + LEVEL / 2, df))


# ------------------------------------------------------------------ helpers
def _observed(pred: np.ndarray, truth: np.ndarray, metric: metrics.Metric | None) -> dict[str, Any]:
    acc, f1, _ = metrics.per_au_scores(*metrics.per_au_counts(pred, truth))
    final, mean_acc, mean_f1 = metrics.summarize(acc, f1, metric)
    return {"final": float(final), "accuracy": float(mean_acc), "f1": float(mean_f1),
            "au_accuracy": acc, "au_f1": f1}


def _diff_pool(pred_a: np.ndarray, pred_b: np.ndarray, truth: np.ndarray, resamples: int,
               seed: int, metric: metrics.Metric | None) -> dict[str, np.ndarray]:
    """B - A of every statistic on ``resamples`` image resamples of one seed (the same for both arms)."""
    acc, f1 = metrics.bootstrap_scores([pred_a, pred_b], truth, resamples, seed)  # [R, 2, C]
    final, mean_acc, mean_f1 = metrics.summarize(acc, f1, metric)  # [R, 2]
    return {"final": final[:, 1] - final[:, 0], "accuracy": mean_acc[:, 1] - mean_acc[:, 0],
            "f1": mean_f1[:, 1] - mean_f1[:, 0], "au_accuracy": acc[:, 1] - acc[:, 0],
            "au_f1": f1[:, 1] - f1[:, 0]}


def _two_level(pools: list[dict[str, np.ndarray]], resamples: int,
               rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per statistic, ``[R]`` or ``[R, C]``: the mean over ``n`` drawn seeds of one drawn image resample each."""
    n = len(pools)
    seed_draw = rng.integers(0, n, size=(resamples, n))
    image_draw = rng.integers(0, resamples, size=(resamples, n))
    out = {}
    for key in pools[0]:
        stacked = np.stack([p[key] for p in pools])  # [n, R, ...]
        picked = stacked[seed_draw, image_draw]  # [R, n, ...]
        with warnings.catch_warnings():  # all-NaN: an AU unknown in every drawn seed
            warnings.simplefilter("ignore", RuntimeWarning)
            out[key] = np.nanmean(picked, axis=1)
    return out


def _percentiles(x: np.ndarray) -> tuple[float, float]:
    x = x[~np.isnan(x)]
    if not len(x):
        return (math.nan, math.nan)
    lo, hi = np.percentile(x, [(1 - LEVEL) / 2 * 100, (1 + LEVEL) / 2 * 100])
    return (float(lo), float(hi))


def _interval(iv: tuple[float, float] | None) -> str:
    return "-" if iv is None or any(math.isnan(v) for v in iv) else f"[{iv[0]:+.4f}, {iv[1]:+.4f}]"


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:+.4f}"
