"""The device-side data path: conversion, resizing, normalization and seeded augmentation."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from harness.augment import Augment, model_input
from harness.protocols import IR_NORMALIZATION
from harness.training import CropBatches, loader


def ramp(n: int = 2, size: int = 32) -> torch.Tensor:
    """uint8 images whose value rises by 8 per pixel along x (same in every channel)."""
    x = (8 * np.arange(size)).astype(np.uint8)
    return torch.from_numpy(np.broadcast_to(x[None, None, :, None], (n, size, size, 3)).copy())


def sampled_ramp(size: int, scale: float, shift: float) -> np.ndarray:
    """The ramp read where a window of side ``scale`` centred at ``shift`` puts each
    output pixel: output centre u in [-1, 1] -> input v = scale * u + 2 * shift ->
    input pixel p = ((v + 1) * size - 1) / 2 (grid_sample, align_corners=False)."""
    u = (2 * np.arange(size) + 1) / size - 1
    p = ((scale * u + 2 * shift + 1) * size - 1) / 2
    return 8 * p / 255


def test_plain_path_matches_torchvision():
    crops = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (3, 40, 40, 3), dtype=np.uint8))
    got = model_input(crops, 24, "cpu", normalization=IR_NORMALIZATION)
    ref = TF.resize(crops.permute(0, 3, 1, 2).float() / 255, [24, 24], antialias=True)
    ref = TF.normalize(ref, [0.5] * 3, [0.5] * 3)
    assert got.shape == (3, 3, 24, 24) and got.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(got, ref, atol=1e-6, rtol=0)


@pytest.mark.parametrize("scale, shift", [(0.5, 0.0), (0.5, 0.125), (0.75, -0.1), (1.0, 0.0)])
def test_crop_of_a_ramp(scale, shift):
    """Bilinear sampling is exact on a linear ramp, so each output pixel's value
    says where the window put it."""
    size = 32
    params = torch.tensor([[scale, shift, 0.0, 1.0, 1.0, 1.0]] * 2)
    got = model_input(ramp(size=size), size, "cpu", params=params, normalization=IR_NORMALIZATION)[0, 0] * 0.5 + 0.5  # back to [0, 1]
    for row in got.numpy():
        np.testing.assert_allclose(row, sampled_ramp(size, scale, shift), atol=3e-6)


def test_colour_jitter_matches_torchvision():
    crops = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8))
    factors = [(1.2, 0.8, 1.3), (0.7, 1.25, 0.6), (1.0, 1.0, 1.0), (0.9, 1.1, 0.0)]
    params = torch.tensor([[1.0, 0.0, 0.0, *f] for f in factors])
    got = model_input(crops, 16, "cpu", params=params, normalization=IR_NORMALIZATION) * 0.5 + 0.5
    for i, (b, c, s) in enumerate(factors):
        ref = crops[i].permute(2, 0, 1).float() / 255
        ref = TF.adjust_saturation(TF.adjust_contrast(TF.adjust_brightness(ref, b), c), s)
        torch.testing.assert_close(got[i], ref, atol=1e-5, rtol=0)


def test_augmentation_is_seeded_per_batch_and_off_by_default():
    images = np.random.default_rng(2).integers(0, 256, (12, 16, 16, 3), dtype=np.uint8)
    aug = Augment(scale=(0.8, 1.0), shift=0.1, jitter=0.2)
    a = CropBatches(images, None, seed=5, augment=aug)[(3, np.arange(4))][2]
    b = CropBatches(images, None, seed=5, augment=aug)[(3, np.arange(4))][2]
    c = CropBatches(images, None, seed=5, augment=aug)[(4, np.arange(4))][2]
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a[:, 0].min() >= 0.8 and a[:, 0].max() <= 1.0 and a[:, 1:3].abs().max() <= 0.1
    assert CropBatches(images, None, seed=5, augment=Augment())[(3, np.arange(4))][2] is None
    assert not Augment().active


def test_augmented_batches_do_not_depend_on_the_number_of_workers():
    images = np.random.default_rng(3).integers(0, 256, (16, 16, 16, 3), dtype=np.uint8)
    data = CropBatches(images, np.zeros((16, 2), np.float32), flip_perm=[1, 0], seed=9,
                       augment=Augment(scale=(0.7, 1.0), jitter=0.3))
    rows = np.random.default_rng(0).permutation(16)

    def epoch(workers: int) -> list[torch.Tensor]:
        return [model_input(x, 12, "cpu", params=p, normalization=IR_NORMALIZATION) for x, _, p in loader(data, rows, 4, workers, False)]

    for a, b in zip(epoch(0), epoch(1)):
        torch.testing.assert_close(a, b, atol=0, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_same_batch_on_cpu_and_gpu():
    crops = torch.from_numpy(np.random.default_rng(4).integers(0, 256, (8, 48, 48, 3), dtype=np.uint8))
    params = torch.from_numpy(Augment((0.7, 1.0), 0.1, 0.3).draw(np.random.default_rng(0), 8))
    cpu = model_input(crops, 32, "cpu", params=params, normalization=IR_NORMALIZATION)
    gpu = model_input(crops.pin_memory(), 32, "cuda", params=params, normalization=IR_NORMALIZATION).cpu()
    torch.testing.assert_close(cpu, gpu, atol=1e-4, rtol=0)
