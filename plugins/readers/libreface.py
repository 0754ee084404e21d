"""LibreFace: a table of ``au_{k}`` presence (0/1, thresholded by LibreFace) and
``au_{k}_intensity`` (0-5) per image.

LibreFace detects BP4D's 12 AUs (presence) and estimates DISFA's 12 AU
intensities; its Python API returns these as a dict per image or a
frame table per video. The file read here is that table as CSV with the
image path (or frame number) in a column such as ``image_path`` or
``frame``. LibreFace aligns one face per image: it gives no face box or
detection score, so two rows for one image are refused.
"""
from __future__ import annotations

import re
from pathlib import Path

from harness.errors import UserError
from harness.tooloutput import ToolOutput
from plugins.readers import tables

_AU = re.compile(r"^au_(\d+)(_intensity)?$")


class LibreFaceReader(tables.BenchmarkAUs):
    """LibreFace CSV: au_{k} presence (LibreFace's decision), au_{k}_intensity 0-5."""

    rules = ("au_k presence as LibreFace decided it, or au_k_intensity >= the intensity "
             "threshold; a row without AU values is a failed detection")

    def read(self, path: str | Path) -> ToolOutput:
        frame = tables.read_table(path)
        presence, intensity = {}, {}
        for col in frame.columns:
            m = _AU.match(col)
            au = self.au_name(m.group(1)) if m else None
            if au is None:
                continue
            if m.group(2):
                intensity[au] = tables.numbers(frame, col, path, 0, 5)
            else:
                presence[au] = tables.numbers(frame, col, path, 0, 1)
        if not presence and not intensity:
            raise UserError(f"{path}: line 1: no au_k or au_k_intensity columns; expected "
                            f"LibreFace output")
        failed = tables.empty_rows(frame, path, {**presence, **intensity})
        return ToolOutput(source=str(path), keys=tables.image_keys(frame, path),
                          where=tables.where(frame, path), failed=failed, presence=presence,
                          intensity=intensity, rules=self.rules)
