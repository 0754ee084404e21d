"""What every benchmark shares: the row format, a timer, the table.

A row is a plain dict (it goes to JSON as is)::

    component   what is measured ("threshold search", "training throughput")
    workload    the size it ran on ("325,000 x 23")
    harness_s   the harness's wall time in seconds
    baseline    the baseline, in words (say EXTRAPOLATED / subsampled here)
    baseline_s  the baseline's wall time (None: the row has no baseline)
    ratio       baseline_s / harness_s: how many times faster the harness is
                (None without a baseline)
    equal       whether harness and baseline gave the same answer
                (None without a baseline)
    check       how ``equal`` was decided
    note        anything else the reader needs (throughputs, one-time costs)

plus any extra numbers a row wants to keep (``peak_rss_mb``, ...).
"""
from __future__ import annotations

import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

# Where results go, relative to the working directory (not inside the installed package).
RESULTS = Path("bench") / "results"
ROOT = Path(__file__).resolve().parents[2]  # the source tree (a git checkout, for trees at a commit)
# `auh ARGV` in a fresh interpreter, whichever tree PYTHONPATH names.
AUH_MAIN = ("import sys, harness.cli as cli; entry = getattr(cli, 'console', None); "
            "entry() if entry else sys.exit(cli.main(sys.argv[1:]))")  # as `auh` runs, at any release


def row(component: str, workload: str, harness_s: float, baseline: str, baseline_s: float | None,
        equal: bool | None, check: str, note: str = "", **extra: Any) -> dict[str, Any]:
    """One benchmark row (see the module docstring)."""
    return {"component": component, "workload": workload, "harness_s": harness_s,
            "baseline": baseline, "baseline_s": baseline_s,
            "ratio": None if baseline_s is None else baseline_s / harness_s,
            "equal": None if equal is None else bool(equal), "check": check, "note": note, **extra}


def best_time(fn: Callable[[], Any], repeats: int, warmup: int = 0) -> float:
    """Fastest of ``repeats`` wall-clock runs after ``warmup`` untimed ones, in seconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def interleaved(fns: list[Callable[[], Any]], repeats: int) -> tuple[list[float], list[Any]]:
    """Run ``fns`` in turn, ``repeats`` rounds; return each one's fastest time and last result.

    Interleaving spreads a slow spell on a shared machine over all sides
    instead of letting it land on one of them.
    """
    best, results = [float("inf")] * len(fns), [None] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            results[i] = fn()
            best[i] = min(best[i], time.perf_counter() - start)
    return best, results


def seconds(t: float | None) -> str:
    """``1.2 ms``, ``0.31 s``, ``1,160 s``; ``-`` for ``None``."""
    if t is None:
        return "-"
    return f"{t * 1000:.2g} ms" if t < 0.1 else f"{t:.2f} s" if t < 100 else f"{t:,.0f} s"


def times(ratio: float | None) -> str:
    """``3,940x`` for big ratios, ``0.97x`` near one (where the decimals matter)."""
    if ratio is None:
        return "-"
    return f"{ratio:,.0f}x" if ratio >= 10 else f"{ratio:.2f}x"


def same(equal: bool | None) -> str:
    return "n/a" if equal is None else "yes" if equal else "NO"


def format_table(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table (notes are listed by :func:`format_notes`)."""
    lines = ["| component | workload | harness | baseline | baseline time | speed-up | same answer |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['component']} | {r['workload']} | {seconds(r['harness_s'])} | {r['baseline']} | "
                     f"{seconds(r['baseline_s'])} | {times(r['ratio'])} | {same(r['equal'])} "
                     f"({r['check']}) |")
    return "\n".join(lines)


def format_notes(rows: list[dict[str, Any]]) -> str:
    """A bullet per row that has a note."""
    return "\n".join(f"- **{r['component']}** ({r['workload']}): {r['note']}" for r in rows if r.get("note"))


def machine() -> dict[str, Any]:
    """Where the numbers were measured: usable cores (as ``nproc``), CPU model, versions."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), cpu)
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cores": cores, "cpu": cpu, "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(),
            "platform": platform.platform(terse=True)}


def tree_at(commit: str, folder: Path) -> Path | None:
    """This repository's files at ``commit`` in ``folder`` (the "before" side of a row);
    ``None`` outside a git checkout that has the commit."""
    folder.mkdir(parents=True)
    try:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit], check=True,
                                 capture_output=True, timeout=120).stdout
        subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True, timeout=120)
    except (OSError, subprocess.SubprocessError):
        return None
    return folder
