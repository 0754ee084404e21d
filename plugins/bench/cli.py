"""``auh bench``: every benchmark in one run, as a table, JSON and a Markdown page.

Each benchmark is a function ``fn(quick: bool) -> list[row]`` (rows as in
:mod:`plugins.bench.rows`), named in :data:`BENCHMARKS` and imported only when it
runs, so ``auh --help`` stays fast.
"""
from __future__ import annotations

import argparse
import datetime
import importlib
import inspect
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

from harness import hookimpl
from harness.cli import add_command
from harness.errors import UserError
from harness.fileio import atomic_open
from harness.progress import note
from harness.registry import unknown_message
from plugins.bench.rows import RESULTS, format_notes, format_table, machine, row, seconds

# name -> (module, function), in the order of the table.
BENCHMARKS: dict[str, tuple[str, str]] = {
    "threshold": ("plugins.bench.bench_components", "bench_threshold_search"),
    "scoring": ("plugins.bench.cli", "bench_scoring"),
    "startup": ("plugins.bench.bench_startup", "bench_startup"),
    "mlros": ("plugins.bench.bench_components", "bench_mlros"),
    "loss": ("plugins.bench.bench_components", "bench_selective_loss"),
    "training": ("plugins.bench.bench_training", "bench_training"),
    "checkpoint": ("plugins.bench.bench_training", "bench_checkpoint"),
    "mtcnn": ("plugins.bench.bench_alignment", "bench_mtcnn"),
    "facecache": ("plugins.bench.bench_alignment", "bench_facecache"),
    "demo": ("plugins.bench.bench_demo", "bench_demo"),
    "threads": ("plugins.bench.bench_threads", "bench_threads"),
    "loader": ("plugins.bench.bench_device", "bench_loader"),
    "device-training": ("plugins.bench.bench_device", "bench_device_training"),
    "predict": ("plugins.bench.bench_device", "bench_predict"),
    "video": ("plugins.bench.bench_video", "bench_video"),
}
# What `auh bench --device cuda` runs unless --only says otherwise.
DEVICE_BENCHMARKS = ("loader", "device-training", "predict")
DEFAULT_OUT = RESULTS / "latest.json"


def bench_scoring(quick: bool) -> list[dict[str, Any]]:
    """:mod:`plugins.bench.bench_scoring`'s report as rows (that module keeps its own table format)."""
    from plugins.bench import bench_scoring

    rows, resamples, baseline_resamples = (32_500, 100, 2) if quick else (325_000, 1000, 5)
    report = bench_scoring.run(rows, resamples, baseline_resamples)
    workload = f"{rows:,} x {report['aus']} ({report['submission_mb']} MB CSV)"
    validate, score, boot, total = report["rows_table"]  # (step, harness s, baseline s, same answer)
    return [
        row("scoring: validate", workload, validate[1], "none", None, None,
            "no baseline; truth and submission read back equal to what was written"),
        row("scoring: score", workload, score[1], "scikit-learn accuracy_score + f1_score per AU",
            score[2], score[3], "same final score"),
        row(f"scoring: bootstrap, {resamples} resamples", workload, boot[1],
            f"Python loop over resamples, each scored by the scikit-learn loop (EXTRAPOLATED from "
            f"{baseline_resamples} resamples)", boot[2], boot[3],
            f"same final on each of the first {baseline_resamples} resamples, drawn as the harness draws them"),
        row("scoring: validate + score + bootstrap", workload, total[1],
            "the same validation, then both baselines above", total[2], score[3] and boot[3],
            "the score and bootstrap rows agree",
            f"{report['baseline_note']}; `auh score` end to end as a fresh process (imports, validation, "
            f"scoring, {resamples}-resample bootstrap, new SQLite ledger): {report['auh_score_s']:.1f} s",
            auh_score_s=report["auh_score_s"]),
    ]


@hookimpl
def auh_add_commands(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(subparsers, "bench", cmd_bench)
    p.add_argument("--quick", action="store_true",
                   help="small sizes, no demo run (the CI smoke test; under a minute)")
    p.add_argument("--only", metavar="NAME,...",
                   help=f"only these benchmarks, comma-separated: {', '.join(BENCHMARKS)}")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT,
                   help=f"JSON file to write (default: {DEFAULT_OUT})")
    p.add_argument("--markdown", type=Path,
                   help="Markdown page to write (default: the JSON file with .md)")
    p.add_argument("--device", default="cpu",
                   help="device of the device benchmarks (default cpu); with a GPU (cuda, cuda:N) and "
                        f"no --only, runs {', '.join(DEVICE_BENCHMARKS)} at IR-152 224 px")


def selected(only: str | None, device: str = "cpu") -> list[str]:
    """Benchmark names from ``--only`` (when ``None``: all, or on a GPU the
    device benchmarks), in table order."""
    if only is None:
        return list(DEVICE_BENCHMARKS) if device != "cpu" else list(BENCHMARKS)
    names = [n.strip() for n in only.split(",") if n.strip()]
    for n in names:
        if n not in BENCHMARKS:
            raise UserError(f"--only: {unknown_message('benchmark', n, BENCHMARKS)}")
    if not names:
        raise UserError(f"--only: no benchmark named; available: {', '.join(BENCHMARKS)}")
    return [n for n in BENCHMARKS if n in names]


def run_bench(names: list[str], quick: bool, device: str = "cpu",
              log: Callable[[str], None] = note) -> dict[str, Any]:
    """Run the named benchmarks; return the report (machine, rows, times).

    Progress bars of the harness are off while it runs (``AUH_QUIET``).
    Each row carries ``bench``, the name of the benchmark that made it.
    """
    load_before = os.getloadavg()[0]
    quiet = os.environ.get("AUH_QUIET")
    os.environ["AUH_QUIET"] = "1"
    rows, start = [], time.perf_counter()
    try:
        for name in names:
            module, function = BENCHMARKS[name]
            t = time.perf_counter()
            fn = getattr(importlib.import_module(module), function)
            made = fn(quick, device=device) if "device" in inspect.signature(fn).parameters else fn(quick)
            log(f"bench {name}: {len(made)} row(s) in {time.perf_counter() - t:.1f} s")
            rows += [{"bench": name, **r} for r in made]
    finally:
        if quiet is None:
            os.environ.pop("AUH_QUIET", None)
    return {"created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "quick": quick, "benchmarks": names, "machine": machine(),
            "total_s": time.perf_counter() - start,
            "load_average": {"start": load_before, "end": os.getloadavg()[0]}, "rows": rows}


def markdown(report: dict[str, Any], command: str) -> str:
    """The report as a Markdown page (for ``docs/bench.md``)."""
    m, load = report["machine"], report["load_average"]
    busy = ""
    if max(load.values()) > m["cores"]:  # the threads row's own busy loops raise the load at the end
        own = load["start"] <= m["cores"] and "threads" in report["benchmarks"]
        busy = " (the threads row's busy loops)" if own else " (other jobs shared the cores)"
    lines = [
        "# Benchmarks", "",
        "Each row times the harness and a baseline doing the same work on the same machine, "
        "in one run, and checks that both give the same answer. The speed-up is baseline time / "
        "harness time. On a shared machine absolute times are noisy; read the ratios.", "",
        f"Command: `{command}` ({'quick sizes, ' if report['quick'] else ''}"
        f"{seconds(report['total_s'])} in all, {report['created']}).  ",
        f"Machine: {m['cores']} cores, {m['cpu']}; torch {m['torch']} ({m['torch_threads']} threads), "
        f"Python {m['python']}, {m['platform']}; 1-minute load average {load['start']:.1f} at the start, "
        f"{load['end']:.1f} at the end{busy}.", "",
        format_table(report["rows"]), "",
    ]
    notes = format_notes(report["rows"])
    if notes:
        lines += ["Notes:", "", notes, ""]
    lines += ["Reproduce with `make bench` (or `auh bench`); `auh bench --only training,mtcnn` runs "
              f"some rows, `auh bench --quick` is the smoke test. Names: {', '.join(BENCHMARKS)}. "
              "The JSON goes to `bench/results/latest.json`.", ""]
    return "\n".join(lines)


def command_line(args: argparse.Namespace) -> str:
    """The ``auh bench`` command that reproduces this run."""
    parts = ["auh bench"] + (["--quick"] if args.quick else []) + ([f"--only {args.only}"] if args.only else [])
    parts += [f"--device {args.device}"] if args.device != "cpu" else []
    parts += [] if args.out == DEFAULT_OUT else [f"--out {args.out}"]
    return " ".join(parts + ([f"--markdown {args.markdown}"] if args.markdown else []))


def cmd_bench(args: argparse.Namespace) -> int:
    """measure the harness against naive and published baselines

    Run the benchmarks: each row times the harness and a baseline doing the same work on the
    same machine, gives the ratio, and checks that both give the same answer. Prints a Markdown
    table, writes it as JSON and as a Markdown page. Exit status 1 when an equality check fails.
    """
    from harness.training import resolve_device

    device = resolve_device(args.device, "--device")
    report = run_bench(selected(args.only, device), args.quick, device)
    command = command_line(args)
    report["command"] = command
    with atomic_open(args.out) as fh:
        json.dump(report, fh, indent=1)
    page = args.markdown or args.out.with_suffix(".md")
    with atomic_open(page) as fh:
        fh.write(markdown(report, command))
    print(format_table(report["rows"]))
    notes = format_notes(report["rows"])
    if notes:
        print("\n" + notes)
    print(f"\nwrote {args.out} and {page} ({seconds(report['total_s'])})")
    failed = [f"{r['component']} ({r['workload']})" for r in report["rows"] if r["equal"] is False]
    if failed:
        print(f"auh bench: equality check FAILED for: {'; '.join(failed)}", file=sys.stderr)
        return 1
    return 0
