"""Third hardening round (issue 26), through `auh`: exports that leak no private score and
that the platforms accept, and the failure classes of the newer commands. Every refusal is
one line, exit status 2, and leaves the working folder as it was."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from sklearn.metrics import accuracy_score, f1_score

from conftest import tiny_recipe
from harness.cli import main
from harness.labels import read_labels, write_labels
from harness.schema import ENC2020, UNKNOWN
from leaderboard.challenge import public_mask
from support import MAKE_BUNDLE, ROOT, assert_one_line, python

AUS = ENC2020.aus
NAMES = [f"N_{i:04d}.jpg" for i in range(40)]
SALT = "organizers-only-salt-1f3c"


def cli(capsys, *argv: object) -> tuple[int, str, str]:
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` with its sha256 (``dir`` for a folder, ``other`` for a named
    pipe, which reading would block); SQLite's ``-shm`` aside."""
    def state(p: Path) -> str:
        return hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir" if p.is_dir() else "other"

    return {str(p.relative_to(root)): state(p) for p in sorted(root.rglob("*")) if not p.name.endswith("-shm")}


def refused(capsys, root: Path, *argv: object, needles: tuple[str, ...] = ()) -> str:
    """Run ``auh argv``; assert one line, exit 2, and nothing under ``root`` changed."""
    before = snapshot(root)
    code, _, err = cli(capsys, *argv)
    assert_one_line(code, err, *needles)
    assert snapshot(root) == before
    return err


@pytest.fixture
def truth(in_tmp: Path) -> Path:
    rng = np.random.default_rng(26)
    labels = rng.choice([0, 1, UNKNOWN], size=(len(NAMES), len(AUS)), p=[0.55, 0.35, 0.1])
    write_labels(in_tmp / "truth.txt", NAMES, labels)
    write_labels(in_tmp / "sub.csv", NAMES, (rng.random(labels.shape) < 0.4).astype(int))
    write_labels(in_tmp / "sub2.csv", NAMES, (rng.random(labels.shape) < 0.5).astype(int))
    return in_tmp / "truth.txt"


def challenge(folder: Path, body: str = "", name: str = "hardened", fraction: float = 0.5,
              phase: str = "test") -> Path:
    path = folder / "challenge.toml"
    path.write_text(f'name = "{name}"\nsplit_salt = "{SALT}"\n{body}[phases.{phase}]\n'
                    f'truth = "truth.txt"\npublic_fraction = {fraction}\n')
    return path


def export(capsys, toml: Path, platform: str) -> zipfile.ZipFile:
    out = toml.parent / f"{platform}.zip"
    code, _, err = cli(capsys, "export", platform, "--challenge", toml, out)
    assert code == 0, err
    return zipfile.ZipFile(out)


# ----------------------------------------------------- 1. no private score on a platform
@pytest.mark.parametrize("platform, truth_file", [("codabench", "reference_data/test/truth.csv"),
                                                  ("evalai", "annotations/phase1.csv")])
def test_bundles_hold_no_private_label_no_salt_and_no_private_score(capsys, truth, platform, truth_file):
    bundle = export(capsys, challenge(truth.parent), platform)
    for name in bundle.namelist():
        assert SALT.encode() not in bundle.read(name), name
        if name.endswith((".yaml", ".json")):
            assert b"private" not in bundle.read(name).lower(), name
    (truth.parent / "packaged.csv").write_bytes(bundle.read(truth_file))
    names, packaged = read_labels(truth.parent / "packaged.csv")
    _, labels = read_labels(truth)
    public = public_mask(NAMES, 0.5, f"{SALT}/test")
    assert names == NAMES and 0 < public.sum() < len(NAMES)
    assert (packaged[public] == labels[public]).all() and (packaged[~public] == UNKNOWN).all()


def test_codabench_output_flags_and_explicit_caps(capsys, truth):
    comp = yaml.safe_load(export(capsys, challenge(truth.parent), "codabench").read("competition.yaml"))
    (phase,) = comp["phases"]
    # No cap in the challenge: both written (Codabench would apply 5 a day and 100 in all).
    assert phase["max_submissions_per_day"] == phase["max_submissions"] == 100_000 < 2 ** 31
    assert phase["hide_score_output"] is True and phase["hide_output"] is False


# ---------------------------------------------------------- 2. EvalAI's 100 characters
def test_evalai_title_over_100_characters_is_refused(capsys, truth):
    toml = challenge(truth.parent, name="t" * 101)
    refused(capsys, truth.parent, "export", "evalai", "--challenge", toml, truth.parent / "e.zip",
            needles=("100",))
    challenge(truth.parent, name="t" * 100)
    assert export(capsys, toml, "evalai")


def test_evalai_annotation_path_fits_whatever_the_phase_name(capsys, truth):
    config = yaml.safe_load(export(capsys, challenge(truth.parent, phase="p" * 64), "evalai")
                            .read("challenge_config.yaml"))
    (phase,) = config["challenge_phases"]
    # /tmp/tmpXXXXXXXX/ + a 10-character folder + / precede it in a 100-character field
    assert len("/tmp/tmpabcdefgh/abcdefghij/" + phase["test_annotation_file"]) <= 100
    assert phase["codename"] == "p" * 64


# ------------------------------------------- 3., 4. dates, tie-break, 4-digit years
def test_a_phase_starting_when_the_previous_ends_is_refused(capsys, truth):
    toml = truth.parent / "c.toml"
    toml.write_text('name = "x"\n[phases.a]\ntruth = "truth.txt"\nstart = 2026-01-01\n'
                    'end = 2026-02-01T12:00:00\n[phases.b]\ntruth = "truth.txt"\n'
                    'start = 2026-02-01T12:00:00\n')
    refused(capsys, truth.parent, "export", "codabench", "--challenge", toml, truth.parent / "b.zip",
            needles=("phases.b: starts when phases.a ends",))


def test_tie_break_maps_to_columns_and_order_and_years_have_4_digits(capsys, truth):
    body = 'tie_break = ["f1", "accuracy", "time", "final"]\n'
    toml = challenge(truth.parent, body)
    toml.write_text(toml.read_text() + "start = 0999-03-04\nend = 2026-01-01\ncap = 7\n")
    comp = yaml.safe_load(export(capsys, toml, "codabench").read("competition.yaml"))
    (board,) = comp["leaderboards"]
    assert [c["key"] for c in board["columns"]] == ["f1", "accuracy"]  # nothing after time decides
    (phase,) = comp["phases"]
    assert phase["start"] == "0999-03-04 00:00:00" and phase["max_submissions_per_day"] == 7
    config = yaml.safe_load(export(capsys, toml, "evalai").read("challenge_config.yaml"))
    schema = config["leaderboard"][0]["schema"]
    assert schema["default_order_by"] == "f1" and schema["labels"][:3] == ["f1", "accuracy", "final"]
    assert config["challenge_phases"][0]["start_date"] == "0999-03-04 00:00:00"
    assert config["start_date"] == "0999-03-04 00:00:00"


# --------------------------------------------------------------------- 5. blind
def test_blind_writes_nothing_when_one_file_cannot_be_written(capsys, truth):
    toml = challenge(truth.parent)
    (truth.parent / "out" / "blind_truth.csv").mkdir(parents=True)
    refused(capsys, truth.parent, "blind", "--challenge", toml, truth.parent / "out",
            needles=("blind_truth.csv", "directory"))
    assert sorted(p.name for p in (truth.parent / "out").iterdir()) == ["blind_truth.csv"]


# ----------------------------------------------- 6. inputs that are not regular files
def _auh(cwd: Path, *argv: str) -> subprocess.CompletedProcess:
    """`auh` in its own process: a named pipe opened by mistake would block it, not the tests."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AUH_QUIET": "1"}
    return subprocess.run([sys.executable, "-m", "harness", *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("kind", ["directory", "named pipe"])
def test_inputs_that_are_not_regular_files_are_refused_before_opening(truth, kind):
    root = truth.parent
    (root / "of3.tsv").write_text("image_path\taction_units\nN_0000.jpg\t[[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]]\n")
    odd = root / "odd"
    odd.mkdir() if kind == "directory" else os.mkfifo(odd)
    before = snapshot(root)
    tool = ["--from", "openface3", "--submission", "of3.tsv", "--missing", "zeros"]
    for argv in (["check", "--truth", "truth.txt", *tool, "--map", "odd"],
                 ["score", "--truth", "truth.txt", *tool, "--map", "odd", "--team", "t"],
                 ["convert", "of3.tsv", "--truth", "truth.txt", "--out", "s.csv", *tool[:2], "--map", "odd",
                  "--missing", "zeros"],
                 ["check", "--truth", "odd", "--submission", "sub.csv"],
                 ["score", "--truth", "truth.txt", "--submission", "odd", "--team", "t"],
                 ["check", "--truth", "truth.txt", "--from", "openface3", "--submission", "odd"],
                 ["run", "odd"]):
        proc = _auh(root, *argv)
        assert_one_line(proc.returncode, proc.stderr, "odd")
        assert kind in proc.stderr or kind == "directory" and "a folder" in proc.stderr, proc.stderr
    assert snapshot(root) == before


# ------------------------------------------------------ 7. OpenFace 3 empty cells
@pytest.mark.parametrize("column", ["image_path", "face_detection", "action_units"])
def test_openface3_empty_cell_names_line_and_column(capsys, truth, column):
    cells = {"image_path": "N_0001.jpg", "face_detection": "[1.0, 2.0, 30.0, 40.0, 0.9]",
             "action_units": "[[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]]"}
    good = "\t".join(cells.values())
    cells[column] = ""
    (truth.parent / "of3.tsv").write_text("\t".join(cells) + "\n" + good.replace("0001", "0000") + "\n"
                                          + "\t".join(cells.values()) + "\n")
    refused(capsys, truth.parent, "check", "--truth", truth, "--from", "openface3", "--submission",
            truth.parent / "of3.tsv", "--missing", "zeros", needles=(f"line 3, column {column}: empty",))


# ------------------------------------------- 8., 16., 17. study options, before any work
@pytest.fixture
def recipe(truth: Path) -> Path:
    path = truth.parent / "r.toml"
    path.write_text(tiny_recipe(sampler={"name": "mlros", "percent": 25}))
    return path


@pytest.mark.parametrize("argv, needles", [
    (["compare", "{r}", "--vs", "sampler.percent=30", "--seeds", "1000000000000", "--collect"],
     ("--seeds", "2..1000")),
    (["ablate", "{r}", "--seeds", "1000000000000"], ("--seeds", "2..1000")),
    (["compare", "{r}", "--vs", "run.seed=7", "--collect"], ("same recipe", "run.seed")),
    (["compare", "{r}", "--vs", "run.name=other"], ("same recipe",)),
    (["ablate", "{r}", "--jobs", "0"], ("--jobs",)),
    (["ablate", "{r}", "--jobs", "2"], ("--jobs 2: only with --seeds",)),
])
def test_study_options_are_refused_before_any_work(capsys, recipe, argv, needles):
    refused(capsys, recipe.parent, *[a.replace("{r}", str(recipe)) for a in argv], needles=needles)


def test_renaming_a_component_drops_the_old_ones_parameters(capsys, recipe):
    code, out, err = cli(capsys, "compare", recipe, "--vs", "sampler.name=uniform", "--seeds", "2", "--plan")
    assert code == 0, err
    from harness.recipe import read_toml

    arms = {read_toml(p)["sampler"]["name"]: read_toml(p)["sampler"]
            for p in (recipe.parent / "runs" / "arms").glob("*.toml")}
    assert arms == {"mlros": {"name": "mlros", "percent": 25}, "uniform": {"name": "uniform"}}
    # a parameter the new component takes is kept
    code, _, err = cli(capsys, "compare", recipe, "--vs", "sampler.name=mlros", "--vs", "sampler.percent=40",
                       "--seeds", "2", "--plan")
    assert code == 0, err


# ------------------------------------------------- 9. a damaged arm-seed under --collect
def test_truncated_arm_seed_predictions_under_collect(capsys, recipe):
    from harness import comparison
    from harness.recipe import digest
    from harness.run_folder import RunFolder

    study = comparison.plan_compare(recipe, vs=["loss.name=bce"], seeds=2)[0]
    buffer = io.BytesIO()
    np.savez(buffer, names=np.array(NAMES), pred=np.zeros((40, 23)), labels=np.zeros((40, 23)),
             aus=np.array(AUS))
    for label in study.arms:  # finished arm-seed folders, as `auh run` leaves them
        for seed in study.seeds:
            r = study.recipe(label, seed)
            folder = RunFolder(Path(r.run.output) / r.run.name)
            folder.path.mkdir(parents=True)
            folder.write_state({RunFolder.DIGEST: digest(r), RunFolder.FINISHED: True})
            folder.test_predictions.write_bytes(buffer.getvalue()[:len(buffer.getvalue()) // 2])
    refused(capsys, recipe.parent, "compare", recipe, "--vs", "loss.name=bce", "--seeds", "2", "--collect",
            needles=("damaged", RunFolder.TEST_PREDICTIONS, "seed-"))


# --------------------------------------------- 10. every arm checked before any side effect
def test_compare_checks_arm_b_before_building_arm_as_dataset(capsys, recipe, monkeypatch):
    cache = recipe.parent / "cache"
    monkeypatch.setenv("AUH_CACHE", str(cache))
    refused(capsys, recipe.parent, "compare", recipe, "--vs", "views.face.init=missing.safetensors",
            "--seeds", "2", needles=("views.face.init", "missing.safetensors"))
    assert not cache.exists() or not any(cache.rglob("*"))


# ---------------------------------------- 11., 14. submissions are CSV; never over an input
def _of3(root: Path) -> Path:
    rows = "".join(f"{n}\t[[0.1, 0.9, 0.3, 0.7, 0.5, 0.6, 0.2, 0.8]]\n" for n in NAMES)
    (root / "of3.tsv").write_text("image_path\taction_units\n" + rows)
    return root / "of3.tsv"


def test_convert_writes_a_csv_submission_whatever_the_name(capsys, truth):
    code, _, err = cli(capsys, "convert", _of3(truth.parent), "--truth", truth, "--from", "openface3",
                       "--out", truth.parent / "s.txt")
    assert code == 0, err
    assert (truth.parent / "s.txt").read_text().splitlines()[0] == ",".join(("image", *AUS))
    assert cli(capsys, "check", "--truth", truth, "--submission", truth.parent / "s.txt")[0] == 0


def test_predict_writes_a_csv_submission_whatever_the_name(capsys, in_tmp):
    from PIL import Image

    (in_tmp / "mk.py").write_text(MAKE_BUNDLE)
    assert python(in_tmp, "mk.py", str(in_tmp / "bundle")).returncode == 0
    (in_tmp / "img").mkdir()
    rng = np.random.default_rng(3)
    for k in range(2):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(in_tmp / "img" / f"i{k}.png")
    write_labels(in_tmp / "truth.txt", ["i0.png", "i1.png"], np.zeros((2, len(AUS)), dtype=int))
    code, _, err = cli(capsys, "predict", in_tmp / "bundle", in_tmp / "img", "--out", in_tmp / "p.csv",
                       "--submission", in_tmp / "s.txt")
    assert code == 0, err
    assert cli(capsys, "check", "--truth", in_tmp / "truth.txt", "--submission", in_tmp / "s.txt")[0] == 0
    (in_tmp / "list.txt").write_text("img/i0.png\n")
    refused(capsys, in_tmp, "predict", in_tmp / "bundle", in_tmp / "list.txt", "--out", in_tmp / "q.csv",
            "--submission", in_tmp / "list.txt", needles=("is the input INPUT",))


def test_outputs_never_replace_an_input(capsys, truth):
    root = truth.parent
    tool = _of3(root)
    toml = challenge(root)
    for out in (truth, tool):
        refused(capsys, root, "convert", tool, "--truth", truth, "--from", "openface3", "--out", out,
                needles=("expected a new file name",))
    (root / "folder").mkdir()
    (root / "folder" / "a.tsv").write_text(tool.read_text())
    refused(capsys, root, "convert", root / "folder", "--truth", truth, "--from", "openface3",
            "--out", root / "folder" / "s.csv", needles=("is inside the input OUTPUT",))
    refused(capsys, root, "leaderboard", "--challenge", toml, "--out", truth, needles=("is the input truth",))


# ------------------------------------------------ 12., 15. reader messages and presence
@pytest.mark.parametrize("tool, header, value, needle", [
    ("libreface", "image_path,au_1,au_2", "0.5", "value '0.5', expected 0 or 1 (a presence column)"),
    ("openface2", "frame, face_id, timestamp, confidence, success, AU01_c", "0.5",
     "value '0.5', expected 0 or 1 (a presence column)"),
    ("libreface", "image_path,au_1,au_2", "1.0000001", "value '1.0000001', expected a number in [0, 1]"),
    ("pyfeat", "input,FaceRectX,FaceRectY,FaceRectWidth,FaceRectHeight,FaceScore,AU01,AU02", "1.0000001", "value '1.0000001', expected a number in [0, 1]"),
])
def test_reader_refusals_quote_the_value_as_written_with_one_presence_rule(capsys, truth, tool, header,
                                                                             value, needle):
    first = {"libreface": "N_0000.jpg,{v},1", "openface2": "1, 0, 0.0, 0.98, 1, {v}",
             "pyfeat": "N_0000.jpg,1,2,30,40,0.99,{v},0.2"}[tool]
    (truth.parent / "out.csv").write_text(f"{header}\n{first.format(v=value)}\n")
    refused(capsys, truth.parent, "check", "--truth", truth, "--from", tool, "--submission",
            truth.parent / "out.csv", "--missing", "zeros", needles=(needle, "line 2"))


# ------------------------------------------------ 13. a split edited after scoring
def test_leaderboard_after_a_public_fraction_edit_says_rescore(capsys, truth):
    toml = challenge(truth.parent)
    for team, sub in (("a", "sub.csv"), ("b", "sub2.csv")):
        assert cli(capsys, "score", "--challenge", toml, "--team", team, "--submission",
                   truth.parent / sub, "--resamples", "0")[0] == 0
    challenge(truth.parent, fraction=0.3)
    for extra in ([], ["--private"]):
        code, out, err = cli(capsys, "leaderboard", "--challenge", toml, "--resamples", "0",
                             "--format", "csv", *extra)
        assert code == 0, err
        assert len(out.strip().splitlines()) == 1  # the header only: nothing ranked on other rows
    code, out, _ = cli(capsys, "leaderboard", "--challenge", toml, "--resamples", "0")
    assert "re-score them; not ranked: a, b" in out
    assert cli(capsys, "score", "--challenge", toml, "--team", "b", "--submission", truth.parent / "sub2.csv",
               "--resamples", "0", "--json")[0] == 0
    code, out, _ = cli(capsys, "leaderboard", "--challenge", toml, "--resamples", "0", "--format", "csv")
    (row,) = csv.DictReader(io.StringIO(out))
    assert row["team"] == "b"
    # its final is that of the new split's public rows, by scikit-learn
    public = public_mask(NAMES, 0.3, f"{SALT}/test")
    _, labels = read_labels(truth)
    _, pred = read_labels(truth.parent / "sub2.csv")
    per_au = [(accuracy_score(y[k], p[k]), f1_score(y[k], p[k], zero_division=0))
              for y, p in zip(labels[public].T, pred[public].T) for k in [y != UNKNOWN] if k.any()]
    assert float(row["final"]) == pytest.approx(np.mean(per_au), abs=1e-4)


# ------------------------------------------------------ 18. team names and odd --out
@pytest.mark.parametrize("team", ["", "   "])
def test_empty_team_names_are_refused_and_nothing_recorded(capsys, truth, team):
    refused(capsys, truth.parent, "score", "--truth", truth, "--submission", truth.parent / "sub.csv",
            "--team", team, "--resamples", "0", needles=("--team",))


@pytest.mark.parametrize("argv", [
    ["leaderboard", "--truth", "truth.txt", "--out", "/proc/board.md"],
    ["convert", "of3.tsv", "--truth", "truth.txt", "--from", "openface3", "--out", "/proc/s.csv"],
    ["export", "codabench", "--challenge", "challenge.toml", "/proc/b.zip"],
    ["blind", "--challenge", "challenge.toml", "/proc/participants"],
    ["score", "--truth", "truth.txt", "--submission", "sub.csv", "--team", "t",
     "--tracking-uri", "sqlite:////proc/ledger.db"],
])
def test_outputs_under_proc_are_one_line(capsys, truth, argv):
    if not Path("/proc/self").is_dir():
        pytest.skip("no /proc here")
    _of3(truth.parent)
    challenge(truth.parent)
    refused(capsys, truth.parent, *argv, needles=("/proc",))


# ---------------------------------------------------------------- 19. help text
def test_predict_help_says_where_relative_list_paths_are_read(capsys):
    code, out, _ = cli(capsys, "predict", "--help")
    assert code == 0 and "relative path is read from the list file's folder" in " ".join(out.split())


def test_a_ledger_of_another_mlflow_version_is_refused_before_the_write(truth):
    """`auh score` checks the ledger's MLflow version where it opens it (MLflow is imported
    in the background while the submission is read and scored): one line, nothing written."""
    import sqlite3

    folder = truth.parent
    first = _auh(folder, "score", "--truth", "truth.txt", "--submission", "sub.csv", "--team", "a",
                 "--resamples", "0")
    assert first.returncode == 0, first.stderr
    with sqlite3.connect(folder / "mlflow.db") as db:
        db.execute("UPDATE alembic_version SET version_num = 'f00dfeed'")
    db.close()

    def state() -> dict[str, str]:  # SQLite's own journal aside (a reader creates it, empty)
        return {k: v for k, v in snapshot(folder).items() if not k.endswith("-wal")}

    before = state()
    second = _auh(folder, "score", "--truth", "truth.txt", "--submission", "sub2.csv", "--team", "b",
                  "--resamples", "0")
    assert_one_line(second.returncode, second.stderr, "MLflow schema version f00dfeed",
                    "mlflow db upgrade")
    assert state() == before
