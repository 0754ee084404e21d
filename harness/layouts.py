"""The truth and submission layouts a benchmark declares, read and written.

* ``labels`` (truth) and ``csv`` (submission): one file, one row per image
  (:mod:`harness.labels`).
* ``frame_files``: a folder of one ``VIDEO.txt`` per video, the header
  exactly the AU names (``AU1,AU2,...``), then one row per frame in frame
  order; a truth holds the benchmark's codes (unknown ones included), a
  submission 0/1. Frame ``k`` (from 1) of video ``V`` is the row named
  ``benchmark.frame(V, k)``.
* ``frame_table``: one file, the header exactly ``image_location,AU1,...``
  (the benchmark's name column), one row per frame ``V/00001.jpg,0,1,...``.

Every problem is one line naming the file (the video's file for per-video
files), the line and the AU. Only numpy and the standard library: the
scorer packaged by ``auh export`` reads submissions with this module.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from harness.benchmark import Benchmark
from harness.errors import UserError
from harness.labels import (MissingRows, read_frame_rows, read_labels, read_submission, submission_header,
                            write_labels, write_predictions)

SUFFIX = ".txt"
_PREDICTIONS = (0, 1)
_FRAME_FIELD = "{frame:05d}"  # the frame number in the usual frame_name template


@dataclass(frozen=True)
class Videos:
    """The videos of a frame-level truth, in row order: ``names[i]`` has ``frames[i]`` rows."""

    names: tuple[str, ...]
    frames: tuple[int, ...]

    def group_of_rows(self) -> np.ndarray:
        """``[N]`` int64: the video index of each row (the bootstrap's group)."""
        return np.repeat(np.arange(len(self.names)), self.frames)

    def video_of(self, row: int) -> str:
        return self.names[int(np.searchsorted(np.cumsum(self.frames), row, side="right"))]


@dataclass(frozen=True)
class Table:
    """A truth read in a benchmark's layout: row names, in-memory 1/0/999 labels and,
    for frame-level truth, its videos."""

    names: list[str]
    labels: np.ndarray
    videos: Videos | None = None


def read_truth(path: str | os.PathLike, benchmark: Benchmark, videos: Videos | None = None) -> Table:
    """A truth file (``labels``) or folder (``frame_files``), as the benchmark declares.

    With ``videos``, a frame-level truth packaged as one table (``auh export``):
    a CSV whose name column is the benchmark's, one row per frame of those videos."""
    path = Path(path)
    if path.is_dir():
        if "frame_files" not in benchmark.truth_layouts:
            raise UserError(f"{path}: a folder; benchmark {benchmark.name!r} expects a truth label file")
        return _read_frame_truth(path, benchmark)
    if videos is not None:
        names, labels = read_labels(path, benchmark.schema, benchmark.image_column)
        if names != frame_names(videos, benchmark):
            raise UserError(f"{path}: its rows are not the frames of the bundle's videos, in order")
        return Table(names, labels, videos)
    if "labels" not in benchmark.truth_layouts:
        what = "no such folder" if not path.exists() else "not a folder"
        raise UserError(f"{path}: {what}; benchmark {benchmark.name!r} expects a folder of "
                        f"per-video {SUFFIX} annotation files")
    names, labels = read_labels(path, benchmark.schema)
    return Table(names, labels)


def read_predictions(path: str | os.PathLike, truth: Table, benchmark: Benchmark) -> np.ndarray:
    """Validate a submission against the truth; its 0/1 as int64 ``[N, C]`` in truth row order.

    A folder is read as per-video files, a file as the benchmark's table
    (``frame_table``: the header exactly; ``csv``: columns in any order)."""
    path = Path(path)
    if path.is_dir():
        if "frame_files" not in benchmark.submission_layouts or truth.videos is None:
            raise UserError(f"{path}: a folder; expected a submission file "
                            f"('{submission_header(benchmark.schema, benchmark.image_column)}')")
        return _read_frame_predictions(path, truth.videos, benchmark)
    if "frame_table" in benchmark.submission_layouts and path.is_file():
        _check_exact_header(path, submission_header(benchmark.schema, benchmark.image_column))
    try:
        return read_submission(path, truth.names, benchmark.schema, benchmark.image_column)
    except MissingRows as exc:
        raise UserError(_name_the_video(exc, truth)) from None


def write_submission(path: str | os.PathLike, names: Sequence[str], pred: np.ndarray,
                     benchmark: Benchmark, videos: Videos | None = None) -> None:
    """Write 0/1 predictions: per-video files when ``path`` has no suffix and the
    benchmark reads them (``videos`` given), else one CSV with the header and the name
    column, whatever the file's name ends in: the one form `auh check` and `auh score`
    read a submission file in."""
    path = Path(path)
    if not path.suffix and videos is not None and "frame_files" in benchmark.submission_layouts:
        _write_frame_files(path, videos, pred, benchmark)
        return
    write_predictions(path, names, pred, benchmark.schema, benchmark.image_column, as_csv=True)


def write_truth_table(path: str | os.PathLike, truth: Table, benchmark: Benchmark) -> None:
    """A truth as one CSV in the benchmark's coding (a frame-level truth's name
    column is the benchmark's), as :func:`read_truth` reads it back with its videos."""
    column = benchmark.image_column if truth.videos is not None else "image"
    write_labels(path, truth.names, truth.labels, benchmark.schema, column)


def write_truth_files(folder: str | os.PathLike, truth: Table, benchmark: Benchmark) -> None:
    """A frame-level truth as one file per video, in the benchmark's coding."""
    assert truth.videos is not None
    _write_frame_files(Path(folder), truth.videos, benchmark.coding.to_file(truth.labels), benchmark)


def frame_names(videos: Videos, benchmark: Benchmark) -> list[str]:
    """The row names of every frame of ``videos``, in order."""
    every = list(zip(videos.names, videos.frames))
    fast = _usual_frame_names(every, benchmark)
    if fast is not None:
        return fast
    return [benchmark.frame(video, k) for video, count in every for k in range(1, count + 1)]


def _usual_frame_names(every: list[tuple[str, int]], benchmark: Benchmark) -> list[str] | None:
    """:func:`frame_names` for a template with one ``{frame:05d}`` field, each frame
    number formatted once rather than once per video (millions of frames); None for
    another template."""
    parts = benchmark.frame_name.split(_FRAME_FIELD)
    if len(parts) != 2 or "frame" in "".join(parts):
        return None
    numbers = [format(k, "05d") for k in range(1, max((c for _, c in every), default=0) + 1)]
    names: list[str] = []
    for video, count in every:
        before, after = (part.format(video=video) for part in parts)
        if before + "00001" + after != benchmark.frame(video, 1):  # "{{frame:05d}}" is no field
            return None
        names += [before + number + after for number in numbers[:count]]
    return names


# ------------------------------------------------------------------ frames
def _video_files(folder: Path, what: str) -> dict[str, Path]:
    files = {}
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.suffix != SUFFIX or not entry.is_file():
            raise UserError(f"{entry}: not a per-video {SUFFIX} file; expected only VIDEO{SUFFIX} "
                            f"files in the {what} folder")
        files[entry.stem] = entry
    if not files:
        raise UserError(f"{folder}: no VIDEO{SUFFIX} files; expected one per video")
    return files


def _read_frame_truth(folder: Path, benchmark: Benchmark) -> Table:
    coding = benchmark.coding
    blocks, videos, frames = [], [], []
    for video, file in _video_files(folder, "truth").items():
        codes = read_frame_rows(file, benchmark.schema, coding.accepted, np.int16)  # small until joined
        blocks.append(codes)
        videos.append(video)
        frames.append(len(codes))
    labels = coding.to_memory(np.concatenate(blocks))  # once, not per video
    del blocks  # millions of frames: one copy of the labels at a time
    found = Videos(tuple(videos), tuple(frames))
    names = frame_names(found, benchmark)
    _check_unique_names(folder, names)
    return Table(names, labels, found)


def _read_frame_predictions(folder: Path, videos: Videos, benchmark: Benchmark) -> np.ndarray:
    files = _video_files(folder, "submission")
    strangers = sorted(set(files) - set(videos.names))
    if strangers:
        raise UserError(f"{files[strangers[0]]}: video {strangers[0]!r} is not in the truth; "
                        f"expected one {SUFFIX} file per truth video")
    missing = [v for v in videos.names if v not in files]
    if missing:
        raise UserError(f"{folder}: no file for video {missing[0]!r} ({missing[0]}{SUFFIX})"
                        + (f" and {len(missing) - 1} more" if len(missing) > 1 else "")
                        + "; expected one file per truth video")
    blocks = []
    per_row = 2 * len(benchmark.aus) + 2  # "0," per AU and a CRLF
    for video, count in zip(videos.names, videos.frames):
        file = files[video]
        size = file.stat().st_size
        if size > 2 * per_row * (count + 1) + (1 << 16):
            raise UserError(f"{file}: {size:,} bytes, far larger than {count:,} frame rows can be; "
                            f"refusing to read it")
        pred = read_frame_rows(file, benchmark.schema, _PREDICTIONS, np.int8)
        if len(pred) != count:
            raise UserError(f"{file}: {len(pred):,} frame rows, expected {count:,}: every frame of "
                            f"video {video!r}, in order")
        blocks.append(pred)
    return np.concatenate(blocks).astype(np.int64)


def _write_frame_files(folder: Path, videos: Videos, values: np.ndarray, benchmark: Benchmark) -> None:
    """One ``VIDEO.txt`` per video: the AU header, then the video's rows of ``values``."""
    from harness.fileio import atomic_open

    folder.mkdir(parents=True, exist_ok=True)
    rows = np.asarray(values, dtype=np.int64).tolist()
    start = 0
    for video, count in zip(videos.names, videos.frames):
        with atomic_open(folder / f"{video}{SUFFIX}", "w", newline="") as fh:
            fh.write(",".join(benchmark.aus) + "\n")
            fh.writelines(",".join(map(str, row)) + "\n" for row in rows[start:start + count])
        start += count


def _check_exact_header(path: Path, header: str) -> None:
    """A table's first line must be ``header`` exactly; a first line that is not text
    is left to the submission reader, which says what is wrong with it."""
    with open(path, "rb") as fh:
        raw = fh.readline(1 << 16)
    try:
        first = raw.decode("utf-8-sig").rstrip("\r\n").strip()
    except UnicodeDecodeError:
        return
    if first and "," in first and "\x00" not in first and first != header:
        raise UserError(f"{path}: line 1: header {first!r}, expected exactly {header!r}")


def _check_unique_names(folder: Path, names: list[str]) -> None:
    if len(set(names)) == len(names):
        return
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise UserError(f"{folder}: frame {name!r} comes from two video files; expected "
                            f"video names that give distinct frame names")
        seen.add(name)


def _name_the_video(exc: MissingRows, truth: Table) -> str:
    """A frame table's missing-rows message, naming the first video it concerns."""
    if truth.videos is None:
        return str(exc)
    video = truth.videos.video_of(truth.names.index(exc.missing[0]))
    return f"{exc} (first missing frame in video {video!r})"
