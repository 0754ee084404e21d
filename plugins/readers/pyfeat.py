"""py-feat: the CSV of a ``Fex`` frame (``detector.detect_image(...)`` then ``.to_csv``).

One row per detected face: ``FaceRectX, FaceRectY, FaceRectWidth,
FaceRectHeight, FaceScore``, the AU probabilities ``AU01 ... AU43`` in
[0, 1], the head pose ``Pitch, Roll, Yaw`` (degrees), ``input`` (the image
path) and ``frame``. An image without a face is one row whose face and AU
values are NaN: a failed detection.
``to_csv`` also writes pandas' unnamed index column, which is not read.

``detect_video`` writes the video's path in ``input`` on every row and the
frame number, counted from 0 (``skip_frames`` keeps 0, N, 2N, ...), in
``frame``: a row whose ``input`` is a video file is that frame, keyed
``VIDEO/FRAME`` (``001/0`` for frame 0 of ``001.mp4``), one key per frame.
"""
from __future__ import annotations

import re
from pathlib import Path, PureWindowsPath

import numpy as np

from harness.errors import UserError
from harness.tooloutput import ToolOutput
from harness.video import is_video
from plugins.readers import tables

_AU = re.compile(r"^AU(\d+)$")
_FACE = ("FaceRectX", "FaceRectY", "FaceRectWidth", "FaceRectHeight", "FaceScore")
# What is read of a Fex (not its landmarks, emotions or identity embedding)
_READ = re.compile(r"^(FaceRect(X|Y|Width|Height)|FaceScore|AU\d+|Pitch|Roll|Yaw|input|frame)$")
FIRST_FRAME = 0  # detect_video's first frame is frame 0


class PyFeatReader(tables.BenchmarkAUs):
    """py-feat Fex CSV: AU01..AU43 probabilities, FaceRect* boxes, FaceScore; NaN rows failed."""

    rules = "AUxx probability >= the threshold; a row of NaN AUs (no face) is a failed detection"
    first_frame = FIRST_FRAME

    def read(self, path: str | Path) -> ToolOutput:
        frame = tables.read_table(path, want=lambda column: bool(_READ.match(column)))
        tables.require(frame, _FACE, path, "py-feat Fex columns " + ", ".join(_FACE))
        columns = {au: col for col in frame.columns
                   if (m := _AU.match(col)) and (au := self.au_name(m.group(1)))}
        if not columns:
            raise UserError(f"{path}: line 1: no AU01 ... AU43 columns; expected a py-feat Fex CSV")
        probability = {au: tables.numbers(frame, col, path, 0, 1) for au, col in columns.items()}
        width, height, score = (tables.numbers(frame, c, path)
                                for c in ("FaceRectWidth", "FaceRectHeight", "FaceScore"))
        failed = tables.empty_rows(frame, path, probability) | np.isnan(width) | np.isnan(score)
        head = tables.pose(frame, path, {"pitch": "Pitch", "yaw": "Yaw", "roll": "Roll"})  # degrees
        keys = tables.image_keys(frame, path)
        videos = frames = None
        if "input" in frame.columns and "frame" in frame.columns:
            named = [_video_name(key) for key in keys]
            if any(named):
                video_keys, videos, frames = tables.video_frames(frame, path, "frame", named)
                keys = [v or k for v, k in zip(video_keys, keys)]
        return ToolOutput(source=str(path), keys=keys, where=tables.where(frame, path), failed=failed,
                          probability=probability, box_area=width * height, confidence=score,
                          pose=head, rules=self.rules, videos=videos, frames=frames,
                          first_frame=FIRST_FRAME)


def _video_name(input_path: str) -> str:
    """The video's name (its file name without extension) if ``input`` names a video, else ``""``."""
    base = PureWindowsPath(input_path).name  # also splits "/" paths; py-feat writes the OS's own
    return PureWindowsPath(base).stem if is_video(base) else ""
