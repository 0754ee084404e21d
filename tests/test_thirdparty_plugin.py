"""A third-party plugin, installed as its own distribution, is discovered and used by name."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PLUGIN_SOURCE = textwrap.dedent('''
    """Every other row, twice: a sampler nobody would ship, easy to recognise."""
    import numpy as np
    from harness import hookimpl


    class EvenRows:
        """Even rows, repeated ``times`` times."""

        def __init__(self, times: int = 2):
            self.times = times

        def sample(self, labels, seed):
            return np.tile(np.arange(0, len(labels), 2), self.times)


    @hookimpl
    def auh_samplers():
        return {"even_rows": EvenRows}
''')

RECIPE = textwrap.dedent('''
    [sampler]
    name = "even_rows"
    times = 3
''')

USE_IT = textwrap.dedent('''
    import json, sys
    import numpy as np
    import harness
    from harness import recipe
    r = recipe.load(sys.argv[1])
    name, params = r.sampler.name, r.sampler.kwargs()
    rows = harness.create("sampler", name, **params).sample(np.zeros((7, 23), int), seed=0)
    print(json.dumps(rows.tolist()))
''')


def _env(site: Path | None) -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", AUH_QUIET="1")
    if site is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH", "")]))
    return env


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


def _install(root: Path, dist: str, version: str, entry: str, module: str, source: str,
             wheel: bool = False) -> Path:
    """Build and install ``dist`` (entry point group ``au_harness``) into a private site dir;
    with ``wheel``, build the wheel file first and install that file."""
    pkg = root / "src"
    (pkg / module).mkdir(parents=True)
    (pkg / module / "__init__.py").write_text(source)
    (pkg / "pyproject.toml").write_text(textwrap.dedent(f'''
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "{dist}"
        version = "{version}"

        [project.entry-points.au_harness]
        {entry} = "{module}"
    '''))
    site = root / "site"
    target = pkg
    if wheel:
        proc = _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                     "--no-index", "--wheel-dir", str(root / "dist"), str(pkg)], _env(None), root)
        assert proc.returncode == 0, proc.stderr
        target, = (root / "dist").glob("*.whl")
    proc = _run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                 "--no-index", "--target", str(site), str(target)], _env(None), root)
    assert proc.returncode == 0, proc.stderr
    return site


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    return _install(tmp_path_factory.mktemp("plugin"), "auh-even-rows", "0.4.2", "even_rows",
                    "auh_even_rows", PLUGIN_SOURCE)


def test_entry_point_plugin_is_listed_with_its_distribution(installed, tmp_path):
    proc = _run([sys.executable, "-m", "harness", "plugins", "--kind", "sampler"], _env(installed), tmp_path)
    assert proc.returncode == 0, proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if "even_rows" in ln)
    assert line.split()[:5] == ["sampler", "even_rows", "even_rows", "auh-even-rows", "0.4.2"]
    assert "Even rows, repeated" in line


def test_entry_point_sampler_runs_by_name_from_a_recipe(installed, tmp_path):
    (tmp_path / "r.toml").write_text(RECIPE)
    (tmp_path / "use.py").write_text(USE_IT)
    proc = _run([sys.executable, "use.py", "r.toml"], _env(installed), tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [0, 2, 4, 6] * 3


def test_plugin_file_works_the_same(tmp_path):
    (tmp_path / "even_rows.py").write_text(PLUGIN_SOURCE)
    (tmp_path / "r.toml").write_text(RECIPE)
    (tmp_path / "use.py").write_text("import harness; harness.load_plugins(['even_rows.py'])\n" + USE_IT)
    proc = _run([sys.executable, "use.py", "r.toml"], _env(None), tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [0, 2, 4, 6] * 3
    listed = _run([sys.executable, "-m", "harness", "--plugin", "even_rows.py", "plugins", "--kind", "sampler"],
                  _env(None), tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert any(ln.split()[:3] == ["sampler", "even_rows", "even_rows.py"] for ln in listed.stdout.splitlines())


def test_unknown_sampler_in_a_recipe_is_one_line_exit_2(tmp_path):
    (tmp_path / "r.toml").write_text('[sampler]\nname = "mlross"\n')
    proc = _run([sys.executable, "-m", "harness", "run", "r.toml"], _env(None), tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "auh: error: recipe field sampler: unknown sampler 'mlross'; available: mlros, uniform, weighted "
        "(did you mean 'mlros'?)"]


# ----------------------------------------------------------- a third-party reader
READER_SOURCE = textwrap.dedent('''
    """A tool that only detects smiles: CSV 'file,smile' with a probability per image."""
    import numpy as np
    from harness import hookimpl
    from harness.tooloutput import ToolOutput
    from plugins.readers import tables


    class SmileReader:
        """Smile CSV: file, smile probability (AU12)."""

        rules = "smile probability as AU12"

        def read(self, path):
            frame = tables.read_table(path)
            tables.require(frame, ["file", "smile"], path, "'file,smile'")
            smile = tables.numbers(frame, "smile", path, 0, 1)
            return ToolOutput(source=str(path), keys=frame["file"].tolist(),
                              where=tables.where(frame, path), failed=np.isnan(smile),
                              probability={"AU12": smile}, rules=self.rules)


    @hookimpl
    def auh_readers():
        return {"smile": SmileReader}
''')


@pytest.fixture(scope="module")
def reader_site(tmp_path_factory) -> Path:
    return _install(tmp_path_factory.mktemp("reader"), "auh-smile", "1.0.0", "smile", "auh_smile",
                    READER_SOURCE)


def test_entry_point_reader_scores_a_tool(reader_site, tmp_path):
    import numpy as np
    from sklearn.metrics import accuracy_score, f1_score

    from harness.labels import write_labels
    from harness.schema import ENC2020

    rng = np.random.default_rng(0)
    names = [f"im{i}.png" for i in range(30)]
    labels = (rng.random((30, len(ENC2020))) < 0.5).astype(int)
    write_labels(tmp_path / "truth.txt", names, labels)
    smile = rng.random(30).round(3)
    (tmp_path / "smiles.csv").write_text("file,smile\n" + "".join(
        f"shots/{n},{p}\n" for n, p in zip(names, smile)))
    listed = _run([sys.executable, "-m", "harness", "plugins", "--kind", "reader"], _env(reader_site),
                  tmp_path)
    assert any(ln.split()[:5] == ["reader", "smile", "smile", "auh-smile", "1.0.0"]
               for ln in listed.stdout.splitlines()), listed.stdout
    proc = _run([sys.executable, "-m", "harness", "score", "--truth", "truth.txt", "--from", "smile",
                 "--submission", "smiles.csv", "--json", "--resamples", "0"], _env(reader_site), tmp_path)
    assert proc.returncode == 0, proc.stderr
    card = json.loads(proc.stdout)
    assert card["coverage"]["covered"] == ["AU12"] and card["coverage"]["tool"] == "smile"
    y, p = labels[:, ENC2020.aus.index("AU12")], (smile >= 0.5).astype(int)
    assert card["covered"]["final"] == pytest.approx((accuracy_score(y, p) + f1_score(y, p)) / 2)
    assert card["final"] == pytest.approx(card["covered"]["final"] / len(ENC2020))  # 22 not predicted


BENCHMARK_SOURCE = textwrap.dedent('''
    """A made-up benchmark: three AUs, -9 = not coded, scored by mean F1."""
    from harness import hookimpl
    from harness.benchmark import Benchmark
    from harness.schema import AUSchema, Coding

    TOY = Benchmark(name="toy3", metric="mean_f1", description="Three AUs, -9 not coded, mean F1",
                    schema=AUSchema("toy3", ("AU1", "AU6", "AU12"), coding=Coding((1,), (0,), (-9,))))


    @hookimpl
    def auh_benchmarks():
        def toy3():
            """Three AUs, -9 not coded, mean F1."""
            return TOY

        return {"toy3": toy3}
''')


def test_wheel_benchmark_works_through_check_score_and_leaderboard(tmp_path):
    site = _install(tmp_path / "pkg", "auh-toy3", "1.0.0", "toy3", "auh_toy3", BENCHMARK_SOURCE, wheel=True)
    env = _env(site)
    truth = [[1, 0, -9], [0, 1, 1], [1, 1, 0], [0, -9, 1], [1, 0, 0]]
    pred = [[1, 0, 1], [1, 1, 1], [0, 1, 0], [0, 0, 1], [1, 1, 1]]
    for name, rows in (("truth.csv", truth), ("sub.csv", pred)):
        (tmp_path / name).write_text("image,AU1,AU6,AU12\n" + "".join(
            f"f{i}.jpg," + ",".join(map(str, r)) + "\n" for i, r in enumerate(rows)))
    auh = [sys.executable, "-m", "harness"]
    listed = _run(auh + ["plugins", "--kind", "benchmark"], env, tmp_path)
    assert any(ln.split()[:4] == ["benchmark", "toy3", "toy3", "auh-toy3"] for ln in listed.stdout.splitlines())
    checked = _run(auh + ["plugins", "--check", "toy3"], env, tmp_path)
    assert checked.returncode == 0 and "ok    benchmark toy3" in checked.stdout, checked.stdout + checked.stderr
    common = ["--benchmark", "toy3", "--truth", "truth.csv"]
    proc = _run(auh + ["check", *common, "--submission", "sub.csv"], env, tmp_path)
    assert proc.returncode == 0 and "5 images x 3 AUs" in proc.stdout, proc.stderr
    ledger = ["--tracking-uri", f"sqlite:///{tmp_path / 'l.db'}", "--resamples", "0"]
    proc = _run(auh + ["score", *common, "--submission", "sub.csv", "--json", "--team", "t", *ledger], env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    card = json.loads(proc.stdout)
    # by hand, -9 rows dropped: AU1 TP2 FP1 FN1 -> 4/6; AU6 TP2 FP1 FN0 -> 4/5; AU12 TP2 FP1 FN0 -> 4/5
    assert abs(card["final"] - (4 / 6 + 4 / 5 + 4 / 5) / 3) < 1e-12 and card["benchmark"] == "toy3"
    board = _run(auh + ["leaderboard", "--benchmark", "toy3", "--format", "csv", *ledger], env, tmp_path)
    assert board.returncode == 0 and "\n1,t," in board.stdout, board.stdout + board.stderr
