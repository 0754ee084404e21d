"""Speed of the organizer's scorer: validate + score + a 1000-resample bootstrap.

Rows (harness time, baseline time, ratio, same answer):

* validation: reading a 325,000-row truth (challenge text format) and a
  325,000 x 23 submission CSV in shuffled row order, every check of
  ``auh check`` included (no baseline: there is nothing to compare against);
* score: :func:`harness.metrics.challenge_score` vs a per-AU loop of
  scikit-learn ``accuracy_score`` and ``f1_score(zero_division=0)``;
* bootstrap: :func:`harness.metrics.bootstrap_finals` (counts per resample
  as one matrix product) vs a Python loop over resamples that scores each
  resample with the scikit-learn loop. The loop is timed on its first
  ``--baseline-resamples`` resamples (drawn exactly as the harness draws
  them, so the answers must agree) and extrapolated to the full count,
  labelled so;
* ``auh score`` end to end, as a fresh process: imports, validation,
  scoring, bootstrap and the MLflow ledger write (a new SQLite database).

Labels are synthetic with the ENC-2020 per-AU positive and unknown rates
(see :mod:`plugins.bench.bench_components`); predictions flip 15% of them.

    python -m plugins.bench.bench_scoring [--rows 325000] [--resamples 1000] [--baseline-resamples 5]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, f1_score

from harness import metrics
from harness.labels import read_labels, read_submission, write_labels
from plugins.benchmarks.enc2020 import SCHEMA as ENC2020
from plugins.bench.bench_components import synthetic_labels
from plugins.bench.rows import RESULTS


def sklearn_final(pred: np.ndarray, truth: np.ndarray) -> float:
    """The challenge ``final`` the plain way: one scikit-learn call per AU and metric."""
    accs, f1s = [], []
    for i in range(truth.shape[1]):
        keep = truth[:, i] != 999
        if keep.any():
            accs.append(accuracy_score(truth[keep, i], pred[keep, i]))
            f1s.append(f1_score(truth[keep, i], pred[keep, i], zero_division=0))
    return (float(np.mean(accs)) + float(np.mean(f1s))) / 2


def first_resamples(n_rows: int, count: int, seed: int) -> np.ndarray:
    """The row indices of the harness's first ``count`` resamples (draws do not depend on its chunks)."""
    return np.random.default_rng(seed).integers(0, n_rows, size=(count, n_rows))


class Clock:
    """Wall and CPU seconds of the steps timed with it (CPU time is what a
    busy shared machine distorts least; both are reported)."""

    def __init__(self) -> None:
        self.cpu: dict[str, float] = {}

    def __call__(self, name: str, fn, *args, **kwargs):
        wall, cpu = time.perf_counter(), time.process_time()
        value = fn(*args, **kwargs)
        self.cpu[name] = time.process_time() - cpu
        return value, time.perf_counter() - wall


def run(rows: int, resamples: int, baseline_resamples: int, seed: int = 0) -> dict:
    truth = synthetic_labels(rows, seed)
    rng = np.random.default_rng(seed + 1)
    known = np.where(truth == 999, 0, truth)
    pred = known ^ (rng.random(truth.shape) < 0.15)
    names = [f"N_{i:010d}.jpg" for i in range(rows)]
    order = rng.permutation(rows)
    report: dict = {"rows": rows, "aus": len(ENC2020), "resamples": resamples}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_labels(tmp / "truth.txt", names, truth)
        write_labels(tmp / "sub.csv", [names[i] for i in order], pred[order])
        report["submission_mb"] = round((tmp / "sub.csv").stat().st_size / 1e6, 1)

        def validate():
            got_names, got_truth = read_labels(tmp / "truth.txt")
            return got_truth, read_submission(tmp / "sub.csv", got_names)

        timed = Clock()
        (got_truth, got_pred), t_validate = timed("validate", validate)
        assert (got_truth == truth).all() and (got_pred == pred).all()
        score, t_score = timed("score", metrics.challenge_score, got_pred, got_truth, ENC2020.aus)
        finals, t_boot = timed("bootstrap", metrics.bootstrap_finals, [got_pred], got_truth,
                               resamples, seed)
        base_final, t_base_score = timed("baseline score", sklearn_final, got_pred, got_truth)

        idx = first_resamples(rows, baseline_resamples, seed)
        base_finals, t_base_boot = timed(
            "baseline bootstrap", lambda: [sklearn_final(got_pred[i], got_truth[i]) for i in idx])
        t_base_boot_full = t_base_boot / baseline_resamples * resamples
        report["cpu_s"] = timed.cpu

        report["rows_table"] = [
            ("validate truth + submission", t_validate, None, "read back equal"),
            ("score", t_score, t_base_score,
             abs(score["final"] - base_final) < 1e-12),
            (f"bootstrap, {resamples} resamples", t_boot, t_base_boot_full,
             bool(np.allclose(finals[:baseline_resamples, 0], base_finals, rtol=0, atol=1e-12))),
            ("validate + score + bootstrap", t_validate + t_score + t_boot,
             t_validate + t_base_score + t_base_boot_full, None),
        ]
        report["baseline_note"] = (f"baseline bootstrap timed on {baseline_resamples} resamples, "
                                   f"extrapolated to {resamples}")
        report["auh_score_s"] = _auh_score(tmp, resamples)
    return report


def _auh_score(tmp: Path, resamples: int) -> float:
    """Wall time of one ``auh score`` process (fresh interpreter, new ledger)."""
    env = {**os.environ, "AUH_QUIET": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "harness", "score", "--truth", "truth.txt",
                    "--submission", "sub.csv", "--team", "bench", "--json",
                    "--resamples", str(resamples)],
                   cwd=tmp, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def render(report: dict) -> str:
    lines = [f"{report['rows']:,} x {report['aus']} submission ({report['submission_mb']} MB CSV), "
             f"{os.cpu_count()} CPU cores", "",
             "| step | harness (s) | baseline (s) | ratio | same answer |",
             "|---|---|---|---|---|"]
    for name, ours, base, same in report["rows_table"]:
        base_s = "-" if base is None else f"{base:.2f}"
        ratio = "-" if base is None else f"{base / ours:.0f}x"
        lines.append(f"| {name} | {ours:.2f} | {base_s} | {ratio} | "
                     f"{'-' if same is None else same} |")
    cpu = report["cpu_s"]
    lines += ["", f"{report['baseline_note']}.",
              f"CPU seconds of the harness (what a busy machine distorts least): validate "
              f"{cpu['validate']:.2f}, score {cpu['score']:.2f}, bootstrap {cpu['bootstrap']:.2f}, "
              f"total {cpu['validate'] + cpu['score'] + cpu['bootstrap']:.2f}; load average "
              f"{os.getloadavg()[0]:.1f} at the end.",
              f"`auh score` end to end (fresh process, imports, new SQLite ledger): "
              f"{report['auh_score_s']:.1f} s"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=325_000)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--baseline-resamples", type=int, default=5)
    args = parser.parse_args()
    report = run(args.rows, args.resamples, args.baseline_resamples)
    text = render(report)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench_scoring.json").write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
