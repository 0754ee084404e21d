"""Label files and submissions: read, write, validate.

Two formats, both read into ``(names, labels[N, C])`` in schema column order:

* the challenge text format: ``image_name l1 ... lC`` per line, whitespace
  separated, no header;
* CSV with a header ``image,AU1,...`` (the AU columns in any order).

Labels are 1 present, 0 absent, 999 unknown. A *submission* is a CSV of
0/1 predictions with one row per truth image, in any row order.

Every problem is a one-line :class:`~harness.errors.UserError` naming the
file, the line (1-based, as an editor shows it; the CSV header is line 1)
and the column, and saying what was expected. Valid files take the fast
path (pandas' C parser, vectorized checks); the slower diagnosis of *which*
line is bad only runs once something is known to be wrong. A UTF-8 byte
order mark and CRLF line ends are accepted everywhere.
"""
from __future__ import annotations

import csv
import itertools
import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from harness.errors import UserError
from harness.fileio import atomic_open
from harness.schema import ENC2020, UNKNOWN, AUSchema

IMAGE = "image"
BOM = "\ufeff"
_SNIFF_BYTES = 1 << 16


# ------------------------------------------------------------------ public API
def read_labels(path: str | os.PathLike, schema: AUSchema = ENC2020) -> tuple[list[str], np.ndarray]:
    """Read a truth label file (text or CSV, told apart by content).

    Returns ``(names, labels)``: image names in file order and an int64
    array ``[N, len(schema)]`` of 1/0/999 in schema column order. Refuses an
    empty file, a file without data rows, wrong field counts, values other
    than 0/1/999 and duplicate image names.
    """
    first = _first_line(path)
    if "," in first:
        frame, first_row_line = _read_csv(path, first, schema), 2
    else:
        frame, first_row_line = _read_text(path, schema), 1
    return _validated(path, frame, schema, (0, 1, UNKNOWN), first_row_line)


def write_labels(path: str | os.PathLike, names: Sequence[str], labels: np.ndarray,
                 schema: AUSchema = ENC2020) -> None:
    """Write labels atomically: ``.csv`` as CSV with a header, anything else
    in the challenge text format."""
    labels = np.asarray(labels)
    if labels.shape != (len(names), len(schema)):
        raise ValueError(f"labels of shape {labels.shape} for {len(names)} names "
                         f"and {len(schema)} AUs")
    frame = pd.DataFrame(labels.astype(np.int64), columns=list(schema.aus))
    frame.insert(0, IMAGE, list(names))
    is_csv = Path(path).suffix.lower() == ".csv"
    if not is_csv and frame[IMAGE].str.contains(r"\s").any():
        raise UserError(f"{path}: an image name contains whitespace, which the challenge "
                        f"text format cannot hold; write a .csv instead")
    with atomic_open(path, "w", newline="") as fh:
        frame.to_csv(fh, index=False, header=is_csv, sep="," if is_csv else " ", lineterminator="\n")


def read_submission(path: str | os.PathLike, truth_names: Sequence[str],
                    schema: AUSchema = ENC2020) -> np.ndarray:
    """Validate a submission against the truth's image names; return its
    0/1 predictions as int64 ``[len(truth_names), C]`` in truth row order.

    A file far larger than a submission for this truth could be is refused
    before it is read, and no more than ``len(truth_names) + 1`` rows are
    ever parsed.
    """
    limit = _size_limit(truth_names, schema)
    size = _size(path)
    if size > limit:
        raise UserError(f"{path}: {size:,} bytes, far larger than a submission for "
                        f"{len(truth_names):,} truth images can be (at most {limit:,}); "
                        f"refusing to read it")
    first = _first_line(path)
    if "," not in first:
        raise UserError(f"{path}: line 1: not a CSV header; expected "
                        f"'{_header_hint(schema)}'")
    # Parsed to the end (the size check bounds it): a row after a blank
    # line, or a second row for an image, is refused, never left unread.
    frame = _read_csv(path, first, schema)
    names, preds = _validated(path, frame, schema, (0, 1), first_row_line=2)
    return _align(path, names, preds, truth_names)


# ------------------------------------------------------------------ reading
def _size(path: str | os.PathLike) -> int:
    p = Path(path)
    if not p.exists():
        raise UserError(f"{path}: no such file")
    if not p.is_file():
        raise UserError(f"{path}: not a regular file")
    size = p.stat().st_size
    if size == 0:
        raise UserError(f"{path}: the file is empty")
    return size


def _first_line(path: str | os.PathLike) -> str:
    """The first line, decoded, without BOM or line end; refuses non-text files.

    The whole file is scanned for NUL bytes: the CSV parser would end a
    field at one and silently drop the rest of it.
    """
    _size(path)
    _refuse_nul(path)
    with open(path, "rb") as fh:
        head = fh.read(_SNIFF_BYTES)
    line = re.split(rb"\r\n?|\n", head, maxsplit=1)[0]  # any line end, as pandas reads them
    try:
        text = line.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UserError(f"{path}: line 1: not UTF-8 text") from None
    if not text.strip():
        raise UserError(f"{path}: line 1 is blank; expected a header or a first label row")
    return text


def _refuse_nul(path: str | os.PathLike) -> None:
    lines = 0
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_SNIFF_BYTES), b""):
            at = block.find(b"\x00")
            if at >= 0:
                line = lines + block.count(b"\n", 0, at) + 1
                raise UserError(f"{path}: line {line}: a NUL byte; not a text file")
            lines += block.count(b"\n")


def _header_hint(schema: AUSchema) -> str:
    return ",".join((IMAGE, schema.aus[0], schema.aus[1], "...", schema.aus[-1]))


def _csv_columns(path: str | os.PathLike, first_line: str, schema: AUSchema) -> list[str]:
    """Validate the CSV header: ``image`` and every schema AU exactly once."""
    columns = [c.strip() for c in next(csv.reader([first_line]))]
    allowed = {IMAGE, *schema.aus}
    seen: set[str] = set()
    for number, col in enumerate(columns, start=1):
        if col in seen:
            raise UserError(f"{path}: line 1, column {number}: duplicated column {col!r}")
        if col not in allowed:
            raise UserError(f"{path}: line 1, column {number}: unknown column {col!r}; "
                            f"expected '{_header_hint(schema)}' ({schema.name} AUs)")
        seen.add(col)
    missing = [c for c in (IMAGE, *schema.aus) if c not in seen]
    if missing:
        raise UserError(f"{path}: line 1: missing column{'s' * (len(missing) > 1)} "
                        f"{', '.join(missing)}; expected '{_header_hint(schema)}'")
    return columns


# Parse options shared by both formats: blank lines kept (so DataFrame row i
# is a fixed line of the file), only an empty field is missing ("NA" and
# "NaN" stay text, to be refused as such), names kept as strings. Columns
# are not named at parse time: pandas would silently turn a first row with
# one field too many into an index.
_PARSE = dict(header=None, skip_blank_lines=False, keep_default_na=False, na_values=[""],
              dtype={0: str}, encoding="utf-8-sig", engine="c")
_FIELDS = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


def _read_csv(path: str | os.PathLike, first_line: str, schema: AUSchema,
              as_text: bool = False) -> pd.DataFrame:
    columns = _csv_columns(path, first_line, schema)
    frame = _parse(path, columns, first_row_line=2, as_text=as_text, sep=",", skiprows=1)
    frame[IMAGE] = frame[IMAGE].str.strip()
    return frame


def _read_text(path: str | os.PathLike, schema: AUSchema, as_text: bool = False) -> pd.DataFrame:
    return _parse(path, [IMAGE, *schema.aus], first_row_line=1, as_text=as_text, sep=r"\s+")


def _parse(path: str | os.PathLike, columns: list[str], first_row_line: int,
           as_text: bool = False, **options) -> pd.DataFrame:
    """The table of ``path``; with ``as_text`` every field stays the string the file holds."""
    expected = f"expected {len(columns)} (image + {len(columns) - 1} AUs)"
    parse = {**_PARSE, "dtype": str} if as_text else _PARSE
    try:
        frame = pd.read_csv(path, **parse, **options)
    except pd.errors.EmptyDataError:
        return pd.DataFrame(columns=columns)
    except pd.errors.ParserError as exc:
        found = _FIELDS.search(str(exc))
        if found is None:
            raise UserError(f"{path}: not parseable as a label table: {exc}") from None
        pandas_expected, line, saw = map(int, found.groups())  # file lines, 1-based
        if pandas_expected != len(columns):  # pandas took its count from a bad first row
            line, saw = first_row_line, pandas_expected
        raise UserError(f"{path}: line {line}: {saw} fields, {expected}") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text (byte {exc.start} of a parse block)") from None
    if frame.shape[1] != len(columns):  # the first row sets pandas' field count
        raise UserError(f"{path}: line {first_row_line}: {frame.shape[1]} fields, {expected}")
    frame.columns = columns
    return frame


# --------------------------------------------------------------- validation
def _validated(path: str | os.PathLike, frame: pd.DataFrame, schema: AUSchema,
               allowed: tuple[int, ...], first_row_line: int) -> tuple[list[str], np.ndarray]:
    """Check names and values; return ``(names, labels[N, C])`` in schema order."""
    frame = _drop_trailing_blank_rows(frame)
    if frame.empty:
        raise UserError(f"{path}: no label rows" + (" (header only)" if first_row_line == 2 else ""))
    n_fields = 1 + len(schema)
    names = frame[IMAGE]
    if names.isna().any():
        row = int(np.flatnonzero(names.isna().to_numpy())[0])
        raise UserError(_row_problem(path, row + first_row_line, n_fields, "image name is empty"))
    raw: list[pd.DataFrame] = []  # the file's own spellings, read only if a column needs them
    for au in schema.aus:
        column = frame[au]
        if column.dtype != np.int64:  # floats, booleans, text: judge the spelling, not the number
            if not raw:
                raw.append(_drop_trailing_blank_rows(_reread_as_text(path, first_row_line, schema)))
                frame = frame.copy()
            column = frame[au] = _exact_integers(raw[0][au])
        bad = _bad_values(column, allowed)
        if bad is not None:
            row, value = bad
            what = (f"column {au}: {'empty value' if pd.isna(value) else f'value {str(value)!r}'}, "
                    f"expected {' or '.join(map(str, allowed))}")
            raise UserError(_row_problem(path, row + first_row_line, n_fields, what))
    dup = names.duplicated()
    if dup.any():
        row = int(np.flatnonzero(dup.to_numpy())[0])
        first = int(np.flatnonzero((names == names.iloc[row]).to_numpy())[0])
        raise UserError(f"{path}: line {row + first_row_line}: image {names.iloc[row]!r} "
                        f"repeats line {first + first_row_line}; expected one row per image")
    labels = frame[list(schema.aus)].to_numpy(dtype=np.int64)
    return names.tolist(), labels


def _drop_trailing_blank_rows(frame: pd.DataFrame) -> pd.DataFrame:
    blank = frame.isna().all(axis=1).to_numpy()
    keep = len(blank) - int(np.argmin(blank[::-1])) if not blank.all() else 0
    return frame.iloc[:keep]


# The accepted spellings of a label: a decimal integer, optionally signed, with
# optional leading zeros and an optional fraction of zeros only ("1", "+1",
# "01", "1.0", "999.00"). Anything else, "True", "1e0", "0.99999999999999999999"
# included, is refused even where it would round to a valid value.
_INTEGER = re.compile(r"\s*([+-]?[0-9]+)(?:\.0+)?\s*")


def _reread_as_text(path: str | os.PathLike, first_row_line: int, schema: AUSchema) -> pd.DataFrame:
    if first_row_line == 2:
        return _read_csv(path, _first_line(path), schema, as_text=True)
    return _read_text(path, schema, as_text=True)


def _exact_integers(raw: pd.Series) -> pd.Series:
    """Strings -> their integer value where spelled as one (see ``_INTEGER``),
    else the string itself (so the error can quote it)."""
    parts = raw.str.fullmatch(_INTEGER.pattern)
    ok = parts.fillna(False).to_numpy(dtype=bool)
    values = raw.astype(object).copy()
    values[ok] = raw[ok].str.extract(_INTEGER.pattern, expand=False).map(int)
    return values


def _bad_values(column: pd.Series, allowed: tuple[int, ...]) -> tuple[int, object] | None:
    """``(row, raw value)`` of the first value not in ``allowed``, or None.
    ``column`` holds int64 values, or integers and the refused strings."""
    ok = column.isin(allowed).to_numpy()
    if ok.all():
        return None
    row = int(np.argmin(ok))
    return row, column.iloc[row]


def _row_problem(path: str | os.PathLike, line: int, n_fields: int, what: str) -> str:
    """Describe a bad row; a row with too few fields says so instead of blaming a value."""
    raw = _raw_line(path, line)
    if raw is not None and not raw.strip():
        return f"{path}: line {line}: blank line; expected a label row"
    if raw is not None:
        fields = len(next(csv.reader([raw]))) if "," in raw else len(raw.split())
        if fields < n_fields:
            return (f"{path}: line {line}: {fields} fields, expected {n_fields} "
                    f"(image + {n_fields - 1} AUs)")
    return f"{path}: line {line}, {what}"


def _raw_line(path: str | os.PathLike, line: int) -> str | None:
    """Line ``line`` (1-based) of a text file; only used to explain an error."""
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as fh:
        raw = next(itertools.islice(fh, line - 1, None), None)
    return None if raw is None else raw.rstrip("\r\n")


# ------------------------------------------------------------- submissions
def _size_limit(truth_names: Sequence[str], schema: AUSchema) -> int:
    """Bytes a submission for this truth can reasonably take.

    A row is at most name + C values of up to "1.0" with a separator and a
    space, plus quotes and a CRLF; twice that, plus slack for the header.
    A character takes at most 4 bytes in UTF-8.
    """
    longest = 4 * max(map(len, truth_names), default=0)
    per_row = longest + 2 + 5 * len(schema) + 2
    return 2 * per_row * (len(truth_names) + 1) + (1 << 16)


def _align(path: str | os.PathLike, names: list[str], preds: np.ndarray,
           truth_names: Sequence[str]) -> np.ndarray:
    """Reorder rows to truth order; refuse images not in the truth or missing from it."""
    submitted, truth = pd.Index(names), pd.Index(truth_names)
    where = submitted.get_indexer(truth)
    if len(names) != len(truth_names) or (where < 0).any():
        in_truth = submitted.isin(truth)
        if not in_truth.all():
            row = int(np.argmin(in_truth))
            raise UserError(f"{path}: line {row + 2}: image {names[row]!r} is not in the truth; "
                            f"expected one row per test image")
        missing = [truth_names[i] for i in np.flatnonzero(where < 0)]
        shown = ", ".join(repr(m) for m in missing[:3]) + (", ..." if len(missing) > 3 else "")
        raise UserError(f"{path}: {len(missing):,} truth image{'s' * (len(missing) > 1)} "
                        f"missing from the submission ({shown}); expected one row per test image")
    return preds[where]
