"""LibreFace: a table of ``au_{k}`` presence (0/1, thresholded by LibreFace) and
``au_{k}_intensity`` (0-5) per image.

LibreFace detects BP4D's 12 AUs (presence) and estimates DISFA's 12 AU
intensities; its Python API returns these as a dict per image or a
frame table per video, and ``get_facial_attributes(file_path,
output_save_path=...)`` writes them as CSV:

* an image: one row, which (in recent releases) names no image: the file
  name is the image (``Atul10459.csv`` for ``Atul10459.png``), so give the
  folder of these CSVs, or one of them; a column such as ``image_path`` or
  ``input_image_path``, where present, names the image instead;
* a video: one row per frame, ``frame_idx`` counted from 0 and
  ``path_to_frame`` (``TEMP/VIDEO/0000000000.png``, whose folder is the
  video's name; else the CSV's name is): keyed ``VIDEO/FRAME``.

LibreFace aligns one face per image: it gives no face box or detection
score, so two rows for one image are refused.
"""
from __future__ import annotations

import re
from pathlib import Path, PureWindowsPath

import numpy as np
import pandas as pd

from harness.errors import UserError
from harness.tooloutput import ToolOutput
from plugins.readers import tables

_AU = re.compile(r"^au_(\d+)(_intensity)?$")
FIRST_FRAME = 0  # frame_idx of a video's first frame


class LibreFaceReader(tables.BenchmarkAUs):
    """LibreFace CSV: au_{k} presence (LibreFace's decision), au_{k}_intensity 0-5."""

    rules = ("au_k presence as LibreFace decided it, or au_k_intensity >= the intensity "
             "threshold; a row without AU values is a failed detection")

    first_frame = FIRST_FRAME

    def read(self, path: str | Path) -> ToolOutput:
        return tables.read_csv_output(path, "LibreFace", self._read_file, self.rules)

    def _read_file(self, path: Path) -> ToolOutput:
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
                presence[au] = tables.presence(frame, col, path)
        if not presence and not intensity:
            raise UserError(f"{path}: line 1: no au_k or au_k_intensity columns; expected "
                            f"LibreFace output")
        failed = tables.empty_rows(frame, path, {**presence, **intensity})
        keys, videos, frames = _keys(frame, path)
        return ToolOutput(source=str(path), keys=keys, where=tables.where(frame, path), failed=failed,
                          presence=presence, intensity=intensity, rules=self.rules, videos=videos,
                          frames=frames, first_frame=FIRST_FRAME)


def _keys(frame: pd.DataFrame, path: Path) -> tuple[list[str], list[str] | None, np.ndarray | None]:
    """A video's ``VIDEO/FRAME`` keys, the image column's paths, or the file name as the image."""
    if "frame_idx" in frame.columns:
        saved = frame["path_to_frame"].tolist() if "path_to_frame" in frame.columns else [None] * len(frame)
        videos = [(PureWindowsPath(p).parent.name if isinstance(p, str) else "") or path.stem for p in saved]
        return tables.video_frames(frame, path, "frame_idx", videos)
    if tables.first_column(frame, tables.IMAGE_COLUMNS + tables.FRAME_COLUMNS) is not None:
        return tables.image_keys(frame, path), None, None
    return [path.stem] * len(frame), None, None
