"""OpenGraphAU (ME-GraphAU): the 41 AU probabilities of its hybrid model, one row per face image.

OpenGraphAU's demo prints and draws its predictions but writes no file, so
the table read here is defined by au-harness: the image path in a column
such as ``image``, then one probability column per output, named by the
AU ids of ``OpenGraphAU/utils.py``: ``AU1 ... AU39`` (27 AUs) and the 14
one-sided outputs ``AUL1, AUR1, AUL2, AUR2, AUL4, AUR4, AUL6, AUR6, AUL10,
AUR10, AUL12, AUR12, AUL14, AUR14``.

Bilateral rule: an ENC AU is present on the face if it is present on
either side, so its probability is the maximum of the AU's own output and
its left and right outputs.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.tooloutput import ToolOutput
from plugins.readers import tables

BOTH_SIDES = (1, 2, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 22, 23, 24, 25,
              26, 27, 32, 38, 39)
ONE_SIDE = (1, 2, 4, 6, 10, 12, 14)
COLUMNS = tuple(f"AU{k}" for k in BOTH_SIDES) + tuple(
    f"AU{side}{k}" for k in ONE_SIDE for side in "LR")


class OpenGraphAUReader(tables.BenchmarkAUs):
    """OpenGraphAU's 41 probabilities (AU1..AU39, AUL1/AUR1 ...); ENC AU = max of AU, left, right."""

    rules = ("probability = max(AUk, AULk, AURk) >= the threshold; a row without values is a "
             "failed detection")

    def read(self, path: str | Path) -> ToolOutput:
        frame = tables.read_table(path)
        tables.require(frame, COLUMNS, path, "the 41 OpenGraphAU outputs " + ", ".join(COLUMNS))
        raw = {col: tables.numbers(frame, col, path, 0, 1) for col in COLUMNS}
        probability = {}
        for k in BOTH_SIDES:
            au = self.au_name(k)
            if au is not None:
                sides = [raw[c] for c in (f"AU{k}", f"AUL{k}", f"AUR{k}") if c in raw]
                probability[au] = np.max(sides, axis=0)  # NaN anywhere stays NaN: failed
        return ToolOutput(source=str(path), keys=tables.image_keys(frame, path),
                          where=tables.where(frame, path),
                          failed=tables.empty_rows(frame, path, raw), probability=probability,
                          rules=self.rules)
