"""Threads and loader workers, sized from the cores this process may use.

PyTorch sizes its intra-op pool from the machine's physical cores, not from
the CPU set the process is allowed to run on (``taskset``, a container's
cpuset, a cluster's allocation), and loader workers come on top of it: on a
shared machine threads then outnumber cores and spin. Here every number
comes from :func:`usable_cores` (``os.sched_getaffinity``), divided among
the ranks torchrun starts on one machine:

* on the CPU, the math gets every core and the loader no worker process:
  a batch is one gather of uint8 crops from the face cache (the float work
  runs on the training device), so a worker would only take a core away;
* on a GPU, the loader gets up to ``train.workers`` workers, at most one
  core less than there are, and the main process the rest.

OpenMP threads wait passively (``OMP_WAIT_POLICY=PASSIVE``, set in
``harness/__init__.py`` before torch loads, unless the environment says
otherwise): an idle thread sleeps instead of spinning in ``sched_yield``
while another job needs the core.
"""
from __future__ import annotations

import os
from dataclasses import dataclass


def usable_cores() -> int:
    """Cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover  (macOS, Windows)
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class Plan:
    """How many intra-op threads and loader workers one process uses."""

    threads: int
    workers: int


def plan(device: str, workers: int, cores: int | None = None, local_ranks: int = 1) -> Plan:
    """The thread plan for a process training on ``device`` with ``workers``
    requested loader workers, sharing ``cores`` (default: :func:`usable_cores`)
    with ``local_ranks - 1`` other ranks."""
    share = max(1, (usable_cores() if cores is None else cores) // max(1, local_ranks))
    if not device.startswith("cuda"):
        return Plan(threads=share, workers=0)
    loaders = min(max(0, workers), share - 1)
    return Plan(threads=max(1, share - loaders), workers=loaders)


def apply(p: Plan) -> None:
    """Set torch's thread pools to ``p`` (inter-op: one thread; the harness runs
    no independent ops side by side)."""
    import torch

    torch.set_num_threads(p.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set, or inter-op work already started: keep it
        pass
