"""The organizer's commands as fresh processes, before and after the torch-free scoring path.

"Before" is this repository at :data:`BEFORE`, the last commit whose
``auh check`` / ``auh score`` imported torch, pandas and the plugins' heavy
modules at start-up; it is exported with ``git archive`` and run from there.
"After" is this tree. Both run the same command on the same files, turn by
turn, and must print the same thing (the check line; the scorecard JSON).
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from plugins.bench.rows import AUH_MAIN, ROOT, interleaved, row, tree_at

BEFORE = "84f4c6c"
EXAMPLES = ROOT / "submissions" / "examples"


def bench_startup(quick: bool) -> list[dict[str, Any]]:
    rows, resamples, repeats = (32_500, 100, 2) if quick else (325_000, 1000, 3)
    with tempfile.TemporaryDirectory(prefix="auh-bench-startup-") as tmp:
        tmp = Path(tmp)
        before = tree_at(BEFORE, tmp / "before")
        truth, sub = _score_inputs(tmp, rows)
        check = ["check", "--challenge", str(EXAMPLES / "challenge.toml"),
                 "--submission", str(EXAMPLES / "alpha.csv")]

        def score(db: str) -> list[str]:
            return ["score", "--truth", str(truth), "--submission", str(sub), "--json",
                    "--resamples", str(resamples), "--tracking-uri", f"sqlite:///{tmp / db}"]

        help_s, _ = _side_by_side(before, ["--help"], ["--help"], tmp, repeats)
        check_s, check_out = _side_by_side(before, check, check, tmp, repeats)
        score_s, score_out = _side_by_side(before, score("before.db"), score("after.db"),
                                           tmp, max(1, repeats - 1))
    baseline = f"the same command at commit {BEFORE} (imports torch at start-up)"
    workload = f"{rows:,} x 23, {resamples} resamples, new SQLite ledger"
    return [
        row("start-up: auh check", "the example challenge (400 x 23)", check_s[1], baseline,
            check_s[0], _same(check_out), "same output line",
            f"`auh --help`: {help_s[1]:.2f} s, {help_s[0]:.2f} s before" if help_s[0] else ""),
        row("auh score end to end (fresh process)", workload, score_s[1], baseline, score_s[0],
            _same(score_out), "same scorecard JSON"),
    ]


def _side_by_side(before: Path | None, argv_before: list[str], argv_after: list[str], cwd: Path,
                  repeats: int) -> tuple[list[float | None], list[str | None]]:
    """Fastest wall time and output of the command at BEFORE and here, run in turns."""
    fns: list[Callable[[], str]] = [lambda: _auh(ROOT, argv_after, cwd)]
    if before is not None:
        fns.insert(0, lambda: _auh(before, argv_before, cwd))
    best, outs = interleaved(fns, repeats)
    return ([None, *best] if before is None else best), ([None, *outs] if before is None else outs)


def _auh(tree: Path, argv: list[str], cwd: Path) -> str:
    """``auh ARGV`` as a fresh Python process importing the harness from ``tree``."""
    proc = subprocess.run([sys.executable, "-c", AUH_MAIN, *argv], cwd=cwd, capture_output=True,
                          text=True, env=_env(tree), timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"auh {' '.join(argv[:1])} from {tree} failed: {proc.stderr[-500:]}")
    return proc.stdout


def _env(tree: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tree), "AUH_QUIET": "1"}


def _same(outputs: list[str | None]) -> bool | None:
    return None if outputs[0] is None else outputs[0] == outputs[1]


def _score_inputs(tmp: Path, rows: int) -> tuple[Path, Path]:
    """A truth with ENC-2020 label rates and a submission of shuffled, 15%-flipped rows."""
    from harness.labels import write_labels
    from plugins.bench.bench_components import synthetic_labels

    truth = synthetic_labels(rows, seed=0)
    rng = np.random.default_rng(1)
    pred = np.where(truth == 999, 0, truth) ^ (rng.random(truth.shape) < 0.15)
    names = [f"N_{i:010d}.jpg" for i in range(rows)]
    order = rng.permutation(rows)
    write_labels(tmp / "truth.txt", names, truth)
    write_labels(tmp / "sub.csv", [names[i] for i in order], pred[order])
    return tmp / "truth.txt", tmp / "sub.csv"
