"""A dataset plugin for tests: the noise dataset plus a third companion task, ``pose``.

Its images are the noise images; the pose class is written in the green
channel, so a view pretrained on it has something to learn. Nothing in the
core names the task: a view's ``pretrain = "pose"`` is checked against the
dataset's companions and trained like any other.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image

from harness import hookimpl
from harness.data import LabelledImages

_spec = importlib.util.spec_from_file_location("auh_test_noise", Path(__file__).with_name("noise_dataset.py"))
noise = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(noise)

POSES = ["left", "frontal", "right"]


def make(n: int = 60, size: int = 32, seed: int = 0):
    dataset = noise.make(n, size, seed)
    folder = dataset.root / "pose"
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(seed + 1)
    targets = np.arange(n) % len(POSES)
    paths = []
    for i, target in enumerate(targets):
        path = folder / f"pose{i:04d}.png"
        if not path.exists():
            pixels = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
            pixels[:, :, 1] = 100 * target
            Image.fromarray(pixels).save(path)
        paths.append(path)
    dataset.companions["pose"] = LabelledImages("pose", paths, targets, POSES)
    return dataset


@hookimpl
def auh_datasets():
    return {"posed_noise": make}
