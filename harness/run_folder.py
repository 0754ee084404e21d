"""A run folder: the one place that names the files inside it, and which folder a run uses.

Layout (``{run.output}/{run.name}``, then ``-2``, ``-3``... for later runs)::

    recipe.toml                  the resolved recipe
    state.json                   the run's state: id, recipe digest, finished, plugins' entries
    result.json                  the RunResult as JSON (once finished)
    test_predictions.npz         pooled test rows: what ``auh compare`` pairs
    bundle/                      the model bundle (harness.bundle)
    <stage>/                     one folder per stage, e.g. split/face/finetune:
        weights-e<k>.safetensors, state.pt   the last epoch checkpoint (while it runs)
        final.safetensors, done.json         the stage's weights and metrics (once done)
        logits.npz                           a fine-tuning stage's val/test logits
        thresholds.json, val_probs.npz, test_submission.csv   an ensemble stage's

No other module spells these names: they are the attributes below.
"""
from __future__ import annotations

import glob
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.fileio import atomic_open


class StageFiles:
    """File names inside one stage's folder."""

    FINAL = "final.safetensors"  # the stage's weights
    DONE = "done.json"  # the stage's last metrics: the stage is done
    CHECKPOINT = "state.pt"  # optimizer, scheduler, RNG and the epoch weights file's name
    EPOCH = "weights-e{epoch}.safetensors"
    EPOCH_GLOB = "weights-e*.safetensors"
    LOGITS = "logits.npz"
    THRESHOLDS = "thresholds.json"
    VAL_PROBS = "val_probs.npz"
    TEST_SUBMISSION = "test_submission.csv"


def file_in(folder: str, name: str) -> property:
    """A read-only attribute: the path ``name`` inside the folder held by attribute ``folder``."""
    return property(lambda self: getattr(self, folder) / name, doc=f"``{name}`` in the folder")


@dataclass(frozen=True)
class RunFolder:
    """A run folder and the paths of everything in it (see the module docstring)."""

    path: Path

    STATE = "state.json"
    RECIPE = "recipe.toml"
    RESULT = "result.json"
    TEST_PREDICTIONS = "test_predictions.npz"
    BUNDLE = "bundle"

    # keys of state.json the harness itself keeps (plugins keep theirs under their own key)
    RUN_ID = "run_id"
    DIGEST = "recipe_sha256"
    FINISHED = "finished"

    state_file = file_in("path", STATE)
    recipe_file = file_in("path", RECIPE)
    result_file = file_in("path", RESULT)
    test_predictions = file_in("path", TEST_PREDICTIONS)
    bundle = file_in("path", BUNDLE)

    def stage(self, stage: str) -> Path:
        """The folder of ``stage`` (a '/'-path such as ``split/face/finetune``)."""
        return self.path / stage

    def final_weights(self, stage: str) -> Path:
        return self.stage(stage) / StageFiles.FINAL

    def logits(self, stage: str) -> Path:
        return self.stage(stage) / StageFiles.LOGITS

    def ensemble_files(self, stage: str) -> dict[str, Path]:
        """An ensemble stage's artifacts: ``thresholds``, ``val_probs``, ``test_submission``."""
        folder = self.stage(stage)
        return {"thresholds": folder / StageFiles.THRESHOLDS, "val_probs": folder / StageFiles.VAL_PROBS,
                "test_submission": folder / StageFiles.TEST_SUBMISSION}

    def read_state(self) -> dict[str, Any]:
        """``state.json`` (raises ``OSError`` / ``ValueError`` when absent or unreadable)."""
        return json.loads(self.state_file.read_text())

    def write_state(self, state: dict[str, Any]) -> None:
        with atomic_open(self.state_file) as fh:
            json.dump(state, fh, indent=1, default=str)

    def finished(self, digest: str) -> bool:
        """Whether this folder holds a finished run of the recipe whose digest is ``digest``."""
        try:
            state = self.read_state()
        except (OSError, ValueError):
            return False
        return state.get(self.DIGEST) == digest and bool(state.get(self.FINISHED)) \
            and self.test_predictions.is_file()


def run_folders(output: str | Path, name: str) -> list[RunFolder]:
    """The run folders of run ``name`` under ``output`` (``output/name`` and ``output/name-k``
    holding a ``state.json``), oldest first: ``--resume`` continues the last one."""
    base = Path(output) / name
    existing = sorted((p for p in base.parent.glob(glob.escape(base.name) + "*")
                       if p == base or p.name[len(base.name) + 1:].isdigit() and p.name[len(base.name)] == "-"),
                      key=lambda p: p.stat().st_mtime)
    return [RunFolder(p) for p in existing if (p / RunFolder.STATE).is_file()]


def new_run_folder(output: str | Path, name: str) -> RunFolder:
    """A new, empty ``output/name`` (or ``name-2``, ``name-3``... when taken)."""
    base = Path(output) / name
    path, k = base, 1
    while path.exists():
        k += 1
        path = base.with_name(f"{base.name}-{k}")
    path.mkdir(parents=True)
    return RunFolder(path)
