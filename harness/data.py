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

    A dataset names its benchmark by its schema's name (``bp4d``: that
    benchmark's metric scores the run, its per-AU objective fits the
    thresholds; :func:`harness.benchmark.benchmark_of`). ``subjects`` gives each row's person: cross-validation then keeps every
    subject in one fold and validation subjects apart from training ones.
    ``ids`` names the rows where file names repeat (frames of many videos);
    ``partition`` describes where ``folds`` came from (a fold manifest's path
    and sha256), recorded in every run.
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
    subjects: np.ndarray | None = None  # [N] person of each row
    ids: list[str] | None = None  # [N] row names (default: the image file names)
    partition: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels)
        n, c = len(self.images), len(self.schema)
        if self.labels.shape != (n, c):
            raise ValueError(f"dataset {self.name!r}: labels have shape {self.labels.shape}, "
                             f"expected ({n}, {c})")
        self.splits = {k: np.asarray(v, dtype=np.int64) for k, v in self.splits.items()}
        for name in ("groups", "subjects"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, np.asarray(value))
                if getattr(self, name).shape != (n,):
                    raise ValueError(f"dataset {self.name!r}: {name} have shape "
                                     f"{getattr(self, name).shape}, expected ({n},)")
        if self.ids is not None and len(self.ids) != n:
            raise ValueError(f"dataset {self.name!r}: {len(self.ids)} row ids for {n} rows")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def names(self) -> list[str]:
        """Row names as they appear in label files and submissions (``ids``, else the
        image file names)."""
        return list(self.ids) if self.ids is not None else [p.name for p in self.images]
