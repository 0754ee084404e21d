"""The shape of the code: no import cycles, every module importable on its own,
every command added through ``auh_add_commands``, and the installed distribution's
top-level packages."""
from __future__ import annotations

import argparse
import ast
import json
import re
import subprocess
import sys
from pathlib import Path

from setuptools import find_packages

import harness
from harness import cli
from harness.recipe import demo_recipe
from harness.errors import UserError
from harness.registry import Registry

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("harness", "plugins", "leaderboard")


def project_modules() -> dict[str, Path]:
    """Every module of the distribution's packages: dotted name -> file."""
    found = {}
    for package in PACKAGES:
        for file in sorted((ROOT / package).rglob("*.py")):
            parts = file.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = file
    return found


def imports_of(name: str, file: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules ``name`` imports anywhere in its file (function bodies included)."""

    def owner(dotted: str) -> str | None:  # the module a dotted import lands in
        while dotted and dotted not in modules:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    package = name if file.name == "__init__.py" else name.rpartition(".")[0]
    deps = set()
    tree = ast.parse(file.read_text())
    for block in ast.walk(tree):  # `if TYPE_CHECKING:` imports never run: annotations only
        if isinstance(block, ast.If) and ast.unparse(block.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            block.body = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            deps.update(owner(a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            for a in node.names:  # `from pkg import submodule` imports the submodule
                deps.add(owner(f"{base}.{a.name}") if f"{base}.{a.name}" in modules else owner(base))
    deps.discard(None)
    deps.discard(name)
    return deps


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import cycle, as the path that closes it (depth-first search)."""
    found, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for dep in sorted(graph[node]):
            if state.get(dep) == "open":
                found.append(path[path.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, path + [dep])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_the_cycle_finder_finds_a_function_level_cycle(tmp_path):
    # the oracle below must be able to fail: a cycle hidden in a function body
    (tmp_path / "a.py").write_text("def f():\n    from b import g\n")
    (tmp_path / "b.py").write_text("import a\n")
    modules = {"a": tmp_path / "a.py", "b": tmp_path / "b.py"}
    graph = {m: imports_of(m, f, modules) for m, f in modules.items()}
    assert cycles(graph) == [["a", "b", "a"]]


def test_the_cycle_finder_skips_imports_made_for_type_checkers_only(tmp_path):
    (tmp_path / "a.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import b\n")
    (tmp_path / "b.py").write_text("import a\n")
    modules = {"a": tmp_path / "a.py", "b": tmp_path / "b.py"}
    graph = {m: imports_of(m, f, modules) for m, f in modules.items()}
    assert cycles(graph) == [] and graph["b"] == {"a"}


def test_no_import_cycles_between_modules():
    modules = project_modules()
    graph = {m: imports_of(m, f, modules) for m, f in modules.items()}
    assert cycles(graph) == []


def test_every_module_imports_on_its_own_and_leaves_the_registry_whole():
    # One interpreter; before each module the project's modules are dropped from
    # sys.modules, so each import starts from nothing of ours (third-party
    # packages stay loaded: torch cannot be imported twice). After each import the
    # plugin registry must hold every built-in component: a module that built the
    # registry while a plugin module was half imported would lose that plugin's hooks.
    names = [m for m in project_modules() if not m.endswith("__main__")]
    code = f"""
import importlib, json, sys, traceback
def table():
    registry = importlib.import_module("harness.registry")
    return {{kind: sorted(names) for kind, names in registry.get_registry().table.items()}}
def fresh():
    for loaded in [m for m in sys.modules if m.split(".")[0] in {PACKAGES!r}]:
        del sys.modules[loaded]
fresh()
whole = table()
failed = {{}}
for name in {names!r}:
    fresh()
    try:
        importlib.import_module(name)
        if table() != whole:
            failed[name] = "the plugin registry lost components"
    except BaseException as exc:
        failed[name] = f"{{type(exc).__name__}}: {{exc}}"
print(json.dumps(failed))
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "AUH_QUIET": "1",
                               "MPLBACKEND": "Agg", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.splitlines()[-1]) == {}


def _subcommands(registry: Registry) -> set[str]:
    parser = argparse.ArgumentParser()
    subparsers = parser.add_subparsers()
    registry.add_commands(subparsers)
    return set(subparsers.choices)


def test_every_command_comes_from_a_plugins_auh_add_commands():
    registry = Registry()
    registry.load_builtins()
    everything = _subcommands(registry)
    assert {"run", "predict", "ablate", "plugins", "align", "synth", "score", "check",
            "leaderboard", "export", "blind", "bench"} <= everything
    # without the organizer's plugin its commands are gone, and nothing else
    registry.pm.unregister(name="leaderboard.scoring_cli")
    assert everything - _subcommands(registry) == {"score", "check", "convert", "leaderboard"}


def test_a_broken_plugin_leaves_the_built_in_commands(monkeypatch):
    def broken():
        raise UserError("plugin broken: failed to load entry point")

    monkeypatch.setattr(harness, "get_registry", broken)
    choices = cli.build_parser()._subparsers._group_actions[0].choices
    assert {"run", "score", "bench", "synth"} <= set(choices)


def test_the_distribution_has_no_top_level_bench_or_submissions():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = find_packages(where=str(ROOT), include=setuptools["packages"]["find"]["include"])
    assert {p.split(".")[0] for p in packages} == set(PACKAGES)
    assert {"plugins.bench", "plugins.recipes"} <= set(packages)  # `auh bench`, `auh run`'s recipe
    recipe = demo_recipe()
    assert recipe.is_file() and recipe.parent == ROOT / "plugins" / "recipes"
    assert any(recipe.match(pattern) for pattern in setuptools["package-data"]["*"])


def test_the_layout_page_names_every_module_and_folder():
    layout = (ROOT / "docs" / "layout.md").read_text().split("\n## Layout\n", 1)[1].split("```")[1]
    words = set(layout.replace("(", " ").replace(")", " ").replace(",", " ").split())
    missing = [f"{package}/{file.name}" for package in ("harness", "leaderboard")
               for file in (ROOT / package).glob("*.py")
               if file.name not in words and file.stem not in words and file.name != "__init__.py"]
    for folder in (ROOT / "plugins", ROOT / "plugins" / "tracking"):
        missing += [str(entry.relative_to(ROOT)) for entry in folder.iterdir()
                    if entry.name not in ("__init__.py", "__pycache__")
                    and entry.name not in words and f"{entry.name}/" not in words]
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    folders = {Path(f).parts[0] for f in tracked if len(Path(f).parts) > 1 and not f.startswith(".")}
    missing += [f"{f}/" for f in sorted(folders) if f"{f}/" not in words]
    assert missing == []


def test_the_hook_table_in_the_docs_is_every_hook_hookspecs_defines():
    import harness.hookspecs

    defined = {name for name in vars(harness.hookspecs) if name.startswith("auh_")}
    page = (ROOT / "docs" / "plugins.md").read_text().split("\n## Every hook\n", 1)[1]
    listed = set(re.findall(r"^\| `(auh_\w+)` \|", page, flags=re.M))
    assert listed == defined


def test_the_readme_is_a_front_page_and_every_doc_link_resolves():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 300
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    index = (ROOT / "docs" / "index.md").read_text()
    unlisted = [p.name for p in pages[1:] if p.name != "index.md" and f"]({p.name})" not in index]
    assert unlisted == []
    broken = [f"{page.relative_to(ROOT)}: {target}" for page in pages
              for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text())
              if not (page.parent / target).exists()]
    assert broken == []
