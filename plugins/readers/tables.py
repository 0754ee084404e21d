"""What every reader needs: a tool's table read, numbers checked cell by cell.

Errors name the file, the line (the header is line 1) and the column, and
say what was expected, like the project's own label files.
"""
from __future__ import annotations

import csv
import itertools
import re
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from harness.benchmark import default_benchmark
from harness.errors import UserError
from harness.fileio import check_input_file
from harness.tooloutput import ToolOutput

# Cells a tool writes for "no value": pandas' NaN and an empty field.
_NAN_TEXT = ["", "nan", "NaN", "NAN", "NA", "None"]
# Columns that may name the image of a row, in the order they are looked for.
IMAGE_COLUMNS = ("input", "image", "image_path", "input_image_path", "path", "file", "filename")
FRAME_COLUMNS = ("frame", "frame_idx", "frame_index")


_SOURCE = "auh_table"  # frame.attrs key: (file, separator, header names) of a read table
_CHUNK_ROWS = 20_000  # rows parsed at a time: a wide file's unread columns never all sit in memory


def read_table(path: str | Path, sep: str = ",",
               want: Callable[[str], bool] | None = None) -> pd.DataFrame:
    """A tool's table: header names stripped (OpenFace 2.0 writes ``", "``), numbers as
    float64 (a column with a cell that is not a number stays text, for :func:`numbers`
    to refuse), the image and frame columns as text, and only the columns ``want``
    accepts (OpenFace and py-feat write hundreds of landmark columns). A row with more
    fields than the header is refused; one with fewer has empty cells at its end.

    Row ``i`` of the frame keeps index ``line - 2`` of its file line, so
    messages can name the line; blank lines are dropped.
    """
    path = Path(path)
    names = _header(path, sep)
    keep = [n for n in names if want is None or want(n)]
    try:
        chunks = pd.read_csv(path, sep=sep, header=None, skiprows=1, names=names,
                             skipinitialspace=True, keep_default_na=False, na_values=_NAN_TEXT,
                             dtype={c: str for c in IMAGE_COLUMNS + FRAME_COLUMNS},
                             index_col=False, skip_blank_lines=False, encoding="utf-8-sig",
                             engine="c", chunksize=_CHUNK_ROWS)
        parts = [chunk[keep] for chunk in chunks]
    except pd.errors.EmptyDataError:  # the header and nothing else
        parts = []
    except pd.errors.ParserError as exc:
        found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        if found is None:
            raise UserError(f"{path}: not parseable as a table: {exc}") from None
        expected, number, saw = found.groups()
        raise UserError(f"{path}: line {number}: {saw} fields, expected {expected} as in the "
                        f"header") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text") from None
    frame = pd.concat(parts) if parts else pd.DataFrame(columns=keep, dtype=np.float64)
    for column in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[column]):
            frame[column] = frame[column].str.strip()
    frame = frame.dropna(how="all")
    # Numbers are parsed: a message quotes a refused cell from the file itself (see `cell`).
    frame.attrs[_SOURCE] = (str(path), sep, names)
    return frame


def _header(path: Path, sep: str) -> list[str]:
    """The header's column names, stripped; refuses an empty file and repeated names."""
    check_input_file(path)
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            first = fh.readline()
    except UnicodeDecodeError:
        raise UserError(f"{path}: line 1: not UTF-8 text") from None
    if not first.strip():
        raise UserError(f"{path}: line 1 is empty; expected the tool's header line")
    names = [c.strip() for c in next(csv.reader([first.rstrip("\r\n")], delimiter=sep))]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise UserError(f"{path}: line 1: column {repeated[0]!r} repeated; expected each once")
    return names


def line(frame: pd.DataFrame, row: int) -> int:
    """The file line of positional row ``row``."""
    return int(frame.index[row]) + 2


def cell(frame: pd.DataFrame, column: str, row: int) -> str:
    """A cell as the file has it, quoted, for a message: its text read back from the
    file (a parsed number would misquote ``1.0000001`` as ``1``)."""
    written = _written(frame, column, line(frame, row))
    if written is not None:
        return repr(written)
    value = frame[column].iloc[row]
    return repr(value if isinstance(value, str) else repr(float(value)))


def _written(frame: pd.DataFrame, column: str, number: int) -> str | None:
    """The text of ``column`` on file line ``number`` of the table ``frame`` was read from."""
    source = frame.attrs.get(_SOURCE)
    if source is None or column not in source[2]:
        return None
    path, sep, names = source
    with open(path, encoding="utf-8-sig", newline="") as fh:
        text = next(itertools.islice(fh, number - 1, number), None)
    if text is None:
        return None
    fields = next(csv.reader([text.rstrip("\r\n")], delimiter=sep, skipinitialspace=True), [])
    at = names.index(column)
    return fields[at].strip() if at < len(fields) else ""


def presence(frame: pd.DataFrame, column: str, path: str | Path) -> np.ndarray:
    """A presence column, the tool's own 0/1 decision (empty: no value): any other
    value is refused, the same for every tool."""
    values = numbers(frame, column, path, 0, 1)
    odd = ~np.isnan(values) & (values != 0) & (values != 1)
    if odd.any():
        row = int(np.argmax(odd))
        raise UserError(f"{path}: line {line(frame, row)}, column {column}: value "
                        f"{cell(frame, column, row)}, expected 0 or 1 (a presence column)")
    return values


def where(frame: pd.DataFrame, path: str | Path) -> list[str]:
    return [f"{path}: line {i + 2}" for i in frame.index]


def require(frame: pd.DataFrame, columns: Iterable[str], path: str | Path, expected: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise UserError(f"{path}: line 1: missing column{'s' * (len(missing) > 1)} "
                        f"{', '.join(missing)}; expected {expected}")


def first_column(frame: pd.DataFrame, candidates: Sequence[str]) -> str | None:
    return next((c for c in candidates if c in frame.columns), None)


def numbers(frame: pd.DataFrame, column: str, path: str | Path,
            lo: float = -np.inf, hi: float = np.inf) -> np.ndarray:
    """The column as float64 (empty / ``nan`` cells are NaN); refuses text and values outside [lo, hi]."""
    text = frame[column]
    blank = text.isna().to_numpy()
    values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
    bad = np.isnan(values) & ~blank
    bad |= ~np.isnan(values) & ((values < lo) | (values > hi))
    if bad.any():
        row = int(np.argmax(bad))
        span = f"a number in [{lo:g}, {hi:g}]" if np.isfinite(lo) or np.isfinite(hi) else "a number"
        raise UserError(f"{path}: line {line(frame, row)}, column {column}: value "
                        f"{cell(frame, column, row)}, expected {span}")
    return values


def image_keys(frame: pd.DataFrame, path: str | Path, column: str | None = None) -> list[str]:
    """Per row, the image path the tool wrote (in ``column``; by default the first of
    :data:`IMAGE_COLUMNS` present), else its frame number; an empty cell is refused."""
    column = column or first_column(frame, IMAGE_COLUMNS) or first_column(frame, FRAME_COLUMNS)
    if column is None:
        raise UserError(f"{path}: line 1: no column naming the image; expected one of "
                        f"{', '.join(IMAGE_COLUMNS + FRAME_COLUMNS)}")
    keys = frame[column]
    if keys.isna().any():
        row = int(np.argmax(keys.isna().to_numpy()))
        raise UserError(f"{path}: line {line(frame, row)}, column {column}: empty; expected "
                        f"the image of this row")
    if column in FRAME_COLUMNS:
        numbers(frame, column, path)
    return keys.tolist()


def video_frames(frame: pd.DataFrame, path: str | Path, column: str,
                 videos: Sequence[str]) -> tuple[list[str], list[str], np.ndarray]:
    """``(keys, videos, frames)`` for rows that are frames of ``videos[row]`` (``""``: an
    image row, whose key is left ``""`` for the caller), numbered in ``column``: a video
    row's key is ``VIDEO/FRAME``, the frame number as the tool wrote it."""
    numbers = numbers_of(frame, column, path)
    in_video = np.array([bool(v) for v in videos], dtype=bool)
    missing = in_video & np.isnan(numbers)
    if missing.any():
        row = int(np.argmax(missing))
        raise UserError(f"{path}: line {line(frame, row)}, column {column}: empty; expected the "
                        f"frame number of this row of video {videos[row]!r}")
    keys = [f"{v}/{int(n)}" if v else "" for v, n in zip(videos, numbers)]
    return keys, list(videos), np.where(in_video, numbers, np.nan)


def numbers_of(frame: pd.DataFrame, column: str, path: str | Path) -> np.ndarray:
    """A frame-number column as float64: whole numbers >= 0, empty cells NaN."""
    values = numbers(frame, column, path, 0)
    odd = ~np.isnan(values) & (values != np.round(values))
    if odd.any():
        row = int(np.argmax(odd))
        raise UserError(f"{path}: line {line(frame, row)}, column {column}: value "
                        f"{cell(frame, column, row)}, expected a whole frame number")
    return values


class BenchmarkAUs:
    """What a reader keeps: the AUs of the benchmark it reads for (``aus``, which the
    scorer passes; default: the default benchmark's). A tool's other AUs are left out."""

    def __init__(self, aus: Sequence[str] | None = None) -> None:
        self.aus = tuple(aus) if aus is not None else default_benchmark().aus

    def au_name(self, number: int | str) -> str | None:
        """``"AU12"`` for AU number 12 (``"01"`` works too) if the benchmark has it, else None."""
        name = f"AU{int(number)}"
        return name if name in self.aus else None


def pose(frame: pd.DataFrame, path: str | Path, columns: dict[str, str],
         scale: float = 1.0) -> dict[str, np.ndarray]:
    """``{"yaw" | "pitch" | "roll": degrees}`` from ``{angle: column}``, if the tool wrote them all."""
    if not all(c in frame.columns for c in columns.values()):
        return {}
    return {angle: numbers(frame, col, path) * scale for angle, col in columns.items()}


def empty_rows(frame: pd.DataFrame, path: str | Path, columns: dict[str, np.ndarray]) -> np.ndarray:
    """Rows whose AU values are all empty (a failed detection); refuses a row with only some
    empty (a truncated or damaged line)."""
    if not columns:
        return np.zeros(len(frame), dtype=bool)
    empty = np.column_stack([np.isnan(v) for v in columns.values()])
    partly = empty.any(axis=1) & ~empty.all(axis=1)
    if partly.any():
        row = int(np.argmax(partly))
        column = list(columns)[int(np.argmax(empty[row]))]
        raise UserError(f"{path}: line {line(frame, row)}: the {column} value is empty but other "
                        f"AU values are not; expected every AU value, or none (a failed detection)")
    return empty.all(axis=1)


def concat(parts: Sequence[ToolOutput], source: str, rules: str) -> ToolOutput:
    """One output from several files of the same tool (a folder of per-image CSVs)."""
    def cat(get) -> np.ndarray | None:
        arrays = [get(p) for p in parts]
        return None if any(a is None for a in arrays) else np.concatenate(arrays)

    def columns(kind: str) -> dict[str, np.ndarray]:
        names = set().union(*(getattr(p, kind) for p in parts))
        for p in parts:
            if set(getattr(p, kind)) != names:
                raise UserError(f"{p.source}: AU columns differ from the other files of {source}; "
                                f"expected one tool configuration for every file")
        return {au: np.concatenate([getattr(p, kind)[au] for p in parts]) for au in sorted(names)}

    video = any(p.videos is not None for p in parts)
    return ToolOutput(source=source, keys=[k for p in parts for k in p.keys],
                      where=[w for p in parts for w in p.where], failed=cat(lambda p: p.failed),
                      presence=columns("presence"), intensity=columns("intensity"),
                      probability=columns("probability"), box_area=cat(lambda p: p.box_area),
                      confidence=cat(lambda p: p.confidence), pose=columns("pose"), rules=rules,
                      videos=[v for p in parts for v in (p.videos or [""] * len(p.keys))] if video else None,
                      frames=cat(lambda p: np.full(len(p.keys), np.nan) if p.frames is None else p.frames)
                      if video else None, first_frame=parts[0].first_frame if parts else 0)


def read_csv_output(path: str | Path, tool: str, read_file: Callable[[Path], ToolOutput],
                    rules: str) -> ToolOutput:
    """A tool's output that is one CSV, or a folder of them (read in name order, as one)."""
    path = Path(path)
    files = sorted(path.glob("*.csv")) if path.is_dir() else [path]
    if not files:
        raise UserError(f"{path}: no .csv files in this folder; expected {tool} output")
    return concat([read_file(f) for f in files], str(path), rules)
