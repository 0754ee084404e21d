"""Training throughput: the harness's training stage vs a bare PyTorch loop.

Both train the same timm ``resnet18`` (23 outputs, 112 px input) from the
same initial weights, on the same in-memory uint8 crops, in the same batch
order, with the same SGD settings and loss. The harness side is the whole
:func:`harness.engine.train_stage` call (its DataLoader over
:class:`~harness.engine.CropBatches`, channels-last, the per-epoch
checkpoint and the final weights file); the bare side is the loop a
PyTorch user would write by hand around the same model. Flips are off
(``flip_perm=None``), so both see identical batches and must end with
bit-identical weights: that is the equality check.

Runs are interleaved (harness, bare, harness, bare, ...) and the fastest of
each is kept, so that a slow spell on a shared machine hits both sides.
"""
from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

import harness
from bench.bench_components import ENC_POSITIVE_RATE
from bench.common import interleaved, row
from harness.engine import Checkpoint, StageConfig, Task, train_stage

SIZE = 112
MODEL = "resnet18"


def bare_loop(model: torch.nn.Module, images: np.ndarray, targets: np.ndarray, rows: np.ndarray,
              loss_fn: torch.nn.Module, cfg: StageConfig) -> torch.nn.Module:
    """Train ``model`` for one pass over ``rows`` with a hand-written loop; return it.

    The preprocessing is the harness's (scale to [-1, 1], channels-last),
    written inline as a user would.
    """
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                weight_decay=cfg.weight_decay)
    model.train()
    for s in range(0, len(rows), cfg.batch_size):
        idx = rows[s:s + cfg.batch_size]
        x = torch.from_numpy(images[idx]).permute(0, 3, 1, 2).float().div_(255)
        x = (x - 0.5) / 0.5
        if cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        loss = loss_fn(model(x), torch.from_numpy(targets[idx]))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return model


def harness_stage(model: torch.nn.Module, task: Task, cfg: StageConfig) -> torch.nn.Module:
    """One :func:`train_stage` call (checkpoints in a temporary folder); return the model."""
    with tempfile.TemporaryDirectory(prefix="auh-bench-") as folder:
        train_stage(model, task, cfg, SIZE, Checkpoint(Path(folder)), "bench")
    return model


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    """Every parameter and buffer bit-identical."""
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def bench_training(quick: bool) -> list[dict[str, Any]]:
    batch, steps, repeats = (8, 3, 1) if quick else (32, 10, 3)
    n = batch * steps
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8)
    targets = (rng.random((n, 23)) < ENC_POSITIVE_RATE).astype(np.float32)
    order = rng.permutation(n)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    task = Task(images=images, targets=targets, order=lambda seed: order, loss=loss_fn, flip_perm=None)
    cfg = StageConfig(epochs=1, batch_size=batch, lr=0.01, workers=0, seed=0, device="cpu")

    torch.manual_seed(0)
    initial = harness.create("backbone", f"timm:{MODEL}", num_classes=23, input_size=SIZE)
    # The bare side gets the same network without the harness's thin wrapper.
    bare_initial = copy.deepcopy(initial.model)
    bare_loop(copy.deepcopy(bare_initial), images, targets, order[:batch], loss_fn, cfg)  # warm-up

    (h, b), (ours, bare) = interleaved(
        [lambda: harness_stage(copy.deepcopy(initial), task, cfg),
         lambda: bare_loop(copy.deepcopy(bare_initial), images, targets, order, loss_fn, cfg)], repeats)
    return [row("training throughput", f"timm {MODEL}, {SIZE} px, {steps} steps of batch {batch}", h,
                "bare PyTorch loop, same model, data, order and optimizer", b, same_weights(ours.model, bare),
                f"bit-identical weights after {steps} SGD steps",
                f"harness {n / h:.1f} img/s vs bare {n / b:.1f} img/s (speed-up below 1 = harness "
                f"slower); harness time is the whole train_stage call, checkpoint writes included; "
                f"DataLoader workers=0, channels-last on both sides; fastest of {repeats} "
                f"interleaved runs each",
                harness_img_s=n / h, baseline_img_s=n / b)]
