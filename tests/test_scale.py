"""Scoring at video scale: the shortcuts give exactly what the plain computations give.

* the bootstrap over videos sums each video's rows once; a brute force that
  draws the same videos, gathers their rows and scores them with scikit-learn
  must give the same finals, to the last bit of the means;
* the board computes each team's resampled finals once; each neighbour pair
  must get what :func:`harness.metrics.paired_bootstrap` of that pair gives;
* the reader keeps a file's rows as one byte string; its rows must be those
  of splitting the file into lines as before (BOM, CR and CRLF, trailing blank
  lines, a last line without a line end);
* frame names built from a template's parts must be the template's own output.
"""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from harness import labels, metrics
from harness.benchmark import Benchmark, get_benchmark
from harness.layouts import Videos, frame_names
from harness.metrics import bootstrap_finals, paired_bootstrap
from leaderboard.ranking import add_significance
from plugins.metrics import MEAN_F1


def video_case(frames: int = 90, videos: int = 9, seed: int = 0):
    rng = np.random.default_rng(seed)
    truth = rng.choice([0, 1, 999], size=(frames, 4), p=[0.55, 0.3, 0.15])
    preds = [rng.integers(0, 2, (frames, 4)) for _ in range(3)]
    groups = np.sort(rng.integers(0, videos, frames))
    return truth, preds, groups


def brute_force_video_finals(pred, truth, groups, n_resamples, seed):
    """Draw videos as the bootstrap does (one call: the data fit one chunk), gather
    their frames, and score each resample with scikit-learn's F1 per AU."""
    units = int(groups.max()) + 1
    draws = np.random.default_rng(seed).integers(0, units, size=(n_resamples, units))
    rows_of = [np.flatnonzero(groups == g) for g in range(units)]
    finals = []
    for drawn in draws:
        rows = np.concatenate([rows_of[g] for g in drawn])
        f1s = [f1_score(truth[rows, c][keep], pred[rows, c][keep], zero_division=0)
               for c in range(truth.shape[1]) if (keep := truth[rows, c] != 999).any()]
        finals.append(np.mean(f1s) if f1s else np.nan)
    return np.array(finals)


@pytest.mark.parametrize("order", ["in video order", "videos interleaved", "a video with no frame"])
def test_video_bootstrap_equals_drawing_the_frames(order, monkeypatch):
    truth, preds, groups = video_case()
    if order == "videos interleaved":
        groups = np.random.default_rng(1).permutation(groups)
    if order == "a video with no frame":
        groups = np.where(groups == 4, 3, groups)  # video 4 is drawn but brings no row
    monkeypatch.setattr(metrics, "_GROUP_ROWS_AT_ONCE", 7)  # a video's rows cross chunks
    monkeypatch.setattr(metrics, "_RESAMPLES_AT_ONCE", 7)  # resamples drawn in chunks
    fast = bootstrap_finals(preds[:1], truth, 40, 5, MEAN_F1, groups)[:, 0]
    np.testing.assert_allclose(fast, brute_force_video_finals(preds[0], truth, groups, 40, 5),
                               rtol=0, atol=1e-12)


def test_image_bootstrap_equals_scoring_the_drawn_rows():
    """Without groups a resample draws rows: the same draws, scored one by one, give the same finals."""
    truth, preds, _ = video_case(frames=50)
    idx = np.random.default_rng(3).integers(0, 50, size=(20, 50))
    slow = [metrics.final_score(preds[0][i], truth[i], MEAN_F1) for i in idx]
    np.testing.assert_allclose(bootstrap_finals(preds[:1], truth, 20, 3, MEAN_F1)[:, 0], slow,
                               rtol=0, atol=1e-12)


@pytest.mark.parametrize("by_video", [False, True])
def test_board_gaps_equal_the_paired_bootstrap_of_each_pair(by_video):
    """Every neighbour pair gets what the paired bootstrap of that pair alone gives."""
    truth, preds, groups = video_case(frames=120, seed=2)
    preds += [np.random.default_rng(k).integers(0, 2, truth.shape) for k in (7, 8)]
    groups = groups if by_video else None
    preds.append(None)  # a team whose predictions are unavailable: no gap on either side

    class Row:
        def __init__(self, k: int) -> None:
            self.entry, self.gap = k, None

    order = (0, 1, 4, 5, 3, 2)  # the board's order, not the list's; team 5 has no predictions
    rows = [Row(k) for k in order]
    add_significance(rows, lambda k: preds[k], truth, 60, 4, MEAN_F1, groups)
    for row, below in zip(rows, rows[1:]):
        if preds[row.entry] is None or preds[below.entry] is None:
            assert row.gap is None
        else:
            assert row.gap == paired_bootstrap(preds[row.entry], preds[below.entry], truth, 60, 4,
                                               MEAN_F1, groups)
    assert rows[-1].gap is None and sum(r.gap is not None for r in rows) == 3


def old_lines(data: bytes, skip: int) -> list[bytes]:
    """The reader's rows as the previous release cut them: line by line."""
    bom = "\ufeff".encode()
    data = (data[len(bom):] if data.startswith(bom) else data).replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    lines = data.split(b"\n")[skip:]
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


@pytest.mark.parametrize("data", [
    b"a 1\nb 0\n", b"a 1\nb 0", b"a 1\r\nb 0\r\n\r\n  \n\t\n", b"\xef\xbb\xbfa 1\rb 0  ",
    b"h\n", b"h", b"h\n\n", b"h\n  \n", b"h\na 1 \n\nb 0\n \n", b"", b"\n\n", b"a 1\x0b\n\x0c\n",
])
@pytest.mark.parametrize("skip", [0, 1])
def test_rows_are_the_lines_of_the_file(tmp_path, data, skip):
    path = tmp_path / "f.txt"
    path.write_bytes(data)
    rows = labels._data_rows(path, skip)
    assert rows.lines() == old_lines(data, skip)
    assert rows.count == len(rows.lines()) and rows.data.count(b"\n") == rows.count


@pytest.mark.parametrize("template", ["{video}/{frame:05d}.jpg", "{video}_{frame:05d}", "{frame:05d}-{video}",
                                      "{video}/{frame}.png", "{video}/{{frame:05d}}{frame:05d}"])
def test_frame_names_are_the_template_s(template):
    abaw = get_benchmark("abaw_au")
    bench = Benchmark("t", abaw.schema, "mean_f1", "frame", ("frame_files",), ("frame_table",),
                      frame_name=template)
    videos = Videos(("v1", "b{r}", "long-video"), (3, 0, 12))
    assert frame_names(videos, bench) == [bench.frame(v, k) for v, n in zip(videos.names, videos.frames)
                                          for k in range(1, n + 1)]


def test_a_submission_in_truth_order_is_read_without_a_second_copy_of_the_names(tmp_path):
    names = [f"img{i}.jpg" for i in range(5)]
    sub = tmp_path / "sub.csv"
    sub.write_text("image,AU1,AU2,AU4\n" + "".join(f"{n},1,0,1\n" for n in names))
    cells = labels._cells(sub, labels._data_rows(sub, 1), True, ["image", "AU1", "AU2", "AU4"], 2, names)
    assert cells.names == names and all(a is b for a, b in zip(cells.names, names))
