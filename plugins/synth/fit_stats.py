"""Derive the label figures of the synthetic benchmark from the ENC-2020 manual labels.

    python -m plugins.synth.fit_stats [LABELS] [--out plugins/synth/enc2020_stats.json]

LABELS defaults to ``../shared/data/emotionet2020/manual_labels_train.txt``
(22,592 rows, challenge text format). The label file itself never enters the
project; only these figures do:

* per AU: positive rate (999 counts as not positive, as in the metric's
  counts), unknown (999) rate, positive rate among known labels;
* the co-occurrence matrix P(AU_i = 1 and AU_j = 1) and the phi correlation;
* a K-component Bernoulli mixture over the 17 facial AUs, fitted by EM with
  999 treated as missing (deterministic initialisation);
* the joint distribution of the 27 head-pose states (turn x up/down x tilt);
* the occluder 999 rate per AU, measured by rendering (it depends on the
  renderer), and the annotator-unsure rate that tops it up to the real
  unknown rate: unsure = (unknown - occluded) / (1 - occluded), floored at 0.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from harness.fileio import atomic_open
from harness.labels import read_labels
from harness.schema import POSITIVE, UNKNOWN
from plugins.benchmarks.enc2020 import SCHEMA as ENC2020
from plugins.synth import RENDERER_VERSION
from plugins.synth.face import AUS
from plugins.synth.labelmodel import FACIAL_IDX, POSE_IDX, STATS_PATH, LabelModel, pose_states

SHARED = Path(os.environ.get("AUH_SHARED", Path(__file__).resolve().parents[3] / "shared"))
DEFAULT_LABELS = SHARED / "data/emotionet2020/manual_labels_train.txt"
COMPONENTS = 12
CALIBRATION_IMAGES = 300  # per occluder kind


def bernoulli_mixture(x: np.ndarray, known: np.ndarray, k: int, iters: int = 300,
                      seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """EM for a Bernoulli mixture with missing entries: ``(weights[k], probs[k, D])``.

    ``x`` is 0/1, ``known`` masks the observed entries. A Beta(1, 1) prior
    keeps probabilities off 0 and 1.
    """
    rng = np.random.default_rng(seed)
    n, d = x.shape
    xk, kn = (x * known).astype(np.float64), known.astype(np.float64)
    weights = np.full(k, 1.0 / k)
    probs = np.clip(xk.sum(0) / kn.sum(0) * rng.uniform(0.5, 1.5, (k, d)), 0.02, 0.98)
    for _ in range(iters):
        loglik = xk @ np.log(probs).T + (kn - xk) @ np.log1p(-probs).T + np.log(weights)
        loglik -= loglik.max(1, keepdims=True)
        resp = np.exp(loglik)
        resp /= resp.sum(1, keepdims=True)
        weights = resp.mean(0)
        probs = (resp.T @ xk + 1) / (resp.T @ kn + 2)
    order = np.argsort(-weights)
    return weights[order], probs[order]


def label_figures(labels: np.ndarray) -> dict:
    """Rates, co-occurrence, mixture and pose figures from a ``[N, 23]`` label matrix."""
    pos, unk = labels == POSITIVE, labels == UNKNOWN
    known = ~unk
    facial = labels[:, FACIAL_IDX]
    weights, probs = bernoulli_mixture((facial == POSITIVE), facial != UNKNOWN, COMPONENTS)
    co = pos.T.astype(np.float64) @ pos / len(labels)
    phi = np.corrcoef(pos.T.astype(np.float64))
    pose = np.bincount(pose_states(labels[:, POSE_IDX]), minlength=27) / len(labels)
    r4 = lambda a: np.round(np.asarray(a, dtype=np.float64), 5).tolist()  # noqa: E731
    return {
        "aus": list(AUS),
        "n_rows": int(len(labels)),
        "positive_rate": r4(pos.mean(0)),
        "unknown_rate": r4(unk.mean(0)),
        "known_positive_rate": r4((pos & known).sum(0) / np.maximum(known.sum(0), 1)),
        "cooccurrence": r4(co),
        "phi": r4(np.nan_to_num(phi)),
        "mixture": {"facial_aus": [AUS[i] for i in FACIAL_IDX], "weights": r4(weights), "probs": r4(probs)},
        "pose_state_probs": r4(pose / pose.sum()),
    }


def occluder_rates(stats: dict, size: int = 64) -> np.ndarray:
    """Expected 999 rate per AU caused by occluders, measured by rendering."""
    from plugins.synth.occluders import OCCLUDER_RATES, Occluder
    from plugins.synth.writer import au_sample

    model = LabelModel.from_stats({**stats, "unsure_rate": [0.0] * len(AUS)})
    rate = np.zeros(len(AUS))
    rng = np.random.default_rng(12345)
    for kind, p in OCCLUDER_RATES.items():
        hidden = np.zeros(len(AUS))
        for i in range(CALIBRATION_IMAGES):
            s = au_sample(98765, i, size, model, occluder=Occluder(kind, rng.random(8)))
            hidden += s.labels == UNKNOWN
        rate += p * hidden / CALIBRATION_IMAGES
    return rate


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("labels", nargs="?", default=str(DEFAULT_LABELS))
    ap.add_argument("--out", default=str(STATS_PATH))
    args = ap.parse_args(argv)
    _, labels = read_labels(args.labels, ENC2020)
    stats = {"source": Path(args.labels).name, **label_figures(labels)}
    occ = occluder_rates(stats)
    unknown = np.asarray(stats["unknown_rate"])
    stats["occluder_unknown_rate"] = np.round(occ, 5).tolist()
    stats["unsure_rate"] = np.round(np.clip((unknown - occ) / (1 - occ), 0, 1), 5).tolist()
    stats["renderer_version"] = RENDERER_VERSION
    with atomic_open(args.out) as fh:  # the label model of every later run reads it
        fh.write(json.dumps(stats, indent=1) + "\n")
    print(f"wrote {args.out}: {len(labels)} rows, {COMPONENTS} mixture components")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
