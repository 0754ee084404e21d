"""Temporal smoothers of per-frame AU probabilities: ``none`` (the default), ``median``, ``ema``.

Each satisfies :class:`harness.protocols.Smoother` (and has ``smooth(probs)``
for one whole video): ``stream()`` opens one video's stream; ``push(probs[B, C])`` returns the smoothed rows that are
final so far and ``close()`` the rest, in frame order, one per frame pushed.
The result does not depend on how the frames were cut into pushes, so
``auh predict`` smooths a video in constant memory.

* ``median``: per AU, the median of the probabilities in a centred window of
  ``window`` frames (odd). At the ends of a video the window is cut to the
  frames that exist (the first frame's median is over frames 0 .. window//2),
  so a video never borrows frames from its neighbour. A frame is final once
  ``window // 2`` later frames have been pushed.
* ``ema``: the exponential moving average ``y[0] = x[0]``,
  ``y[t] = alpha * x[t] + (1 - alpha) * y[t - 1]``; causal, every row is
  final as soon as it is pushed.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from harness import hookimpl
from harness.smoothing import smooth_sequence


def _rows(probs: np.ndarray) -> np.ndarray:
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2:
        raise ValueError(f"a smoother takes [frames, AUs] probabilities, got shape {probs.shape}")
    return probs


class _Identity:
    def __init__(self) -> None:
        self.width = 0

    def push(self, probs: np.ndarray) -> np.ndarray:
        probs = _rows(probs)
        self.width = probs.shape[1]
        return probs.copy()

    def close(self) -> np.ndarray:
        return np.empty((0, self.width))


class _WholeVideo:
    def smooth(self, probs: np.ndarray) -> np.ndarray:
        """One whole video's ``[T, C]`` probabilities, smoothed (its stream, pushed at once)."""
        return smooth_sequence(self, probs)


class NoSmoothing(_WholeVideo):
    """No smoothing: every frame's probabilities as predicted (image datasets, the default)."""

    def stream(self) -> _Identity:
        return _Identity()


class _MedianStream:
    """Keeps the last ``half`` frames before the first pending one and the pending ones."""

    def __init__(self, half: int) -> None:
        self.half = half
        self.kept = np.empty((0, 0))  # frames first .. seen-1
        self.first = 0  # frame index of kept[0]
        self.done = 0  # frames already returned
        self.seen = 0

    def push(self, probs: np.ndarray) -> np.ndarray:
        probs = _rows(probs)
        self.kept = probs.copy() if self.seen == 0 else np.concatenate([self.kept, probs])
        self.seen += len(probs)
        return self._emit(self.seen - self.half)

    def close(self) -> np.ndarray:
        return self._emit(self.seen)

    def _emit(self, stop: int) -> np.ndarray:
        """The medians of frames ``done .. stop-1``; frames outside the video are NaN, left out."""
        width = self.kept.shape[1] if self.kept.ndim == 2 else 0
        if stop <= self.done:
            return np.empty((0, width))
        lo, hi = self.done - self.half, stop + self.half
        span = np.full((hi - lo, width), np.nan)
        have_lo, have_hi = max(lo, self.first), min(hi, self.seen)
        span[have_lo - lo:have_hi - lo] = self.kept[have_lo - self.first:have_hi - self.first]
        windows = sliding_window_view(span, 2 * self.half + 1, axis=0)  # [stop-done, C, window]
        out = np.nanmedian(windows, axis=-1)
        self.done = stop
        keep_from = max(self.done - self.half, 0)
        self.kept, self.first = self.kept[keep_from - self.first:], keep_from
        return out


class Median(_WholeVideo):
    """Centred running median over ``window`` frames (odd), cut at the video's ends."""

    def __init__(self, window: int = 5) -> None:
        if isinstance(window, bool) or not isinstance(window, int) or window < 1 or window % 2 == 0:
            raise ValueError(f"window: expected an odd integer >= 1 (frames), got {window!r}")
        self.window = window

    def stream(self) -> _MedianStream:
        return _MedianStream(self.window // 2)


class _EmaStream:
    def __init__(self, alpha: float) -> None:
        self.alpha = alpha
        self.last: np.ndarray | None = None

    def push(self, probs: np.ndarray) -> np.ndarray:
        probs = _rows(probs)
        out = np.empty_like(probs)
        for t, row in enumerate(probs):  # a recurrence: each row needs the one before
            self.last = row.copy() if self.last is None else self.alpha * row + (1 - self.alpha) * self.last
            out[t] = self.last
        return out

    def close(self) -> np.ndarray:
        return np.empty((0, 0 if self.last is None else len(self.last)))


class Ema(_WholeVideo):
    """Exponential moving average with weight ``alpha`` in (0, 1] on the newest frame."""

    def __init__(self, alpha: float = 0.5) -> None:
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha <= 1:
            raise ValueError(f"alpha: expected a number in (0, 1], got {alpha!r}")
        self.alpha = float(alpha)

    def stream(self) -> _EmaStream:
        return _EmaStream(self.alpha)


@hookimpl
def auh_smoothers():
    return {"none": NoSmoothing, "median": Median, "ema": Ema}
