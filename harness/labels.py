"""Label files and submissions: read, write, validate.

Two formats, both read into ``(names, labels[N, C])`` in schema column order:

* the challenge text format: ``image_name l1 ... lC`` per line, whitespace
  separated, no header;
* CSV with a header ``image,AU1,...`` (the AU columns in any order).

A truth file holds its schema's :class:`~harness.schema.Coding` (ENC-2020's
1 present, 0 absent, 999 unknown), read into the in-memory 1/0/999 and
written back from it. A *submission* is a CSV of 0/1 predictions with one
row per truth image, in any row order. A video benchmark's per-video files
(a header of AU names, one row per frame) are read by :func:`read_frame_rows`.

Every problem is a one-line :class:`~harness.errors.UserError` naming the
file, the line (1-based, as an editor shows it; the CSV header is line 1)
and the column, and saying what was expected. A UTF-8 byte order mark and
CRLF line ends are accepted everywhere.

Only numpy and the standard library are used: the same module is the
scorer packaged into the Codabench and EvalAI bundles (``auh export``).
"""
from __future__ import annotations

import csv
import itertools
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from harness.errors import UserError
from harness.fileio import atomic_open, check_input_file
from harness.schema import AUSchema

IMAGE = "image"
BOM = "\ufeff"
_SNIFF_BYTES = 1 << 16
_GAP = re.compile(r"[ \t]+")  # the text format's field separator
# The accepted spellings of a label: a decimal integer, optionally signed, with
# optional leading zeros and an optional fraction of zeros only ("1", "+1",
# "01", "1.0", "999.00"). Anything else, "True", "1e0", "0.99999999999999999999"
# included, is refused even where it would round to a valid value.
_INTEGER = re.compile(r"\s*([+-]?[0-9]+)(?:\.0+)?\s*")
# A cell of one digit is read by a table lookup; a cell spelling one of the codes
# the caller accepts (a benchmark's 999 or -1) by comparing its bytes; the
# rest go through _INTEGER.
_DIGITS = {str(d): d for d in range(10)}
# Bytes searched at a time for separators: small enough that each block's temporaries
# reuse memory the allocator already holds (16 MB blocks, each in fresh pages, read
# a 325,000-row file 1.6x slower here).
_BLOCK = 1 << 18
_NAMES_AT_ONCE = 1 << 16  # rows whose names are cut at a time
_NOT_A_NUMBER = -32768  # no label code: codes are in [-32767, 32767]
# The value of a one-byte cell, by byte: the digits; _NOT_A_NUMBER for every other byte.
_ONE_BYTE = np.full(256, _NOT_A_NUMBER, dtype=np.int16)
_ONE_BYTE[ord("0"):ord("9") + 1] = np.arange(10)
# The text format's gaps between fields, by byte: space, tab, line end.
_IS_GAP = np.zeros(256, dtype=bool)
_IS_GAP[[ord(" "), ord("\t"), ord("\n")]] = True
# The bytes that end a field, by byte: [text format, CSV].
_ENDS_CELL = np.zeros((2, 256), dtype=bool)
_ENDS_CELL[0] = _IS_GAP
_ENDS_CELL[1, [ord(","), ord("\n")]] = True


# ------------------------------------------------------------------ public API
def default_schema() -> AUSchema:
    """The default benchmark's schema, for callers that name none."""
    from harness.benchmark import default_benchmark

    return default_benchmark().schema


def read_labels(path: str | os.PathLike, schema: AUSchema | None = None,
                image_column: str = IMAGE) -> tuple[list[str], np.ndarray]:
    """Read a truth label file (text or CSV, told apart by content).

    Returns ``(names, labels)``: image names in file order and an int64
    array ``[N, len(schema)]`` of the in-memory 1/0/999 in schema column
    order. Refuses an empty file, a file without data rows, wrong field
    counts, values other than the schema's codes and duplicate image names.
    ``image_column`` names a CSV's name column.
    """
    schema = schema or default_schema()
    first = _first_line(path)
    is_csv = "," in first
    columns = _csv_columns(path, first, schema, image_column) if is_csv else [IMAGE, *schema.aus]
    names, codes = _validated(path, _data_rows(path, skip=int(is_csv)), is_csv, columns, schema,
                              schema.coding.accepted,
                              first_row_line=1 + is_csv)
    return names, schema.coding.to_memory(codes)  # int64


def read_frame_rows(path: str | os.PathLike, schema: AUSchema, allowed: tuple[int, ...],
                    dtype: type = np.int64) -> np.ndarray:
    """One video's rows: the header exactly ``AU1,AU2,...`` (the schema's AUs),
    then one row of values in ``allowed`` per frame. Returns the values as
    ``dtype`` (int64 unless told: int16 holds every code) ``[frames, len(schema)]``, uncoded."""
    header = ",".join(schema.aus)
    first = _first_line(path)
    if first.strip() != header:
        raise UserError(f"{path}: line 1: header {first.strip()!r}, expected exactly {header!r}")
    rows = _data_rows(path, skip=1)
    if not rows.count:
        raise UserError(f"{path}: no frame rows (header only)")
    cells = _cells(path, rows, True, list(schema.aus), first_row_line=2, codes=allowed)
    return _values(path, cells, list(schema.aus), allowed, first_row_line=2).astype(dtype)


def write_labels(path: str | os.PathLike, names: Sequence[str], labels: np.ndarray,
                 schema: AUSchema | None = None, image_column: str = IMAGE) -> None:
    """Write truth labels (in-memory 1/0/999) atomically in the schema's coding:
    ``.csv`` as CSV with a header, anything else in the challenge text format."""
    schema = schema or default_schema()
    write_predictions(path, names, schema.coding.to_file(np.asarray(labels)), schema, image_column)


def write_predictions(path: str | os.PathLike, names: Sequence[str], labels: np.ndarray,
                      schema: AUSchema | None = None, image_column: str = IMAGE,
                      as_csv: bool | None = None) -> None:
    """Write values as they are (a submission's 0/1) atomically, as :func:`write_labels`
    lays them out (``as_csv``: a CSV with a header whatever the suffix); a CSV's
    name column is ``image_column``."""
    schema = schema or default_schema()
    labels = np.asarray(labels)
    if labels.shape != (len(names), len(schema)):
        raise ValueError(f"labels of shape {labels.shape} for {len(names)} names "
                         f"and {len(schema)} AUs")
    is_csv = Path(path).suffix.lower() == ".csv" if as_csv is None else as_csv
    if not is_csv and any(re.search(r"\s", name) for name in names):
        raise UserError(f"{path}: an image name contains whitespace, which the challenge "
                        f"text format cannot hold; write a .csv instead")
    with atomic_open(path, "w", newline="") as fh:
        writer = csv.writer(fh, delimiter="," if is_csv else " ", lineterminator="\n")
        if is_csv:
            fh.write(submission_header(schema, image_column) + "\n")
        writer.writerows([name, *values] for name, values in
                         zip(names, labels.astype(np.int64).tolist()))


def read_submission(path: str | os.PathLike, truth_names: Sequence[str],
                    schema: AUSchema | None = None, image_column: str = IMAGE) -> np.ndarray:
    """Validate a submission against the truth's image names; return its
    0/1 predictions as int64 ``[len(truth_names), C]`` in truth row order.

    ``image_column`` names the CSV's name column. A file far larger than a
    submission for this truth could be is refused before it is read.
    """
    schema = schema or default_schema()
    limit = _size_limit(truth_names, schema)
    size = _size(path)
    if size > limit:
        raise UserError(f"{path}: {size:,} bytes, far larger than a submission for "
                        f"{len(truth_names):,} truth images can be (at most {limit:,}); "
                        f"refusing to read it")
    first = _first_line(path)
    if "," not in first:
        raise UserError(f"{path}: line 1: not a CSV header; expected "
                        f"'{_header_hint(schema, image_column)}'")
    columns = _csv_columns(path, first, schema, image_column)
    # Read to the end (the size check bounds it): a row after a blank line,
    # or a second row for an image, is refused, never left unread.
    names, preds = _validated(path, _data_rows(path, skip=1), True, columns, schema, (0, 1),
                              first_row_line=2, unique=False, expected=truth_names)  # _align refuses a repeated name where it matters
    return _align(path, names, preds, truth_names).astype(np.int64)


def submission_header(schema: AUSchema | None = None, image_column: str = IMAGE) -> str:
    """The header line a submission starts with: ``image,AU1,...``."""
    return ",".join((image_column, *(schema or default_schema()).aus))


# ------------------------------------------------------------------ reading
def _size(path: str | os.PathLike) -> int:
    size = check_input_file(path).stat().st_size
    if size == 0:
        raise UserError(f"{path}: the file is empty")
    return size


def _first_line(path: str | os.PathLike) -> str:
    """The first line, decoded, without BOM or line end; refuses non-text files.

    The whole file is scanned for NUL bytes: no text file holds one.
    """
    _size(path)
    _refuse_nul(path)
    with open(path, "rb") as fh:
        head = fh.read(_SNIFF_BYTES)
    line = re.split(rb"\r\n?|\n", head, maxsplit=1)[0]
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


def _header_hint(schema: AUSchema, image_column: str = IMAGE) -> str:
    return ",".join((image_column, schema.aus[0], schema.aus[1], "...", schema.aus[-1]))


def _csv_columns(path: str | os.PathLike, first_line: str, schema: AUSchema,
                 image_column: str = IMAGE) -> list[str]:
    """Validate the CSV header: ``image_column`` and every schema AU exactly once.
    The name column is returned as :data:`IMAGE`, whatever its name in the file."""
    columns = [c.strip() for c in next(csv.reader([first_line]))]
    allowed = {image_column, *schema.aus}
    seen: set[str] = set()
    for number, col in enumerate(columns, start=1):
        if col in seen:
            raise UserError(f"{path}: line 1, column {number}: duplicated column {col!r}")
        if col not in allowed:
            raise UserError(f"{path}: line 1, column {number}: unknown column {col!r}; "
                            f"expected '{_header_hint(schema, image_column)}' ({schema.name} AUs)")
        seen.add(col)
    missing = [c for c in (image_column, *schema.aus) if c not in seen]
    if missing:
        raise UserError(f"{path}: line 1: missing column{'s' * (len(missing) > 1)} "
                        f"{', '.join(missing)}; expected '{_header_hint(schema, image_column)}'")
    return [IMAGE if c == image_column else c for c in columns]


@dataclass(frozen=True)
class _Cells:
    """A table whose every row has one field per column.

    ``codes[r, c]`` is the value of a cell holding one digit or one of the codes
    the reading was told of, and :data:`_NOT_A_NUMBER` for any other cell; ``raw(r, c)``
    is the cell's text, read only for the rare other values and for messages.
    """

    names: list[str]
    codes: np.ndarray
    raw: Callable[[int, int], str]


@dataclass(frozen=True)
class _Rows:
    """The data rows of a file: ``data`` holds ``count`` lines, each ended by ``\\n``."""

    data: bytes
    count: int

    def lines(self) -> list[bytes]:
        return self.data.split(b"\n")[:-1]


def _data_rows(path: str | os.PathLike, skip: int) -> _Rows:
    """The file's lines after ``skip`` header lines, as UTF-8 bytes without
    BOM or trailing blank lines, with ``\\n`` line ends."""
    data = Path(path).read_bytes()
    try:
        if not data.isascii():  # ASCII is UTF-8: no decoded copy of a 100 MB file to check it
            data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise UserError(f"{path}: line {line}: not UTF-8 text (byte {exc.start})") from None
    bom = BOM.encode()
    data = (data[len(bom):] if data.startswith(bom) else data).replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    for _ in range(skip):
        data = data[data.find(b"\n") + 1:] if b"\n" in data else b""
    # Cut after the last line that is not blank (that line keeps its trailing spaces).
    last = len(data.rstrip())
    if not last:
        return _Rows(b"", 0)
    end = data.find(b"\n", last)
    data = data + b"\n" if end < 0 else data[:end + 1]  # one copy at most: files reach 100 MB
    return _Rows(data, data.count(b"\n"))


def _cells(path: str | os.PathLike, rows: _Rows, is_csv: bool, columns: list[str],
           first_row_line: int, expected: Sequence[str] = (), codes: Sequence[int] = ()) -> _Cells:
    """Tokenize: vectorized over the bytes when every row is regular (and, in
    a CSV, nothing is quoted), else row by row, which also explains a bad row.
    Without an :data:`IMAGE` column (a video's frame rows) ``names`` is empty.
    Where the names are ``expected``'s, in order, ``names`` holds those very strings.
    ``codes``: the values the caller accepts, read as fast as a digit is."""
    width = len(columns)
    image = columns.index(IMAGE) if IMAGE in columns else None
    data = rows.data
    spans = _spans(data, is_csv, width, rows.count)
    if spans is None:
        return _row_cells(path, rows.lines(), is_csv, width, image, first_row_line, codes)
    starts, line_ends = spans
    text = data.decode("ascii") if data.isascii() else None  # then byte offsets index it

    def cut(a: int, b: int) -> str:
        cell = text[a:b] if text is not None else data[a:b].decode()
        return cell if is_csv else cell.rstrip(" \t")  # the gap before the next field

    def raw(r: int, c: int) -> str:
        # Field c ends a byte before field c + 1 starts (at its separator), or at the line end.
        return cut(int(starts[r, c]), int(starts[r, c + 1]) - 1 if c + 1 < width else int(line_ends[r]))

    if image is None:
        return _Cells([], _codes(data, starts, is_csv, codes), raw)
    ends = starts[:, image + 1] - 1 if image + 1 < width else line_ends
    names: list[str] = []
    for at in range(0, len(ends), _NAMES_AT_ONCE):  # bounded lists of offsets: millions of rows
        bounds = zip(starts[at:at + _NAMES_AT_ONCE, image].tolist(), ends[at:at + _NAMES_AT_ONCE].tolist())
        cut_names = [text[a:b] for a, b in bounds] if text is not None else [data[a:b].decode() for a, b in bounds]
        cut_names = [n.strip() for n in cut_names] if is_csv else [n.rstrip(" \t") for n in cut_names]
        known = expected[at:at + len(cut_names)]
        names += known if cut_names == known else cut_names  # the expected strings: no second copy
    return _Cells(names, _codes(data, starts, is_csv, codes), raw)


def _codes(data: bytes, starts: np.ndarray, is_csv: bool, codes: Sequence[int]) -> np.ndarray:
    """:attr:`_Cells.codes` from the field starts, by looking at a field's first bytes.

    Small dtypes and views, no index arithmetic on the ``[N, width]`` array:
    new large arrays cost more in page faults than in arithmetic.
    """
    buf = np.frombuffer(data, dtype=np.uint8)  # ends with a line end: a field's next byte exists
    ends_cell = _ENDS_CELL[int(is_csv)]
    first = buf[starts]
    values = np.where(ends_cell[buf[1:][starts]], _ONE_BYTE[first], _NOT_A_NUMBER)

    def byte(at: np.ndarray) -> np.ndarray:  # past the end: the final line end (no copy to pad)
        return buf[np.minimum(at, len(buf) - 1)]

    for code, spelled in _spelled(codes):
        maybe = np.flatnonzero(first == spelled[0])  # the few cells that may hold it
        at = starts.flat[maybe]
        same = ends_cell[byte(at + len(spelled))]
        for k in range(1, len(spelled)):
            same &= byte(at + k) == spelled[k]
        values.flat[maybe[same]] = code
    return values


def _spelled(codes: Sequence[int]) -> list[tuple[int, bytes]]:
    """The codes a digit's lookup does not read, with their usual spelling."""
    return [(code, str(code).encode()) for code in codes if not 0 <= code <= 9]


def _spans(data: bytes, is_csv: bool, width: int, n_rows: int) -> tuple[np.ndarray, np.ndarray] | None:
    """``(starts, line_ends)``: the byte offset ``[n_rows, width]`` where each
    field starts and ``[n_rows]`` where each line ends; None unless each line
    has exactly ``width`` fields (and no CSV quote)."""
    if is_csv and b'"' in data:
        return None
    buf = np.frombuffer(data, dtype=np.uint8)
    line_ends = _positions(buf, b"\n")
    if is_csv:  # fields lie between commas; "a,,b" has an empty one
        seps = _positions(buf, b",")
        if (np.diff(np.searchsorted(seps, line_ends), prepend=0) != width - 1).any():
            return None
        starts = np.empty((n_rows, width), dtype=_offset_dtype(data))
        starts[:, 0] = np.r_[0, line_ends[:-1] + 1]
        np.add(seps.reshape(n_rows, width - 1), 1, out=starts[:, 1:])
        return starts, line_ends
    gap = _IS_GAP[np.frombuffer(b"\n" + data, dtype=np.uint8)]  # gap[i]: is byte i - 1 a gap
    starts = np.flatnonzero(gap[:-1] & ~gap[1:])  # a field starts after a gap
    if (np.diff(np.searchsorted(starts, line_ends), prepend=0) != width).any():
        return None
    return starts.astype(_offset_dtype(data)).reshape(n_rows, width), line_ends


def _positions(buf: np.ndarray, byte: bytes) -> np.ndarray:
    """The offsets of ``byte`` in ``buf``, found a block at a time: no file-sized
    temporary, and :func:`_offset_dtype` offsets (a 3-million-row file has 36 million commas)."""
    dtype, value = _offset_dtype(buf), ord(byte)
    found = [np.flatnonzero(buf[at:at + _BLOCK] == value).astype(dtype) + at
             for at in range(0, len(buf), _BLOCK)]
    return np.concatenate(found) if found else np.empty(0, dtype=dtype)


def _offset_dtype(data: bytes | np.ndarray) -> type:
    """int32 byte offsets where they fit: half the memory of the ``[N, width]`` table."""
    return np.int32 if len(data) < 2 ** 31 - 8 else np.int64


def _row_cells(path: str | os.PathLike, lines: list[bytes], is_csv: bool, width: int,
               image: int | None, first_row_line: int, codes: Sequence[int] = ()) -> _Cells:
    """The row-by-row reading of :func:`_cells` (the same fields on regular
    rows), refusing the first row whose field count is wrong."""
    text = [line.decode() for line in lines]
    if is_csv:
        try:
            # strict: an unbalanced quote is an error, not a field running into the next line
            rows = list(csv.reader(text, strict=True))
        except csv.Error as exc:
            raise UserError(f"{path}: not parseable as CSV: {exc}") from None
        if len(rows) != len(text):  # a quoted field spanned lines: row i is no longer line i
            raise UserError(f"{path}: a quoted field holds a line break; expected one row per line")
    else:
        rows = [_GAP.split(line.strip(" \t")) if line.strip(" \t") else [] for line in text]
    bad = next((i for i, row in enumerate(rows) if len(row) != width), None)
    if bad is not None:
        raise UserError(_field_count_problem(path, rows[bad], bad + first_row_line, width,
                                             has_image=image is not None))
    known = {**_DIGITS, **{spelled.decode(): code for code, spelled in _spelled(codes)}}
    values = np.fromiter(map(known.get, itertools.chain.from_iterable(rows), itertools.repeat(_NOT_A_NUMBER)),
                         dtype=np.int16, count=len(rows) * width).reshape(len(rows), width)
    names = [] if image is None else [row[image].strip() for row in rows]
    return _Cells(names, values, lambda r, c: rows[r][c])


# --------------------------------------------------------------- validation
def _validated(path: str | os.PathLike, rows: _Rows, is_csv: bool, columns: list[str],
               schema: AUSchema, allowed: tuple[int, ...], first_row_line: int,
               unique: bool = True, expected: Sequence[str] = ()) -> tuple[list[str], np.ndarray]:
    """Check field counts, names, values and (``unique``) that no name repeats;
    return ``(names, labels[N, C])``, int16 in schema order (see :func:`_cells` for ``expected``)."""
    if not rows.count:
        raise UserError(f"{path}: no label rows" + (" (header only)" if first_row_line == 2 else ""))
    cells = _cells(path, rows, is_csv, columns, first_row_line, expected, allowed)
    del rows  # the file's bytes go with the cells, once the values are checked
    names = cells.names
    if not all(names):
        row = names.index("")
        raise UserError(f"{path}: line {row + first_row_line}, image name is empty")
    values = _values(path, cells, columns, allowed, first_row_line)
    del cells
    if unique:
        _check_unique(path, names, first_row_line)
    order = [columns.index(au) for au in schema.aus]
    return names, values[:, order]  # int16: callers make int64 once, after any reordering


def _field_count_problem(path: str | os.PathLike, row: list[str], line: int, width: int,
                         has_image: bool = True) -> str:
    if not any(field.strip() for field in row):
        return f"{path}: line {line}: blank line; expected a label row"
    fields = f"image + {width - 1} AUs" if has_image else f"{width} AUs"
    return f"{path}: line {line}: {len(row)} fields, expected {width} ({fields})"


def _values(path: str | os.PathLike, cells: _Cells, columns: list[str],
            allowed: tuple[int, ...], first_row_line: int) -> np.ndarray:
    """``[N, len(columns)]`` int64 of every cell (the image column is garbage);
    refuses the first cell, in file order, that is not a number in ``allowed``."""
    values = cells.codes
    is_value = np.array([col != IMAGE for col in columns])
    for r, c in zip(*np.nonzero((values == _NOT_A_NUMBER) & is_value)):
        value = _number(cells.raw(r, c))
        values[r, c] = value if value in allowed else _NOT_A_NUMBER  # int16: keep it small
    ok = ~is_value | np.logical_or.reduce([values == v for v in allowed])  # not np.isin: ~10x faster
    if not ok.all():
        r, c = np.argwhere(~ok)[0]
        raw = cells.raw(r, c)
        what = "empty value" if not raw.strip() else f"value {raw!r}"
        raise UserError(f"{path}: line {r + first_row_line}, column {columns[c]}: {what}, "
                        f"expected {' or '.join(map(str, allowed))}")
    return values


def _number(text: str) -> int:
    """The integer ``text`` spells (see ``_INTEGER``), else -1."""
    found = _INTEGER.fullmatch(text)
    return int(found.group(1)) if found else _NOT_A_NUMBER


def _check_unique(path: str | os.PathLike, names: list[str], first_row_line: int) -> None:
    if len(set(names)) == len(names):
        return
    first_seen: dict[str, int] = {}
    for row, name in enumerate(names):
        if name in first_seen:
            raise UserError(f"{path}: line {row + first_row_line}: image {name!r} repeats line "
                            f"{first_seen[name] + first_row_line}; expected one row per image")
        first_seen[name] = row


# ------------------------------------------------------------- submissions
class MissingRows(UserError):
    """A submission lacks truth rows: ``missing`` names them, in truth order."""

    def __init__(self, missing: list[str], message: str) -> None:
        super().__init__(message)
        self.missing = missing


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
    """Reorder rows to truth order; refuse a repeated image, images not in the
    truth or missing from it (in that order)."""
    if names == list(truth_names):  # rows in truth order, which a truth's names never repeat
        return preds
    _check_unique(path, names, first_row_line=2)
    row_of = {name: row for row, name in enumerate(names)}
    where = np.fromiter(map(row_of.get, truth_names, itertools.repeat(-1)), dtype=np.int64,
                        count=len(truth_names))
    if len(names) != len(truth_names) or (where < 0).any():
        truth = set(truth_names)
        stranger = next((row for row, name in enumerate(names) if name not in truth), None)
        if stranger is not None:
            raise UserError(f"{path}: line {stranger + 2}: image {names[stranger]!r} is not in "
                            f"the truth; expected one row per test image")
        missing = [truth_names[i] for i in np.flatnonzero(where < 0)]
        shown = ", ".join(repr(m) for m in missing[:3]) + (", ..." if len(missing) > 3 else "")
        raise MissingRows(missing, f"{path}: {len(missing):,} truth image{'s' * (len(missing) > 1)} "
                        f"missing from the submission ({shown}); expected one row per test image")
    return preds[where]
