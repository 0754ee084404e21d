"""Typed results: every field readable (attributes, and the JSON form by key), nothing
writable, the caller's arrays untouched; ``harness.run`` returns one."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

import harness
from conftest import tiny_recipe
from harness.metrics import challenge_score
from harness.results import FoldResult, RunResult

AUS = ["AU1", "AU2"]


def result() -> tuple[RunResult, np.ndarray]:
    truth = np.array([[1, 0], [0, 999], [1, 1], [0, 0]])
    pred = np.array([[1, 0], [1, 1], [1, 0], [0, 0]])
    thresholds = np.array([0.4, 0.6])
    fold = FoldResult("split", challenge_score(pred, truth, AUS), {"face": 0.5}, thresholds,
                      np.arange(4), np.arange(4), pred, pred / 2, None)
    return RunResult(challenge_score(pred, truth, AUS), (fold,), {"mean": 0.6, "std": 0.0, "n_folds": 1},
                     {"face": 0.5}, {}, {"n": 4, "not_found": 0}, "b", "o", tuple(AUS), truth), thresholds


def test_fields_by_attribute_and_by_key():
    r, _ = result()
    # AU1: 2 TP, 1 FP, 1 TN -> acc 3/4, F1 4/5; AU2 (one 999 row): 1 TN, 1 FN, 1 TN -> acc 2/3, F1 0
    assert r.accuracy == r.acc == pytest.approx((3 / 4 + 2 / 3) / 2)
    assert r.f1 == pytest.approx(0.4) and r.final == pytest.approx(((3 / 4 + 2 / 3) / 2 + 0.4) / 2)
    assert r.per_au["AU2"]["n"] == 3 and r["scores"]["final"] == r.final and r["folds"][0]["f1"] == r.f1
    assert "faces" in r and "nothing" not in r and r.get("nothing", 7) == 7
    assert r["val"]["thresholds"].tolist() == [0.4, 0.6]
    assert json.loads(json.dumps(r.to_json()))["cv"]["n_folds"] == 1


def test_nothing_is_writable_and_the_callers_arrays_stay_writable():
    r, thresholds = result()
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.scores = {}
    with pytest.raises(TypeError):
        r.scores["final"] = 1.0
    with pytest.raises(TypeError):
        r["tracking"] = {}
    with pytest.raises(ValueError):
        r.folds[0].thresholds[0] = 0.9
    thresholds[0] = 0.9  # the caller's own array is not frozen, and the result kept its copy
    assert r.folds[0].thresholds[0] == 0.4


def test_harness_run_returns_a_run_result(tiny_run):
    r = tiny_run
    saved = json.loads((Path(r.out_dir) / "result.json").read_text())
    assert isinstance(r, RunResult) and r.final == saved["scores"]["final"]
    assert len(r.folds) == 1 and r.folds[0].name == "split" and r.folds[0].thresholds.shape == (23,)
    assert r.reports == {}  # tracking off: nothing reported


def test_lifecycle_hooks_see_a_read_only_run_whose_state_is_saved(in_tmp, monkeypatch):
    from harness import pipeline

    seen = []

    class Relay:  # stands in for the plugin manager's hook relay: records every call
        def __getattr__(self, name):
            def call(**kwargs):
                seen.append((name, kwargs["run"]) if "run" in kwargs else (name, None))
                if name == "auh_run_start":
                    kwargs["run"].state["mine"] = {"noted": True}
            return call

    monkeypatch.setattr(pipeline, "hooks", lambda: Relay())
    recipe = in_tmp / "r.toml"
    recipe.write_text(tiny_recipe(evaluation={"bootstrap": 0}))
    r = harness.run(recipe, overrides=["train.epochs=1", "pretrain.epochs=0"])
    runs = [run for name, run in seen if run is not None]
    assert {name for name, _ in seen} >= {"auh_run_start", "auh_stage_start", "auh_epoch_end",
                                          "auh_stage_end", "auh_run_end"}
    run = runs[0]
    assert run.recipe.train.epochs == 1 and run.out_dir == Path(r.out_dir)
    with pytest.raises(TypeError):  # the recipe's tables are read-only mappings
        run.recipe.views["face"] = None
    with pytest.raises(dataclasses.FrozenInstanceError):  # and its fields frozen
        run.recipe.train.epochs = 5
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.out_dir = Path("elsewhere")
    assert json.loads((Path(r.out_dir) / "state.json").read_text())["mine"] == {"noted": True}
