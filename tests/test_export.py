"""`auh export codabench|evalai` and `auh blind`: the bundles follow the platforms'
rules, and their scoring program, run as the platforms run it in a clean
environment with numpy only, gives exactly what `auh score --json` gives."""
from __future__ import annotations

import ast
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from harness.cli import main
from harness.labels import read_labels, write_labels
from harness.schema import ENC2020
from harness.metrics import challenge_score
from leaderboard.challenge import public_mask
from plugins.metrics import MEAN_F1

EXAMPLES = Path(__file__).resolve().parents[1] / "submissions" / "examples"
AUS = ENC2020.aus


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err



def export(capsys, folder: Path, platform: str) -> zipfile.ZipFile:
    out = folder / f"{platform}.zip"
    code, _, err = run(capsys, "export", platform, "--challenge", str(folder / "challenge.toml"), str(out))
    assert code == 0, err
    return zipfile.ZipFile(out)


# ---------------------------------------------------------- random challenges
def random_challenge(folder: Path, seed: int, n: int = 1500, public_fraction: float = 1.0) -> Path:
    """A hidden-style truth (with 999s), three submissions and a challenge TOML."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    names = [f"img_{seed}_{i:05d}.jpg" for i in range(n)]
    truth = rng.choice([0, 1, 999], size=(n, len(AUS)), p=[0.6, 0.25, 0.15])
    write_labels(folder / "truth.txt", names, truth)
    for k in range(3):
        noisy = np.where(rng.random(truth.shape) < 0.2 + 0.2 * k, rng.integers(0, 2, truth.shape),
                         truth == 1).astype(int)
        order = rng.permutation(n)
        write_labels(folder / f"sub{k}.csv", [names[i] for i in order], noisy[order])
    (folder / "challenge.toml").write_text(
        f'name = "rand{seed}"\nsplit_salt = "s{seed}"\n[phases.final]\ntruth = "truth.txt"\n'
        f"cap = 4\npublic_fraction = {public_fraction}\n")
    return folder


def expected_scores(capsys, truth: Path, submission: Path, db: Path) -> dict[str, float]:
    """What `auh score --json` reports, under the platforms' keys."""
    code, out, err = run(capsys, "score", "--truth", str(truth), "--submission", str(submission),
                         "--json", "--resamples", "0", "--tracking-uri", f"sqlite:///{db}")
    assert code == 0, err
    card = json.loads(out)
    return {"final": card["final"], "accuracy": card["accuracy"], "f1": card["f1"],
            **{f"f1_{au}": card["per_au"][au]["f1"] for au in AUS}}


def split_files(folder: Path, submission: Path, seed: int) -> dict[str, tuple[Path, Path]]:
    """The truth and the submission cut to the public and to the private rows
    (the split of :func:`random_challenge`'s phase)."""
    names, truth = read_labels(folder / "truth.txt")
    sub_names, sub = read_labels(submission)
    row = {name: i for i, name in enumerate(sub_names)}
    sub = sub[[row[name] for name in names]]
    public = public_mask(names, 0.5, f"s{seed}/final")
    files = {}
    for split, rows in (("public", public), ("private", ~public)):
        kept = [name for name, keep in zip(names, rows) if keep]
        files[split] = (folder / f"{split}.txt", folder / f"{split}_{submission.name}")
        write_labels(files[split][0], kept, truth[rows])
        write_labels(files[split][1], kept, sub[rows])
    return files


def assert_same(got: dict[str, float], want: dict[str, float]) -> None:
    assert set(got) == set(want)
    for key in want:
        assert abs(got[key] - want[key]) <= 1e-12, key


# ------------------------------------------------------------ a stock Python
@pytest.fixture(scope="session")
def stock_python(tmp_path_factory) -> Path:
    """A fresh virtual environment holding numpy and nothing of this project.

    numpy is copied from this interpreter's installation (no network); the
    test skips where no virtual environment can be made.
    """
    root = tmp_path_factory.mktemp("stock")
    try:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")],
                       check=True, capture_output=True, timeout=120)
    except (subprocess.SubprocessError, OSError) as exc:
        pytest.skip(f"cannot create a virtual environment: {exc}")
    python = root / "venv" / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True, env=clean_env(python)).stdout.strip())
    source = Path(np.__file__).parent
    for name in (source.name, "numpy.libs"):
        if (source.parent / name).is_dir():
            shutil.copytree(source.parent / name, site / name)
    probe = "import numpy, importlib.util as u; assert not (u.find_spec('harness') or u.find_spec('leaderboard'))"
    subprocess.run([python, "-c", probe], check=True, env=clean_env(python), cwd=root)
    return python


def clean_env(python: Path) -> dict[str, str]:
    """No PYTHONPATH (the tests run with this tree on it), the venv first on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON") and k != "VIRTUAL_ENV"}
    env["PATH"] = f"{python.parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def run_codabench(bundle: zipfile.ZipFile, phase: str, submission: Path, root: Path,
                  python: Path) -> subprocess.CompletedProcess:
    """Lay a run out as Codabench's compute worker does and run metadata.yaml's command."""
    for folder, prefix in (("program", "scoring_program/"), ("input/ref", f"reference_data/{phase}/")):
        for name in bundle.namelist():
            if name.startswith(prefix):
                target = root / folder / name[len(prefix):]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(bundle.read(name))
    (root / "input" / "res").mkdir(parents=True)
    shutil.copy(submission, root / "input" / "res" / submission.name)
    (root / "output").mkdir()
    command = yaml.safe_load((root / "program" / "metadata.yaml").read_text())["command"]
    return subprocess.run(command, shell=True, cwd=root / "program", env=clean_env(python),
                          capture_output=True, text=True, timeout=300)


def run_evalai(bundle: zipfile.ZipFile, phase: str, submission: Path, root: Path,
               python: Path) -> subprocess.CompletedProcess:
    """Unzip evaluation_script.zip as a package and call its evaluate() as EvalAI's worker does."""
    root.mkdir()
    zipfile.ZipFile(io.BytesIO(bundle.read("evaluation_script.zip"))).extractall(root / "evaluation_script")
    config = yaml.safe_load(bundle.read("challenge_config.yaml"))
    annotation = next(p["test_annotation_file"] for p in config["challenge_phases"] if p["codename"] == phase)
    (root / "annotation").write_bytes(bundle.read(annotation))
    code = (f"import json, sys; sys.path.insert(0, {str(root)!r}); import evaluation_script as e; "
            f"print(json.dumps(e.evaluate({str(root / 'annotation')!r}, {str(submission)!r}, {phase!r})))")
    return subprocess.run([python, "-c", code], cwd=root, env=clean_env(python),
                          capture_output=True, text=True, timeout=300)


# ------------------------------------------------------------------ Codabench
def test_codabench_scores_equal_auh_score(capsys, in_tmp, stock_python):
    folder = random_challenge(in_tmp / "rand1", seed=1)
    bundle = export(capsys, folder, "codabench")
    for k in range(3):
        sub = folder / f"sub{k}.csv"
        proc = run_codabench(bundle, "final", sub, in_tmp / f"run{k}", stock_python)
        assert proc.returncode == 0, proc.stderr
        scores = json.loads((in_tmp / f"run{k}" / "output" / "scores.json").read_text())
        assert_same(scores, expected_scores(capsys, folder / "truth.txt", sub, in_tmp / "m.db"))
        page = (in_tmp / f"run{k}" / "output" / "detailed_results.html").read_text()
        assert "AU56" in page and "<script" not in page and "http" not in page


def test_codabench_split_phase_shows_public_rows(capsys, in_tmp, stock_python):
    folder = random_challenge(in_tmp / "rand2", seed=2, public_fraction=0.5)
    bundle = export(capsys, folder, "codabench")
    proc = run_codabench(bundle, "final", folder / "sub0.csv", in_tmp / "run", stock_python)
    assert proc.returncode == 0, proc.stderr
    scores = json.loads((in_tmp / "run" / "output" / "scores.json").read_text())
    files = split_files(folder, folder / "sub0.csv", seed=2)
    assert_same(scores, expected_scores(capsys, *files["public"], in_tmp / "m.db"))
    assert json.loads(proc.stdout) == scores  # the log holds the same public numbers, no other
    assert_no_private_label(bundle.read("reference_data/final/truth.csv"), folder, seed=2)


def assert_no_private_label(packaged: bytes, folder: Path, seed: int) -> None:
    """The bundle's truth: the public rows as the truth has them, every private row 999."""
    names, truth = read_labels(folder / "truth.txt")
    path = folder / "packaged.csv"
    path.write_bytes(packaged)
    got_names, got = read_labels(path)
    public = public_mask(names, 0.5, f"s{seed}/final")
    assert got_names == names and 0 < public.sum() < len(names)
    assert (got[public] == truth[public]).all() and (got[~public] == 999).all()


def test_codabench_refusal_fails_the_run_with_the_check_message(capsys, demo, stock_python):
    bad = demo / "broken.csv"
    lines = (demo / "alpha.csv").read_text().splitlines(keepends=True)
    lines[6] = lines[6].replace(",0,", ",0.83,", 1)
    bad.write_text("".join(lines))
    code, _, check_err = run(capsys, "check", "--challenge", str(demo / "challenge.toml"),
                             "--submission", str(bad))
    assert code == 2
    proc = run_codabench(export(capsys, demo, "codabench"), "test", bad, demo / "run", stock_python)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1
    reason = proc.stderr.strip().split("broken.csv: ", 1)[1]
    assert reason == check_err.strip().split("broken.csv: ", 1)[1]
    assert "line 7, column" in reason
    assert list((demo / "run" / "output").iterdir()) == []  # no scores.json: the run fails, not 0


def test_codabench_yaml_follows_the_platform_rules(capsys, demo):
    bundle = export(capsys, demo, "codabench")
    names = set(bundle.namelist())
    comp = yaml.safe_load(bundle.read("competition.yaml"))
    assert comp["version"] == 2 and comp["title"]
    for key in ("image", "terms"):
        assert comp[key] in names and bundle.read(comp[key])
    assert all(p["file"] in names and bundle.read(p["file"]) for p in comp["pages"])
    tasks = {t["index"]: t for t in comp["tasks"]}
    for task in tasks.values():
        for key in ("scoring_program", "reference_data"):
            assert any(n.startswith(task[key] + "/") for n in names), task[key]
    assert "command" in yaml.safe_load(bundle.read("scoring_program/metadata.yaml"))
    (phase,) = comp["phases"]
    assert phase["start"] and set(phase["tasks"]) <= set(tasks)
    # Both caps written (Codabench's defaults are 5 a day, 100 in all); outputs hidden where
    # they only repeat the board, logs shown (a refusal's reason).
    assert (phase["max_submissions"], phase["max_submissions_per_day"]) == (3, 3)
    assert (phase["hide_output"], phase["hide_prediction_output"], phase["hide_score_output"]) == \
        (False, True, True)
    assert "leaderboard" not in comp  # the v2 unpacker reads only the plural key
    (board,) = comp["leaderboards"]
    assert len(board["title"]) <= 64 and len(board["key"]) <= 36
    cols = board["columns"]
    assert [c["index"] for c in cols] == list(range(len(cols)))
    # Codabench orders by the primary column, then the others in order, then the earlier
    # submission: the demo's tie_break final, f1, accuracy, time exactly.
    assert board["primary_index"] == 0 and [c["key"] for c in cols] == ["final", "f1", "accuracy"]
    assert board["submission_rule"] == "Force_Best"  # each participant's best, as auh's pick
    for col in cols:
        assert len(col["key"]) <= 36 and len(col["title"]) <= 36
        assert col["sorting"] == "desc" and isinstance(col["precision"], int) and not col["hidden"]


def test_codabench_phase_dates_and_order(capsys, in_tmp):
    truth = EXAMPLES / "truth.txt"
    toml = in_tmp / "c.toml"
    toml.write_text(f'name = "dated"\n[phases.dev]\ntruth = "{truth}"\nstart = 2026-01-15\n'
                    f'end = 2026-02-01T12:00:00\n[phases.final]\ntruth = "{truth}"\n'
                    f"start = 2026-02-02\ncap = 1\n")
    assert main(["export", "codabench", "--challenge", str(toml), str(in_tmp / "b.zip")]) == 0
    phases = yaml.safe_load(zipfile.ZipFile(in_tmp / "b.zip").read("competition.yaml"))["phases"]
    assert [(p["start"], p.get("end")) for p in phases] == [
        ("2026-01-15 00:00:00", "2026-02-01 12:00:00"), ("2026-02-02 00:00:00", None)]
    assert phases[0]["max_submissions"] == 100_000 and phases[1]["max_submissions"] == 1


@pytest.mark.parametrize("body, out, message", [
    ("[phases.a]\ntruth = \"{t}\"\n[phases.b]\ntruth = \"{t}\"\n", "b.zip", "needs an end date"),
    ("[phases.a]\ntruth = \"{t}\"\nstart = 2026-01-02\nend = 2026-03-01\n[phases.b]\ntruth = \"{t}\"\n"
     "start = 2026-02-01\n", "b.zip", "starts before phases.a ends"),
    ("[phases.a]\ntruth = \"{t}\"\nstart = 2026-01-02\nend = 2026-02-01\n[phases.b]\ntruth = \"{t}\"\n"
     "start = 2026-02-01\n", "b.zip", "starts when phases.a ends"),
    ("[phases.a]\ntruth = \"{t}\"\ncap = 2147483648\n", "b.zip", "does not fit the platforms' 32-bit"),
    ("tie_break = [\"time\", \"final\"]\n[phases.a]\ntruth = \"{t}\"\n", "b.zip", "starts with time"),
    ("[phases.a]\ntruth = \"{t}\"\nstart = 2026-02-01\nend = 2026-01-01\n", "b.zip", "expected a time after start"),
    ("[phases.a]\ntruth = \"missing.txt\"\n", "b.zip", "no such file"),
    ("[phases.a]\ntruth = \"{t}\"\n", "b.tar", "expected a file name ending in .zip"),
    ("[phases.\"a b\"]\ntruth = \"{t}\"\n", "b.zip", "expected a phase name of letters"),
])
def test_export_refuses_bad_input_and_writes_nothing(capsys, in_tmp, body, out, message):
    toml = in_tmp / "c.toml"
    toml.write_text('name = "x"\n' + body.replace("{t}", str(EXAMPLES / "truth.txt")))
    code, _, err = run(capsys, "export", "codabench", "--challenge", str(toml), str(in_tmp / out))
    assert code == 2 and message in err and err.count("\n") == 1
    assert sorted(p.name for p in in_tmp.iterdir()) == ["c.toml"]


# --------------------------------------------------------------------- EvalAI
def test_evalai_evaluate_equals_auh_score_on_the_public_rows(capsys, in_tmp, stock_python):
    folder = random_challenge(in_tmp / "rand3", seed=3, public_fraction=0.5)
    bundle = export(capsys, folder, "evalai")
    files = split_files(folder, folder / "sub1.csv", seed=3)
    proc = run_evalai(bundle, "final", folder / "sub1.csv", in_tmp / "worker", stock_python)
    assert proc.returncode == 0, proc.stderr
    output = json.loads(proc.stdout.strip().splitlines()[-1])
    ((split, scores),) = [list(entry.items())[0] for entry in output["result"]]
    assert split == "public"
    assert_same(scores, expected_scores(capsys, *files["public"], in_tmp / "m.db"))
    assert output["submission_result"] == scores
    config = yaml.safe_load(bundle.read("challenge_config.yaml"))
    (phase,) = config["challenge_phases"]
    assert_no_private_label(bundle.read(phase["test_annotation_file"]), folder, seed=3)


def test_evalai_refusal_raises_the_check_message(capsys, demo, stock_python):
    bad = demo / "short.csv"
    bad.write_text("\n".join((demo / "alpha.csv").read_text().splitlines()[:-1]) + "\n")
    proc = run_evalai(export(capsys, demo, "evalai"), "test", bad, demo / "worker", stock_python)
    assert proc.returncode != 0
    assert "truth image missing from the submission" in proc.stderr.splitlines()[-1]


def test_evalai_config_follows_the_platform_rules(capsys, demo):
    bundle = export(capsys, demo, "evalai")
    names = set(bundle.namelist())
    config = yaml.safe_load(bundle.read("challenge_config.yaml"))
    for key in ("description", "evaluation_details", "terms_and_conditions", "image",
                "submission_guidelines", "evaluation_script"):
        assert config[key] in names, key
    (board,) = config["leaderboard"]
    labels = board["schema"]["labels"]
    # EvalAI ranks by default_order_by alone: the first key of the demo's tie_break.
    assert labels[:3] == ["final", "f1", "accuracy"] and board["schema"]["default_order_by"] == "final"
    assert {f"f1_{au}" for au in AUS} <= set(labels)
    (phase,) = config["challenge_phases"]
    assert phase["codename"] == "test" and phase["test_annotation_file"] in names
    assert (phase["max_submissions"], phase["max_submissions_per_day"]) == (3, 3)
    assert phase["is_submission_public"] is True  # the public board lists every team, as auh's
    # EvalAI stores the annotation's extraction path (28 characters before it) in 100.
    assert 28 + len(phase["test_annotation_file"]) <= 100 and len(config["title"]) <= 100
    assert [s["codename"] for s in config["dataset_splits"]] == ["public"]
    assert [s["visibility"] for s in config["challenge_phase_splits"]] == [3]  # public
    script = zipfile.ZipFile(io.BytesIO(bundle.read("evaluation_script.zip")))
    assert "__init__.py" in script.namelist()
    assert {n for n in names if n.startswith("evaluation_script/")} == \
        {f"evaluation_script/{n}" for n in script.namelist()}


# ------------------------------------------------------------ packaged files
def test_the_packaged_scorer_is_the_installed_modules(capsys, demo):
    import leaderboard.scoring_program

    bundle = export(capsys, demo, "codabench")
    root = Path(leaderboard.scoring_program.__file__).resolve().parents[1]
    packaged = [n for n in bundle.namelist() if n.startswith("scoring_program/") and n.endswith(".py")]
    for name in packaged:
        rel = name[len("scoring_program/"):]
        if rel != "harness/__init__.py":  # the plugin system's __init__ is not the scorer's
            assert bundle.read(name) == (root / rel).read_bytes(), rel
        ast.parse(bundle.read(name), feature_version=(3, 8))  # the stock images' Pythons
    assert "scoring_program/harness/labels.py" in packaged


# ---------------------------------------------------------------------- blind
def test_blind_lists_the_images_and_a_valid_template_never_the_truth(capsys, demo):
    out = demo / "participants"
    code, _, err = run(capsys, "blind", "--challenge", str(demo / "challenge.toml"), str(out))
    assert code == 0, err
    names, _ = read_labels(demo / "truth.txt")
    assert (out / "images.txt").read_text().splitlines() == sorted(names)
    blind_names, blind = read_labels(out / "blind_truth.csv")
    assert blind_names == sorted(names) and (blind == 999).all()
    template = (out / "submission_template.csv").read_text().splitlines()
    assert template[0] == ",".join(("image", *AUS)) and len(template) == len(names) + 1
    assert {line.split(",", 1)[1] for line in template[1:]} == {",".join("0" * len(AUS))}
    for truth in ("--challenge", str(demo / "challenge.toml")), ("--truth", str(out / "blind_truth.csv")):
        assert run(capsys, "check", *truth, "--submission", str(out / "submission_template.csv"))[0] == 0
    assert sorted(p.name for p in out.iterdir()) == ["blind_truth.csv", "images.txt", "submission_template.csv"]


def test_blind_refuses_an_unknown_phase(capsys, demo):
    code, _, err = run(capsys, "blind", "--challenge", str(demo / "challenge.toml"), "--phase", "dev",
                       str(demo / "p"))
    assert code == 2 and "has no phase 'dev'" in err and not (demo / "p").exists()


# ----------------------------------------------------------- start-up weight
HEAVY = ("torch", "torchvision", "timm")


@pytest.mark.parametrize("argv", [
    ["--help"], ["--version"],
    ["check", "--challenge", "challenge.toml", "--submission", "alpha.csv"],
    ["score", "--challenge", "challenge.toml", "--submission", "alpha.csv", "--team", "a",
     "--resamples", "10"],
    ["leaderboard", "--challenge", "challenge.toml", "--resamples", "10"],
    ["export", "codabench", "--challenge", "challenge.toml", "cb.zip"],
    ["export", "evalai", "--challenge", "challenge.toml", "ev.zip"],
    ["blind", "--challenge", "challenge.toml", "out"],
], ids=lambda argv: " ".join(argv[:2]))
def test_organizer_commands_never_import_torch(demo, argv):
    if argv[0] == "leaderboard":  # it reads a ledger and never creates one
        assert main(["score", "--challenge", str(demo / "challenge.toml"), "--team", "a",
                     "--submission", str(demo / "alpha.csv"), "--resamples", "0",
                     "--tracking-uri", f"sqlite:///{demo / 'mlflow.db'}"]) == 0
    code = (f"import sys\nfrom harness.cli import main\ntry:\n    rc = main({argv!r})\n"
            f"except SystemExit as exc:\n    rc = exc.code\n"
            f"print('HEAVY', rc, [m for m in {HEAVY!r} if m in sys.modules])")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run([sys.executable, "-c", code], cwd=demo, env=env, capture_output=True,
                          text=True, timeout=300)
    last = proc.stdout.strip().splitlines()[-1]
    assert last == "HEAVY 0 []", (last, proc.stderr[-2000:])


@pytest.mark.parametrize("files, message", [
    ((), "found: none"),
    (("a.csv", "b/c.csv"), "found: a.csv, b/c.csv"),
])
def test_codabench_upload_must_hold_one_csv(tmp_path, files, message):
    from harness.errors import UserError
    from leaderboard.scoring_program import _submission

    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("image,AU1\n")
    (tmp_path / "__MACOSX").mkdir()
    (tmp_path / "__MACOSX" / "._a.csv").write_text("x")  # a Mac zip's resource fork is not a submission
    with pytest.raises(UserError, match=message):
        _submission(tmp_path)


def test_a_failed_write_leaves_no_zip_and_no_temporary_file(capsys, demo, monkeypatch):
    import errno

    def full_disk(self, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    monkeypatch.setattr(Path, "write_bytes", full_disk)
    before = sorted(p.name for p in demo.iterdir())
    code, _, err = run(capsys, "export", "evalai", "--challenge", str(demo / "challenge.toml"),
                       str(demo / "ev.zip"))
    assert code == 2 and "ev.zip: cannot write: No space left on device" in err
    assert sorted(p.name for p in demo.iterdir()) == before


# ------------------------------------------------------------ a video benchmark
ABAW_AUS = [f"AU{n}" for n in (1, 2, 4, 6, 7, 10, 12, 15, 23, 24, 25, 26)]


def abaw_challenge(folder: Path, seed: int = 4) -> Path:
    """An ABAW-style phase: truth/VIDEO.txt with -1, a predictions.txt, a challenge TOML."""
    rng = np.random.default_rng(seed)
    (folder / "truth").mkdir(parents=True)
    header, rows = ",".join(ABAW_AUS), []
    for video, n in (("v1", 300), ("2-30-640x360", 450), ("v3_left", 250)):
        truth = rng.choice([0, 1, -1], size=(n, 12), p=[0.6, 0.3, 0.1])
        (folder / "truth" / f"{video}.txt").write_text(
            "\n".join([header, *(",".join(map(str, r)) for r in truth)]) + "\n")
        pred = np.where(rng.random(truth.shape) < 0.3, rng.integers(0, 2, truth.shape), truth == 1)
        rows += [f"{video}/{k:05d}.jpg," + ",".join(map(str, r.astype(int))) for k, r in enumerate(pred, 1)]
    (folder / "predictions.txt").write_text("\n".join([f"image_location,{header}", *rows]) + "\n")
    (folder / "challenge.toml").write_text(
        'name = "abaw"\nbenchmark = "abaw_au"\nsplit_salt = "x"\n[phases.val]\ntruth = "truth"\n'
        "public_fraction = 0.6\n")
    return folder


def abaw_rows(folder: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Frame names, truth (-1 read as 999) and predictions of :func:`abaw_challenge`, by hand."""
    lines = (folder / "predictions.txt").read_text().splitlines()[1:]
    names = [line.split(",", 1)[0] for line in lines]
    pred = np.array([[int(v) for v in line.split(",")[1:]] for line in lines])
    truth = np.concatenate([np.loadtxt(folder / "truth" / f"{video}.txt", delimiter=",", skiprows=1, dtype=int)
                            for video in ("v1", "2-30-640x360", "v3_left")])
    return names, np.where(truth == -1, 999, truth), pred


def test_abaw_exports_score_as_auh_score_with_numpy_only(capsys, in_tmp, stock_python):
    folder = abaw_challenge(in_tmp / "abaw")
    sub = folder / "predictions.txt"
    code, out, err = run(capsys, "score", "--challenge", str(folder / "challenge.toml"), "--submission",
                         str(sub), "--json", "--resamples", "0", "--tracking-uri", f"sqlite:///{in_tmp / 'm.db'}")
    assert code == 0, err
    card = json.loads(out)
    assert card["metric"] == "mean_f1" and card["final"] == card["f1"]
    proc = run_codabench(export(capsys, folder, "codabench"), "val", sub, in_tmp / "cb", stock_python)
    assert proc.returncode == 0, proc.stderr
    scores = json.loads((in_tmp / "cb" / "output" / "scores.json").read_text())
    names, truth, pred = abaw_rows(folder)
    public = public_mask([name.split("/")[0] for name in names], 0.6, "x/val")  # whole videos
    # the public rows, scored independently here; no private row reaches the platform
    want = challenge_score(pred[public], truth[public], ABAW_AUS, MEAN_F1)
    assert abs(scores["final"] - want["final"]) <= 1e-12
    assert not any("private" in key for key in scores)
    proc = run_evalai(export(capsys, folder, "evalai"), "val", sub, in_tmp / "ev", stock_python)
    assert proc.returncode == 0, proc.stderr
    (split,) = json.loads(proc.stdout)["result"]
    assert_same(scores, split["public"])
    # all rows: a phase without a private split scores every row, as `auh score` does
    (folder / "challenge.toml").write_text(
        'name = "abaw"\nbenchmark = "abaw_au"\n[phases.val]\ntruth = "truth"\n')
    proc = run_codabench(export(capsys, folder, "codabench"), "val", sub, in_tmp / "cb2", stock_python)
    assert proc.returncode == 0, proc.stderr
    assert_same(json.loads((in_tmp / "cb2" / "output" / "scores.json").read_text()),
                {"final": card["final"], "accuracy": card["accuracy"], "f1": card["f1"],
                 **{f"f1_{au}": card["per_au"][au]["f1"] for au in ABAW_AUS}})


def test_abaw_evalai_takes_a_zip_of_video_files(capsys, in_tmp, stock_python):
    folder = abaw_challenge(in_tmp / "abaw")
    (folder / "challenge.toml").write_text('name = "abaw"\nbenchmark = "abaw_au"\n[phases.val]\ntruth = "truth"\n')
    names, _, pred = abaw_rows(folder)
    archive = in_tmp / "videos.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for video in ("v1", "2-30-640x360", "v3_left"):
            rows = [",".join(map(str, r)) for n, r in zip(names, pred) if n.startswith(video + "/")]
            zf.writestr(f"preds/{video}.txt", "\n".join([",".join(ABAW_AUS), *rows]) + "\n")
    proc = run_evalai(export(capsys, folder, "evalai"), "val", archive, in_tmp / "ev", stock_python)
    assert proc.returncode == 0, proc.stderr
    from_zip = json.loads(proc.stdout)["result"][0]["public"]
    proc = run_evalai(export(capsys, folder, "evalai"), "val", folder / "predictions.txt", in_tmp / "ev2",
                      stock_python)
    assert proc.returncode == 0, proc.stderr
    assert_same(from_zip, json.loads(proc.stdout)["result"][0]["public"])
