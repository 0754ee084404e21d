"""Training throughput: the harness's training stage vs a bare PyTorch loop.

Both train the same timm ``resnet18`` (23 outputs, 112 px input) from the
same initial weights, on the same in-memory uint8 crops, in the same batch
order, with the same SGD settings and loss. The harness side is
:func:`harness.training.train_stage` (its DataLoader over
:class:`~harness.training.CropBatches`, channels-last, progress and loss
bookkeeping); the bare side is the loop a PyTorch user would write by hand
around the same model. Flips are off (``flip_perm=None``), so both see
identical batches and must end with bit-identical weights: that is the
equality check.

On a shared machine a slow spell lasts seconds, longer than a step, so the
two loops are interleaved step by step: the harness's loss, at each call,
lets the bare loop run one step before its own step goes on. A step (on
either side) is the time from one loss call to the next: loss, backward,
optimizer, the next batch's data and forward. Neighbouring steps see the
same machine, and the medians compare like with like. What
``train_stage`` does once per epoch (DataLoader set-up, the checkpoint
writes) is reported apart.
"""
from __future__ import annotations

import copy
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

import harness
from harness.training import Checkpoint, StageConfig, Task, train_stage
from plugins.bench.bench_components import ENC_POSITIVE_RATE
from plugins.bench.rows import interleaved, row

SIZE = 112
MODEL = "resnet18"


def bare_loop(model: torch.nn.Module, images: np.ndarray, targets: np.ndarray, rows: np.ndarray,
              loss_fn: torch.nn.Module, cfg: StageConfig, size: int,
              normalization: tuple[tuple[float, ...], tuple[float, ...]]) -> Iterator[None]:
    """Train ``model`` for one pass over ``rows`` with a hand-written loop.

    A generator, so that it can be run a step at a time: it pauses just
    before each loss call. The preprocessing is the harness's (uint8 to the
    device, the backbone's ``normalization``, channels-last), written inline as a user would.
    """
    device = torch.device(cfg.device)
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                weight_decay=cfg.weight_decay)
    amp = cfg.amp and device.type == "cuda"
    mean, std = (torch.tensor(v, dtype=torch.float32, device=device).view(1, 3, 1, 1) for v in normalization)
    model.train()
    for s in range(0, len(rows), cfg.batch_size):
        idx = rows[s:s + cfg.batch_size]
        x = torch.from_numpy(images[idx]).to(device).permute(0, 3, 1, 2).float().div_(255)
        if x.shape[-1] != size:
            x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
        x = (x - mean) / std
        if cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(x)
        yield
        loss = loss_fn(logits.float(), torch.from_numpy(targets[idx]).to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


class Lockstep(torch.nn.Module):
    """The harness's loss, which at each call first runs one step of the bare
    loop, timing both sides' steps (see the module docstring)."""

    def __init__(self, loss: torch.nn.Module, bare: Iterator[None], device: str = "cpu") -> None:
        super().__init__()
        self.loss, self.bare, self.device = loss, bare, device
        self.harness_steps: list[float] = []
        self.bare_steps: list[float] = []
        self._resumed: float | None = None

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        _sync(self.device)  # a GPU step is over when its kernels are
        start = time.perf_counter()
        next(self.bare)
        _sync(self.device)
        bare = time.perf_counter() - start
        if self._resumed is not None:  # the first call ends no full step on either side
            self.harness_steps.append(start - self._resumed)
            self.bare_steps.append(bare)
        self._resumed = time.perf_counter()
        return self.loss(logits, targets)


def same_weights(a: torch.nn.Module, b: torch.nn.Module, atol: float = 0.0) -> bool:
    """Every parameter and buffer equal (bit-identical with ``atol`` 0)."""
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(
        torch.equal(sa[k], sb[k]) if atol == 0 else torch.allclose(sa[k].float(), sb[k].float(), atol=atol)
        for k in sa)


def bench_training(quick: bool) -> list[dict[str, Any]]:
    batch, steps = (8, 4) if quick else (32, 16)
    return compare_training(f"timm:{MODEL}", SIZE, batch, steps, device="cpu", amp=False,
                            component="training throughput")


def compare_training(model_name: str, size: int, batch: int, steps: int, device: str,
                     amp: bool, component: str = "training step, device data path") -> list[dict[str, Any]]:
    """One row: ``train_stage`` vs :func:`bare_loop`, interleaved step by step.

    On the CPU both must end with bit-identical weights; on a GPU, where
    bf16 kernels need not be deterministic, equal to 1e-3.
    """
    n = batch * steps
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    targets = (rng.random((n, 23)) < ENC_POSITIVE_RATE).astype(np.float32)
    order = rng.permutation(n)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    cfg = StageConfig(epochs=1, batch_size=batch, lr=0.01, workers=0, seed=0, device=device, amp=amp)

    torch.manual_seed(0)
    ours = harness.create("backbone", model_name, num_classes=23, input_size=size)
    # The bare side gets the same network without the harness's thin wrapper.
    bare = copy.deepcopy(getattr(ours, "model", ours))
    norm = ours.normalization
    for _ in bare_loop(copy.deepcopy(bare), images, targets, order[:batch], loss_fn, cfg, size, norm):  # warm-up
        pass

    bare_run = bare_loop(bare, images, targets, order, loss_fn, cfg, size, norm)
    lockstep = Lockstep(loss_fn, bare_run, device)
    task = Task(images=images, targets=targets, order=lambda seed: order, loss=lockstep, flip_perm=None)
    with tempfile.TemporaryDirectory(prefix="auh-bench-") as folder:
        start = time.perf_counter()
        train_stage(ours, task, cfg, size, Checkpoint(Path(folder)), "bench")
        _sync(device)
        call = time.perf_counter() - start
    for _ in bare_run:  # the bare loop's last backward and optimizer step
        pass

    h, b = float(np.median(lockstep.harness_steps)), float(np.median(lockstep.bare_steps))
    outside = call - sum(lockstep.harness_steps) - sum(lockstep.bare_steps)
    pairs = len(lockstep.harness_steps)
    pair_ratio = float(np.median(np.array(lockstep.bare_steps) / lockstep.harness_steps))
    gpu = device.startswith("cuda")
    equal = same_weights(getattr(ours, "model", ours), bare, atol=1e-3 if gpu else 0.0)
    precision = "bf16 autocast, " if amp and gpu else ""
    return [row(component, f"{model_name}, {size} px, one SGD step of batch {batch}, {device}", h,
                "bare PyTorch loop, same model, data, order and optimizer", b, equal,
                f"{'weights equal to 1e-3' if gpu else 'bit-identical weights'} after {steps} SGD steps",
                f"harness {batch / h:.1f} img/s vs bare {batch / b:.1f} img/s (speed-up below 1 = harness "
                f"slower): medians of {pairs} steps per side, the two loops interleaved step by step "
                f"(median of the {pairs} step-by-step ratios: {pair_ratio:.2f}); "
                f"train_stage spent {outside:.2f} s of its {call:.1f} s outside those steps (first forward, "
                f"last backward, DataLoader set-up, checkpoint writes). DataLoader workers=0, "
                f"{precision}channels-last on both sides",
                harness_img_s=batch / h, baseline_img_s=batch / b,
                median_step_ratio=pair_ratio)]


class _NoCheckpoint(Checkpoint):
    """Writes nothing per epoch: the epoch time without checkpoints."""

    def save(self, epoch: int, model: torch.nn.Module, optimizer: Any, scheduler: Any) -> None:
        pass


def bench_checkpoint(quick: bool) -> list[dict[str, Any]]:
    """Epochs of ``train_stage`` with checkpoints written in the background, in the
    step's thread (the baseline), and with none; same final weights."""
    batch, steps, epochs = (8, 2, 2) if quick else (32, 4, 3)
    n = batch * steps
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8)
    targets = (rng.random((n, 23)) < ENC_POSITIVE_RATE).astype(np.float32)
    cfg = StageConfig(epochs=epochs, batch_size=batch, lr=0.01, workers=0, seed=0, device="cpu", amp=False)
    torch.manual_seed(0)
    start = harness.create("backbone", f"timm:{MODEL}", num_classes=23, input_size=SIZE)
    mb = sum(t.numel() * t.element_size() for t in start.state_dict().values()) / 2 ** 20

    def stage(make: Any) -> torch.nn.Module:
        model = copy.deepcopy(start)
        task = Task(images=images, targets=targets, order=lambda seed: np.arange(n),
                    loss=torch.nn.BCEWithLogitsLoss(), flip_perm=None)
        with tempfile.TemporaryDirectory(prefix="auh-bench-") as folder:
            train_stage(model, task, cfg, SIZE, make(Path(folder)), "bench")
        return model

    sides = [lambda: stage(Checkpoint), lambda: stage(lambda f: Checkpoint(f, background=False)),
             lambda: stage(_NoCheckpoint)]
    (t_bg, t_sync, t_none), models = interleaved(sides, 1 if quick else 3)
    equal = same_weights(models[0], models[1]) and same_weights(models[0], models[2])
    per_epoch = lambda t: t / epochs
    return [row("checkpoint writes", f"timm {MODEL} ({mb:.0f} MB of weights), {epochs} epochs of "
                f"{steps} steps, batch {batch}", t_bg, "the same checkpoints written in the training thread",
                t_sync, equal, "bit-identical final weights (with background, synchronous and no checkpoints)",
                f"per epoch: {per_epoch(t_bg):.2f} s with background writes, {per_epoch(t_sync):.2f} s with "
                f"synchronous writes, {per_epoch(t_none):.2f} s without checkpoints",
                no_checkpoint_s=t_none)]
