"""Scoring at video scale: ``auh score`` and ``auh leaderboard`` on millions of frames,
side by side with the previous release.

"Before" is this repository at :data:`PREVIOUS` (the last commit before the
scale work: readers that built a list of lines, a bootstrap over videos
that expanded every resample to all frames, a board that resampled every
pair of neighbours), exported with ``git archive`` and run from there, as
:mod:`plugins.bench.bench_startup` does. Rows:

* ``auh score --json``, ENC-2020 325,000 x 23, 1,000 resamples, a fresh
  process into an existing SQLite ledger: both sides in turns, the same
  scorecard JSON (the same seed draws the same resamples: the numbers are
  equal, not just close);
* ``auh score --json``, ABAW AU 3,000,000 frames x 12 (``predictions.txt``
  against one truth file per video, 1,000 resamples over videos): wall time
  and peak memory (the maximum resident set size of the process). The
  previous release takes many minutes here, so it runs with 20 resamples
  only: its time is a LOWER BOUND of its 1,000-resample time (so is the
  speed-up). The equality check is both sides' scorecard JSON at 20 resamples;
* ``auh leaderboard`` of 100 teams on a 1,000,000-frame ABAW truth with the
  paired bootstrap of neighbours (1,000 resamples over videos), this tree
  alone; then the board of the first 20 of them side by side: the previous
  release holds every team's predictions at once (9.6 GB for 100 teams) and
  runs with 5 resamples only (a LOWER BOUND again); the equality check is the
  two boards' CSV at 5 resamples (every p-value and significance mark).

The ledger of the board is written through the scorer's own recording
(:func:`leaderboard.scoring._record`) from the generated predictions, with
scorecards without resamples: ``auh score`` a hundred times would only time
the set-up.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from plugins.bench.bench_startup import _auh, _env, _score_inputs, _side_by_side
from plugins.bench.rows import AUH_MAIN, ROOT, row, tree_at

PREVIOUS = "eeaff13"
FEW = 20  # the previous release's resamples on 3 million frames (then extrapolated)
FEW_BOARD = 5  # ... and on a board of many teams
COMPARED_TEAMS = 20  # teams on the board both sides score
# Peak memory of a child process: a wrapper that runs it and prints its maximum RSS (KiB).
_PEAK = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
         "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def bench_scale(quick: bool) -> list[dict[str, Any]]:
    sizes = ((32_500, 100, 300_000, 60, 10, 100_000, 20) if quick else
             (325_000, 1000, 3_000_000, 600, 100, 1_000_000, 200))
    enc_rows, resamples, frames, videos, teams, board_frames, board_videos = sizes
    with tempfile.TemporaryDirectory(prefix="auh-bench-scale-") as tmp:
        tmp = Path(tmp)
        before = tree_at(PREVIOUS, tmp / "before")
        if before is None:
            return []
        return [_enc_score(before, tmp, enc_rows, resamples),
                _abaw_score(before, tmp, frames, videos, resamples),
                *_board(before, tmp, teams, board_frames, board_videos, resamples)]


def _enc_score(before: Path, tmp: Path, rows: int, resamples: int) -> dict[str, Any]:
    truth, sub = _score_inputs(tmp, rows)

    def score(db: str) -> list[str]:
        return ["score", "--truth", str(truth), "--submission", str(sub), "--json", "--team", "t",
                "--resamples", str(resamples), "--tracking-uri", f"sqlite:///{tmp / db}"]

    for tree, db in ((before, "before.db"), (ROOT, "after.db")):  # the ledgers exist before timing
        _auh(tree, score(db), tmp)
    times, outs = _side_by_side(before, score("before.db"), score("after.db"), tmp, 3)
    return row("auh score --json, existing ledger (fresh process)",
               f"ENC-2020 {rows:,} x 23, {resamples} resamples", times[1],
               f"the same command at {PREVIOUS} (previous release)", times[0], outs[0] == outs[1],
               "same scorecard JSON")


def _abaw_score(before: Path, tmp: Path, frames: int, videos: int, resamples: int) -> dict[str, Any]:
    folder = tmp / "abaw"
    _abaw_inputs(folder, frames, videos, teams=1)

    def score(n: int, db: str) -> list[str]:
        return ["score", "--benchmark", "abaw_au", "--truth", str(folder / "truth"), "--submission",
                str(folder / "team000.txt"), "--json", "--team", "t", "--resamples", str(n),
                "--tracking-uri", f"sqlite:///{tmp / db}"]

    after_s, after_kib, _ = _timed_peak(ROOT, score(resamples, "abaw-after.db"), tmp)
    few_out = _auh(ROOT, score(FEW, "abaw-after.db"), tmp)
    base_s, base_kib, base_out = _timed_peak(before, score(FEW, "abaw-before.db"), tmp)
    return row("auh score --json, frame-level (fresh process)",
               f"ABAW AU {frames:,} frames x 12 in {videos} videos, {resamples} resamples over videos",
               after_s, f"{PREVIOUS} with only {FEW} resamples (a LOWER BOUND)", base_s,
               base_out == few_out, f"same scorecard JSON at {FEW} resamples",
               f"peak memory {after_kib / 2 ** 20:.2f} GiB ({base_kib / 2 ** 20:.2f} GiB before, "
               f"with {FEW} resamples)", peak_rss_mb=after_kib / 1024)


def _board(before: Path, tmp: Path, teams: int, frames: int, videos: int,
           resamples: int) -> list[dict[str, Any]]:
    """The board of all ``teams`` (this tree alone), then the board of the first
    :data:`COMPARED_TEAMS` side by side: the previous release holds every team's
    predictions in memory at once (100 x 1,000,000 x 12 int64 is 9.6 GB)."""
    folder = tmp / "board"
    compared = min(teams, COMPARED_TEAMS)
    dbs = {n: f"sqlite:///{tmp / f'board{n}.db'}" for n in (teams, compared)}
    _abaw_inputs(folder, frames, videos, teams, record=dbs)

    def board(n: int, db: str) -> list[str]:
        return ["leaderboard", "--benchmark", "abaw_au", "--tracking-uri", db, "--format", "csv",
                "--resamples", str(n)]

    workload = f"ABAW AU {frames:,} frames in {videos} videos, {resamples} resamples"
    all_s, all_kib, _ = _timed_peak(ROOT, board(resamples, dbs[teams]), tmp)
    after_s, after_kib, _ = _timed_peak(ROOT, board(resamples, dbs[compared]), tmp)
    base_s, base_kib, base_out = _timed_peak(before, board(FEW_BOARD, dbs[compared]), tmp)
    return [row("auh leaderboard with paired significance", f"{teams} teams, {workload}", all_s,
                "none (see the next row)", None, None, "-",
                f"peak memory {all_kib / 2 ** 20:.2f} GiB", peak_rss_mb=all_kib / 1024),
            row("auh leaderboard with paired significance", f"{compared} teams, {workload}", after_s,
                f"{PREVIOUS} with only {FEW_BOARD} resamples (a LOWER BOUND)", base_s,
                base_out == _auh(ROOT, board(FEW_BOARD, dbs[compared]), tmp),
                f"same board CSV (p-values, marks) at {FEW_BOARD} resamples",
                f"peak memory {after_kib / 2 ** 20:.2f} GiB ({base_kib / 2 ** 20:.2f} GiB before)",
                peak_rss_mb=after_kib / 1024)]


def _timed_peak(tree: Path, argv: list[str], cwd: Path) -> tuple[float, int, str]:
    """Wall seconds, peak resident memory (KiB) and output of ``auh ARGV`` from ``tree``."""
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", _PEAK, sys.executable, "-c", AUH_MAIN, *argv],
                         cwd=cwd, env=_env(tree), capture_output=True, text=True, check=True, timeout=3600)
    seconds = time.perf_counter() - start
    *printed, peak = out.stdout.rstrip("\n").split("\n")
    return seconds, int(peak), "\n".join(printed) + "\n"


def _abaw_inputs(folder: Path, frames: int, videos: int, teams: int,
                 record: dict[int, str] | None = None) -> None:
    """An ABAW AU truth (one file per video, 5% unknown) and ``teams`` ``predictions.txt``
    files ``teamNNN.txt``, each flipping a different share of the truth; with ``record``
    (teams -> tracking URI), the first ``teams`` of them are also recorded in that
    ledger as ``auh score`` records them."""
    from harness.benchmark import get_benchmark
    from harness.layouts import Table, Videos, frame_names, write_truth_files

    bench = get_benchmark("abaw_au")
    rng = np.random.default_rng(0)
    counts = np.diff(np.r_[0, np.sort(rng.choice(np.arange(1, frames), videos - 1, replace=False)), frames])
    found = Videos(tuple(f"v{i:04d}" for i in range(videos)), tuple(int(c) for c in counts))
    truth = (rng.random((frames, 12)) < 0.25).astype(np.int64)
    truth[rng.random((frames, 12)) < 0.05] = 999
    names = frame_names(found, bench)
    write_truth_files(folder / "truth", Table(names, truth, found), bench)
    recorders = {n: _recorder(folder / "truth", uri) for n, uri in (record or {}).items()}
    # Fixed-width rows (video names of one length, 5-digit frames): written with numpy, not row by row.
    width = len(names[0]) + 1 + 24
    table = np.full((frames, width), ord(","), dtype=np.uint8)
    table[:, :len(names[0])] = np.frombuffer("".join(names).encode(), dtype=np.uint8).reshape(frames, -1)
    table[:, -1] = ord("\n")
    header = ("image_location," + ",".join(bench.aus) + "\n").encode()
    for team in range(teams):
        flip = rng.random(truth.shape) < 0.10 + 0.10 * team / max(teams, 1)
        pred = np.where(truth == 999, 0, truth) ^ flip
        table[:, len(names[0]) + 1:-1:2] = ord("0") + pred
        (folder / f"team{team:03d}.txt").write_bytes(header + table.tobytes())
        for first, recorder in recorders.items():
            if team < first:
                recorder(f"team{team:03d}", folder / f"team{team:03d}.txt", pred)


def _recorder(truth_folder: Path, tracking_uri: str) -> Callable[[str, Path, np.ndarray], None]:
    """Record a team's predictions file in the ledger (scorecards without resamples)."""
    from harness.benchmark import get_benchmark
    from leaderboard.challenge import adhoc
    from leaderboard.scoring import _record, load_truth, scorecard

    bench = get_benchmark("abaw_au")
    challenge = adhoc(None, truth_folder, bench)
    phase = next(iter(challenge.phases.values()))
    truth = load_truth(truth_folder, bench)

    def record(team: str, file: Path, pred: np.ndarray) -> None:
        _record(challenge, phase, truth, team, file, pred,
                lambda rows: scorecard(pred[rows], truth.labels[rows], bench.aus, 0, 0,
                                       (bench, challenge.metric)), tracking_uri=tracking_uri)

    return record


if __name__ == "__main__":  # python -m plugins.bench.bench_scale [--quick]
    print(json.dumps(bench_scale("--quick" in sys.argv), indent=2, default=str))
