"""CPU seconds of a short demo run on a loaded machine, before and after the thread plan.

"Before" is this repository at :data:`BEFORE` (torch's default threads,
OpenMP's default spin-then-sleep wait), exported with ``git archive``;
"after" is this tree (threads from the affinity mask, OpenMP waiting
passively; :mod:`harness.threads`). Both run the same shortened demo
(:data:`SHORT`) from a fresh cache while :data:`HOGS` busy-loop processes
hold the cores, one side after the other, twice, and report the median CPU
time (user + system of the run and its children) and wall time.

The check: the thread plan changes no result. The method itself has changed
since :data:`BEFORE` (this tree may score differently), so the tree at
:data:`PLAN`, the commit that brought the thread plan and nothing else that
moves a score, runs once more after the timed runs and must score what
:data:`BEFORE` scores; each side must also score the same in both its runs.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from plugins.bench.bench_demo import run_child
from plugins.bench.rows import AUH_MAIN, ROOT, row, tree_at

BEFORE = "c0aec4c"  # the commit before the thread plan
PLAN = "0da26b2"  # the commit that brought it
SHORT = ["--set", "dataset.n=400", "--set", "dataset.identities=40", "--set", "dataset.per_expression=20",
         "--set", "train.epochs=1", "--set", "pretrain.epochs=1"]
HOGS = 2


def bench_threads(quick: bool) -> list[dict[str, Any]]:
    """The row; nothing under ``quick`` (it takes minutes)."""
    if quick:
        return []
    with tempfile.TemporaryDirectory(prefix="auh-bench-threads-") as tmp:
        tmp = Path(tmp)
        before, plan = tree_at(BEFORE, tmp / "before"), tree_at(PLAN, tmp / "plan")
        if before is None or plan is None:
            return []
        runs: dict[str, list[tuple[float, float, float]]] = {"before": [], "after": []}
        hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(HOGS)]
        try:
            for turn in range(2):
                for side, tree in (("before", before), ("after", ROOT)):
                    runs[side].append(_demo(tree, tmp / f"{side}-{turn}"))
        finally:
            for hog in hogs:
                hog.kill()
                hog.wait()
        plan_final = _demo(plan, tmp / "plan-run")[2]
    cpu = {side: float(np.median([r[0] for r in rs])) for side, rs in runs.items()}
    wall = {side: float(np.median([r[1] for r in rs])) for side, rs in runs.items()}
    finals = {side: {r[2] for r in rs} for side, rs in runs.items()}
    before_final, after_final = min(finals["before"]), min(finals["after"])
    same = len(finals["before"]) == len(finals["after"]) == 1 and plan_final == before_final
    return [row("thread plan on a loaded machine (CPU seconds)",
                f"short demo ({' '.join(SHORT[1::2])}), {HOGS} busy-loop processes beside it",
                cpu["after"], f"the same run at commit {BEFORE} (torch's default threads, OpenMP's "
                f"default wait policy)", cpu["before"], same,
                f"the thread plan changes no result: final {plan_final:.4f} at {PLAN} (the plan's "
                f"commit), {before_final:.4f} at {BEFORE}, each side the same in both runs; this tree "
                f"scores {after_final:.4f}, the method having changed since",
                f"harness_s / baseline_s are CPU seconds (user + system), medians of 2 runs per side; "
                f"wall {wall['after']:.0f} s after vs {wall['before']:.0f} s before",
                wall_s=wall["after"], baseline_wall_s=wall["before"],
                finals={"before": before_final, "plan": plan_final, "after": after_final})]


def _demo(tree: Path, folder: Path) -> tuple[float, float, float]:
    folder.mkdir()
    env = {**os.environ, "AUH_CACHE": str(folder / "cache"), "AUH_QUIET": "1", "PYTHONPATH": str(tree)}
    for key in ("MLFLOW_TRACKING_URI", "OMP_WAIT_POLICY", "OMP_NUM_THREADS"):
        env.pop(key, None)
    cmd = [sys.executable, "-c", AUH_MAIN, "run", "--tracking-uri", "off", *SHORT]
    wall, cpu, _, _ = run_child(cmd, folder, env)
    result = json.loads(next((folder / "runs").glob("*/result.json")).read_text())
    return cpu, wall, round(result["scores"]["final"], 12)
