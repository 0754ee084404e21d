"""Bad input through the `auh` command: one line on stderr, exit status 2, no
traceback, nothing written; `--debug` shows the traceback.

The parsers' own messages are tested where they live (test_labels,
test_recipe, test_registry, test_images); this file checks that each kind of
bad input reaches the user the same way through the command line, and that
a refused command leaves no file behind. Commands that need the plugin
registry run in a fresh interpreter (``support.DRIVER``), so no test's set-up
leaks into them.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from harness.cli import main
from harness.errors import UserError
from support import MAKE_BUNDLE, assert_one_line, files_under, python, run_cases

EXAMPLES = Path(__file__).resolve().parents[1] / "submissions" / "examples"
AUS = 23

# ------------------------------------------------------------ label files
TRUTH_ROW = "a.jpg " + " ".join(["0"] * AUS)


@pytest.mark.parametrize("name, text, needles", [
    ("columns", f"{TRUTH_ROW}\nb.jpg 0 1\n", ["line 2: 3 fields, expected 24"]),
    ("value", TRUTH_ROW.replace(" 0", " 7", 1) + "\n", ["line 1, column AU1: value '7', expected 0 or 1 or 999"]),
    ("text", TRUTH_ROW.replace(" 0", " yes", 1) + "\n", ["line 1, column AU1: value 'yes'"]),
    ("duplicate", f"{TRUTH_ROW}\n{TRUTH_ROW}\n", ["line 2: image 'a.jpg' repeats line 1"]),
    ("empty", "", ["the file is empty"]),
])
def test_bad_truth_file_through_score(in_tmp, capsys, name, text, needles):
    truth = in_tmp / f"{name}.txt"
    truth.write_text(text)
    sub = in_tmp / "sub.csv"
    sub.write_text("image," + ",".join(f"AU{a}" for a in range(1, 2)) + "\n")
    before = files_under(in_tmp)
    code = main(["score", "--truth", str(truth), "--submission", str(sub), "--team", "t"])
    out, err = capsys.readouterr()
    assert_one_line(code, err, str(truth), *needles)
    assert out == ""
    assert files_under(in_tmp) == before  # no mlflow.db, no mlruns/, no half file


def test_bad_submission_through_score_records_nothing(in_tmp, capsys):
    bad = in_tmp / "sub.csv"
    bad.write_text((EXAMPLES / "alpha.csv").read_text().replace(",1,", ",x,", 1))
    before = files_under(in_tmp)
    code = main(["score", "--truth", str(EXAMPLES / "truth.txt"), "--submission", str(bad), "--team", "t"])
    assert_one_line(code, capsys.readouterr().err, "sub.csv: line", "value 'x', expected 0 or 1")
    assert files_under(in_tmp) == before


def test_debug_shows_the_traceback(tmp_path):
    args = ["-m", "harness", "check", "--truth", "missing.txt", "--submission", "sub.csv"]
    plain = python(tmp_path, *args)
    assert plain.returncode == 2 and plain.stderr == "auh: error: missing.txt: no such file\n"
    debug = python(tmp_path, "-m", "harness", "--debug", *args[2:])
    assert debug.returncode != 0
    assert debug.stderr.startswith("Traceback (most recent call last):")
    assert "harness/labels.py" in debug.stderr  # where it was raised
    assert debug.stderr.rstrip().endswith("harness.errors.UserError: missing.txt: no such file")


def test_debug_reraises_in_process(in_tmp):
    with pytest.raises(UserError, match="no such file"):
        main(["--debug", "check", "--truth", "missing.txt", "--submission", "sub.csv"])


# ------------------------------------------- recipes, plugins, images (fresh process)
BAD_RECIPES = {
    "section.toml": ('[trian]\nepochs = 1\n', "unknown recipe section 'trian'"),
    "key.toml": ('[train]\nepoch = 1\n', "unknown recipe key 'train.epoch'"),
    "type.toml": ('[train]\nbatch_size = "16"\n', "recipe field train.batch_size: expected int, got str"),
    "component.toml": ('[loss]\nname = "selectiv"\n', "recipe field loss: unknown loss 'selectiv'"),
    "epochs.toml": ('[train]\nepochs = -3\n', "recipe field train.epochs: expected an integer >= 0, got -3"),
    "param.toml": ('[sampler]\nname = "mlros"\npct = 5\n', "sampler 'mlros': unknown parameter 'pct'"),
}
BROKEN_PLUGIN = "import numpy\nraise RuntimeError('plugin set-up failed')\n"
WRONG_TYPE_PLUGIN = ("from harness import hookimpl\n\n@hookimpl\ndef auh_losses():\n"
                     "    return ['not', 'a', 'dict']\n")


@pytest.fixture(scope="module")
def fresh_process_results(tmp_path_factory):
    """Every fresh-process case, run once: ``{case: (code, stdout, stderr)}`` and the folder."""
    root = tmp_path_factory.mktemp("cli")
    for name, (text, _) in BAD_RECIPES.items():
        (root / name).write_text(text)
    (root / "broken_plugin.py").write_text(BROKEN_PLUGIN)
    (root / "wrong_type.py").write_text(WRONG_TYPE_PLUGIN)
    proc = python(root, "-c", MAKE_BUNDLE, str(root / "bundle"))
    assert proc.returncode == 0, proc.stderr
    images = {"truncated.jpg": None, "empty.jpg": b"", "notes.jpg": b"image,AU1\n"}
    for name, data in images.items():
        folder = root / "in" / Path(name).stem
        folder.mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (40, 40), (60 * i, 90, 120)).save(folder / f"ok{i}.jpg")
        if data is None:
            data = (folder / "ok0.jpg").read_bytes()[:300]
        (folder / name).write_bytes(data)
    cases = {f"recipe:{name}": ["run", name] for name in BAD_RECIPES}
    cases.update({f"image:{name}": ["predict", "bundle", f"in/{Path(name).stem}", "--out", f"{name}.csv",
                                    "--strict"] for name in images})
    cases["plugin:broken"] = ["--plugin", "broken_plugin.py", "plugins"]
    cases["plugin:wrong_type"] = ["--plugin", "wrong_type.py", "plugins"]
    cases["plugin:missing"] = ["--plugin", "no_such_plugin.py", "plugins"]
    cases["plugin:module"] = ["--plugin", "no_such_module_xyz", "plugins"]
    before = files_under(root)
    results = run_cases(root, list(cases.values()))
    written = files_under(root) - before - {"cases.json", "driver.py"}
    return dict(zip(cases, results)), written


@pytest.mark.parametrize("name", sorted(BAD_RECIPES))
def test_bad_recipe(fresh_process_results, name):
    results, _ = fresh_process_results
    code, _, err = results[f"recipe:{name}"]
    assert_one_line(code, err, BAD_RECIPES[name][1])


@pytest.mark.parametrize("name, reason", [
    ("truncated.jpg", "damaged or truncated image file"),
    ("empty.jpg", "empty file (0 bytes)"),
    ("notes.jpg", "not an image (unrecognised format)"),
])
def test_bad_image_stops_strict_predict(fresh_process_results, name, reason):
    """`--strict`: the first bad image stops prediction; without it, see test_predict.py."""
    results, _ = fresh_process_results
    code, out, err = results[f"image:{name}"]
    assert_one_line(code, err, f"image 'in/{Path(name).stem}/{name}': {reason}")


@pytest.mark.parametrize("case, needles", [
    ("broken", ["plugin 'broken_plugin.py': import failed: RuntimeError: plugin set-up failed"]),
    ("wrong_type", ["plugin wrong_type.py: auh_losses() must return a dict", "got list"]),
    ("missing", ["plugin file 'no_such_plugin.py' does not exist"]),
    ("module", ["plugin 'no_such_module_xyz': import failed: ModuleNotFoundError"]),
])
def test_bad_plugin_names_the_plugin(fresh_process_results, case, needles):
    results, _ = fresh_process_results
    code, _, err = results[f"plugin:{case}"]
    assert_one_line(code, err, *needles)


def test_refused_commands_write_nothing(fresh_process_results):
    # no run folder for a bad recipe, no submission for a bad image, no ledger
    _, written = fresh_process_results
    assert written == set()
