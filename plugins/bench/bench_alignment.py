"""Face alignment: MTCNN one image at a time vs batched, and the aligned-face cache.

* ``mtcnn``: the ``mtcnn`` aligner (``harness.create("aligner", "mtcnn",
  size=112)``) on synthetic faces, called once per image vs once for the
  whole list (it batches 32 images per detector call). Equality: the same
  found flags, landmarks within 0.001 px and crops within one grey level
  (batched convolutions round differently in the last float bits).
* ``facecache``: the data time of one training epoch reading crops from the
  aligned-face cache (:mod:`harness.facecache`, through the engine's
  :class:`~harness.training.CropBatches` loader) vs decoding and aligning
  every image again each epoch (batched, the fast way). Equality: the
  model-ready input tensors are bit-identical. The one-time cost of
  building the cache is reported in the note.

The faces are the ``synth`` dataset's (generated once into the dataset
cache, ``$AUH_CACHE/synth``).
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

import harness
from harness.augment import model_input
from harness.training import CropBatches, loader
from harness.facecache import build_cache
from harness.images import read_image
from harness.protocols import IR_NORMALIZATION
from plugins.bench.rows import best_time, interleaved, row

SIZE = 112
BATCH = 32


def synth_faces(n: int) -> list[Path]:
    """Paths of ``n`` synthetic face images (112 px), generated on first use."""
    dataset = harness.create("dataset", "synth", n=n, size=SIZE, identities=1, per_identity=1,
                             per_expression=1)
    return list(dataset.images)


def decode(paths: list[Path]) -> list[Image.Image]:
    return [read_image(p).convert("RGB") for p in paths]


def crops_of(faces: list[Any]) -> np.ndarray:
    return np.stack([np.asarray(f.image, dtype=np.uint8) for f in faces])


def bench_mtcnn(quick: bool) -> list[dict[str, Any]]:
    n, repeats = (16, 1) if quick else (96, 2)
    images = decode(synth_faces(n))
    aligner = harness.create("aligner", "mtcnn", size=SIZE, batch_size=BATCH)
    aligner.align(images[:2])  # warm-up: the first calls build the detector's kernels

    # Timed a batch at a time, both ways in turn, so that noise hits both sides.
    batched_s = one_s = 0.0
    batched, one = [], []
    for s in range(0, n, BATCH):
        chunk = images[s:s + BATCH]
        (tb, to), (fb, fo) = interleaved([lambda: aligner.align(chunk),
                                          lambda: [aligner.align([img])[0] for img in chunk]], repeats)
        batched_s, one_s = batched_s + tb, one_s + to
        batched += fb
        one += fo

    pixel_diff = int(np.abs(crops_of(one).astype(np.int16) - crops_of(batched)).max())
    landmark_diff = float(max(np.abs(a.landmarks - b.landmarks).max() for a, b in zip(one, batched)))
    equal = [a.found for a in one] == [b.found for b in batched] and landmark_diff < 1e-3 and pixel_diff <= 1
    found = sum(f.found for f in batched)
    return [row("MTCNN alignment", f"{n} synthetic faces, 112 px", batched_s,
                "one image per call", one_s, equal,
                f"same found flags, landmarks within {landmark_diff:.1g} px, crops within "
                f"{pixel_diff} grey level",
                f"batched {n / batched_s:.1f} img/s vs one by one {n / one_s:.1f} img/s "
                f"({BATCH} images per detector call); faces found in {found} of {n}; per batch of "
                f"{BATCH}, the fastest of {repeats} interleaved runs each",
                harness_img_s=n / batched_s, baseline_img_s=n / one_s)]


def bench_facecache(quick: bool) -> list[dict[str, Any]]:
    n, repeats = (32, 1) if quick else (128, 1)
    paths = synth_faces(n)
    aligner = harness.create("aligner", "mtcnn", size=SIZE, batch_size=BATCH)
    aligner.align(decode(paths[:2]))  # warm-up
    order = np.random.default_rng(0).permutation(n)

    with tempfile.TemporaryDirectory(prefix="auh-bench-") as folder:
        start = time.perf_counter()
        cache = build_cache(paths, aligner, folder, batch_size=BATCH, shard_size=4 * BATCH, verify=False)
        build_s = time.perf_counter() - start
        # The engine's path: one fancy index per batch from the memory-mapped cache.
        epoch = lambda: torch.cat([model_input(x, SIZE, "cpu", normalization=IR_NORMALIZATION)
                                   for x, _, _ in loader(CropBatches(cache, None), order, BATCH, 0, False)])
        cached_s = best_time(epoch, 3 * repeats)
        cached_rows = epoch()[np.argsort(order)]

    # Without a cache every epoch decodes and aligns again, in image order so
    # that the detector sees the same batches as when the cache was built.
    fresh_s, fresh = 0.0, []
    for s in range(0, n, BATCH):
        (t,), (x,) = interleaved([lambda: model_input(torch.from_numpy(crops_of(aligner.align(decode(paths[s:s + BATCH])))),
                                                      SIZE, "cpu", normalization=IR_NORMALIZATION)], repeats)
        fresh_s += t
        fresh.append(x)
    equal = torch.equal(cached_rows, torch.cat(fresh))
    return [row("epoch data time, aligned cache", f"{n} synthetic faces, 112 px, batch {BATCH}", cached_s,
                "decode + MTCNN-align (batched) every epoch", fresh_s, equal,
                "bit-identical input tensors",
                f"building the cache once took {build_s:.1f} s (one aligning pass plus the "
                f"shard writes); the cached epoch reads a shuffled order (fastest of "
                f"{3 * repeats} epochs); without the cache, the fastest of {repeats} run(s) per batch",
                cache_build_s=build_s)]
