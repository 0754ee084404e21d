"""``auh predict``: a bundle and images or videos -> one table row per image (or frame) and face.

Columns of the table (Parquet or CSV):

==================================  ==============================================
``image``                           the file name (what a submission calls it)
``path``                            the file as it was given
``video frame timestamp``           only where the input has a video: the video's
                                    name, the frame (from 0) and its time in
                                    seconds (empty for an image row)
``face``                            face index in the image, 0 first (the face
                                    ``align`` selects, the one training used)
``found``                           the aligner found a face (``False``: a
                                    center crop, still predicted; or unreadable)
``score``                           the detector's confidence (empty without one)
``box_x0 box_y0 box_x1 box_y1``     the face box, source-image pixels
``<landmark>_x <landmark>_y``       the 5 landmarks, source-image pixels
``AU1_prob ...``                    the ensemble's probability per AU (a
                                    video's smoothed by the smoother, per video)
``AU1 ...``                         0/1: probability >= the bundle's threshold
``error``                           why the image was skipped (empty if it was not)
==================================  ==============================================

Positions are empty where the aligner does not know them (a fallback crop);
an unreadable or unsupported image has one row with ``found`` false, its
reason in ``error`` and no prediction. The file's metadata (the Parquet
file's key-value metadata, key ``au_harness``, or ``<out>.json`` beside a
CSV) holds the bundle's id (the sha256
of its ``bundle.json``), where it came from, the AU list, the thresholds and
the skipped files.
"""
from __future__ import annotations

import itertools
import json
from collections import deque
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np

from harness.errors import UserError
from harness.fileio import sha256_file
from harness.images import ImageError, read_image
from harness.protocols import capabilities
from harness.video import VideoError, decode_frames, is_video

if TYPE_CHECKING:
    import pandas as pd

    from harness.bundle import Bundle

LANDMARKS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
BOX = ("box_x0", "box_y0", "box_x1", "box_y1")
VIDEO_COLUMNS = ("video", "frame", "timestamp")
# Final rows gathered before they become a piece of the table (a Parquet row group): the
# per-piece cost of pandas and pyarrow is paid once per 1,024 rows, and memory stays bounded.
ROWS_PER_PIECE = 1024
OUT_SUFFIXES = (".parquet", ".csv")
METADATA_KEY = b"au_harness"


@dataclass
class Predictions:
    """The table and what the file's metadata records."""

    table: "pd.DataFrame"
    aus: list[str]
    thresholds: np.ndarray
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    bundle: dict[str, str] = field(default_factory=dict)          # id, source
    settings: dict[str, Any] = field(default_factory=dict)        # smoother, every

    @property
    def first_faces(self) -> "pd.DataFrame":
        """One row per image: its face 0 (an unreadable image's only row)."""
        return self.table[self.table["face"] == 0]

    def metadata(self) -> dict[str, Any]:
        return {"format": 1, "bundle_sha256": self.bundle.get("id", ""),
                "bundle": self.bundle.get("source", ""), "aus": self.aus,
                "thresholds": {au: float(t) for au, t in zip(self.aus, self.thresholds)},
                **self.settings, "skipped": [{"path": p, "reason": r} for p, r in self.skipped]}


@dataclass
class Tally:
    """What ``auh predict`` reports and records, counted piece by piece as the table is
    written (nothing here grows with a video's length)."""

    aus: list[str]
    thresholds: np.ndarray
    bundle: dict[str, str]
    settings: dict[str, Any]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("rows", "faces", "images", "images_with_face", "frames", "frames_with_face"), 0))
    videos: set[str] = field(default_factory=set)
    firsts: list["pd.DataFrame"] = field(default_factory=list)  # images' face-0 rows
    frame_firsts: list["pd.DataFrame"] = field(default_factory=list)  # video frames' face-0 rows
    keep_frames: bool = False  # keep frame_firsts (for a frame-level submission; O(frames) ints)

    def add(self, part: "pd.DataFrame") -> None:
        c = self.counts
        c["rows"] += len(part)
        c["faces"] += int(part["found"].sum())
        first = part[part["face"] == 0]
        in_video = (first["video"] != "") if "video" in first else np.zeros(len(first), bool)
        images, frames = first[~in_video], first[in_video & (first["error"] == "")]
        c["images"] += len(images)
        c["images_with_face"] += int(images["found"].sum())
        c["frames"] += len(frames)
        c["frames_with_face"] += int(frames["found"].sum())
        self.videos.update(first.loc[in_video, "path"])
        self.firsts.append(images[["image", *self.aus, "error"]])
        if self.keep_frames and "video" in first:
            self.frame_firsts.append(first.loc[in_video, ["video", "frame", *self.aus, "error"]])

    def metadata(self) -> dict[str, Any]:
        return Predictions(None, self.aus, self.thresholds, self.skipped, self.bundle,
                           self.settings).metadata()

    def summary(self, out: Path) -> str:
        """``wrote 7 rows for 6 images to p.csv: 4 faces in 3 images, ...`` (one line)."""
        c, n_videos = self.counts, len(self.videos)
        what = [count(c["images"], "image")] if c["images"] or not n_videos else []
        detail = [f"{count(c['faces'], 'face')} in {count(c['images_with_face'], 'image')}"] if what else \
            [count(c["faces"], "face")]
        bad_images = sum(1 for p, _ in self.skipped if not is_video(p))
        if what:
            detail.append(f"{count(c['images'] - c['images_with_face'] - bad_images, 'image')} without "
                          f"a face (predicted from a center crop)")
        if n_videos:
            what.append(f"{count(c['frames'], 'frame')} of {count(n_videos, 'video')}")
            detail.append(f"{c['frames_with_face']} of {count(c['frames'], 'frame')} with a face")
        line = (f"wrote {count(c['rows'], 'row')} for {' and '.join(what)} to {out}: "
                f"{', '.join(detail)}, {len(self.skipped)} skipped")
        if self.skipped:
            path, reason = self.skipped[0]
            line += (f" as unreadable or unsupported (first: {path}: {reason}; each is listed "
                     f"in the table's error column)")
        return line

    def frame_submission(self, benchmark: Any) -> tuple[list[str], np.ndarray, Any, list[str]]:
        """``(names, 0/1 [F, C], Videos, videos that stopped early)`` of the videos' frames
        (face 0), named as ``benchmark`` names frames (from 1; the table counts from 0)."""
        import pandas as pd

        from harness.layouts import Videos

        rows = pd.concat(self.frame_firsts, ignore_index=True)
        stopped = sorted(set(rows.loc[rows["error"] != "", "video"]))
        rows = rows[rows["error"] == ""]
        order = list(dict.fromkeys(rows["video"]))
        counts = rows["video"].value_counts()
        names = [benchmark.frame(v, int(f) + 1) for v, f in zip(rows["video"], rows["frame"])]
        videos = Videos(tuple(order), tuple(int(counts[v]) for v in order))
        return names, rows[self.aus].to_numpy(dtype=np.int64), videos, stopped

    def submission_rows(self) -> tuple[list[str], np.ndarray, int]:
        """As :func:`submission_rows`, from the images' face-0 rows counted so far."""
        import pandas as pd

        first = pd.concat(self.firsts, ignore_index=True)
        preds = first[self.aus].fillna(0).to_numpy(dtype=np.int64)
        return list(first["image"]), preds, int((first["error"] != "").sum())


def count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' * (n != 1)}"


def bundle_id(folder: Path) -> str:
    """The sha256 of the bundle's ``bundle.json`` (which records its weights' sha256)."""
    return sha256_file(Path(folder) / "bundle.json")


def predict_table(bundle: "Bundle", paths: Sequence[Path], batch_size: int = 64,
                  strict: bool = False, bar: Any = None, every: int = 1,
                  smoother: Any = None) -> Predictions:
    """Predict every face the bundle's aligner finds in ``paths`` (images and videos), the
    whole table in memory; :func:`predict_batches` is the same, streamed."""
    import pandas as pd

    skipped: list[tuple[str, str]] = []
    video = any(is_video(p) for p in paths)
    parts = list(predict_batches(bundle, paths, batch_size, strict, bar, every, smoother, skipped))
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns(bundle.aus, video))
    return Predictions(table, bundle.aus, np.asarray(bundle.thresholds, dtype=float), skipped)


def predict_batches(bundle: "Bundle", paths: Sequence[Path], batch_size: int = 64,
                    strict: bool = False, bar: Any = None, every: int = 1, smoother: Any = None,
                    skipped: list[tuple[str, str]] | None = None) -> Iterator["pd.DataFrame"]:
    """The table in pieces, in input order: ``batch_size`` images or video frames are
    decoded, aligned and classified at a time, so memory does not grow with a video's
    length (the values do not depend on ``batch_size``).

    A video gives one row per sampled frame (``every``) and face, its probabilities
    smoothed by ``smoother`` (default: the bundle's) per video and face index before the
    thresholds. An image or video that cannot be read is a row with its reason (a video
    that stops early keeps the frames before, then a row for the frame where it stopped),
    appended to ``skipped``; with ``strict`` the :class:`~harness.errors.UserError` stops
    prediction. ``bar`` (a tqdm bar) is advanced per image or frame.
    """
    aligner = bundle.aligner()
    skipped = [] if skipped is None else skipped
    video = any(is_video(p) for p in paths)
    rows = _SmoothedRows(bundle.smoother() if smoother is None else smoother)
    for chunk in _chunks(_inputs(paths, every, strict, skipped), batch_size):
        readable = [u for u in chunk if u.image is not None]
        faces = iter(faces_per_image(aligner, [u.image for u in readable]))
        per_unit = [next(faces) if u.image is not None else None for u in chunk]
        crops = [np.asarray(f.image.convert("RGB")) for found in per_unit if found for f in found]
        probs = iter(bundle.predict_crops(np.stack(crops))[0] if crops else [])
        for unit, found in zip(chunk, per_unit):
            if found is None:
                rows.add(_row(unit, 0, None), None, None)
                continue
            for k, face in enumerate(found):
                rows.add(_row(unit, k, face), next(probs), (unit.path, k) if unit.video is not None else None)
        if bar is not None:
            bar.update(len(chunk))
        if rows.n_ready() >= ROWS_PER_PIECE:
            yield _frame(rows.ready(), bundle.aus, bundle.thresholds, video)
    rows.close_all()
    ready = rows.ready()
    if ready:
        yield _frame(ready, bundle.aus, bundle.thresholds, video)


@dataclass
class _Unit:
    """One image, or one frame of a video, to predict (``image`` None: unreadable)."""

    path: Path
    image: Any
    error: str = ""
    video: str | None = None
    frame: int | None = None
    timestamp: float = float("nan")


def _inputs(paths: Sequence[Path], every: int, strict: bool,
            skipped: list[tuple[str, str]]) -> Iterator[_Unit]:
    for path in paths:
        if is_video(path):
            yield from _frames(Path(path), every, strict, skipped)
            continue
        try:
            yield _Unit(path, read_image(path))
        except ImageError as exc:
            if strict:
                raise
            skipped.append((str(path), exc.reason))
            yield _Unit(path, None, exc.reason)


def _frames(path: Path, every: int, strict: bool, skipped: list[tuple[str, str]]) -> Iterator[_Unit]:
    try:
        for frame, time, image in decode_frames(path, every):
            yield _Unit(path, image, video=path.stem, frame=frame, timestamp=time)
    except VideoError as exc:
        if strict:
            raise
        skipped.append((str(path), exc.reason))
        yield _Unit(path, None, exc.reason, video=path.stem, frame=exc.frame)


def _chunks(units: Iterator[_Unit], size: int) -> Iterator[list[_Unit]]:
    while chunk := list(itertools.islice(units, size)):
        yield chunk


class _SmoothedRows:
    """Rows in input order, each released once its probabilities are final: a video's rows
    wait for the smoother (one stream per video and face index), the others do not."""

    def __init__(self, smoother: Any) -> None:
        self.smoother = smoother
        self.queue: deque[list[Any]] = deque()  # [row, probs or None, waiting for the smoother]
        self.streams: dict[Any, tuple[Any, deque[list[Any]]]] = {}

    def add(self, row: dict[str, Any], probs: np.ndarray | None, key: Any) -> None:
        entry = [row, probs, key is not None]
        if self.streams and (key is None or next(iter(self.streams))[0] != key[0]):
            self.close_all()  # another file: the video before it has ended
        self.queue.append(entry)
        if key is None:
            return
        stream, waiting = self.streams.setdefault(key, (self.smoother.stream(), deque()))
        waiting.append(entry)
        self._assign(waiting, stream.push(np.asarray(probs, dtype=np.float64)[None, :]))

    def close_all(self) -> None:
        for stream, waiting in self.streams.values():
            self._assign(waiting, stream.close())
            if waiting:
                raise ValueError(f"smoother {type(self.smoother).__name__} returned fewer rows "
                                 f"than frames; expected one per frame")
        self.streams.clear()

    @staticmethod
    def _assign(waiting: deque[list[Any]], smoothed: np.ndarray) -> None:
        for values in np.asarray(smoothed, dtype=np.float64)[:len(waiting)] if len(smoothed) else ():
            entry = waiting.popleft()
            entry[1], entry[2] = values, False

    def n_ready(self) -> int:
        """How many rows at the head of the queue are final."""
        return next((i for i, entry in enumerate(self.queue) if entry[2]), len(self.queue))

    def ready(self) -> list[list[Any]]:
        out = []
        while self.queue and not self.queue[0][2]:
            out.append(self.queue.popleft())
        return out


def columns(aus: Sequence[str], video: bool) -> list[str]:
    """The table's columns; ``video``, ``frame``, ``timestamp`` where the input has a video."""
    names = ["image", "path", *(VIDEO_COLUMNS if video else ()), "face", "found", "score", *BOX]
    names += [f"{n}_{c}" for n in LANDMARKS for c in "xy"]
    return names + [f"{au}_prob" for au in aus] + list(aus) + ["error"]


def _frame(entries: list[list[Any]], aus: Sequence[str], thresholds: np.ndarray,
           video: bool) -> "pd.DataFrame":
    """Rows and their (smoothed) probabilities as table rows: ``AUx`` is 0/1 at the threshold,
    empty where there is no prediction (an unreadable image or frame)."""
    import pandas as pd

    table = pd.DataFrame([row for row, _, _ in entries])
    if not video:
        table = table.drop(columns=list(VIDEO_COLUMNS))
    else:
        table["frame"] = table["frame"].astype("Int64")
    probs = np.array([np.full(len(aus), np.nan) if p is None else p for _, p, _ in entries],
                     dtype=np.float64).reshape(len(entries), len(aus))
    preds = pd.DataFrame((probs >= np.asarray(thresholds, float)).astype(np.int64), columns=list(aus))
    preds = preds.astype("Int64").mask(np.isnan(probs))
    table = pd.concat([table.drop(columns="error"), pd.DataFrame(probs, columns=[f"{au}_prob" for au in aus]),
                       preds, table[["error"]]], axis=1)
    return table[columns(aus, video)]


def faces_per_image(aligner: Any, images: Sequence[Any]) -> list[list[Any]]:
    """Every face the aligner finds in each image, the one ``align`` returns first:
    ``align_all`` for an aligner that declares ``"all_faces"``, else ``align``'s one face."""
    if "all_faces" in capabilities(aligner):
        return [list(faces) for faces in aligner.align_all(images)]
    return [[face] for face in aligner.align(images)]


def _row(unit: _Unit, k: int, face: Any) -> dict[str, Any]:
    nan = float("nan")
    box, points = [nan] * 4, [nan] * 10
    found, score = False, nan
    if face is not None:
        found = bool(face.found)
        score = nan if face.score is None else float(face.score)
        if face.box is not None:
            box = [float(v) for v in np.asarray(face.box).reshape(4)]
        if face.source_landmarks is not None:
            points = [float(v) for v in np.asarray(face.source_landmarks).reshape(10)]
    path = Path(unit.path)
    row: dict[str, Any] = {"image": path.name, "path": str(unit.path), "video": unit.video or "",
                           "frame": unit.frame, "timestamp": unit.timestamp, "face": k, "found": found,
                           "score": score, **dict(zip(BOX, box))}
    for i, name in enumerate(LANDMARKS):
        row[f"{name}_x"], row[f"{name}_y"] = points[2 * i], points[2 * i + 1]
    row["error"] = unit.error
    return row


# ------------------------------------------------------------------ output
def check_out(path: Path) -> Path:
    """``--out`` must name a ``.parquet`` or ``.csv`` file (checked before any work)."""
    if path.suffix.lower() not in OUT_SUFFIXES:
        raise UserError(f"--out {str(path)!r}: expected a .parquet or .csv file name")
    return path


def sidecar(path: Path) -> Path:
    """Where a CSV table's metadata goes: ``<out>.json``."""
    return path.with_name(path.name + ".json")


class TableWriter:
    """The table written piece by piece to ``out``: Parquet (row groups, the metadata in the
    file's key-value metadata) or CSV (rows appended, the metadata in ``<out>.json``).

    Used as a context manager; :meth:`finish` with the metadata completes the file. Until
    then everything goes to a temporary file beside ``out``, so an error or interruption
    leaves nothing behind and an old ``out`` untouched.
    """

    def __init__(self, out: Path) -> None:
        self.out = Path(out)
        self.parquet = self.out.suffix.lower() == ".parquet"
        self._stack = ExitStack()
        self._writer: Any = None  # pyarrow's ParquetWriter, or the CSV file

    def __enter__(self) -> "TableWriter":
        from harness.fileio import atomic_open, atomic_path

        with ExitStack() as stack:
            if self.parquet:
                self._tmp = stack.enter_context(atomic_path(self.out))
            else:
                self._writer = stack.enter_context(atomic_open(self.out, newline=""))
            self._stack = stack.pop_all()
        return self

    def __exit__(self, *exc: Any) -> bool | None:
        if self.parquet and self._writer is not None and exc[0] is not None:
            self._writer.close()
        return self._stack.__exit__(*exc)

    def write(self, part: "pd.DataFrame") -> None:
        if not self.parquet:
            part.to_csv(self._writer, index=False, header=self._writer.tell() == 0)
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self._writer is None:
            self._writer = pq.ParquetWriter(self._tmp, pa.Schema.from_pandas(part, preserve_index=False))
        self._writer.write_table(pa.Table.from_pandas(part, schema=self._writer.schema, preserve_index=False))

    def finish(self, metadata: dict[str, Any], names: Sequence[str]) -> None:
        """Complete the file (``names``: the columns, should no row have been written)."""
        import pandas as pd

        from harness.fileio import atomic_open

        meta = json.dumps(metadata, indent=1)
        if self._writer is None or (not self.parquet and self._writer.tell() == 0):
            self.write(pd.DataFrame(columns=list(names)))
        if self.parquet:
            self._writer.add_key_value_metadata({METADATA_KEY: meta.encode()})
            self._writer.close()
            return
        with atomic_open(sidecar(self.out)) as fh:
            fh.write(meta + "\n")


def write_table(out: Path, result: Predictions) -> None:
    """The table to ``out`` (Parquet with the metadata in its schema, or CSV
    with a JSON sidecar), each file written whole or not at all."""
    with TableWriter(out) as writer:
        writer.write(result.table)
        writer.finish(result.metadata(), list(result.table.columns))


def read_metadata(path: Path) -> dict[str, Any]:
    """The metadata :func:`write_table` recorded for ``path``."""
    if Path(path).suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        return json.loads(pq.read_metadata(path).metadata[METADATA_KEY])
    return json.loads(sidecar(Path(path)).read_text())


def submission_rows(result: Predictions) -> tuple[list[str], np.ndarray, int]:
    """``(names, 0/1 [N,C], n_unreadable)``: face 0 of each image thresholded;
    an unreadable image predicts every AU absent (a submission needs every row)."""
    tally = Tally(result.aus, result.thresholds, result.bundle, result.settings)
    tally.add(result.table)
    return tally.submission_rows()


# -------------------------------------------------------- where the bundle is
@contextmanager
def bundle_folder(source: str, tracking_uri: str | None = None) -> Iterator[Path]:
    """The bundle folder ``source`` names: a folder, or what a plugin opens
    (``auh_open_bundle``: the tracking plugin downloads MLflow model URIs into a
    temporary folder for the duration)."""
    import harness

    opened = harness.get_registry().hook.auh_open_bundle(source=source, tracking_uri=tracking_uri)
    if opened is None:
        yield Path(source)
        return
    with opened as folder:
        yield Path(folder)
