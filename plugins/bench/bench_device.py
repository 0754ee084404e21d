"""The GPU user's path: the loader at 224 px, the training step on a device, batched prediction.

* ``loader``: CPU seconds per image the training loader spends at 224 px,
  now (a gather of uint8 crops; float conversion, flips of the AU columns
  aside, on the device) against the loader before this change, which
  converted and normalized every batch to float on the CPU. Timed on one
  thread, so the rate is images per second per core; both sides must give
  the model bit-identical input. A second row times the transform the
  loader no longer does (conversion, random crop / scale, colour jitter,
  normalization, batched) on the training device against one CPU core, and
  checks that the device gives the CPU's tensors to float tolerance.
* ``device-training``: one SGD step of the harness's ``train_stage`` against
  a bare loop, interleaved step by step (see :mod:`plugins.bench.bench_training`);
  with ``--device cuda``: IR-152 at 224 px, bf16 autocast, channels-last.
* ``predict``: images per second of batched prediction
  (:func:`harness.training.predict_logits`) against calling the model on one
  image at a time, same model and crops, same logits.

``auh bench --device cuda`` runs these three at the paper's sizes;
``--device cpu --quick`` is their smoke test.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np
import torch

import harness
from harness.augment import Augment, model_input
from harness.training import CropBatches, predict_logits
from harness.protocols import IR_NORMALIZATION
from plugins.benchmarks.enc2020 import SCHEMA as ENC2020
from plugins.bench.bench_training import compare_training
from plugins.bench.rows import interleaved, row

SIZE = 224


@contextmanager
def _one_thread() -> Iterator[None]:
    """torch on one intra-op thread inside (per-core rates), its thread count restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _old_loader_batch(images: np.ndarray, rows: np.ndarray, flip_perm: list[int], targets: np.ndarray,
                      seed: int, number: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The loader's work per batch before the data path moved to the device:
    gather, flip, and float conversion + normalization on the CPU."""
    crops = np.stack([images[int(i)] for i in rows])
    y = np.array(targets[rows])
    flips = np.random.default_rng((seed, number)).random(len(rows)) < 0.5
    crops[flips] = crops[flips, :, ::-1]
    y[flips] = y[flips][:, flip_perm]
    x = torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float().div_(255)
    return (x - 0.5) / 0.5, torch.from_numpy(y)  # the IR nets' [-1, 1]


def bench_loader(quick: bool, device: str = "cpu") -> list[dict[str, Any]]:
    batch, batches = (16, 4) if quick else (64, 16)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (batch * batches, SIZE, SIZE, 3), dtype=np.uint8)
    targets = (rng.random((len(images), len(ENC2020))) < 0.2).astype(np.float32)
    flip = ENC2020.flip_permutation()
    order = rng.permutation(len(images))
    items = [(k, order[k * batch:(k + 1) * batch]) for k in range(batches)]
    data = CropBatches(images, targets, flip, seed=7)
    new = lambda: [data[item] for item in items]
    old = lambda: [_old_loader_batch(images, rows, flip, targets, 7, k) for k, rows in items]
    with _one_thread():
        (t_new, t_old), (got, ref) = interleaved([new, old], 2 if quick else 5)
    same = all(torch.equal(model_input(c, SIZE, "cpu", normalization=IR_NORMALIZATION), x) and torch.equal(y, ry)
               for (c, y, _), (x, ry) in zip(got, ref))
    n = len(images)
    rate_new, rate_old = n / t_new, n / t_old
    return [row("training loader at 224 px (per core)", f"{n} uint8 crops {SIZE} px, batch {batch}, flips on",
                t_new, "the loader before: float conversion and normalization on the CPU", t_old, same,
                "the model's input bit-identical (new path converted on the CPU here)",
                f"{rate_new:,.0f} img/s per core now vs {rate_old:,.0f} before (one thread). A GPU "
                f"training at N img/s needs N / {rate_new:,.0f} loader cores now, N / {rate_old:,.0f} before; "
                f"pinned-memory copies and the conversion then run on the GPU",
                images_per_core_s=rate_new, baseline_images_per_core_s=rate_old),
            _transform_row(images[:batch], device, 2 if quick else 5)]


def _transform_row(crops: np.ndarray, device: str, repeats: int) -> dict[str, Any]:
    """The augmented transform of one batch on ``device`` against one CPU core."""
    gpu = device.startswith("cuda")
    aug = Augment(scale=(0.8, 1.0), shift=0.05, jitter=0.2)
    params = torch.from_numpy(aug.draw(np.random.default_rng(3), len(crops)))
    host = torch.from_numpy(crops)
    if gpu:
        host = host.pin_memory()

    def on_device() -> torch.Tensor:
        x = model_input(host, SIZE, device, params=params, normalization=IR_NORMALIZATION)
        if gpu:
            torch.cuda.synchronize()
        return x

    def on_one_core() -> torch.Tensor:
        with _one_thread():
            return model_input(host, SIZE, "cpu", params=params, normalization=IR_NORMALIZATION)

    on_device()  # warm-up (kernels, allocator)
    (t_dev, t_cpu), (got, ref) = interleaved([on_device, on_one_core], repeats)
    gap = float((got.cpu() - ref).abs().max())
    n = len(crops)
    return row("training transform at 224 px (augmented)",
               f"batch {n}, crop/scale/shift + colour jitter + IR normalization, on {device}", t_dev,
               "the same transform on one CPU core", t_cpu, gap <= 1e-4,
               f"the same tensors within 1e-4 (largest difference {gap:.1e})",
               f"{n / t_dev:,.0f} img/s on {device} vs {n / t_cpu:,.0f} img/s per CPU core: the CPU cores "
               f"a GPU would need to do this work in its loader",
               images_s=n / t_dev, baseline_images_s=n / t_cpu, max_abs_difference=gap)


def bench_device_training(quick: bool, device: str = "cpu") -> list[dict[str, Any]]:
    if device.startswith("cuda"):
        return compare_training("ir152", SIZE, batch=16 if quick else 64, steps=4 if quick else 20,
                                device=device, amp=True)
    return compare_training("timm:test_resnet", 32, batch=8, steps=3 if quick else 8, device=device, amp=False)


def bench_predict(quick: bool, device: str = "cpu") -> list[dict[str, Any]]:
    gpu = device.startswith("cuda")
    name, size = ("ir152", SIZE) if gpu else ("timm:test_resnet", 64)
    n = (64 if quick else 512) if gpu else (32 if quick else 128)
    torch.manual_seed(0)
    model = harness.create("backbone", name, num_classes=len(ENC2020), input_size=size).to(device).eval()
    crops = np.random.default_rng(1).integers(0, 256, (n, size, size, 3), dtype=np.uint8)

    def sync() -> None:
        if gpu:
            torch.cuda.synchronize()

    def batched() -> np.ndarray:
        out = predict_logits(model, crops, size, device=device)
        sync()
        return out

    @torch.no_grad()
    def one_by_one() -> np.ndarray:
        out = [model(model_input(torch.from_numpy(crops[i:i + 1]), size, device,
                                     normalization=model.normalization)).float().cpu()
               for i in range(n)]
        sync()
        return torch.cat(out).numpy()

    batched()  # warm-up (kernels, allocator)
    (t_b, t_1), (a, b) = interleaved([batched, one_by_one], 2 if quick else 3)
    same = bool(np.allclose(a, b, rtol=1e-3, atol=1e-3))
    return [row("auh predict: model on aligned crops", f"{name}, {n} crops {size} px, {device}", t_b,
                "the same model called on one image at a time", t_1, same,
                "same logits to 1e-3 (kernels differ by batch shape)",
                f"{n / t_b:,.0f} img/s batched (chunks of 32) vs {n / t_1:,.0f} img/s one by one; "
                f"alignment excluded (see the mtcnn row)",
                images_s=n / t_b, baseline_images_s=n / t_1)]
