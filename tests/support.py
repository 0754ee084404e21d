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
from pathlib import Path

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
    import sys
    import numpy as np
    import harness
    from harness import recipe as recipes
    from harness.bundle import save_bundle
    from harness.schema import ENC2020
    from harness.weights import save_weights

    recipe = recipes.load(None, ["train.input_size=32", "aligner.name=none", "views.face.pretrain=none",
                                 "views.face.backbone.name=timm:test_resnet"])
    recipe["views"] = {"face": recipe["views"]["face"]}
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
