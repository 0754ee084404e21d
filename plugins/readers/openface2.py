"""OpenFace 2.x: the CSVs of ``FeatureExtraction`` / ``FaceLandmarkVidMulti`` and ``FaceLandmarkImg``.

* ``FeatureExtraction`` / ``FaceLandmarkVidMulti`` (a video or ``-fdir`` of
  images, a sequence): one row per frame and face, ``frame, face_id,
  timestamp, confidence, success`` first (before 2.0 there is no
  ``face_id``: one face per frame); ``success == 0`` rows are failed
  detections, whatever AU values they carry. OpenFace names the CSV after its
  input (``default.wmv`` -> ``default.csv``), so the file name is the video's
  name, and it counts frames from 1: a row's key is ``VIDEO/FRAME`` as
  written (``default/1``), matched to a benchmark's frame names or a ``--map``.
  A folder of these CSVs is several videos.
* ``FaceLandmarkImg``: one CSV per image, named after it, with ``face,
  confidence`` first and one row per detected face; no face, no row.
  Give the folder of these CSVs: the file name is the image.

Separators differ between builds: the Windows binaries write ``", "``, newer
source builds ``","``; some files have a ``", "`` header over ``","`` rows or
``",  "``: spaces after a comma are skipped, CRLF line ends and a missing final
newline are read.
``AUxx_c`` is OpenFace's presence decision (0/1), ``AUxx_r`` its intensity
(0-5); AU28 has only ``_c``. The face box (``--face largest``) is the extent
of the 2D landmarks ``x_i, y_i`` when they were written.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from harness.errors import UserError
from harness.tooloutput import ToolOutput
from plugins.readers import tables

_AU = re.compile(r"^AU(\d+)_([cr])$")
# What is read of the hundreds of columns (gaze, 3D landmarks, shape parameters are not)
_READ = re.compile(r"^(frame|face_id|face|confidence|success|pose_R[xyz]|AU\d+_[cr]|[xy]_\d+)$")
_SEQUENCE = ("frame", "confidence", "success")  # face_id since 2.0
FIRST_FRAME = 1  # FeatureExtraction's first frame is frame 1
_IMAGE = ("face", "confidence")


class OpenFace2Reader(tables.BenchmarkAUs):
    """OpenFace 2.x CSVs: AUxx_c presence, AUxx_r intensity 0-5, success == 0 rows failed."""

    rules = ("AUxx_c presence as OpenFace decided it, or AUxx_r >= the intensity threshold; "
             "success == 0 rows are failed detections; face box from the 2D landmarks")
    first_frame = FIRST_FRAME

    def read(self, path: str | Path) -> ToolOutput:
        return tables.read_csv_output(path, "OpenFace 2", lambda f: _read_file(f, self.au_name), self.rules)


def _read_file(path: Path, au_name: Callable[[str], str | None]) -> ToolOutput:
    """One CSV: a sequence (a video's frames) or one image's faces; ``au_name`` names the AUs kept."""
    frame = tables.read_table(path, want=lambda column: bool(_READ.match(column)))
    aus = {m.groups(): col for col in frame.columns if (m := _AU.match(col))}
    if not aus:
        raise UserError(f"{path}: line 1: no AUxx_c or AUxx_r columns; expected OpenFace 2 "
                        f"output written with its AUs (-aus)")
    sequence = "success" in frame.columns or "frame" in frame.columns
    tables.require(frame, _SEQUENCE if sequence else _IMAGE, path,
                   "OpenFace 2 columns 'frame, face_id, timestamp, confidence, success' "
                   "(FeatureExtraction) or 'face, confidence' (FaceLandmarkImg)")
    presence, intensity = {}, {}
    for (number, kind), col in aus.items():
        au = au_name(number)
        if au is None:
            continue
        if kind == "c":
            presence[au] = tables.presence(frame, col, path)
        else:
            intensity[au] = tables.numbers(frame, col, path, 0, 5)
    n = len(frame)
    failed = tables.empty_rows(frame, path, {**presence, **intensity})
    videos = frames = None
    if sequence:
        failed |= tables.numbers(frame, "success", path, 0, 1) == 0
        keys, videos, frames = tables.video_frames(frame, path, "frame", [path.stem] * n)
    else:
        keys = [path.stem] * n
    # pose_Rx/Ry/Rz: pitch, yaw and roll in radians (FeatureExtraction's -pose)
    head = tables.pose(frame, path, {"pitch": "pose_Rx", "yaw": "pose_Ry", "roll": "pose_Rz"},
                       scale=180 / np.pi)
    return ToolOutput(source=str(path), keys=keys, where=tables.where(frame, path), failed=failed,
                      presence=presence, intensity=intensity, box_area=_landmark_box(frame, path),
                      confidence=tables.numbers(frame, "confidence", path), pose=head,
                      videos=videos, frames=frames, first_frame=FIRST_FRAME)


def _landmark_box(frame: pd.DataFrame, path: Path) -> np.ndarray | None:
    xs = [c for c in frame.columns if re.fullmatch(r"x_\d+", c)]
    ys = [c for c in frame.columns if re.fullmatch(r"y_\d+", c)]
    if not xs or not ys:
        return None
    x = np.column_stack([tables.numbers(frame, c, path) for c in xs])
    y = np.column_stack([tables.numbers(frame, c, path) for c in ys])
    return np.ptp(x, axis=1) * np.ptp(y, axis=1)
