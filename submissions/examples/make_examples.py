"""Regenerate the example truth and submissions of the organizer walkthrough.

    python submissions/examples/make_examples.py

The truth has 400 images with ENC-2020 per-AU positive and occlusion rates
(measured on the 22,592 manually annotated training rows). Three teams
submit the truth with different amounts of noise: ``alpha`` and ``beta``
are close, ``gamma`` is clearly worse, so the leaderboard shows one
significant and one doubtful gap.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.labels import write_labels

HERE = Path(__file__).resolve().parent
POSITIVE = [0.062, 0.03, 0.12, 0.036, 0.192, 0.021, 0.642, 0.383, 0.185, 0.022, 0.153, 0.006,
            0.446, 0.492, 0.085, 0.051, 0.028, 0.176, 0.173, 0.12, 0.078, 0.062, 0.065]
UNKNOWN = [0.071, 0.063, 0.028, 0.064, 0.056, 0.039, 0.013, 0.193, 0.02, 0.078, 0.016, 0.005,
           0.017, 0.047, 0.039, 0.015, 0.052, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
TEAMS = {"alpha": (0.25, 0.04), "beta": (0.28, 0.045), "gamma": (0.5, 0.08)}  # miss, false alarm


def main(n: int = 400, seed: int = 2020) -> None:
    rng = np.random.default_rng(seed)
    names = [f"test_{i:05d}.jpg" for i in range(n)]
    truth = (rng.random((n, len(POSITIVE))) < POSITIVE).astype(np.int64)
    write_labels(HERE / "truth.txt", names, np.where(rng.random(truth.shape) < UNKNOWN, 999, truth))
    for team, (miss, false_alarm) in TEAMS.items():
        flip = np.where(truth == 1, rng.random(truth.shape) < miss,
                        rng.random(truth.shape) < false_alarm)
        order = rng.permutation(n)  # any row order is allowed
        write_labels(HERE / f"{team}.csv", [names[i] for i in order], (truth ^ flip)[order])


if __name__ == "__main__":
    main()
