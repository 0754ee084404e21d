"""torchrun support: one process per device, rank 0 speaks for the run.

Under ``torchrun`` the environment carries ``RANK`` / ``WORLD_SIZE`` /
``LOCAL_RANK``; :func:`setup` joins the process group (NCCL on GPUs, gloo on
CPUs). Every rank trains on a disjoint share of the same seeded epoch
sequence; only rank 0 calls the lifecycle hooks (MLflow), writes checkpoints
and the bundle. Without torchrun everything here is a no-op.
"""
from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def local_world_size() -> int:
    """Ranks torchrun started on this machine (1 outside torchrun)."""
    return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    return rank() == 0


def setup(device: str) -> str:
    """Join the process group when launched by torchrun; return this rank's device."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return device
    backend = "nccl" if device.startswith("cuda") else "gloo"
    dist.init_process_group(backend, timeout=timedelta(minutes=30))
    if device.startswith("cuda"):
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return f"cuda:{local}"
    return device


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def broadcast(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def shard(rows: Any, batch_size: int) -> Any:
    """This rank's share of an epoch: whole batches dealt round-robin, equal counts per rank.

    Each rank gets the same number of batches (a few trailing rows may be
    dropped) so that no rank waits forever in the gradient all-reduce.
    """
    n = world_size()
    if n == 1:
        return rows
    usable = len(rows) // (batch_size * n) * batch_size * n
    return rows[:usable].reshape(-1, n, batch_size)[:, rank()].reshape(-1)


def all_mean(value: float) -> float:
    if world_size() == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t) / world_size()
