"""Applying a temporal smoother (``auh_smoothers``) to whole videos or to rows grouped by video.

A smoother sees one video at a time, its frames in order
(:class:`harness.protocols.Smoother`); these helpers cut a table's rows
into videos so that no window ever crosses from one video into the next.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def smooth_sequence(smoother: Any, probs: np.ndarray) -> np.ndarray:
    """One video's ``[T, C]`` probabilities, frames in order, smoothed (``[T, C]`` float64)."""
    probs = np.asarray(probs, dtype=np.float64)
    stream = smoother.stream()
    parts = [stream.push(probs), stream.close()]
    out = np.concatenate([np.asarray(p, dtype=np.float64).reshape(-1, probs.shape[1]) for p in parts])
    if out.shape != probs.shape:
        raise ValueError(f"smoother {type(smoother).__name__} returned {out.shape[0]} rows for "
                         f"{probs.shape[0]} frames; expected one per frame")
    return out


def smooth_by_group(smoother: Any, probs: np.ndarray, groups: Sequence[Any] | None) -> np.ndarray:
    """``probs[N, C]`` smoothed within each group (video) of ``groups[N]``, rows of a group
    taken in their order here; ``None`` (an image-level dataset) returns ``probs`` unchanged."""
    probs = np.asarray(probs, dtype=np.float64)
    if groups is None or len(probs) == 0:
        return probs
    groups = np.asarray(groups)
    out = np.empty_like(probs)
    for group in dict.fromkeys(groups.tolist()):  # first-seen order; the result does not depend on it
        rows = np.flatnonzero(groups == group)
        out[rows] = smooth_sequence(smoother, probs[rows])
    return out
