"""`auh score` killed with SIGKILL: the ledger holds the complete run or nothing.

The ledger (leaderboard/ledger.py) creates a run, fills it and only then
marks it FINISHED; readers see FINISHED runs only. A scorer killed at any
step leaves at most an unfinished MLflow run that the ledger, the
submission cap and the leaderboard ignore. Here a wrapper kills the real
`auh score` process at fixed points (after MlflowClient calls), so every
point is hit deterministically. (Killing `auh run` and resuming is
tests/test_pipeline.py's.)
"""
from __future__ import annotations

import hashlib
import io
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from harness.labels import read_labels
from harness.cli import main
from leaderboard import ledger
from leaderboard.scoring import scorecard

EXAMPLES = Path(__file__).resolve().parents[1] / "submissions" / "examples"
EXPERIMENT = "enc2020-demo/test"

# Runs `auh ARGS...` and SIGKILLs itself right before or after the first call
# of MlflowClient.METHOD.
KILLER = textwrap.dedent('''
    import os, signal, sys
    from mlflow import MlflowClient

    method, when, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    original = getattr(MlflowClient, method)

    def wrapped(self, *a, **kw):
        if when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        result = original(self, *a, **kw)
        os.kill(os.getpid(), signal.SIGKILL)

    setattr(MlflowClient, method, wrapped)
    from harness.cli import main
    sys.exit(main(args))
''')

# (method, before/after): every step of ledger.log_score
KILL_POINTS = [("create_run", "after"), ("log_batch", "after"), ("log_artifact", "after"),
               ("set_terminated", "before"), ("set_terminated", "after")]


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "AUH_QUIET": "1", "PYTHONPATH": ""}


def variant(src: Path, dst: Path, k: int) -> Path:
    """``src`` with the AU1 prediction of row ``k`` flipped: another file, another sha256."""
    frame = pd.read_csv(src)
    frame.loc[k, "AU1"] = 1 - frame.loc[k, "AU1"]
    frame.to_csv(dst, index=False)
    return dst


@pytest.mark.slow
def test_killed_scorer_leaves_the_complete_run_or_nothing(in_tmp, capsys):
    demo = in_tmp / "ex"
    shutil.copytree(EXAMPLES, demo)
    (in_tmp / "killer.py").write_text(KILLER)
    challenge = demo / "challenge.toml"
    challenge.write_text(challenge.read_text().replace("cap = 3", "cap = 2"))
    subs = [variant(demo / "alpha.csv", in_tmp / f"sub{k}.csv", k) for k in range(len(KILL_POINTS) + 2)]
    score = ["score", "--challenge", str(challenge), "--team", "t", "--resamples", "20"]

    for (method, when), sub in zip(KILL_POINTS, subs):
        proc = subprocess.run([sys.executable, "killer.py", method, when, *score, "--submission", str(sub)],
                              cwd=in_tmp, env=_env(), capture_output=True, text=True, timeout=300)
        assert proc.returncode == -signal.SIGKILL, (method, when, proc.stderr)
        assert "Traceback" not in proc.stderr

    # Only the run killed after it was marked FINISHED is in the ledger, and it is whole.
    [done] = ledger.entries(EXPERIMENT)
    names, truth = read_labels(demo / "truth.txt")
    _assert_complete(done, subs[len(KILL_POINTS) - 1], names, truth)
    # The four half runs exist in MLflow, unfinished, so the kills really hit mid-write ...
    client = ledger.store.client_for(ledger.store.resolve_tracking_uri(None))
    experiment = client.get_experiment_by_name(EXPERIMENT)
    unfinished = client.search_runs([experiment.experiment_id], "attributes.status != 'FINISHED'")
    assert len(unfinished) == len(KILL_POINTS) - 1

    # ... yet they used none of the cap of 2: one more distinct file is accepted, then one refused.
    assert auh(in_tmp, *score, "--submission", str(subs[-2])).returncode == 0
    refused = auh(in_tmp, *score, "--submission", str(subs[-1]))
    assert refused.returncode == 2 and "has used its 2 submissions" in refused.stderr
    entries = ledger.entries(EXPERIMENT)
    assert [e.submission_name for e in entries] == [subs[-3].name, subs[-2].name]
    for entry, sub in zip(entries, subs[-3:]):
        _assert_complete(entry, sub, names, truth)

    # The leaderboard counts the two complete submissions of team t and nothing else.
    assert main(["leaderboard", "--challenge", str(challenge), "--format", "csv", "--resamples", "0"]) == 0
    table = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert table["team"].tolist() == ["t"] and table["submissions"].tolist() == [2]


def auh(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd, env=_env(),
                          capture_output=True, text=True, timeout=300)


def _assert_complete(entry: ledger.Entry, sub: Path, names: list[str], truth) -> None:
    """Every tag, metric and artifact of a finished scoring, matching the file scored."""
    from harness.labels import read_submission

    assert entry.submission_sha256 == hashlib.sha256(sub.read_bytes()).hexdigest()
    assert entry.submission_name == sub.name and entry.team == "t"
    expected = scorecard(read_submission(sub, names), truth, tuple(_aus()), resamples=0)
    assert entry.metrics["final"] == pytest.approx(expected["final"])
    assert {f"au/{au}/f1" for au in _aus()} <= set(entry.metrics)
    assert {"public/final", "private/final", "ci95_lo"} <= set(entry.metrics)
    with ledger.submission_copy(entry) as copy:
        assert copy.read_bytes() == sub.read_bytes()


def _aus() -> list[str]:
    from harness.schema import ENC2020

    return list(ENC2020.aus)
