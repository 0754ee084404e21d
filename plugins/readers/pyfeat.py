"""py-feat: the CSV of a ``Fex`` frame (``detector.detect_image(...)`` then ``.to_csv``).

One row per detected face: ``FaceRectX, FaceRectY, FaceRectWidth,
FaceRectHeight, FaceScore``, the AU probabilities ``AU01 ... AU43`` in
[0, 1], the head pose ``Pitch, Roll, Yaw`` (degrees), ``input`` (the image
path) and ``frame``. An image without a face is one row whose face and AU
values are NaN: a failed detection.
``to_csv`` also writes pandas' unnamed index column, which is not read.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from harness.errors import UserError
from harness.tooloutput import ToolOutput
from plugins.readers import tables

_AU = re.compile(r"^AU(\d+)$")
_FACE = ("FaceRectX", "FaceRectY", "FaceRectWidth", "FaceRectHeight", "FaceScore")
# What is read of a Fex (not its landmarks, emotions or identity embedding)
_READ = re.compile(r"^(FaceRect(X|Y|Width|Height)|FaceScore|AU\d+|Pitch|Roll|Yaw|input|frame)$")


class PyFeatReader(tables.BenchmarkAUs):
    """py-feat Fex CSV: AU01..AU43 probabilities, FaceRect* boxes, FaceScore; NaN rows failed."""

    rules = "AUxx probability >= the threshold; a row of NaN AUs (no face) is a failed detection"

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
        return ToolOutput(source=str(path), keys=tables.image_keys(frame, path),
                          where=tables.where(frame, path), failed=failed, probability=probability,
                          box_area=width * height, confidence=score, pose=head, rules=self.rules)
