"""What a reader plugin returns: another tool's AU output, one row per detected face.

A reader (``auh_readers``) parses the file(s) a tool wrote and maps its
columns onto the ENC AUs it covers. Every array has one entry per row of
the tool's output; nothing is matched to truth images or binarized here
(that is :mod:`leaderboard.other_tools`, the same for every tool).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class ToolOutput:
    """Rows of one tool's output, mapped onto ENC AU names (``"AU1"``, ...).

    * ``keys``: per row, the image the tool says it read: a path or file
      name, a frame number (matched through ``--map``), or for a frame of a
      video ``VIDEO/FRAME``: the video's name and the frame number as the
      tool wrote it (``default/1``: OpenFace's first frame of default.wmv).
    * ``videos`` / ``frames``: per row, the video a row is a frame of (``""``
      for an image) and the tool's frame number (NaN for an image); None when
      no row is a video frame. ``first_frame`` is the number the tool gives a
      video's first frame (OpenFace 1, py-feat and LibreFace 0), declared by
      its reader, so that matching can convert to a benchmark's frame names.
    * ``where``: per row, ``"file: line N"`` for messages.
    * ``failed``: per row, True for a failed detection (OpenFace's
      ``success == 0``, py-feat's NaN row): the image counts as missing
      unless another row of it succeeded.
    * ``presence`` / ``intensity`` / ``probability``: ``{ENC AU: values[R]}``,
      0/1 decisions of the tool, 0-5 intensities, [0, 1] probabilities. An
      AU may have a presence and an intensity column (OpenFace 2).
    * ``box_area`` / ``confidence``: per row, for ``--face largest`` /
      ``--face confidence``; None when the tool gives none.
    * ``pose``: ``{"yaw" | "pitch" | "roll": degrees[R]}``, the head pose where
      the tool estimates it (head-pose AUs 51-56 with ``--pose-aus``).
    * ``rules``: how the reader mapped the tool's columns, one line (ledger tag).
    """

    source: str
    keys: list[str]
    where: list[str]
    failed: np.ndarray
    presence: dict[str, np.ndarray] = field(default_factory=dict)
    intensity: dict[str, np.ndarray] = field(default_factory=dict)
    probability: dict[str, np.ndarray] = field(default_factory=dict)
    box_area: np.ndarray | None = None
    confidence: np.ndarray | None = None
    pose: dict[str, np.ndarray] = field(default_factory=dict)
    rules: str = ""
    videos: list[str] | None = None
    frames: np.ndarray | None = None
    first_frame: int = 0

    def __post_init__(self) -> None:
        n = len(self.keys)
        arrays = [self.failed, *self.presence.values(), *self.intensity.values(),
                  *self.probability.values(), *self.pose.values()]
        arrays += [a for a in (self.box_area, self.confidence, self.videos, self.frames) if a is not None]
        if (self.videos is None) != (self.frames is None):
            raise ValueError(f"ToolOutput of {self.source}: videos and frames go together")
        if len(self.where) != n or any(len(a) != n for a in arrays):
            raise ValueError(f"ToolOutput of {self.source}: every per-row array needs {n} entries")
        if set(self.probability) & (set(self.presence) | set(self.intensity)):
            raise ValueError(f"ToolOutput of {self.source}: an AU is both a probability and "
                             f"a presence/intensity column")

    @property
    def covered(self) -> set[str]:
        """The ENC AUs this output predicts."""
        return set(self.presence) | set(self.intensity) | set(self.probability)
