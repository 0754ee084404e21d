"""The demo ``auh run`` end to end: wall time and peak memory (no baseline).

``python -m harness run`` (the ``auh run`` entry point, with no recipe:
``plugins/recipes/demo.toml``) runs in a child process, in an empty temporary
folder with a fresh ``AUH_CACHE``, so the synthetic data is generated and
the faces aligned from scratch, and MLflow logs to a temporary SQLite store.
Peak memory is the child's maximum resident set size as reported by
``wait4`` (the largest of the child and any process it waited for).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness.errors import UserError
from plugins.bench.rows import row

LOG_TAIL = 2000  # characters of the child's output shown when it fails


def run_child(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, float, str]:
    """Run ``cmd``; return wall seconds, CPU seconds (user + system, its
    waited-for children included), peak RSS in MiB, and its output. Raises on failure."""
    log = cwd / "output.log"
    with open(log, "wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    text = log.read_text(errors="replace")
    if proc.returncode != 0:
        raise UserError(f"bench demo: `{' '.join(cmd)}` failed with exit status {proc.returncode}; "
                        f"its output ends: {text[-LOG_TAIL:]}")
    # ru_maxrss is in KiB on Linux, bytes on macOS
    scale = 1 if sys.platform == "darwin" else 1024
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * scale / 2**20, text


def bench_demo(quick: bool) -> list[dict[str, Any]]:
    """The demo run's row; nothing under ``quick`` (it takes minutes)."""
    if quick:
        return []
    with tempfile.TemporaryDirectory(prefix="auh-bench-demo-") as tmp:
        folder = Path(tmp)
        env = {**os.environ, "AUH_CACHE": str(folder / "cache"), "AUH_QUIET": "1"}
        env.pop("MLFLOW_TRACKING_URI", None)
        cmd = [sys.executable, "-m", "harness", "run", "--tracking-uri", f"sqlite:///{folder / 'mlflow.db'}"]
        wall, cpu, peak_mib, _ = run_child(cmd, folder, env)
        result = json.loads(next((folder / "runs").glob("*/result.json")).read_text())
    final = result["scores"]["final"]
    return [row("demo `auh run`", "plugins/recipes/demo.toml end to end", wall, "none", None, None,
                "no baseline: time and memory only",
                f"peak RSS {peak_mib:,.0f} MiB; CPU time {cpu:,.0f} s (user + system); fresh AUH_CACHE "
                f"(synthetic data generated and faces aligned from scratch), MLflow to a temporary SQLite store; the run scored final "
                f"{final:.4f} on its test split",
                peak_rss_mib=peak_mib, cpu_s=cpu, final=final)]
