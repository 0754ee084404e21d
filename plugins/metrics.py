"""The built-in metrics (component kind ``metric``): how per-AU scores become a benchmark's headline.

Declarations only, numpy and the standard library: the scorer that ``auh
export`` packages carries this module (:data:`BUILTIN`). They are registered
with the ``auh_metrics`` hook by :mod:`plugins.benchmarks`.
"""
from __future__ import annotations

import numpy as np

from harness.metrics import Metric


def _enc2020_final(accuracy: np.ndarray, f1: np.ndarray) -> np.ndarray:
    return (accuracy + f1) / 2


def _f1_only(accuracy: np.ndarray, f1: np.ndarray) -> np.ndarray:
    return np.asarray(f1, dtype=np.float64)  # NaN where undefined, as accuracy is


ENC2020 = Metric("enc2020", "(accuracy + F1) / 2", _enc2020_final, _enc2020_final,
                 description="(mean accuracy + mean F1) / 2")
"""The EmotioNet Challenge 2020 score: the mean of mean accuracy and mean F1 over the AUs."""
MEAN_F1 = Metric("mean_f1", "mean F1", _f1_only, _f1_only)
"""The mean over the AUs of per-AU F1 (ABAW, BP4D, DISFA): no accuracy term."""

BUILTIN: dict[str, Metric] = {m.name: m for m in (ENC2020, MEAN_F1)}
