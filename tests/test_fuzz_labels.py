"""Fuzzing the label and submission parsers (hypothesis, a few seconds).

Whatever the bytes, ``read_labels`` / ``read_submission`` either accept the
file, and then the labels are well formed and scoring works, or raise a
:class:`UserError` whose message is one line naming the file. Any other
exception, or a multi-line message, is a bug.
"""
from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.errors import UserError
from harness.labels import read_labels, read_submission
from harness.schema import AUSchema
from leaderboard.scoring import scorecard

TINY = AUSchema("tiny", ("AU1", "AU2", "AU4"))
NAMES = ["a.jpg", "b.jpg", "c.jpg"]
TRUTH = np.array([[1, 0, 999], [0, 0, 1], [999, 1, 0]])

FUZZ = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])

# Cells near the valid ones: the bugs live at the edges of what is accepted.
VALUES = st.sampled_from(["0", "1", "999", "2", "-1", "1.0", "0.0", "1e0", " 1", "1 ", "x", "", "NaN",
                          "nan", "inf", "+1", "01", "0x1", '"1"', "999.0", "１", "true", "None"])
NAMES_ST = st.sampled_from(NAMES + ["d.jpg", "", " ", "a b.jpg", '"a.jpg"', "é.jpg", "NA", "#x",
                                    "a.jpg,1"])
HEADERS = st.sampled_from(["image,AU1,AU2,AU4", "image,AU4,AU2,AU1", "image,AU1,AU2", "AU1,AU2,AU4",
                           "image,AU1,AU2,AU4,AU9", "image,AU1,AU1,AU4", " image , AU1 ,AU2,AU4",
                           "image;AU1;AU2;AU4", ""])


@st.composite
def tables(draw: st.DrawFn, csv: bool) -> bytes:
    """A label table in either format, mostly well formed, with edits."""
    sep = draw(st.sampled_from([",", ";", "\t"])) if csv else draw(st.sampled_from([" ", "\t", "  ", ","]))
    rows = []
    for _ in range(draw(st.integers(0, 5))):
        cells = [draw(NAMES_ST)] + draw(st.lists(VALUES, min_size=1, max_size=5))
        rows.append(sep.join(cells))
    if draw(st.booleans()):
        rows.insert(draw(st.integers(0, len(rows))), "")  # a blank line somewhere
    lines = ([draw(HEADERS)] if csv else []) + rows
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    text = newline.join(lines) + draw(st.sampled_from(["", newline, newline * 2]))
    data = (draw(st.sampled_from(["", "\ufeff"])) + text).encode("utf-8")
    if draw(st.integers(0, 9)) == 0:  # a damaged byte now and then
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        data = data[:at] + draw(st.sampled_from([b"\x00", b"\xff", b"\x80"])) + data[at + 1:]
    return data


RAW = st.binary(max_size=200) | st.text(max_size=200).map(str.encode)


@contextlib.contextmanager
def in_a_file(data: bytes, name: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="auh-fuzz-") as folder:
        path = Path(folder) / name
        path.write_bytes(data)
        yield path


def _one_line(err: UserError, path: Path) -> None:
    message = str(err)
    assert message and "\n" not in message and "\r" not in message, repr(message)
    assert str(path) in message, message


@FUZZ
@given(data=tables(csv=False) | tables(csv=True) | RAW)
def test_label_files_are_accepted_well_formed_or_refused_in_one_line(data):
    with in_a_file(data, "labels.txt") as path:
        try:
            names, labels = read_labels(path, TINY)
        except UserError as err:
            _one_line(err, path)
            return
    assert labels.dtype == np.int64 and labels.shape == (len(names), len(TINY)) and len(names) > 0
    assert np.isin(labels, (0, 1, 999)).all()
    assert len(set(names)) == len(names) and all(isinstance(n, str) and n for n in names)


@FUZZ
@given(data=tables(csv=True) | RAW)
def test_submissions_are_accepted_and_scored_or_refused_in_one_line(data):
    with in_a_file(data, "sub.csv") as path:
        try:
            pred = read_submission(path, NAMES, TINY)
        except UserError as err:
            _one_line(err, path)
            return
    assert pred.shape == TRUTH.shape and np.isin(pred, (0, 1)).all()
    card = scorecard(pred, TRUTH, TINY.aus, resamples=20, seed=0)
    assert 0.0 <= card["final"] <= 1.0
    assert card["ci95"][0] <= card["ci95"][1]


def test_the_fuzzer_reaches_acceptance():
    """The strategies are not all noise: a well-formed draw is accepted (and scored)."""
    with in_a_file(b"image,AU1,AU2,AU4\nc.jpg,1,1,0\na.jpg,1,0,0\nb.jpg,0,0,1\n", "sub.csv") as path:
        np.testing.assert_array_equal(read_submission(path, NAMES, TINY), [[1, 0, 0], [0, 0, 1], [1, 1, 0]])


def test_old_mac_line_ends_found_by_the_fuzzer(tmp_path):
    """Bare CR line ends once crashed the header check with csv.Error; they are line ends."""
    sub = tmp_path / "sub.csv"
    sub.write_bytes(b"image,AU1,AU2,AU4\rc.jpg,1,1,0\ra.jpg,1,0,0\rb.jpg,0,0,1\r")
    np.testing.assert_array_equal(read_submission(sub, NAMES, TINY), [[1, 0, 0], [0, 0, 1], [1, 1, 0]])
    labels = tmp_path / "labels.txt"
    labels.write_bytes(b"a.jpg 1 0 999\rb.jpg 0 0 1\rc.jpg 999 1 0\r")
    names, values = read_labels(labels, TINY)
    assert names == NAMES and (values == TRUTH).all()


@FUZZ
@given(data=tables(csv=False) | tables(csv=True), is_csv=st.booleans())
def test_vectorized_and_row_by_row_readings_agree(data, is_csv):
    """Where the fast path reads a table, the row-by-row reading finds the same cells."""
    from harness import labels as lab

    columns = ["image", *TINY.aus]
    with in_a_file(data, "t.csv") as path:
        try:
            rows = lab._data_rows(path, skip=0)
        except UserError:
            return
        lines = rows.lines()
        if not lines or lab._spans(rows.data, is_csv, len(columns), len(lines)) is None:
            return
        fast = lab._cells(path, rows, is_csv, columns, 1)
        slow = lab._row_cells(path, lines, is_csv, len(columns), 0, 1)
    assert fast.names == slow.names
    np.testing.assert_array_equal(fast.codes, slow.codes)
    cells = [(r, c) for r in range(len(lines)) for c in range(len(columns))]
    assert [fast.raw(r, c) for r, c in cells] == [slow.raw(r, c) for r, c in cells]
