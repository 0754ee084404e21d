"""Shared test set-up: offline, quiet, and a private working directory."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from harness.recipe import dumps

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["AUH_QUIET"] = "1"
os.environ.setdefault("MPLBACKEND", "Agg")
# One cache of generated data and aligned faces for the whole session, never the user's.
os.environ["AUH_CACHE"] = tempfile.mkdtemp(prefix="auh-test-cache-")

SHARED = Path(os.environ.get("AUH_SHARED", Path(__file__).resolve().parents[2] / "shared"))
ENC_LABELS = SHARED / "data" / "emotionet2020" / "manual_labels_train.txt"


@pytest.fixture
def enc_labels_path() -> Path:
    """The real ENC-2020 manual labels; the test skips where ../shared is absent."""
    if not ENC_LABELS.is_file():
        pytest.skip(f"ENC-2020 labels not available at {ENC_LABELS}")
    return ENC_LABELS


@pytest.fixture
def in_tmp(tmp_path, monkeypatch) -> Path:
    """Run the test in an empty directory (MLflow's sqlite:///mlflow.db lands there)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def demo(in_tmp: Path) -> Path:
    """The example challenge (submissions/examples) copied into an empty working directory."""
    shutil.copytree(Path(__file__).resolve().parents[1] / "submissions" / "examples", in_tmp / "ex")
    return in_tmp / "ex"


# A recipe small enough for a test run: synthetic data, 32 px, two epochs.
TINY_RECIPE: dict = {
    "run": {"name": "tiny", "seed": 3, "tracking_uri": "off"},
    "dataset": {"name": "synth", "n": 160, "size": 64, "identities": 12, "per_identity": 4,
                "per_expression": 6},
    "aligner": {"name": "center"}, "sampler": {"name": "mlros"}, "loss": {"name": "selective"},
    "evaluation": {"bootstrap": 50},
    "train": {"epochs": 2, "batch_size": 16, "input_size": 32, "workers": 0},
    "pretrain": {"epochs": 1, "batch_size": 16},
    "views": {"face": {"pretrain": "identity", "backbone": {"name": "timm:resnet10t"}},
              "emotion": {"pretrain": "expression", "backbone": {"name": "timm:resnet10t"}}},
}


def tiny_recipe(**sections: dict) -> str:
    """:data:`TINY_RECIPE` as TOML, each section given replacing the base one."""
    return dumps({**TINY_RECIPE, **sections})


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """One tiny trained run for the whole session (:data:`TINY_RECIPE`, one epoch, no
    pretraining, no bootstrap): its :class:`harness.results.RunResult`. For tests that
    only read a run's result or its bundle (``Path(tiny_run.bundle)``); a test that
    changes anything in it trains its own."""
    import harness

    folder = tmp_path_factory.mktemp("tiny-run")
    recipe = folder / "tiny.toml"
    recipe.write_text(tiny_recipe(evaluation={"bootstrap": 0}))
    return harness.run(recipe, overrides=["train.epochs=1", "pretrain.epochs=0",
                                          f"run.output={json.dumps(str(folder / 'runs'))}"])
