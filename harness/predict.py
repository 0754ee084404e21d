"""``auh predict``: a model bundle and images -> one table row per image and face.

Columns of the table (Parquet or CSV):

==================================  ==============================================
``image``                           the file name (what a submission calls it)
``path``                            the file as it was given
``face``                            face index in the image, 0 first (the face
                                    ``align`` selects, the one training used)
``found``                           the aligner found a face (``False``: a
                                    center crop, still predicted; or unreadable)
``score``                           the detector's confidence (empty without one)
``box_x0 box_y0 box_x1 box_y1``     the face box, source-image pixels
``<landmark>_x <landmark>_y``       the 5 landmarks, source-image pixels
``AU1_prob ...``                    the ensemble's probability per AU
``AU1 ...``                         0/1: probability >= the bundle's threshold
``error``                           why the image was skipped (empty if it was not)
==================================  ==============================================

Positions are empty where the aligner does not know them (a fallback crop);
an unreadable or unsupported image has one row with ``found`` false, its
reason in ``error`` and no prediction. The file's metadata (Parquet schema
metadata, or ``<out>.json`` beside a CSV) holds the bundle's id (the sha256
of its ``bundle.json``), where it came from, the AU list, the thresholds and
the skipped files.
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np

from harness.errors import UserError
from harness.fileio import sha256_file
from harness.images import ImageError, read_image
from harness.protocols import capabilities

if TYPE_CHECKING:
    import pandas as pd

    from harness.bundle import Bundle

LANDMARKS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
BOX = ("box_x0", "box_y0", "box_x1", "box_y1")
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

    @property
    def first_faces(self) -> "pd.DataFrame":
        """One row per image: its face 0 (an unreadable image's only row)."""
        return self.table[self.table["face"] == 0]

    def metadata(self) -> dict[str, Any]:
        return {"format": 1, "bundle_sha256": self.bundle.get("id", ""),
                "bundle": self.bundle.get("source", ""), "aus": self.aus,
                "thresholds": {au: float(t) for au, t in zip(self.aus, self.thresholds)},
                "skipped": [{"path": p, "reason": r} for p, r in self.skipped]}


def bundle_id(folder: Path) -> str:
    """The sha256 of the bundle's ``bundle.json`` (which records its weights' sha256)."""
    return sha256_file(Path(folder) / "bundle.json")


def predict_table(bundle: "Bundle", paths: Sequence[Path], batch_size: int = 64,
                  strict: bool = False, bar: Any = None) -> Predictions:
    """Predict every face the bundle's aligner finds in ``paths``.

    ``batch_size`` images are read, aligned and classified at a time (the
    values do not depend on it). An image that cannot be read is a row with
    its reason, or with ``strict`` the :class:`~harness.images.ImageError`
    that stops prediction. ``bar`` (a tqdm bar) is advanced per image.
    """
    import pandas as pd

    aligner = bundle.aligner()
    aus = bundle.aus
    rows: list[dict[str, Any]] = []
    prob_rows: list[np.ndarray] = []
    skipped: list[tuple[str, str]] = []
    for start in range(0, len(paths), batch_size):
        chunk = paths[start:start + batch_size]
        images, errors = [], {}
        for i, path in enumerate(chunk):
            try:
                images.append(read_image(path))
            except ImageError as exc:
                if strict:
                    raise
                errors[i] = exc.reason
                skipped.append((str(path), exc.reason))
        aligned = iter(faces_per_image(aligner, images))
        per_image = [None if i in errors else next(aligned) for i in range(len(chunk))]
        crops = [np.asarray(f.image.convert("RGB")) for faces in per_image if faces for f in faces]
        probs = iter(bundle.predict_crops(np.stack(crops))[0] if crops else [])
        for i, (path, faces) in enumerate(zip(chunk, per_image)):
            if faces is None:
                rows.append(_row(path, 0, None, errors[i]))
                prob_rows.append(np.full(len(aus), np.nan))
                continue
            for k, face in enumerate(faces):
                rows.append(_row(path, k, face, ""))
                prob_rows.append(next(probs))
        if bar is not None:
            bar.update(len(chunk))
    table = pd.DataFrame(rows)
    probs = np.asarray(prob_rows, dtype=np.float64).reshape(len(rows), len(aus))
    thresholds = np.asarray(bundle.thresholds, dtype=float)
    preds = pd.DataFrame((probs >= thresholds).astype(np.int64), columns=aus).astype("Int64")
    preds = preds.mask(np.isnan(probs))  # no prediction for an unreadable image
    table = pd.concat([table.drop(columns="error"), pd.DataFrame(probs, columns=[f"{au}_prob" for au in aus]),
                       preds, table[["error"]]], axis=1)
    return Predictions(table, aus, thresholds, skipped)


def faces_per_image(aligner: Any, images: Sequence[Any]) -> list[list[Any]]:
    """Every face the aligner finds in each image, the one ``align`` returns first:
    ``align_all`` for an aligner that declares ``"all_faces"``, else ``align``'s one face."""
    if "all_faces" in capabilities(aligner):
        return [list(faces) for faces in aligner.align_all(images)]
    return [[face] for face in aligner.align(images)]


def _row(path: Path, k: int, face: Any, error: str) -> dict[str, Any]:
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
    row: dict[str, Any] = {"image": Path(path).name, "path": str(path), "face": k, "found": found,
                           "score": score, **dict(zip(BOX, box))}
    for i, name in enumerate(LANDMARKS):
        row[f"{name}_x"], row[f"{name}_y"] = points[2 * i], points[2 * i + 1]
    row["error"] = error
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


def write_table(out: Path, result: Predictions) -> None:
    """The table to ``out`` (Parquet with the metadata in its schema, or CSV
    with a JSON sidecar), each file written whole or not at all."""
    from harness.fileio import atomic_open, atomic_path

    meta = json.dumps(result.metadata(), indent=1)
    if out.suffix.lower() == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(result.table, preserve_index=False)
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), METADATA_KEY: meta.encode()})
        with atomic_path(out) as tmp:
            pq.write_table(table, tmp)
        return
    with atomic_open(sidecar(out)) as fh:
        fh.write(meta + "\n")
    with atomic_open(out, newline="") as fh:
        result.table.to_csv(fh, index=False)


def read_metadata(path: Path) -> dict[str, Any]:
    """The metadata :func:`write_table` recorded for ``path``."""
    if Path(path).suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        return json.loads(pq.read_schema(path).metadata[METADATA_KEY])
    return json.loads(sidecar(Path(path)).read_text())


def submission_rows(result: Predictions) -> tuple[list[str], np.ndarray, int]:
    """``(names, 0/1 [N,C], n_unreadable)``: face 0 of each image thresholded;
    an unreadable image predicts every AU absent (a submission needs every row)."""
    first = result.first_faces
    preds = first[result.aus].fillna(0).to_numpy(dtype=np.int64)
    return list(first["image"]), preds, int((first["error"] != "").sum())


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
