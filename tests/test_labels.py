"""Label files and submissions: round trips, and every malformed case one by one."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from harness.errors import UserError
from harness.labels import read_labels, read_submission, write_labels
from harness.schema import ENC2020, AUSchema

TINY = AUSchema("tiny", ("AU1", "AU2", "AU4"))
NAMES = ["a.jpg", "b.jpg", "c.jpg"]
TRUTH = np.array([[1, 0, 999], [0, 0, 1], [999, 1, 0]])
PRED = np.array([[1, 0, 0], [0, 0, 1], [1, 1, 0]])


def write(tmp_path: Path, text: str | bytes, name: str = "f.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def sub(tmp_path: Path, text: str | bytes) -> np.ndarray:
    return read_submission(write(tmp_path, text, "sub.csv"), NAMES, TINY)


# ------------------------------------------------------------ round trips
@pytest.mark.parametrize("suffix", [".txt", ".csv"])
def test_round_trip(tmp_path, suffix):
    rng = np.random.default_rng(0)
    labels = rng.choice([0, 1, 999], size=(50, len(ENC2020)))
    names = [f"N_{i:04d}.jpg" for i in range(50)]
    path = tmp_path / f"labels{suffix}"
    write_labels(path, names, labels)
    got_names, got = read_labels(path)
    assert got_names == names
    np.testing.assert_array_equal(got, labels)
    assert got.dtype == np.int64


def test_text_format_is_the_challenge_format(tmp_path):
    path = tmp_path / "t.txt"
    write_labels(path, NAMES, TRUTH, TINY)
    assert path.read_text() == "a.jpg 1 0 999\nb.jpg 0 0 1\nc.jpg 999 1 0\n"
    csv_path = tmp_path / "t.csv"
    write_labels(csv_path, NAMES, TRUTH, TINY)
    assert csv_path.read_text().splitlines()[0] == "image,AU1,AU2,AU4"


def test_reads_tabs_crlf_bom_and_column_order(tmp_path):
    names, labels = read_labels(write(tmp_path, "\ufeffa.jpg\t1  0 999\r\nb.jpg 0 0 1\r\n"), TINY)
    assert names == ["a.jpg", "b.jpg"] and labels.tolist() == [[1, 0, 999], [0, 0, 1]]
    names, labels = read_labels(write(tmp_path, "\ufeffAU4,image,AU2,AU1\r\n1,a.jpg,0,999\r\n"), TINY)
    assert names == ["a.jpg"] and labels.tolist() == [[999, 0, 1]]


def test_trailing_blank_lines_are_ignored(tmp_path):
    names, _ = read_labels(write(tmp_path, "a.jpg 1 0 1\nb.jpg 0 0 1\n\n\n"), TINY)
    assert names == ["a.jpg", "b.jpg"]


def test_shared_train_labels_if_present():
    shared = Path(os.environ.get("AUH_SHARED", Path(__file__).resolve().parents[2] / "shared"))
    path = shared / "data" / "emotionet2020" / "manual_labels_train.txt"
    if not path.is_file():
        pytest.skip("shared ENC-2020 labels not present")
    names, labels = read_labels(path)
    assert labels.shape == (22592, 23) and names[0] == "N_0000000001_00001.jpg"
    assert set(np.unique(labels)) <= {0, 1, 999}


def test_write_refuses_whitespace_names_in_text(tmp_path):
    with pytest.raises(UserError, match="whitespace"):
        write_labels(tmp_path / "x.txt", ["a b.jpg"], [[0, 1, 0]], TINY)


# --------------------------------------------------------- malformed labels
@pytest.mark.parametrize("text, message", [
    ("", "empty"),
    ("\n", "line 1 is blank"),
    ("image,AU1,AU2,AU4\n", "no label rows (header only)"),
    ("a.jpg 1 0\n", "line 1: 3 fields, expected 4"),
    ("a.jpg 1 0 1\nb.jpg 1 0 1 0\n", "line 2: 5 fields, expected 4"),
    ("a.jpg 1 0 1 1\nb.jpg 1 0 1\n", "line 1: 5 fields, expected 4"),
    ("a.jpg 1 0 2\n", "line 1, column AU4: value '2', expected 0 or 1 or 999"),
    ("a.jpg 1 x 1\n", "line 1, column AU2: value 'x'"),
    ("a.jpg 1 0 1\n\nb.jpg 0 0 0\n", "line 2: blank line"),
    ("a.jpg 1 0 1\nb.jpg 0 0 0\na.jpg 0 0 0\n", "line 3: image 'a.jpg' repeats line 1"),
    ("image,AU1,AU2,AU4\na.jpg,1,,0\n", "line 2, column AU2: empty value"),
    ("image,AU1,AU2,AU4,AU9\na.jpg,1,0,0,1\n", "line 1, column 5: unknown column 'AU9'"),
    ("image,AU1,AU2\na.jpg,1,0\n", "line 1: missing column AU4"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "not a text file"),
    (b"a.jpg 1 0 1\n\xff\xfe 1 0 1\n", "not UTF-8"),
])
def test_malformed_label_files(tmp_path, text, message):
    path = write(tmp_path, text, "labels.txt")
    with pytest.raises(UserError) as err:
        read_labels(path, TINY)
    assert message in str(err.value)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        read_labels(tmp_path / "nope.txt")


# ---------------------------------------------------------- submissions
HEADER = "image,AU1,AU2,AU4\n"
GOOD = HEADER + "c.jpg,1,1,0\na.jpg,1,0,0\nb.jpg,0,0,1\n"


def test_submission_reordered_to_truth(tmp_path):
    np.testing.assert_array_equal(sub(tmp_path, GOOD), PRED)


def test_submission_accepts_bom_and_crlf(tmp_path):
    data = ("\ufeff" + GOOD).replace("\n", "\r\n").encode("utf-8")
    np.testing.assert_array_equal(sub(tmp_path, data), PRED)


@pytest.mark.parametrize("text, message", [
    ("", "the file is empty"),
    (HEADER, "no label rows (header only)"),
    ("a.jpg 1 0 0\nb.jpg 0 0 1\nc.jpg 1 1 0\n", "line 1: not a CSV header"),
    ("image,AU1,AU2\na.jpg,1,0\n", "missing column AU4"),
    ("image,AU1,AU2,AU4,extra\n", "column 5: unknown column 'extra'"),
    ("image,AU1,AU2,AU2,AU4\n", "column 4: duplicated column 'AU2'"),
    (GOOD + "a.jpg,0,0,0\n", "line 5: image 'a.jpg' repeats line 3"),
    (HEADER + "a.jpg,1,0,0\nb.jpg,0,0,1\n", "1 truth image missing from the submission ('c.jpg')"),
    (GOOD.replace("b.jpg", "z.jpg"), "line 4: image 'z.jpg' is not in the truth"),
    (GOOD.replace("c.jpg,1,1,0", "c.jpg,-1,1,0"), "line 2, column AU1: value '-1'"),
    (GOOD.replace("c.jpg,1,1,0", "c.jpg,1,1"), "line 2: 3 fields, expected 4"),
    (GOOD.replace("c.jpg,1,1,0", "c.jpg,1,1,0,1"), "line 2: 5 fields, expected 4"),
    (GOOD.replace("c.jpg,1,1,0", ",1,1,0"), "line 2, image name is empty"),
    (GOOD.replace("a.jpg,1,0,0", "a.jpg,1,0,0,1"), "line 3: 5 fields, expected 4"),
])
def test_malformed_submissions(tmp_path, text, message):
    with pytest.raises(UserError) as err:
        sub(tmp_path, text)
    assert message in str(err.value)


@pytest.mark.parametrize("value, message", [
    ("2", "value '2', expected 0 or 1"), ("0.7", "value '0.7'"), ("NaN", "value 'NaN'"),
    ("", "empty value"), ("yes", "value 'yes'"), ("999", "value '999'"),
])
def test_submission_values_other_than_0_or_1(tmp_path, value, message):
    with pytest.raises(UserError) as err:
        sub(tmp_path, GOOD.replace("c.jpg,1,1,0", f"c.jpg,1,{value},0"))
    assert f"line 2, column AU2: {message}" in str(err.value)
    assert "sub.csv" in str(err.value) and "\n" not in str(err.value)


def test_submission_far_larger_than_truth_is_refused_unread(tmp_path, monkeypatch):
    path = write(tmp_path, GOOD + "x" * 200_000, "sub.csv")
    import harness.labels

    def no_read(*args, **kwargs):
        raise AssertionError("the file was parsed")

    monkeypatch.setattr(harness.labels, "_data_rows", no_read)
    with pytest.raises(UserError, match="far larger than a submission for 3 truth images"):
        read_submission(path, NAMES, TINY)


def test_submission_with_many_extra_rows_stops_early(tmp_path):
    # Under the size limit but with more rows than the truth: only N+1 rows are parsed.
    extra = "".join(f"a.jpg,0,0,{i % 2}\n" for i in range(10))
    with pytest.raises(UserError, match="line 5: image 'a.jpg' repeats line 3"):
        sub(tmp_path, GOOD + extra)


def test_submission_missing_file(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        read_submission(tmp_path / "none.csv", NAMES, TINY)


@pytest.mark.parametrize("value, ok", [("1", True), ("+1", True), ("01", True), ("1.0", True),
                                       (" 1 ", True), ("1e0", False), ("0.99999999999999999999", False),
                                       ("1.", False), ("１", False), ("0x1", False), ("True", False)])
def test_exact_spellings_of_a_label(tmp_path, value, ok):
    text = GOOD.replace("c.jpg,1,1,0", f"c.jpg,1,{value},0")
    if ok:
        assert sub(tmp_path, text).tolist() == PRED.tolist()
    else:
        with pytest.raises(UserError, match=f"line 2, column AU2: value '{value}'"):
            sub(tmp_path, text)


@pytest.mark.parametrize("layout", ["text", "csv", "quoted csv (row by row)"])
def test_a_codings_own_codes_are_read_whatever_they_are(tmp_path, layout):
    """The reader knows no benchmark's codes: a coding of 12 present, 0 absent and -99 unknown
    reads as the in-memory 1/0/999, and 999 (another benchmark's unknown) is refused."""
    from harness import labels as lab
    from harness.schema import Coding

    schema = AUSchema("odd", ("AU1", "AU2"), coding=Coding(present=(12,), absent=(0,), unknown=(-99,)))
    rows = [("a.jpg", "12", "-99"), ("b.jpg", "0", "12"), ("c.jpg", "-99", "0")]
    if layout == "text":
        text, name = "".join(" ".join(r) + "\n" for r in rows), "t.txt"
    else:
        quote = '"' if layout.startswith("quoted") else ""
        text = "image,AU1,AU2\n" + "".join(f"{quote}{r[0]}{quote},{r[1]},{r[2]}\n" for r in rows)
        name = "t.csv"
    path = write(tmp_path, text, name)
    names, got = read_labels(path, schema)
    assert names == ["a.jpg", "b.jpg", "c.jpg"]
    np.testing.assert_array_equal(got, [[1, 999], [0, 1], [999, 0]])
    # each code is read where the cells are cut, not left to the slow path for rare values
    data = lab._data_rows(path, skip=int(layout != "text"))
    cells = lab._cells(path, data, layout != "text", ["image", "AU1", "AU2"], 1,
                       codes=schema.coding.accepted)
    np.testing.assert_array_equal(cells.codes[:, 1:], [[12, -99], [0, 12], [-99, 0]])
    path.write_text(text.replace("-99", "999", 1))
    with pytest.raises(UserError, match=r"value '999', expected 0 or 12 or -99"):
        read_labels(path, schema)
