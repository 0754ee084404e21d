"""Security: no unpickling of untrusted files, names never become paths, and
plugins load only from installed distributions and paths the user names.

(HTML and Markdown escaping of user strings is tested in test_leaderboard.py.)
"""
from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from harness.training import Checkpoint
from harness.errors import UserError
from harness.weights import load_weights

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "submissions" / "examples"


class Payload:
    """Unpickling this creates the file ``target``: proof that code ran."""

    def __init__(self, target: Path) -> None:
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "AUH_QUIET": "1", "PYTHONPATH": "", **extra}


def python(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, env=_env(**env), capture_output=True,
                          text=True, timeout=300)


# ------------------------------------------------------------- unpickling
def test_a_malicious_weights_file_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"weight": torch.ones(2), "x": Payload(marker)}, tmp_path / "evil.pth")
    with pytest.raises(UserError, match=r"evil.pth': refused, it holds pickled objects"):
        load_weights(nn.Linear(2, 1), tmp_path / "evil.pth")
    assert not marker.exists()


def test_a_tampered_training_checkpoint_is_refused_on_resume(tmp_path):
    marker = tmp_path / "pwned"
    folder = tmp_path / "stage"
    folder.mkdir()
    torch.save({"epoch": 3, "weights": "w.safetensors", "x": Payload(marker)}, folder / "state.pt")
    model = nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(UserError, match="refused"):
        Checkpoint(folder).restore(model, optimizer, torch.optim.lr_scheduler.StepLR(optimizer, 1))
    assert not marker.exists()


def test_no_code_path_unpickles_files():
    """torch.load only in harness.weights.safe_torch_load, with weights_only=True;
    no pickle.load of a file, no np.load(allow_pickle=True), no torch.hub loading."""
    found = []
    for path in sorted(p for folder in ("harness", "plugins", "leaderboard")
                       for p in (ROOT / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            owner = node.func.value.id if isinstance(node.func.value, ast.Name) else ""
            call = f"{owner}.{node.func.attr}"
            keywords = {k.arg: ast.unparse(k.value) for k in node.keywords}
            if call in ("torch.load", "pickle.load", "hub.load") or (
                    call == "np.load" and keywords.get("allow_pickle") not in (None, "False")):
                found.append((str(path.relative_to(ROOT)), call, keywords.get("weights_only")))
    assert found == [("harness/weights.py", "torch.load", "True")]


# --------------------------------------------------- names never become paths
def test_a_submission_file_name_never_becomes_a_path(tmp_path):
    """The ledger stores the file under a fixed artifact name; its own name
    (here markup and dots) is only a tag, escaped wherever it is shown."""
    work = tmp_path / "work"
    work.mkdir()
    name = "..<img src=x onerror=alert(1)>...csv"
    (work / name).write_bytes((EXAMPLES / "alpha.csv").read_bytes())
    before = {p for p in tmp_path.rglob("*")}
    proc = python(work, "-m", "harness", "score", "--truth", str(EXAMPLES / "truth.txt"),
                  "--submission", name, "--team", "../../t", "--resamples", "0")
    assert proc.returncode == 0, proc.stderr
    board = python(work, "-m", "harness", "leaderboard", "--format", "html", "--resamples", "0")
    assert board.returncode == 0, board.stderr
    assert "&lt;img src=x onerror=alert(1)&gt;" in board.stdout and "<img src=x" not in board.stdout
    artifacts = {p.name for p in (work / "mlartifacts").rglob("*") if p.is_file()}
    assert artifacts == {"submission.csv", "scorecard.json", "predictions.npz"}
    new = {p for p in tmp_path.rglob("*")} - before
    assert all(p.is_relative_to(work / "mlartifacts") or p.name.startswith("mlflow.db") for p in new), new


# ----------------------------------------------------- where plugins come from
SHADOW = textwrap.dedent('''
    from pathlib import Path
    Path(__file__).resolve().parents[1].joinpath("pwned").write_text("ran")
    BUILTIN_PLUGINS = ()
''')


def _shadow_folder(root: Path) -> Path:
    (root / "plugins").mkdir(parents=True)
    (root / "plugins" / "__init__.py").write_text(SHADOW)
    return root


def test_a_plugins_folder_in_the_working_directory_is_not_imported(tmp_path):
    cwd = _shadow_folder(tmp_path)
    auh = Path(sys.executable).with_name("auh")  # the console script, where installed
    for command in ([sys.executable, "-m", "harness"], *([[str(auh)]] if auh.exists() else [])):
        proc = subprocess.run([*command, "plugins", "--kind", "sampler"], cwd=cwd, env=_env(),
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert "mlros" in proc.stdout and "au-harness" in proc.stdout
        assert not (tmp_path / "pwned").exists()


def test_a_plugins_folder_on_pythonpath_is_refused_unimported(tmp_path):
    _shadow_folder(tmp_path / "elsewhere")
    proc = python(tmp_path, "-m", "harness", "plugins", PYTHONPATH=str(tmp_path / "elsewhere"))
    assert proc.returncode == 2
    assert proc.stderr.startswith("auh: error: the package 'plugins' resolves to ")
    assert "shadows it" in proc.stderr and proc.stderr.count("\n") == 1
    assert not (tmp_path / "pwned").exists()


def test_a_distribution_in_the_working_directory_is_not_an_installed_plugin(tmp_path):
    # what `pip install --target .` of a plugin would leave: an entry point in cwd
    (tmp_path / "sneaky.py").write_text(
        "open('pwned', 'w').write('ran')\nfrom harness import hookimpl\n\n@hookimpl\n"
        "def auh_samplers():\n    return {'sneaky': object}\n")
    dist = tmp_path / "sneaky-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: sneaky\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[au_harness]\nsneaky = sneaky\n")
    proc = python(tmp_path, "-m", "harness", "plugins", "--kind", "sampler")
    assert proc.returncode == 0, proc.stderr
    assert "sneaky" not in proc.stdout and not (tmp_path / "pwned").exists()
    # named explicitly, the same file is loaded: the user chose it
    named = python(tmp_path, "-m", "harness", "--plugin", "sneaky.py", "plugins", "--kind", "sampler")
    assert named.returncode == 0, named.stderr
    assert "sneaky" in named.stdout and (tmp_path / "pwned").exists()
