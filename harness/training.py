"""One training stage: the loop, per-epoch checkpoints, exact resume.

Every source of randomness in an epoch is seeded from ``(seed, stage,
epoch)``: the sampler's epoch order, flips, dropout and the loss's own
random choices. Restoring the weights, optimizer and scheduler saved at the
end of epoch ``e`` and replaying epoch ``e + 1`` therefore gives the same
result as never stopping, which is what ``--resume`` relies on.
"""
from __future__ import annotations

import json
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from harness.augment import Augment, model_input
from harness.fileio import atomic_open, atomic_path
from harness.progress import progress
from harness.run_folder import StageFiles, file_in
from harness.protocols import capabilities
from harness import distributed
from harness.errors import UserError
from harness.weights import load_weights, safe_torch_load, save_state_dict, save_weights



def derive_seed(*parts: Any) -> int:
    """A stable 31-bit seed from any printable parts (same on every platform)."""
    return zlib.crc32("/".join(map(str, parts)).encode()) & 0x7FFFFFFF


@dataclass
class StageConfig:
    epochs: int
    batch_size: int
    lr: float
    momentum: float = 0.9
    weight_decay: float = 1e-5
    lr_step: int = 10
    lr_gamma: float = 0.1
    workers: int = 0
    amp: bool = True
    channels_last: bool = True
    max_steps: int = 0  # cap on optimizer steps per epoch (0: none); for smoke runs
    seed: int = 0
    device: str = "cpu"
    augment: Augment | None = None


@dataclass
class Task:
    """What a stage trains on: crops, targets, how an epoch is ordered, the loss.

    ``images``: uint8 array-like ``[N,S,S,3]`` (the aligned-face cache).
    ``order(seed)``: the row indices of one epoch.
    ``flip_perm``: target column permutation under a horizontal flip
    (multi-label), ``[]`` for single-label targets, ``None`` for no flips.
    ``evaluate(model)``: validation metrics after each epoch (or ``None``).
    """

    images: Any
    targets: np.ndarray
    order: Callable[[int], np.ndarray]
    loss: torch.nn.Module
    flip_perm: Sequence[int] | None = None
    evaluate: Callable[[torch.nn.Module], dict[str, float]] | None = None


class CropBatches(Dataset):
    """Whole batches of uint8 crops, fetched with one fancy index per batch.

    Items are ``(batch_number, row_indices)``; an item is ``(crops, targets,
    params)``: uint8 ``[B,S,S,3]`` crops as the face cache stores them (the
    float work happens on the device, :func:`harness.augment.model_input`),
    the targets, and the batch's augmentation parameters (``None`` without
    augmentation). Flips and augmentation are drawn from a generator seeded
    by ``(seed, batch_number)``, so results do not depend on the number of
    DataLoader workers.
    """

    def __init__(self, images: Any, targets: np.ndarray | None, flip_perm: Sequence[int] | None = None,
                 seed: int = 0, augment: Augment | None = None) -> None:
        self.images, self.targets = images, targets
        self.flip_perm, self.seed = flip_perm, seed
        self.augment = augment if augment is not None and augment.active else None

    def __len__(self) -> int:  # only batches are fetched, through the batch list
        return len(self.images)

    def __getitem__(self, item: tuple[int, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        number, rows = item
        crops = np.stack([self.images[int(i)] for i in rows])
        targets = None if self.targets is None else np.array(self.targets[rows])
        rng = np.random.default_rng((self.seed, number))
        if self.flip_perm is not None:
            flips = rng.random(len(rows)) < 0.5
            crops[flips] = crops[flips, :, ::-1]
            if len(self.flip_perm) and targets is not None:
                targets[flips] = targets[flips][:, self.flip_perm]
        params = None if self.augment is None else torch.from_numpy(self.augment.draw(rng, len(rows)))
        y = torch.zeros(len(rows)) if targets is None else torch.from_numpy(targets)
        return torch.from_numpy(crops), y, params


def batches(rows: np.ndarray, batch_size: int) -> list[tuple[int, np.ndarray]]:
    return [(i, rows[s:s + batch_size]) for i, s in enumerate(range(0, len(rows), batch_size))]


def loader(dataset: CropBatches, rows: np.ndarray, batch_size: int, workers: int,
           pin: bool) -> DataLoader:
    return DataLoader(dataset, batch_size=None, sampler=batches(rows, batch_size),
                      num_workers=workers, pin_memory=pin, persistent_workers=False)


class Checkpoint:
    """Per-epoch checkpoint of a stage in ``folder`` (file names: :class:`harness.run_folder.StageFiles`).

    The weights go to an epoch's weights file, then the checkpoint state
    (optimizer, scheduler, RNG, the weights file's name) replaces the old
    one atomically; a kill at any moment leaves the last complete pair.
    Only that pair is kept while the stage runs, and nothing of it once the
    stage is done (the final weights and the done file are what a resume
    reads then); ``keep_epochs`` keeps every epoch's weights file.

    The files are written off the training step's critical path: ``save``
    copies the state to CPU memory and hands the writing to a background
    thread (one write in flight; the next ``save`` and ``finish`` wait for
    it). ``background=False`` writes in the caller, as a baseline.
    """

    def __init__(self, folder: Path, background: bool = True, keep_epochs: bool = False) -> None:
        self.folder = Path(folder)
        self.keep_epochs = keep_epochs
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="auh-checkpoint") if background else None
        self._pending: Future | None = None

    done_file = file_in("folder", StageFiles.DONE)
    final_file = file_in("folder", StageFiles.FINAL)

    def is_done(self) -> bool:
        return self.done_file.is_file()

    def save(self, epoch: int, model: torch.nn.Module, optimizer: Any, scheduler: Any) -> None:
        weights = _cpu_copy(model.state_dict())
        state = {"epoch": epoch, "weights": StageFiles.EPOCH.format(epoch=epoch),
                 "optimizer": _cpu_copy(optimizer.state_dict()), "scheduler": scheduler.state_dict(),
                 "torch_rng": torch.get_rng_state()}
        self.wait()
        if self._pool is None:
            self._write(weights, state)
        else:
            self._pending = self._pool.submit(self._write, weights, state)

    def wait(self) -> None:
        """Block until the write in flight is on disk; raise its error, if any."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def _write(self, weights: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        save_state_dict(weights, self.folder / state["weights"])
        with atomic_path(self.folder / StageFiles.CHECKPOINT) as tmp:
            torch.save(state, tmp)
        if not self.keep_epochs:
            self._remove_epochs(keep=state["weights"])

    def _remove_epochs(self, keep: str = "") -> None:
        for old in self.folder.glob(StageFiles.EPOCH_GLOB):
            if old.name != keep:
                old.unlink(missing_ok=True)

    def restore(self, model: torch.nn.Module, optimizer: Any, scheduler: Any) -> int:
        """Load the last complete epoch; return the number of epochs done (0 if none)."""
        path = self.folder / StageFiles.CHECKPOINT
        if not path.is_file():
            return 0
        state = safe_torch_load(path)
        load_exact(model, self.folder / state["weights"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        return int(state["epoch"]) + 1

    def finish(self, model: torch.nn.Module, metrics: dict[str, float]) -> None:
        self.wait()
        if self._pool is not None:
            self._pool.shutdown()
        save_weights(model, self.final_file)
        with atomic_open(self.done_file) as fh:
            json.dump(metrics, fh)
        # Done: resume reads the final weights, so the epoch state is dead weight
        # (the optimizer's momentum alone is one more copy of the model).
        (self.folder / StageFiles.CHECKPOINT).unlink(missing_ok=True)
        if not self.keep_epochs:
            self._remove_epochs()

    def load_final(self, model: torch.nn.Module) -> dict[str, float]:
        load_exact(model, self.final_file)
        return json.loads(self.done_file.read_text())


def load_exact(model: torch.nn.Module, path: Path) -> None:
    """Load weights that must fit ``model`` exactly (our own checkpoints and bundles)."""
    report = load_weights(model, path)
    if report.missing or report.unexpected or report.mismatched:
        raise UserError(f"weights file {str(path)!r} does not fit the model: {report.summary()}")


def _cpu_copy(obj: Any) -> Any:
    """``obj`` (a state dict, nested) with every tensor copied to CPU memory, so
    that training can go on changing the originals while it is written."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _cpu_copy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_cpu_copy(v) for v in obj)
    return obj


def train_stage(model: torch.nn.Module, task: Task, cfg: StageConfig, input_size: int,
                checkpoint: Checkpoint, name: str,
                on_epoch_end: Callable[[int, dict[str, float]], None] | None = None) -> dict[str, float]:
    """Train ``model`` on ``task`` for ``cfg.epochs`` epochs, resuming from ``checkpoint``.

    Returns the last epoch's metrics. A finished stage is not trained again:
    its final weights are loaded instead. Under torchrun each rank trains on
    its share of every epoch with ``batch_size / world_size`` rows per step,
    so the effective batch is the recipe's; rank 0 alone writes checkpoints.
    """
    device = torch.device(cfg.device)
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    if checkpoint.is_done():
        return checkpoint.load_final(model)
    world = distributed.world_size()
    batch_size = max(1, cfg.batch_size // world)
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.lr_step, gamma=cfg.lr_gamma)
    start = checkpoint.restore(model, optimizer, scheduler)
    task.loss.to(device)
    metrics: dict[str, float] = {}
    amp = cfg.amp and device.type == "cuda"
    for epoch in range(start, cfg.epochs):
        seed = derive_seed(cfg.seed, name, epoch)
        torch.manual_seed(seed)  # dropout and anything else on the global generator
        if "random" in capabilities(task.loss):
            task.loss.generator.manual_seed(seed)
        rows = np.asarray(task.order(seed), dtype=np.int64)
        if cfg.max_steps:
            rows = rows[: cfg.max_steps * cfg.batch_size]
        if len(rows) % cfg.batch_size == 1:  # batch norm cannot train on a batch of one
            rows = rows[:-1]
        rows = distributed.shard(rows, batch_size)
        data = CropBatches(task.images, task.targets, task.flip_perm, seed, cfg.augment)
        net.train()
        total, count = 0.0, 0
        for crops, y, params in progress(loader(data, rows, batch_size, cfg.workers, device.type == "cuda"),
                                         desc=f"{name} epoch {epoch + 1}/{cfg.epochs}", leave=False):
            x = model_input(crops, input_size, device, cfg.channels_last, params,
                            normalization=model.normalization)
            y = y.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                logits = net(x)
            loss = task.loss(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(x)
            count += len(x)
        scheduler.step()
        metrics = {"loss": distributed.all_mean(total / max(count, 1)), "lr": scheduler.get_last_lr()[0]}
        if task.evaluate is not None:
            metrics.update(task.evaluate(model))
        if distributed.is_main():
            checkpoint.save(epoch, model, optimizer, scheduler)
            if on_epoch_end is not None:
                on_epoch_end(epoch, metrics)
        distributed.barrier()
    if distributed.is_main():
        checkpoint.finish(model, metrics)
    distributed.barrier()
    return metrics


PREDICT_CHUNK = 32


@torch.no_grad()
def predict_logits(model: torch.nn.Module, images: Any, input_size: int, chunk: int = PREDICT_CHUNK,
                   device: str = "cpu", workers: int = 0, channels_last: bool = True) -> np.ndarray:
    """Logits ``[N,C]`` for every crop, in order; no randomness (no flips, eval mode).

    The model always sees batches of exactly ``chunk`` crops (the last one
    padded by repeating its final crop): convolution kernels pick their
    algorithm by batch shape, so a fixed shape makes every image's logits
    independent of how many images are predicted together.
    """
    dev = torch.device(device)
    model.to(dev).eval()
    n = len(images)
    rows = np.minimum(np.arange(-(-n // chunk) * chunk), n - 1)
    out = []
    for crops, _, _ in loader(CropBatches(images, None), rows, chunk, workers, dev.type == "cuda"):
        out.append(model(model_input(crops, input_size, dev, channels_last,
                                     normalization=model.normalization)).float().cpu())
    return torch.cat(out).numpy()[:n] if out else np.zeros((0, 0), dtype=np.float32)


def resolve_device(wanted: str, what: str) -> str:
    """``wanted`` ("auto", "cpu", "cuda", "cuda:1", "mps") as a device this machine has.

    ``what`` names the option or recipe field in the error.
    """
    wanted = str(wanted).strip()
    if wanted == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(wanted)
    except (RuntimeError, ValueError):
        raise UserError(f"{what}: unknown device {wanted!r}; expected auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise UserError(f"{what}: {wanted!r} requested but this machine has no CUDA device")
        if device.index is not None and device.index >= count:
            raise UserError(f"{what}: {wanted!r} requested but this machine has {count} CUDA "
                            f"device{'s' * (count > 1)} (cuda:0 to cuda:{count - 1})")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise UserError(f"{what}: 'mps' requested but this machine has no MPS device")
    elif device.type != "cpu":
        raise UserError(f"{what}: device {wanted!r} is not supported; expected auto, cpu, cuda, cuda:N or mps")
    return wanted
