"""``auh bench``: the quick run's equality checks, its files, and the pieces it is built from."""
from __future__ import annotations

import json
import sys

import pytest
import torch

from harness.cli import main
from harness.errors import UserError
from plugins.bench.bench_demo import run_child
from plugins.bench.bench_training import Lockstep
from plugins.bench.cli import BENCHMARKS, DEVICE_BENCHMARKS, markdown, selected
from plugins.bench.rows import format_table, interleaved, row, times



@pytest.mark.slow
def test_quick_bench_passes_every_equality_check_and_writes_its_files(in_tmp, capsys):
    out = in_tmp / "results" / "bench.json"
    assert main(["bench", "--quick", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    made = {r["bench"] for r in report["rows"]}
    assert made == set(BENCHMARKS) - {"demo", "threads"}  # runs of minutes are skipped under --quick
    assert report["quick"] is True and report["machine"]["cores"] >= 1
    compared = [r for r in report["rows"] if r["baseline_s"] is not None]
    assert len(compared) >= len(made)  # every benchmark has a row with a baseline
    for r in compared:
        assert r["equal"] is True, r
        assert r["ratio"] == pytest.approx(r["baseline_s"] / r["harness_s"])
    for r in report["rows"]:
        assert r["harness_s"] > 0 and (r["baseline_s"] is not None or r["equal"] is None)
    page = out.with_suffix(".md").read_text()
    assert "| component |" in page and "auh bench --quick" in page
    assert page.count("| yes (") == len(compared)
    assert "| component |" in capsys.readouterr().out


def test_device_benchmarks_on_the_cpu(in_tmp, capsys):
    """What `auh bench --device cuda` runs, at smoke-test sizes on the CPU."""
    out = in_tmp / "device.json"
    assert main(["bench", "--quick", "--device", "cpu", "--only", ",".join(DEVICE_BENCHMARKS),
                 "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["bench"] for r in rows] == ["loader", "loader", "device-training", "predict"]
    assert all(r["equal"] is True and r["baseline_s"] > 0 for r in rows)
    loader, transform = rows[:2]
    assert loader["images_per_core_s"] == pytest.approx(64 / loader["harness_s"])
    assert 0 <= transform["max_abs_difference"] <= 1e-4 and transform["images_s"] > 0


def test_only_picks_benchmarks_in_table_order_and_names_a_typo():
    assert selected("mtcnn, threshold") == ["threshold", "mtcnn"]
    assert selected(None) == list(BENCHMARKS)
    assert selected(None, "cuda") == list(DEVICE_BENCHMARKS)
    with pytest.raises(UserError, match="did you mean 'training'"):
        selected("trainig")


def test_bad_only_is_a_one_line_error(capsys):
    assert main(["bench", "--only", "nosuch"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("auh: error: --only: unknown benchmark 'nosuch'") and err.count("\n") == 1


def test_row_without_baseline_has_no_ratio_and_reads_n_a():
    r = row("demo", "w", 2.0, "none", None, None, "no baseline")
    assert r["ratio"] is None and r["equal"] is None
    assert "| 2.00 s | none | - | - | n/a (no baseline) |" in format_table([r])
    assert row("x", "w", 0.5, "b", 2.0, 1, "c")["ratio"] == 4.0


@pytest.mark.parametrize("start, end, names, says", [
    (0.5, 1.5, ["threads"], "at the end."),
    (0.5, 3.0, ["threads"], "at the end (the threads row's busy loops)."),
    (0.5, 3.0, ["loader"], "at the end (other jobs shared the cores)."),
    (3.0, 3.0, ["threads"], "at the end (other jobs shared the cores)."),
])
def test_machine_line_says_where_a_high_load_came_from(start, end, names, says):
    report = {"machine": {"cores": 2, "cpu": "c", "torch": "t", "torch_threads": 2, "python": "p",
                          "platform": "x"},
              "load_average": {"start": start, "end": end}, "benchmarks": names, "quick": False,
              "total_s": 1.0, "created": "now", "rows": []}
    line = next(l for l in markdown(report, "auh bench").splitlines() if l.startswith("Machine:"))
    assert line.endswith(f"{end:.1f} {says}")


def test_ratio_keeps_decimals_near_one():
    assert times(0.974) == "0.97x" and times(3940.2) == "3,940x" and times(None) == "-"


def test_interleaved_keeps_each_functions_fastest_run_and_last_result():
    calls = []

    def f():
        calls.append("f")
        return len(calls)

    def g():
        calls.append("g")
        return -len(calls)

    best, results = interleaved([f, g], 3)
    assert calls == ["f", "g"] * 3  # in turn, not all of f then all of g
    assert results == [5, -6] and len(best) == 2 and all(t >= 0 for t in best)


def test_child_peak_memory_covers_what_it_allocated(tmp_path):
    # 300 MiB touched page by page must show in the child's maximum RSS
    code = "b = bytearray(300 * 2**20); b[::4096] = b'x' * len(b[::4096]); print('done')"
    wall, cpu, peak_mib, output = run_child([sys.executable, "-c", code], tmp_path, {})
    assert output.strip() == "done" and wall > 0 and cpu > 0
    assert 300 <= peak_mib < 2000


def test_failing_child_is_a_user_error_with_its_output(tmp_path):
    with pytest.raises(UserError, match="exit status 3.*boom"):
        run_child([sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"], tmp_path, {})


def test_lockstep_runs_one_bare_step_per_loss_call_and_times_only_full_steps():
    advanced = []

    def bare():
        for i in range(5):
            advanced.append(i)
            yield

    lockstep = Lockstep(torch.nn.MSELoss(), bare())
    losses = [lockstep(torch.zeros(2), torch.full((2,), 3.0)).item() for _ in range(3)]
    assert losses == [9.0, 9.0, 9.0]  # the wrapped loss, unchanged
    assert advanced == [0, 1, 2]  # one bare step per harness step
    # the first call ends no full step: 3 calls time 2 steps per side
    assert len(lockstep.harness_steps) == len(lockstep.bare_steps) == 2


@pytest.mark.slow
def test_video_bench_rows_compare_the_same_probabilities(in_tmp):
    from plugins.bench.bench_video import bench_video

    rows = bench_video(quick=True)
    assert [r["frames"] for r in rows] == [50, 200]
    for r in rows:
        assert r["equal"] is True and r["peak_rss_mib"] > 0 and r["baseline_peak_rss_mib"] > 0
        assert r["frames_s"] == pytest.approx(r["frames"] / r["harness_s"])
