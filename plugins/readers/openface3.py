"""OpenFace 3.0: the tab-separated file of its video script, one row per frame with a face.

Columns (``csv.DictWriter`` with ``delimiter='\\t'``): ``timestamp,
image_path, face_id, face_detection, landmarks, emotion, gaze_yaw,
gaze_pitch, action_units``. ``face_detection`` is RetinaFace's
``[x1, y1, x2, y2, score]``; ``action_units`` is the AU head's output for
the batch of one face, ``[[a1, ..., a8]]``, in the order AU1, AU2, AU4,
AU6, AU9, AU12, AU25, AU26. Frames without a face are not written (they
are missing images); an empty list is read as a failed detection.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from harness.errors import UserError
from harness.tooloutput import ToolOutput
from plugins.readers import tables

AUS = ("AU1", "AU2", "AU4", "AU6", "AU9", "AU12", "AU25", "AU26")


class OpenFace3Reader:
    """OpenFace 3.0 .tsv: action_units [[8 values]] (AU1, 2, 4, 6, 9, 12, 25, 26), face_detection boxes."""

    rules = "action_units[i] >= the threshold; an empty list is a failed detection"

    def read(self, path: str | Path) -> ToolOutput:
        frame = tables.read_table(path, sep="\t")
        tables.require(frame, ["image_path", "action_units"], path,
                       "OpenFace 3.0 output (tab-separated) with image_path and action_units")
        units = _lists(frame, "action_units", path, len(AUS))
        box, confidence = None, None
        if "face_detection" in frame.columns:
            det = _lists(frame, "face_detection", path, 5)
            box = (det[:, 2] - det[:, 0]) * (det[:, 3] - det[:, 1])
            confidence = det[:, 4]
        return ToolOutput(source=str(path), keys=tables.image_keys(frame, path, "image_path"),
                          where=tables.where(frame, path), failed=np.isnan(units).any(axis=1),
                          probability={au: units[:, i] for i, au in enumerate(AUS)},
                          box_area=box, confidence=confidence, rules=self.rules)


def _lists(frame, column: str, path: str | Path, size: int) -> np.ndarray:
    """A column of (nested) lists of ``size`` numbers as ``[R, size]``; an empty list is NaN."""
    out = np.full((len(frame), size), np.nan)
    for row, text in enumerate(frame[column]):
        if not isinstance(text, str):  # an empty cell: not even the "[]" of a failed detection
            raise UserError(f"{path}: line {tables.line(frame, row)}, column {column}: empty; "
                            f"expected a list of {size} numbers ([] for a failed detection)")
        items = [s for s in re.split(r"[\[\],\s]+", text) if s]
        try:
            values = [float(s) for s in items]
        except ValueError:
            values = []
        if items and (len(values) != size or not np.isfinite(values).all()):
            raise UserError(f"{path}: line {tables.line(frame, row)}, column {column}: {text!r}; "
                            f"expected a list of {size} numbers")
        if items:
            out[row] = values
    return out
