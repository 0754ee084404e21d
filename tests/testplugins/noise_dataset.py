"""A dataset plugin for tests: noise images whose AU1 label is written in the red channel.

Small and instant, so tests of the machinery (torchrun, resume) do not
depend on the synthetic face renderer.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from harness import hookimpl
from harness.data import AUDataset, LabelledImages
from harness.schema import ENC2020

LANDMARKS = np.array([[15, 20], [33, 20], [24, 28], [17, 36], [31, 36]], float)


def make(n: int = 80, size: int = 48, seed: int = 0) -> AUDataset:
    root = Path(os.environ["AUH_CACHE"]) / f"noise-{n}-{size}-{seed}"
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, 23)) < 0.3).astype(int)
    labels[rng.random((n, 23)) < 0.05] = 999
    paths = []
    for i in range(n):
        path = root / f"img{i:04d}.png"
        pixels = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        pixels[:, :, 0] = (labels[i, 0] == 1) * 200
        if not path.exists():
            Image.fromarray(pixels).save(path)
        paths.append(path)
    landmarks = np.tile(LANDMARKS * size / 48, (n, 1, 1))
    order = rng.permutation(n)
    cut1, cut2 = int(0.6 * n), int(0.8 * n)
    splits = {"train": order[:cut1], "val": order[cut1:cut2], "test": order[cut2:]}
    half = n // 2
    companions = {
        "identity": LabelledImages("identity", paths[:half], np.arange(half) % 4, list("abcd"), landmarks[:half]),
        "expression": LabelledImages("expression", paths[half:], np.arange(n - half) % 8, list("abcdefgh"),
                                     landmarks[half:]),
    }
    return AUDataset("noise", ENC2020, paths, labels, splits, np.arange(n) % 5, landmarks, companions, root)


@hookimpl
def auh_datasets():
    return {"noise": make}
