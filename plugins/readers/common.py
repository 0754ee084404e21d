"""What every reader needs: a tool's table read as text, numbers checked cell by cell.

Errors name the file, the line (the header is line 1) and the column, and
say what was expected, like the project's own label files.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from harness.errors import UserError
from harness.schema import ENC2020
from harness.tooloutput import ToolOutput

# Cells a tool writes for "no value": pandas' NaN and an empty field.
_NAN_TEXT = ("", "nan", "NaN", "NAN", "NA", "None")
# Columns that may name the image of a row, in the order they are looked for.
IMAGE_COLUMNS = ("input", "image", "image_path", "path", "file", "filename")
FRAME_COLUMNS = ("frame", "frame_idx", "frame_index")


def read_table(path: str | Path, sep: str = ",") -> pd.DataFrame:
    """Every cell as a stripped string; header names stripped (OpenFace 2 writes ``", "``).

    Row ``i`` of the frame keeps index ``line - 2`` of its file line, so
    messages can name the line; blank lines are dropped.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        frame = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, index_col=False,
                            skip_blank_lines=False, encoding="utf-8-sig", engine="c")
    except pd.errors.EmptyDataError:
        raise UserError(f"{path}: the file is empty; expected a header line") from None
    except pd.errors.ParserError as exc:
        found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        if found is None:
            raise UserError(f"{path}: not parseable as a table: {exc}") from None
        want, line, saw = found.groups()
        raise UserError(f"{path}: line {line}: {saw} fields, expected {want} as in the header") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    frame = frame.apply(lambda col: col.str.strip())
    return frame[(frame != "").any(axis=1)]


def line(frame: pd.DataFrame, row: int) -> int:
    """The file line of positional row ``row``."""
    return int(frame.index[row]) + 2


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
    blank = text.isin(_NAN_TEXT).to_numpy()
    values = pd.to_numeric(text.where(~blank), errors="coerce").to_numpy(dtype=np.float64)
    bad = np.isnan(values) & ~blank
    bad |= ~np.isnan(values) & ((values < lo) | (values > hi))
    if bad.any():
        row = int(np.argmax(bad))
        span = f"a number in [{lo:g}, {hi:g}]" if np.isfinite(lo) or np.isfinite(hi) else "a number"
        raise UserError(f"{path}: line {line(frame, row)}, column {column}: value "
                        f"{text.iloc[row]!r}, expected {span}")
    return values


def image_keys(frame: pd.DataFrame, path: str | Path) -> list[str]:
    """Per row, the image path the tool wrote, else its frame number."""
    column = first_column(frame, IMAGE_COLUMNS) or first_column(frame, FRAME_COLUMNS)
    if column is None:
        raise UserError(f"{path}: line 1: no column naming the image; expected one of "
                        f"{', '.join(IMAGE_COLUMNS + FRAME_COLUMNS)}")
    keys = frame[column]
    if (keys == "").any():
        row = int(np.argmax((keys == "").to_numpy()))
        raise UserError(f"{path}: line {line(frame, row)}, column {column}: empty; expected "
                        f"the image of this row")
    if column in FRAME_COLUMNS:
        numbers(frame, column, path)
    return keys.tolist()


def enc_au(number: int | str) -> str | None:
    """``"AU12"`` for AU number 12 (``"01"`` works too) if ENC-2020 has it, else None."""
    name = f"AU{int(number)}"
    return name if name in ENC2020.aus else None


def pose(frame: pd.DataFrame, path: str | Path, columns: dict[str, str],
         scale: float = 1.0) -> dict[str, np.ndarray]:
    """``{"yaw" | "pitch" | "roll": degrees}`` from ``{angle: column}``, if the tool wrote them all."""
    if not all(c in frame.columns for c in columns.values()):
        return {}
    return {angle: numbers(frame, col, path) * scale for angle, col in columns.items()}


def any_nan(columns: dict[str, np.ndarray], n: int) -> np.ndarray:
    """Rows where some AU value is missing."""
    out = np.zeros(n, dtype=bool)
    for values in columns.values():
        out |= np.isnan(values)
    return out


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

    return ToolOutput(source=source, keys=[k for p in parts for k in p.keys],
                      where=[w for p in parts for w in p.where], failed=cat(lambda p: p.failed),
                      presence=columns("presence"), intensity=columns("intensity"),
                      probability=columns("probability"), box_area=cat(lambda p: p.box_area),
                      confidence=cat(lambda p: p.confidence), pose=columns("pose"), rules=rules)
