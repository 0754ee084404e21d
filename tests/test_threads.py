"""Thread and worker plans from the cores a process may use."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from harness import threads


@pytest.mark.parametrize("device, workers, cores, ranks, expected", [
    ("cpu", 2, 2, 1, (2, 0)),        # CPU: the math gets every core, no loader processes
    ("cpu", 8, 16, 4, (4, 0)),       # four ranks on 16 cores: 4 each
    ("cuda", 2, 2, 1, (1, 1)),       # GPU: at most one core less than there are for workers
    ("cuda", 8, 16, 1, (8, 8)),
    ("cuda:1", 4, 16, 2, (4, 4)),    # two GPU ranks: 8 cores each
    ("cuda", 3, 1, 1, (1, 0)),       # one core: no workers
    ("cuda", 0, 8, 1, (8, 0)),
])
def test_plan(device, workers, cores, ranks, expected):
    p = threads.plan(device, workers, cores=cores, local_ranks=ranks)
    assert (p.threads, p.workers) == expected
    assert p.threads + p.workers <= max(cores // ranks, 1)  # never more busy threads than cores


def test_usable_cores_follow_the_affinity_mask():
    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("no sched_setaffinity here")
    one = sorted(os.sched_getaffinity(0))[:1]
    code = (f"import os; os.sched_setaffinity(0, {one}); from harness import threads; "
            f"print(threads.usable_cores())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"


def test_openmp_threads_wait_passively():
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    code = "import os, harness; print(os.environ['OMP_WAIT_POLICY'])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == "PASSIVE"
