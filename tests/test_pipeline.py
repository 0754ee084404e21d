"""`auh run` end to end on a tiny recipe: run -> predict -> score, and kill-and-resume."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import tiny_recipe
from harness.cli import main

TINY = tiny_recipe()


def write_recipe(folder: Path, extra: str = "") -> Path:
    path = folder / "tiny.toml"
    path.write_text(TINY + extra)
    return path


def run_cli(*args: str) -> int:
    return main(list(args))


def test_run_predict_score(in_tmp, capsys):
    recipe = write_recipe(in_tmp)
    assert run_cli("run", str(recipe)) == 0
    captured = capsys.readouterr()
    out, err = captured.out, captured.err.splitlines()
    assert "final" in out and "baseline all_zeros" in out
    # the terminal: the whole run's stages, one line per epoch, the head replacement said plainly
    stages = ["face/pretrain", "emotion/pretrain", "split/face/finetune", "split/emotion/finetune",
              "split/ensemble"]
    assert [ln for ln in err if ln.startswith("stage ")] == [
        f"stage {k} of 5: {name}" for k, name in enumerate(stages, 1)]
    epochs = [ln for ln in err if " epoch " in ln]
    assert [ln.split(":")[0] for ln in epochs] == [
        "face/pretrain epoch 1/1", "emotion/pretrain epoch 1/1", "split/face/finetune epoch 1/2",
        "split/face/finetune epoch 2/2", "split/emotion/finetune epoch 1/2", "split/emotion/finetune epoch 2/2"]
    assert all(re.fullmatch(r".*: loss \d+\.\d{4}, val final 0\.\d{4}, val accuracy .*", ln) for ln in epochs[2:])
    for view in ("face", "emotion"):
        assert f"auh: views.{view}: new AU head (23 outputs) in place of the pretraining head" in err
    assert not any("shape-mismatched" in ln for ln in err)
    run_dir = in_tmp / "runs" / "tiny"
    state = json.loads((run_dir / "state.json").read_text())
    assert state["finished"] is True
    bundle = run_dir / "bundle"
    meta = json.loads((bundle / "bundle.json").read_text())
    assert len(meta["thresholds"]) == 23 and set(meta["views"]) == {"face", "emotion"}
    # on disk: each stage's final weights only, and the bundle shares the fine-tuned ones
    assert sorted(p.name for p in (run_dir / "face" / "pretrain").iterdir()) == ["done.json", "final.safetensors"]
    assert not list(run_dir.glob("**/state.pt")) and not list(run_dir.glob("**/weights-e*"))
    final = run_dir / "split" / "face" / "finetune" / "final.safetensors"
    assert (bundle / "views" / "face.safetensors").stat().st_ino == final.stat().st_ino

    # predict the test images of the synthetic set and score against its labels
    from harness import create
    from harness.labels import write_labels

    ds = create("dataset", "synth", n=160, size=64, identities=12, per_identity=4, per_expression=6)
    test = ds.splits["test"]
    listing = in_tmp / "test_images.txt"
    listing.write_text("\n".join(str(ds.images[i]) for i in test))
    truth = in_tmp / "truth.csv"
    write_labels(truth, [ds.names[i] for i in test], ds.labels[test], ds.schema)
    assert run_cli("predict", str(bundle), str(listing), "--out", "table.parquet", "--submission", "sub.csv") == 0
    capsys.readouterr()
    assert run_cli("score", "--truth", str(truth), "--submission", "sub.csv", "--json",
                   "--tracking-uri", f"sqlite:///{in_tmp / 'ledger.db'}") == 0
    scored = json.loads(capsys.readouterr().out)
    assert 0 <= scored["final"] <= 1 and scored["n_images"] == len(test)


def test_keep_epochs_keeps_every_epochs_weights(in_tmp):
    recipe = write_recipe(in_tmp, "")
    assert run_cli("run", str(recipe), "--set", "train.keep_epochs=true", "--set", "train.epochs=2",
                   "--set", "pretrain.epochs=1") == 0
    run_dir = in_tmp / "runs" / "tiny"
    assert sorted(p.name for p in (run_dir / "split" / "face" / "finetune").iterdir()) == [
        "done.json", "final.safetensors", "logits.npz", "weights-e0.safetensors", "weights-e1.safetensors"]
    assert sorted(p.name for p in (run_dir / "emotion" / "pretrain").iterdir()) == [
        "done.json", "final.safetensors", "weights-e0.safetensors"]


def test_predictions_do_not_depend_on_batch_size(in_tmp):
    recipe = write_recipe(in_tmp, "")
    assert run_cli("run", str(recipe), "--set", "train.epochs=1", "--set", "pretrain.epochs=0") == 0
    from harness.bundle import load_bundle
    from harness import create

    bundle = load_bundle(in_tmp / "runs" / "tiny" / "bundle")
    ds = create("dataset", "synth", n=160, size=64, identities=12, per_identity=4, per_expression=6)
    paths = ds.images[:20]
    p1, y1 = bundle.predict_paths(paths, batch_size=1)
    p64, y64 = bundle.predict_paths(paths, batch_size=64)
    np.testing.assert_allclose(p1, p64, rtol=1e-5, atol=1e-6)
    assert (y1 == y64).all()


@pytest.mark.slow
def test_resume_with_nothing_to_resume_starts_a_run(in_tmp, capsys):
    """The deliberate choice: a scheduler reruns `auh run --resume` after any kill,
    even one that came before the run folder existed."""
    recipe = write_recipe(in_tmp)
    assert run_cli("run", str(recipe), "--resume", "--set", "train.epochs=1") == 0
    err = capsys.readouterr().err
    assert "--resume: no run of 'tiny'" in err and "starting a new one" in err
    assert (in_tmp / "runs" / "tiny" / "result.json").is_file()


def _final_scores(run_dir: Path) -> dict:
    return json.loads((run_dir / "result.json").read_text())["scores"]


def _milestones(run_dir: Path) -> int:
    """Progress written so far: checkpoints, finished stages, saved predictions."""
    return sum(1 for pattern in ("**/state.pt", "**/done.json", "**/logits.npz")
               for _ in run_dir.glob(pattern))


@pytest.mark.slow
def test_kill_and_resume_gives_the_same_scores(in_tmp):
    """SIGKILL `auh run` at random points of its progress (up to three times per seed), resume,
    compare with a straight run. Kills are placed by what the run has written, not by the clock,
    so they land mid-run on a fast machine and on a loaded one alike."""
    recipe = write_recipe(in_tmp, "")
    cmd = [sys.executable, "-m", "harness", "run", str(recipe)]
    straight = subprocess.run(cmd + ["--set", "run.output=straight"], cwd=in_tmp, capture_output=True,
                              text=True, timeout=600)
    assert straight.returncode == 0, straight.stderr
    reference = _final_scores(in_tmp / "straight" / "tiny")
    total = _milestones(in_tmp / "straight" / "tiny")
    assert total >= 4

    for seed in (0, 1):
        rng = np.random.default_rng(seed)
        killed = cmd + ["--set", f"run.output=killed{seed}"]
        run_dir = in_tmp / f"killed{seed}" / "tiny"
        targets = np.sort(rng.choice(np.arange(0, total - 1), size=3, replace=False))
        kills, resume = 0, []
        for target in targets:  # target 0: killed as soon as it starts, before any folder exists
            proc = subprocess.Popen(killed + resume, cwd=in_tmp, start_new_session=True,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            while proc.poll() is None and _milestones(run_dir) < target:
                time.sleep(0.01)
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                kills += 1
            proc.wait()
            resume = ["--resume"]  # also when the kill came before the run folder existed
        assert kills >= 1, "every run finished before its kill: the test proved nothing"
        done = subprocess.run(killed + resume, cwd=in_tmp, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        assert _final_scores(run_dir) == reference, f"seed {seed}"
