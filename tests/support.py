"""Helpers the test modules share (no test module imports another).

``python`` and ``run_cases`` run ``auh`` in a fresh interpreter, as a user
has it: the environment's PYTHONPATH is replaced by this tree's root, so the
child imports the au-harness these tests belong to and nothing the test
runner added.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import numpy as np

from harness import recipe as recipes
from harness.metrics import challenge_score
from harness.results import FoldResult, RunResult

ROOT = Path(__file__).resolve().parents[1]

# Runs each argv list of cases.json through harness.cli.main in one fresh
# interpreter (a fresh plugin registry per case); prints [code, stdout, stderr] per case.
DRIVER = textwrap.dedent('''
    import contextlib, io, json, sys
    import harness
    from harness.cli import main

    results = []
    for argv in json.load(open(sys.argv[1])):
        harness.registry._REGISTRY = None
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exc:
                code = exc.code
        results.append([code, out.getvalue(), err.getvalue()])
    print(json.dumps(results))
''')

# A one-view bundle with a tiny timm model and the resize aligner, for `auh predict`.
MAKE_BUNDLE = textwrap.dedent('''
    import dataclasses
    import sys
    import numpy as np
    import harness
    from harness import recipe as recipes
    from harness.bundle import save_bundle
    from harness.schema import ENC2020
    from harness.weights import save_weights

    recipe = recipes.load(None, ["train.input_size=32", "aligner.name=none", "views.face.pretrain=none",
                                 "views.face.backbone.name=timm:test_resnet"])
    recipe = dataclasses.replace(recipe, views={"face": recipe.views["face"]})
    model = harness.create("backbone", "timm:test_resnet", num_classes=len(ENC2020), input_size=32)
    weights = save_weights(model, sys.argv[1] + ".safetensors")
    save_bundle(sys.argv[1], recipe, ENC2020, {"face": weights}, np.full(len(ENC2020), 0.5),
                harness.create("ensembler", "mean_prob"), {"face": model.normalization})
''')


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "AUH_QUIET": "1", "PYTHONPATH": str(ROOT)}


def python(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, env=_env(), capture_output=True,
                          text=True, timeout=600)


def run_cases(cwd: Path, cases: list[list[str]]) -> list[tuple[int, str, str]]:
    (cwd / "cases.json").write_text(json.dumps(cases))
    (cwd / "driver.py").write_text(DRIVER)
    proc = python(cwd, "driver.py", "cases.json")
    assert proc.returncode == 0, proc.stderr
    return [tuple(r) for r in json.loads(proc.stdout.splitlines()[-1])]


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def assert_one_line(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    assert err.startswith("auh: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, (needle, err)


# ----------------------------------------------- a fake run for the lifecycle hooks
RUN_AUS = ("AU1", "AU2", "AU12", "AU51")


def make_recipe(**run: str) -> recipes.Recipe:
    return recipes.load(None, check_components=False).with_run(**run)


def fake_run(recipe: recipes.Recipe, out_dir: Path, run_id: str = "r1", resumed: bool = False,
             state: dict | None = None, uri: str = "") -> types.SimpleNamespace:
    out_dir.mkdir(parents=True, exist_ok=True)
    return types.SimpleNamespace(recipe=recipe, out_dir=out_dir, run_id=run_id, resumed=resumed,
                                 tracking_uri=uri, state={} if state is None else state)


def make_result(tmp: Path) -> RunResult:
    """Two folds of 30 rows; each fold validates on the rows it tests (enough for the plugin)."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, (60, len(RUN_AUS)))
    labels[rng.random(labels.shape) < 0.1] = 999
    labels[:, 3] = np.where(labels[:, 3] == 999, 999, 0)  # AU51: no positives, no curve
    probs = np.clip(0.6 * (labels == 1) + 0.5 * rng.random(labels.shape), 0, 1)
    pred = (probs >= 0.5).astype(np.int64)
    scores = challenge_score(pred, labels, RUN_AUS)
    scores["ci95"] = [scores["final"] - 0.05, scores["final"] + 0.05]
    folds = tuple(FoldResult(f"fold/{k}", challenge_score(pred[rows], labels[rows], RUN_AUS), {},
                             np.array([0.4, 0.5, 0.6, 0.5]), rows, rows, pred[rows], probs[rows], None)
                  for k, rows in enumerate((np.arange(30), np.arange(30, 60))))
    return RunResult(scores=scores, folds=folds, cv={"mean": 0.6, "std": 0.01, "n_folds": 2}, view_final={},
                     baselines={"all_zeros": challenge_score(np.zeros_like(pred), labels, RUN_AUS)},
                     faces={"n": 60, "not_found": 0}, bundle=str(tmp / "no-bundle-here"),
                     out_dir=str(tmp / "runs"), aus=RUN_AUS, val_labels=labels[:30])
