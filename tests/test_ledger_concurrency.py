"""Eight `auh score` processes started at once against one SQLite ledger all land."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from leaderboard import ledger

EXAMPLES = Path(__file__).resolve().parents[1] / "submissions" / "examples"
WRITERS = 8


@pytest.mark.slow
def test_eight_concurrent_scorers(in_tmp):
    shutil.copytree(EXAMPLES, in_tmp / "ex")
    env = {**os.environ, "AUH_QUIET": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    procs = [subprocess.Popen(
        [sys.executable, "-m", "harness", "score", "--challenge", "ex/challenge.toml",
         "--team", f"team{i}", "--submission", f"ex/{('alpha', 'beta', 'gamma')[i % 3]}.csv",
         "--resamples", "20", "--json"],
        cwd=in_tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(WRITERS)]
    results = [(p.wait(timeout=300), p.stdout.read(), p.stderr.read()) for p in procs]
    for code, _, err in results:
        assert code == 0, err
        assert "locked" not in err
    runs = ledger.entries("enc2020-demo/test", f"sqlite:///{in_tmp / 'mlflow.db'}")
    assert sorted(r.team for r in runs) == sorted(f"team{i}" for i in range(WRITERS))
    assert len({r.run_id for r in runs}) == WRITERS
