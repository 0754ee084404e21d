"""Hostile input and faults through the `auh` command, one test per class of failure.

The contract everywhere: one line on stderr starting ``auh: error:``, exit
status 2, and nothing written (the working folder byte-identical, no ledger
created, no temporary file left). Cases that need a fresh plugin registry
run in one fresh interpreter (see ``test_bad_input.run_cases``).
"""
from __future__ import annotations

import csv
import errno
import hashlib
import io
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score

from conftest import tiny_recipe
from harness.cli import main
from harness.schema import ENC2020
from support import MAKE_BUNDLE, assert_one_line, python, run_cases

EXAMPLES = Path(__file__).resolve().parents[1] / "submissions" / "examples"
AUS = list(ENC2020.aus)


def snapshot(root: Path) -> dict[str, str]:
    """``{relative path: sha256 or "dir"}`` of everything under ``root``, but SQLite's
    shared-memory index (``-shm``), which every reader of a WAL database updates."""
    return {str(p.relative_to(root)): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if not p.name.endswith("-shm")}


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err



def score(capsys, demo: Path, *extra: str, team: str = "t", submission: str = "alpha.csv"):
    return cli(capsys, "score", "--truth", str(demo / "truth.txt"), "--team", team,
               "--submission", str(demo / submission) if "/" not in submission else submission,
               "--resamples", "0", *extra)


# ------------------------------------------------------- 1. recipes: preflight
BASE_RECIPE = tiny_recipe(
    run={"name": "r"}, train={"input_size": 32, "epochs": 1, "batch_size": 8}, pretrain={"epochs": 0},
    views={view: {"pretrain": "none", "backbone": {"name": "timm:test_resnet"}} for view in ("face", "emotion")})
BOOM_PLUGIN = """
from harness import hookimpl

def boom(**kwargs):
    raise RuntimeError("the sampler's set-up crashed")

@hookimpl
def auh_samplers():
    return {"boom": boom}
"""
EXITING_PLUGIN = "import sys\nsys.exit(0)\n"

PREFLIGHT = {
    "loss range": (["--set", "loss.target=[2.0]"], ["recipe field loss", "[0, 1]"]),
    "sampler range": (["--set", "sampler.percent=-5"], ["recipe field sampler", "percent must be >= 0"]),
    "timm name": (["--set", "views.face.backbone.name=timm:no_such_net_xyz"],
                  ["recipe field views.face.backbone", "no_such_net_xyz"]),
    "init file": (["--set", "views.face.init=missing.safetensors"],
                  ["recipe field views.face.init", "missing.safetensors", "does not exist"]),
    "device index": (["--set", "run.device=cuda:99"], ["recipe field run.device", "cuda:99"]),
    "device name": (["--set", "run.device=quantum"], ["recipe field run.device", "unknown device 'quantum'"]),
    "factory raises": (["--plugin", "boom.py", "--set", "sampler.name=boom"],
                       ["recipe field sampler", "sampler 'boom' (plugin boom.py) failed to build",
                        "RuntimeError: the sampler's set-up crashed"]),
    "output is a file": (["--set", "run.output=afile/runs"], ["recipe field run.output", "is a file"]),
    "dataset size": (["--set", "dataset.n=1000000000"],
                     ["recipe field dataset", "n must be an integer from 1 to 2,000,000"]),
    "dataset root": (["--set", "dataset={name = 'emotionet', root = 'no/such/folder', labels = 'l.txt'}"],
                     ["recipe field dataset", "no/such/folder"]),
    "ledger not sqlite": (["--tracking-uri", "sqlite:///notes.txt"], ["notes.txt", "not an SQLite database"]),
    "ablate without align": (["--set", "aligner.name=none"], ["aligner is 'none'"]),
    "ablate without balancing": (["--set", "sampler.name=uniform", "--set", "loss.name=bce"],
                                 ["'+ balancing' row would repeat"]),
}


@pytest.fixture(scope="module")
def preflight_results(tmp_path_factory):
    root = tmp_path_factory.mktemp("preflight")
    (root / "recipe.toml").write_text(BASE_RECIPE)
    (root / "boom.py").write_text(BOOM_PLUGIN)
    (root / "exits.py").write_text(EXITING_PLUGIN)
    (root / "afile").write_text("a file where a folder is expected\n")
    (root / "notes.txt").write_text("not a database\n")
    cases = {name: (["ablate"] if name.startswith("ablate") else ["run"]) + ["recipe.toml", *argv]
             for name, (argv, _) in PREFLIGHT.items()}
    cases["plugin exits"] = ["--plugin", "exits.py", "plugins"]
    (root / "cases.json").write_text("[]")
    (root / "driver.py").write_text("")
    before = snapshot(root)
    results = run_cases(root, list(cases.values()))
    return dict(zip(cases, results)), before, snapshot(root)


@pytest.mark.parametrize("name", sorted(PREFLIGHT))
def test_refused_recipe_names_the_field(preflight_results, name):
    results, _, _ = preflight_results
    code, out, err = results[name]
    assert_one_line(code, err, *PREFLIGHT[name][1])


def test_refused_recipes_leave_the_folder_byte_identical(preflight_results):
    _, before, after = preflight_results
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    assert changed <= {"cases.json", "driver.py"}  # the harness of this test itself


def test_plugin_that_exits_on_import_is_a_failed_load(preflight_results):
    code, _, err = preflight_results[0]["plugin exits"]
    assert_one_line(code, err, "plugin 'exits.py': import failed: SystemExit")


# ------------------------------------------------- 2. reading never writes
def test_leaderboard_and_check_create_no_ledger(in_tmp, capsys):
    code, _, err = cli(capsys, "leaderboard")
    assert_one_line(code, err, "no ledger at", str(in_tmp / "mlflow.db"))
    code, _, err = cli(capsys, "leaderboard", "--tracking-uri", f"sqlite:///{in_tmp / 'elsewhere.db'}")
    assert_one_line(code, err, "no ledger at", "elsewhere.db")
    assert cli(capsys, "check", "--truth", str(EXAMPLES / "truth.txt"),
               "--submission", str(EXAMPLES / "alpha.csv"))[0] == 0
    assert list(in_tmp.iterdir()) == []


# -------------------------------------------------------- 3. output paths
@pytest.mark.parametrize("out, needle", [
    ("adir", "is a directory"),
    ("missing/board.md", "does not exist"),
    ("afile/board.md", "is a file, not a folder"),
])
def test_bad_output_path(demo, capsys, out, needle):
    assert score(capsys, demo)[0] == 0
    (demo.parent / "adir").mkdir()
    (demo.parent / "afile").write_text("x")
    before = snapshot(demo.parent)
    code, _, err = cli(capsys, "leaderboard", "--out", out, "--resamples", "0")
    assert_one_line(code, err, out, needle)
    assert snapshot(demo.parent) == before


def test_full_disk_while_writing_leaves_no_temp_file(demo, capsys, monkeypatch):
    assert score(capsys, demo)[0] == 0
    before = snapshot(demo.parent)

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    code, _, err = cli(capsys, "leaderboard", "--out", "board.md", "--resamples", "0")
    assert_one_line(code, err, "board.md", "No space left on device")
    assert snapshot(demo.parent) == before


# --------------------------------------------------------------- 4. ledger
def _half_schema(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE experiments (experiment_id INTEGER)")
    conn.close()


@pytest.mark.parametrize("make, needle", [
    (lambda db: db.write_text("hello, not a database\n"), "is not an SQLite database"),
    (lambda db: db.write_bytes(b""), "is empty"),
    (lambda db: db.mkdir(), "is a directory"),
    (_half_schema, "MLflow tables are incomplete"),
])
def test_unusable_ledger_is_one_line_and_untouched(demo, capsys, make, needle):
    make(demo.parent / "mlflow.db")
    before = snapshot(demo.parent)
    for argv in (["score", "--truth", str(demo / "truth.txt"), "--team", "t",
                  "--submission", str(demo / "alpha.csv"), "--resamples", "0"],
                 ["leaderboard", "--resamples", "0"]):
        code, _, err = cli(capsys, *argv)
        assert_one_line(code, err, "mlflow.db", needle)
    assert snapshot(demo.parent) == before


def test_failed_ledger_creation_leaves_no_ledger(demo, capsys, monkeypatch):
    import mlflow.store.db.utils as db_utils

    real = db_utils._upgrade_db

    def crash(engine):  # the tables exist, the migrations never ran: a half schema
        raise RuntimeError("killed while creating the schema")

    monkeypatch.setattr(db_utils, "_upgrade_db", crash)
    assert score(capsys, demo)[0] != 0
    assert [p.name for p in demo.parent.iterdir() if "mlflow" in p.name] == []
    monkeypatch.setattr(db_utils, "_upgrade_db", real)
    assert score(capsys, demo)[0] == 0
    assert cli(capsys, "leaderboard", "--resamples", "0")[0] == 0


def test_disk_full_at_ledger_creation(demo, capsys, monkeypatch):
    def full(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))

    monkeypatch.setattr(os, "link", full)
    code, _, err = score(capsys, demo)
    assert_one_line(code, err, "mlflow.db", "cannot create it")
    assert [p.name for p in demo.parent.iterdir() if "mlflow" in p.name] == []


def test_kill_during_the_first_score_never_bricks_the_ledger(demo, capsys):
    """SIGKILL the first `auh score` while it builds the ledger's schema; later commands work."""
    cmd = [sys.executable, "-m", "harness", "score", "--truth", str(demo / "truth.txt"), "--team", "t",
           "--submission", str(demo / "alpha.csv"), "--resamples", "0"]
    proc = subprocess.Popen(cmd, cwd=demo.parent, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while proc.poll() is None and not list(demo.parent.glob(".mlflow.db.*.creating")):
        time.sleep(0.005)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert score(capsys, demo)[0] == 0
    code, out, _ = cli(capsys, "leaderboard", "--resamples", "0")
    assert code == 0 and "| t " in out.replace("|t ", "| t ")


# ---------------------------------------------------- 5. read to the end
def _truth(tmp: Path, rows: int = 4, value: str = "1", extra: str = "") -> Path:
    path = tmp / "truth.txt"
    lines = [f"img{i}.jpg " + " ".join([value if i == 0 else str(i % 2)] * len(AUS)) for i in range(rows)]
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


def _submission(tmp: Path, rows: int = 4, tail: str = "", value: str = "0") -> Path:
    path = tmp / "sub.csv"
    lines = ["image," + ",".join(AUS)] + [f"img{i}.jpg," + ",".join([value] * len(AUS)) for i in range(rows)]
    path.write_text("\n".join(lines) + "\n" + tail)
    return path


@pytest.mark.parametrize("value, ok", [
    ("1", True), ("1.0", True), ("999.00", True), ("+1", True),
    ("True", False), ("1e0", False), ("0.99999999999999999999", False),
    ("998.99999999999999999", False), ("1.5", False), ("NaN", False), ("１", False),
])
def test_truth_value_spellings(in_tmp, capsys, value, ok):
    truth = _truth(in_tmp, value=value)
    code, _, err = cli(capsys, "check", "--truth", str(truth), "--submission", str(_submission(in_tmp)))
    if ok:
        assert code == 0, err
    else:
        assert_one_line(code, err, "truth.txt: line 1, column AU1", repr(value))


@pytest.mark.parametrize("value", ["True", "0.99999999999999999999", "1e0", "2"])
def test_submission_value_spellings(in_tmp, capsys, value):
    code, _, err = cli(capsys, "check", "--truth", str(_truth(in_tmp)),
                       "--submission", str(_submission(in_tmp, value=value)))
    assert_one_line(code, err, "sub.csv: line 2, column AU1", repr(value))


@pytest.mark.parametrize("tail, needle", [
    ("\ngarbage\n", "line 6: blank line"),
    ("\nimg0.jpg," + ",".join(["1"] * 23) + "\n", "line 6: blank line"),
    ("img0.jpg," + ",".join(["1"] * 23) + "\n", "line 6: image 'img0.jpg' repeats line 2"),
])
def test_submission_content_after_the_rows_is_refused(in_tmp, capsys, tail, needle):
    code, _, err = cli(capsys, "check", "--truth", str(_truth(in_tmp)),
                       "--submission", str(_submission(in_tmp, tail=tail)))
    assert_one_line(code, err, "sub.csv", needle)


def test_nul_byte_anywhere_is_refused(in_tmp, capsys):
    truth = _truth(in_tmp, rows=3000)  # well past the first 64 KiB
    data = truth.read_bytes()
    at = data.index(b"img2500.jpg")
    truth.write_bytes(data[:at] + b"\x00" + data[at:])
    code, _, err = cli(capsys, "check", "--truth", str(truth), "--submission", str(_submission(in_tmp)))
    assert_one_line(code, err, "truth.txt: line 2501: a NUL byte")


# ------------------------------------------------------ 6. outside names
@pytest.mark.parametrize("team, needle", [
    ("two\nlines", "control character"),
    ("bell\x07", "control character"),
    ("x" * 60_000, "60,000 characters, at most 100"),
])
def test_bad_team_names_are_refused_before_anything_is_written(demo, capsys, team, needle):
    before = snapshot(demo.parent)
    code, _, err = score(capsys, demo, team=team)
    assert_one_line(code, err, "--team", needle)
    assert len(err) < 1200
    assert snapshot(demo.parent) == before


def test_non_utf8_file_name(demo, capsys):
    name = os.fsdecode(b"sub\xff.csv")
    shutil.copyfile(demo / "alpha.csv", demo / name)
    assert cli(capsys, "check", "--truth", str(demo / "truth.txt"), "--submission", str(demo / name))[0] == 0
    before = snapshot(demo.parent)
    code, _, err = score(capsys, demo, submission=str(demo / name))
    assert_one_line(code, err, "submission file name", "not valid UTF-8")
    assert snapshot(demo.parent) == before


def test_echoed_names_stay_one_readable_line(in_tmp, capsys):
    code, _, err = cli(capsys, "check", "--truth", "no\nsuch\rfile.txt", "--submission", "s.csv")
    assert_one_line(code, err, "no\\nsuch\\rfile.txt: no such file")
    code, _, err = cli(capsys, "check", "--truth", "y" * 60_000, "--submission", "s.csv")
    assert_one_line(code, err, "characters cut")
    assert len(err) < 1200


def test_csv_leaderboard_quotes_a_bare_cr(demo, capsys):
    from plugins.tracking import store
    from leaderboard import ledger

    assert score(capsys, demo)[0] == 0
    [entry] = ledger.entries("scoring/test")
    client = store.client_for(store.resolve_tracking_uri(None))
    client.set_tag(entry.run_id, "team", "evil\rteam")  # written behind the scorer's back
    code, out, _ = cli(capsys, "leaderboard", "--format", "csv", "--resamples", "0")
    assert code == 0
    rows = list(csv.reader(io.StringIO(out, newline="")))
    assert len(rows) == 2 and rows[1][1] == "evil\rteam"


# -------------------------------------------------------- 7. the parser
@pytest.mark.parametrize("argv, needle", [
    (["score"], "the following arguments are required: --submission"),
    (["leaderboard", "--format", "pdf"], "invalid choice: 'pdf'"),
    (["no-such-command"], "invalid choice: 'no-such-command'"),
    (["run", "--set"], "expected one argument"),
    (["score", "--resamples", "many", "--submission", "s"], "invalid int value: 'many'"),
])
def test_argparse_errors_are_one_line(in_tmp, capsys, argv, needle):
    code, out, err = cli(capsys, *argv)
    assert_one_line(code, err, needle)
    assert out == ""


@pytest.mark.parametrize("toml, needle", [
    ('name = "c"\ntie_break = 5\n[phases.test]\ntruth = "t.txt"\n', "tie_break: expected a list, got int 5"),
    ('name = ["c"]\n[phases.test]\ntruth = "t.txt"\n', "name: expected a string, got list"),
    ('name = "c"\nschema = 3\n[phases.test]\ntruth = "t.txt"\n', "schema: expected a string, got int 3"),
    ('name = "c"\nphases = 3\n', "phases: expected at least one"),
    ('name = "c"\n[phases.test]\ntruth = 5\n', "truth: expected a string, got int 5"),
    ('name = "c"\n[phases.test]\ntruth = "adir"\n', "phases.test.truth: "),
    ('name = "c"\n[phases.test]\ntruth = "t.txt"\ncap = "5"\n', "phases.test.cap: expected a positive integer"),
])
def test_challenge_fields_of_the_wrong_type(in_tmp, capsys, toml, needle):
    (in_tmp / "adir").mkdir()
    (in_tmp / "c.toml").write_text(toml)
    code, _, err = cli(capsys, "check", "--challenge", "c.toml", "--submission", "s.csv")
    assert_one_line(code, err, "c.toml", needle)


def test_challenge_path_that_is_a_directory(in_tmp, capsys):
    code, _, err = cli(capsys, "check", "--challenge", str(in_tmp), "--submission", "s.csv")
    assert_one_line(code, err, "not a file")


# ------------------------------------------------------- 8. auh predict
@pytest.fixture(scope="module")
def predict_results(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    for name in ("good", "truncated", "noweights"):
        proc = python(root, "-c", MAKE_BUNDLE, str(root / name))
        assert proc.returncode == 0, proc.stderr
    meta = root / "truncated" / "bundle.json"
    meta.write_text(meta.read_text()[:40])
    (root / "noweights" / "views" / "face.safetensors").unlink()
    (root / "img").mkdir()
    from PIL import Image

    Image.new("RGB", (40, 40), (90, 120, 150)).save(root / "img" / "a.jpg")
    (root / "list.bin").write_bytes(bytes(range(256)) * 4)
    (root / "outdir").mkdir()
    cases = {
        "truncated json": ["predict", "truncated", "img", "--out", "p.csv"],
        "missing weights": ["predict", "noweights", "img", "--out", "p.csv"],
        "binary list": ["predict", "good", "list.bin", "--out", "p.csv"],
        "bad device": ["predict", "good", "img", "--out", "p.csv", "--device", "quantum"],
        "absent device": ["predict", "good", "img", "--out", "p.csv", "--device", "cuda:99"],
        "out is a directory": ["predict", "good", "img", "--out", "outdir"],
        "out parent missing": ["predict", "good", "img", "--out", "nowhere/p.csv"],
    }
    before = snapshot(root)
    results = run_cases(root, list(cases.values()))
    written = set(snapshot(root)) - set(before) - {"cases.json", "driver.py"}
    return dict(zip(cases, results)), written


@pytest.mark.parametrize("case, needles", [
    ("truncated json", ["truncated/bundle.json", "not valid JSON"]),
    ("missing weights", ["noweights", "weights of view 'face' missing"]),
    ("binary list", ["list.bin", "binary data"]),
    ("bad device", ["--device", "unknown device 'quantum'"]),
    ("absent device", ["--device", "'cuda:99'"]),
    ("out is a directory", ["outdir", "is a directory"]),
    ("out parent missing", ["nowhere", "does not exist"]),
])
def test_predict_refuses(predict_results, case, needles):
    code, _, err = predict_results[0][case]
    assert_one_line(code, err, *needles)


def test_refused_predictions_write_nothing(predict_results):
    assert predict_results[1] == set()


# --------------------------------------------------- 9. method correctness
def test_kfold_prior_comes_from_each_folds_own_training_rows():
    """Each fold's training rows are all 1 (fold 0) or all 0 (fold 1): the prior
    draws are then certain, and their score can be worked out independently."""
    from harness.pipeline import Split, baselines

    labels = np.zeros((12, len(AUS)), np.int64)
    labels[0:4] = 1                        # fold 0 trains on these: prior 1
    labels[8:10, :] = 1                    # fold 1 tests rows 8..11: truth 1 1 0 0
    splits = [Split("fold/0", np.arange(0, 4), np.arange(4, 6), np.arange(8, 12)),
              Split("fold/1", np.arange(4, 8), np.arange(6, 8), np.arange(0, 4))]
    dataset = type("D", (), {"labels": labels, "schema": ENC2020})()
    got = baselines(dataset, splits, seed=0)["prior"]
    pred = np.concatenate([np.ones((4, len(AUS)), np.int64), np.zeros((4, len(AUS)), np.int64)])
    truth = np.concatenate([labels[8:12], labels[0:4]])
    acc = np.mean([accuracy_score(truth[:, j], pred[:, j]) for j in range(len(AUS))])
    f1 = np.mean([f1_score(truth[:, j], pred[:, j], zero_division=0) for j in range(len(AUS))])
    assert got["accuracy"] == pytest.approx(acc) and got["f1"] == pytest.approx(f1)


# ----------------------------------------------- tracking URIs and sizes
@pytest.mark.parametrize("argv, needle", [
    (["leaderboard", "--tracking-uri", "foo://bar"], "tracking URI 'foo://bar': expected sqlite:///"),
    (["leaderboard", "--tracking-uri", "file:///tmp/mlruns"], "file store (./mlruns) is not supported"),
    (["leaderboard", "--tracking-uri", "sqlite:///"], "expected a database file"),
    (["leaderboard", "--resamples", "99999999999"], "--resamples: expected 0 to 100,000"),
    (["leaderboard", "--seed", "-1"], "--seed: expected an integer >= 0"),
    (["check", "--truth", "t.txt", "--submission", "s.csv", "--phase", "a/b"], "without '/'"),
])
def test_unusable_tracking_uris_and_sizes(in_tmp, capsys, argv, needle):
    code, _, err = cli(capsys, *argv)
    assert_one_line(code, err, needle)
    assert list(in_tmp.iterdir()) == []


def test_a_refused_backbone_generates_no_dataset(tmp_path):
    """Cheap checks come before the dataset, whose first build fills its data cache."""
    (tmp_path / "recipe.toml").write_text(BASE_RECIPE)
    cache = tmp_path / "cache"
    env = {**os.environ, "AUH_CACHE": str(cache), "PYTHONPATH": ""}
    proc = subprocess.run([sys.executable, "-m", "harness", "run", "recipe.toml", "--set",
                           "views.face.backbone.name=timm:no_such_net_xyz"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert_one_line(proc.returncode, proc.stderr, "recipe field views.face.backbone")
    assert not cache.exists() or not any(cache.rglob("*"))
