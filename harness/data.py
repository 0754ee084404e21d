"""Datasets as arrays: what a dataset plugin returns and what an aligner yields.

A dataset is image paths plus a label matrix (1 / 0 / 999) in its own AU
schema, optional ground-truth landmarks, fixed splits and cross-validation
folds, and optional companion sets for the pretraining views.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from harness.schema import AUSchema


def cache_root() -> Path:
    """Where generated data and aligned faces are cached: ``$AUH_CACHE``, else
    ``~/.cache/au-harness`` (an empty ``AUH_CACHE`` counts as unset)."""
    base = os.environ.get("AUH_CACHE")
    return Path(base) if base else Path.home() / ".cache" / "au-harness"


@dataclass
class AlignedFace:
    """One aligner output: the crop, the 5 landmarks in crop coordinates, and
    whether a face was found (``False``: a fallback crop, still labelled).

    Optional, for reports such as ``auh predict``'s table (``None`` where the
    aligner does not know): ``box``, the face in the source image's pixels
    (``[4]`` x0, y0, x1, y1: the detector's box, or for aligners without a
    detector the region the crop shows); ``score``, the detector's confidence;
    ``source_landmarks``, the 5 landmarks in the source image's pixels.
    """

    image: Image.Image
    landmarks: np.ndarray  # [5, 2] float32: left eye, right eye, nose, left mouth, right mouth
    found: bool
    box: np.ndarray | None = None
    score: float | None = None
    source_landmarks: np.ndarray | None = None


@dataclass
class LabelledImages:
    """A single-label image set for a pretraining task (identity, expression)."""

    task: str
    images: list[Path]
    targets: np.ndarray  # [N] int64 class ids
    classes: list[str]
    landmarks: np.ndarray | None = None  # [N, 5, 2] ground truth, if known

    def __post_init__(self) -> None:
        self.targets = np.asarray(self.targets, dtype=np.int64)
        if len(self.images) != len(self.targets):
            raise ValueError(f"{self.task}: {len(self.images)} images but {len(self.targets)} targets")


@dataclass
class AUDataset:
    """An AU benchmark: ``labels[i]`` belongs to ``images[i]``.

    ``splits`` maps ``train`` / ``val`` / ``test`` to row indices; ``folds``
    gives each row a cross-validation fold id (or is ``None``).
    ``companions`` maps a pretraining task name (``identity``,
    ``expression``) to its :class:`LabelledImages`. A frame-level dataset
    gives ``groups``: per row, the video it is a frame of, a video's rows in
    frame order (the recipe's smoother runs within each video); ``None``, an
    image-level dataset, is never smoothed.
    """

    name: str
    schema: AUSchema
    images: list[Path]
    labels: np.ndarray  # [N, C] int, 1 / 0 / 999
    splits: dict[str, np.ndarray] = field(default_factory=dict)
    folds: np.ndarray | None = None
    landmarks: np.ndarray | None = None
    companions: dict[str, LabelledImages] = field(default_factory=dict)
    root: Path | None = None  # where the dataset lives (cache keys are relative to it)
    groups: np.ndarray | None = None  # [N] video of each row (frame-level datasets)

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels)
        n, c = len(self.images), len(self.schema)
        if self.labels.shape != (n, c):
            raise ValueError(f"dataset {self.name!r}: labels have shape {self.labels.shape}, "
                             f"expected ({n}, {c})")
        self.splits = {k: np.asarray(v, dtype=np.int64) for k, v in self.splits.items()}
        if self.groups is not None:
            self.groups = np.asarray(self.groups)
            if self.groups.shape != (n,):
                raise ValueError(f"dataset {self.name!r}: groups have shape {self.groups.shape}, "
                                 f"expected ({n},)")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def names(self) -> list[str]:
        """Image names as they appear in label files and submissions."""
        return [p.name for p in self.images]
