"""OpenFace 3.0: its tab-separated output with an ``action_units`` list per face.

One row per detected face: the image (a column such as ``image_path``),
an optional ``confidence`` (the RetinaFace score) and ``action_units``, a
list of 8 values for AU1, AU2, AU4, AU6, AU9, AU12, AU25, AU26 (the order
of its DISFA-trained head), read as probabilities in [0, 1]. An empty list
is a failed detection.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from harness.errors import UserError
from harness.tooloutput import ToolOutput
from plugins.readers import common

AUS = ("AU1", "AU2", "AU4", "AU6", "AU9", "AU12", "AU25", "AU26")


class OpenFace3Reader:
    """OpenFace 3.0 .tsv: action_units lists of 8 (AU1, 2, 4, 6, 9, 12, 25, 26); empty list failed."""

    tool = "OpenFace 3.0"
    rules = "action_units[i] probability >= the threshold; an empty list is a failed detection"

    def read(self, path: str | Path) -> ToolOutput:
        frame = common.read_table(path, sep="\t")
        common.require(frame, ["action_units"], path, "OpenFace 3.0 output with an action_units "
                                                      "column (tab-separated)")
        values = np.array([_units(text, path, common.line(frame, i))
                           for i, text in enumerate(frame["action_units"])]).reshape(-1, len(AUS))
        confidence = (common.numbers(frame, "confidence", path)
                      if "confidence" in frame.columns else None)
        return ToolOutput(source=str(path), keys=common.image_keys(frame, path),
                          where=common.where(frame, path), failed=np.isnan(values).any(axis=1),
                          probability={au: values[:, i] for i, au in enumerate(AUS)},
                          confidence=confidence, rules=self.rules)


def _units(text: str, path: str | Path, line: int) -> list[float]:
    """``"[0.1, 0.9, ...]"`` as 8 floats; an empty list as 8 NaN."""
    inner = text.strip().removeprefix("[").removesuffix("]")
    items = [s for s in re.split(r"[,\s]+", inner) if s]
    if not items:
        return [np.nan] * len(AUS)
    try:
        values = [float(s) for s in items]
    except ValueError:
        values = []
    if len(values) != len(AUS) or not all(0 <= v <= 1 for v in values):
        raise UserError(f"{path}: line {line}, column action_units: {text!r}; expected a list "
                        f"of {len(AUS)} numbers in [0, 1] ({', '.join(AUS)})")
    return values
