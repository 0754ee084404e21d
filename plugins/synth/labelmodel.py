"""The label model: ENC-2020-like AU labels for synthetic faces.

Facial AUs (the 17 non-pose AUs) come from a latent-expression mixture: a
Bernoulli mixture fitted by EM to the ENC-2020 manual labels (999 treated as
missing), so each image first draws an "expression" component and then its
AUs, and AUs that move together in the wild (6 with 12, 1 with 2, 25 with
26, 24 against 25) move together here. Head-pose AUs 51-56 come from the
empirical joint distribution of (turn, up/down, tilt), which keeps each
left/right pair mutually exclusive as in the real labels.

Unknown labels (999) have two sources, as in EmotioNet: occluders hide
regions (the renderer reports which AUs) and annotators are unsure; the
unsure rate per AU tops the occluder rate up to the real 999 rate.

The figures live in ``enc2020_stats.json`` (written by
``python -m plugins.synth.fit_stats``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from plugins.synth.face import AUS

STATS_PATH = Path(__file__).with_name("enc2020_stats.json")
POSE_AUS: tuple[str, ...] = ("AU51", "AU52", "AU53", "AU54", "AU55", "AU56")
FACIAL_AUS: tuple[str, ...] = tuple(a for a in AUS if a not in POSE_AUS)
FACIAL_IDX = np.array([AUS.index(a) for a in FACIAL_AUS])
POSE_IDX = np.array([AUS.index(a) for a in POSE_AUS])
# Intensity of a present AU: uniform on [low, 1].
MIN_INTENSITY = 0.4


def pose_state_labels(state: np.ndarray) -> np.ndarray:
    """Pose state ids ``turn * 9 + updown * 3 + tilt`` (each 0 none, 1 first AU, 2 second AU)
    -> ``[N, 6]`` labels for AU51..AU56."""
    state = np.asarray(state)
    digits = np.stack([state // 9, state // 3 % 3, state % 3], axis=-1)
    out = np.zeros(state.shape + (6,), dtype=np.int64)
    for axis in range(3):
        out[..., 2 * axis] = digits[..., axis] == 1
        out[..., 2 * axis + 1] = digits[..., axis] == 2
    return out


def pose_states(labels: np.ndarray) -> np.ndarray:
    """Inverse of :func:`pose_state_labels` for ``[N, 6]`` pose labels (1 = present)."""
    pos = np.asarray(labels) == 1
    digits = [np.where(pos[:, 2 * a], 1, np.where(pos[:, 2 * a + 1], 2, 0)) for a in range(3)]
    return digits[0] * 9 + digits[1] * 3 + digits[2]


@dataclass(frozen=True)
class LabelModel:
    """Samples latent AU labels and intensities; decides annotator-unsure 999s."""

    weights: np.ndarray        # [K] mixture weights
    probs: np.ndarray          # [K, 17] P(facial AU present | component)
    pose_probs: np.ndarray     # [27] joint pose-state probabilities
    unsure_rate: np.ndarray    # [23] P(999 | not occluded)

    @classmethod
    def from_stats(cls, stats: dict | None = None) -> "LabelModel":
        s = stats if stats is not None else load_stats()
        weights, pose = np.asarray(s["mixture"]["weights"]), np.asarray(s["pose_state_probs"])
        return cls(weights / weights.sum(), np.asarray(s["mixture"]["probs"]), pose / pose.sum(),
                   np.asarray(s["unsure_rate"]))

    def sample(self, rng: np.random.Generator) -> tuple[int, np.ndarray]:
        """``(component, intensity[23])``: 0 for absent AUs, ``[MIN_INTENSITY, 1]`` for present."""
        k = int(rng.choice(len(self.weights), p=self.weights))
        u = rng.random(len(AUS) + len(FACIAL_AUS))
        present = np.zeros(len(AUS), dtype=bool)
        present[FACIAL_IDX] = u[: len(FACIAL_AUS)] < self.probs[k]
        state = int(rng.choice(len(self.pose_probs), p=self.pose_probs))
        present[POSE_IDX] = pose_state_labels(np.array(state)).astype(bool)
        level = MIN_INTENSITY + (1 - MIN_INTENSITY) * u[len(FACIAL_AUS):]
        return k, np.where(present, level, 0.0)

    def unsure(self, rng: np.random.Generator) -> np.ndarray:
        """``[23]`` bool: AUs an annotator would not commit to on this image."""
        return rng.random(len(AUS)) < self.unsure_rate


@lru_cache(maxsize=1)
def _stats_text() -> str:
    return STATS_PATH.read_text()


def load_stats() -> dict:
    """The derived ENC-2020 figures (see ``fit_stats.py``)."""
    return json.loads(_stats_text())
