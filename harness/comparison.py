"""Arms run on the same seeds: the machinery of ``auh compare`` and ``auh ablate --seeds``.

A *study* is a set of arms (resolved recipes, one per label) and a list of
seeds. Every arm-seed is an ordinary ``auh run`` run folder, kept by what
the arm is (its recipe, seed aside), so every study that runs the same arm
on the same seed reuses it (``auh compare`` after ``auh ablate --seeds``
runs nothing the ablation ran)::

    {run.output}/arms/<name>-<sha8>-seed-0.toml   the arm-seed's recipe: run.seed = 0
    {run.output}/arms/<name>-<sha8>-seed-0/       its run folder (state.json, result.json, ...)
    {run.output}/compare-<name>-<sha8>/           the study: study.json, verdict.json, verdict.txt

Seed ``s`` sets ``run.seed = s`` in every arm, so all arms get the same
splits or folds and the same test rows at that seed: the comparison is
paired by seed and, within a seed, by test image (checked by image name).
A finished arm-seed is never run again: a study can be interrupted and
resumed, or extended to more seeds, and each ``.toml`` can run as its own
job elsewhere (``auh run FILE --resume``) before ``--collect`` builds the
verdict from the finished folders.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from harness import recipe as recipes
from harness.recipe import Recipe, RecipeSource
from harness.run_folder import RunFolder, run_folders
from harness.errors import ChildRunFailed, UserError
from harness.fileio import atomic_open, check_output_folder, read_npz
from harness.metrics import MAX_RESAMPLES, get_metric
from harness.progress import note
from harness.verdict import Verdict, paired_verdict

STUDY_FILE = "study.json"
DEFAULT_SEEDS = 5
MAX_SEEDS = 1000  # arm-seeds are whole training runs: more is a typo, not a study


@dataclass(frozen=True)
class Outcome:
    """The pooled test rows of one finished arm-seed."""

    folder: Path
    names: list[str]
    pred: np.ndarray
    labels: np.ndarray
    aus: list[str]


@dataclass
class Study:
    """Arms (``label -> resolved recipe``) run on the same ``seeds`` under ``root``.

    ``state`` is kept in ``root/study.json``; lifecycle hooks may keep what
    they need there (the tracking plugin keeps its MLflow run id).
    """

    root: Path
    arms: dict[str, Recipe]
    seeds: tuple[int, ...]
    plugins: tuple[str, ...] = ()
    state: dict[str, Any] = field(default_factory=dict)

    # ---------------------------------------------------------- layout
    def recipe(self, label: str, seed: int) -> Recipe:
        """The resolved recipe of arm ``label`` at ``seed``."""
        r = self.arms[label]
        return r.with_run(seed=int(seed), output=str(Path(r.run.output) / "arms"), name=f"{arm_id(r)}-seed-{seed}")

    def recipe_file(self, label: str, seed: int) -> Path:
        r = self.recipe(label, seed)
        return Path(r.run.output) / f"{r.run.name}.toml"

    def command(self, label: str, seed: int) -> list[str]:
        """The ``auh run`` command line that runs (or resumes) one arm-seed."""
        plugins = [arg for spec in self.plugins for arg in ("--plugin", spec)]
        return ["auh", *plugins, "run", str(self.recipe_file(label, seed)), "--resume"]

    def finished(self, label: str, seed: int) -> Path | None:
        """The finished run folder of an arm-seed, or ``None``."""
        r = self.recipe(label, seed)
        digest = recipes.digest(r)
        for folder in reversed(run_folders(r.run.output, r.run.name)):
            if folder.finished(digest):
                return folder.path
        return None

    def pending(self) -> list[tuple[str, int]]:
        """Unfinished arm-seeds, seed by seed (every arm of a seed before the next seed)."""
        return [(label, s) for s in self.seeds for label in self.arms if self.finished(label, s) is None]

    # --------------------------------------------------------- running
    def prepare(self) -> None:
        """Write the arm-seed recipes and ``study.json`` (the first side effect of a study)."""
        for label in self.arms:
            for s in self.seeds:
                path = self.recipe_file(label, s)
                path.parent.mkdir(parents=True, exist_ok=True)
                text = recipes.dumps(self.recipe(label, s))
                if not path.is_file() or path.read_text() != text:
                    with atomic_open(path) as fh:
                        fh.write(text)
        self.load_state()
        self.state.update(arms=list(self.arms), seeds=sorted(set(self.seeds) | set(self.state.get("seeds", []))))
        self.save_state()

    def load_state(self) -> None:
        path = self.root / STUDY_FILE
        if path.is_file() and not self.state:
            self.state = json.loads(path.read_text())

    def save_state(self) -> None:
        with atomic_open(self.root / STUDY_FILE) as fh:
            json.dump(self.state, fh, indent=1, default=str)

    def run(self, jobs: int = 1) -> None:
        """Run every unfinished arm-seed: in this process, or ``jobs`` child processes
        at a time, each pinned to its share of this process's cores."""
        todo = self.pending()
        if not todo:
            return
        if jobs <= 1:
            from harness.pipeline import run

            for k, (label, s) in enumerate(todo, 1):
                note(f"auh: arm-seed {label}/seed-{s} ({k} of {len(todo)})", transient=True)
                run(self.recipe(label, s), resume=True)
                self.check_pairing(s)  # arms that are not paired are refused at the first seed
            return
        failures = run_children(self, todo, jobs)
        if failures:
            (label, s), code = failures[0]
            more = f" ({len(failures) - 1} more arm-seed(s) failed too)" if len(failures) > 1 else ""
            raise ChildRunFailed(f"arm-seed {label}/seed-{s} failed in its child process (exit {code}): run "
                                 f"folder {self.run_folder(label, s)}, log {self.log_file(label, s)}{more}")

    def run_folder(self, label: str, seed: int) -> Path:
        """Where an arm-seed's run folder is (``-2``, ``-3``... beside it for later runs)."""
        r = self.recipe(label, seed)
        return Path(r.run.output) / r.run.name

    def log_file(self, label: str, seed: int) -> Path:
        """An arm-seed child process's output (``--jobs``), beside its recipe."""
        return self.recipe_file(label, seed).with_suffix(".log")

    def check_pairing(self, seed: int) -> None:
        """Once every arm has finished ``seed``: refuse arms not tested on the same labelled images."""
        if any(self.finished(label, seed) is None for label in self.arms):
            return
        first, *others = self.arms
        reference = self.outcome(first, seed)
        for label in others:
            paired_rows(reference, self.outcome(label, seed), seed)

    # --------------------------------------------------------- results
    def outcome(self, label: str, seed: int) -> Outcome:
        folder = self.finished(label, seed)
        if folder is None:
            raise UserError(f"arm-seed {label}/seed-{seed} has not finished; run: "
                            f"{' '.join(self.command(label, seed))}")
        z = read_npz(RunFolder(folder).test_predictions, ("names", "pred", "labels", "aus"),
                     f"arm-seed {label}/seed-{seed}")
        return Outcome(folder, [str(n) for n in z["names"]], z["pred"].astype(np.int64),
                       z["labels"].astype(np.int64), [str(a) for a in z["aus"]])

    def verdict(self, label_a: str, label_b: str, *, a_name: str, b_name: str,
                resamples: int, seed: int = 0) -> Verdict:
        """The paired verdict of ``label_b`` against ``label_a`` over the study's seeds."""
        pairs = [(self.outcome(label_a, s), self.outcome(label_b, s)) for s in self.seeds]
        metric = get_metric(run_metric(pairs[0][0].folder))
        return paired_verdict(self.seeds, [a.pred for a, _ in pairs],
                              [paired_rows(a, b, s) for (a, b), s in zip(pairs, self.seeds)],
                              [a.labels for a, _ in pairs], pairs[0][0].aus, a_name=a_name, b_name=b_name,
                              resamples=resamples, seed=seed,
                              runs={"A": [str(a.folder) for a, _ in pairs],
                                    "B": [str(b.folder) for _, b in pairs]}, metric=metric)


def run_metric(folder: Path) -> str | None:
    """The metric a finished run scored with (its result names a non-default benchmark's);
    None: the default benchmark's."""
    with open(RunFolder(folder).result_file, encoding="utf-8") as fh:
        return json.load(fh)["scores"].get("metric")


def paired_rows(a: Outcome, b: Outcome, seed: int) -> np.ndarray:
    """B's predictions in A's row order; refuses arm-seeds not tested on the same labelled images."""
    if a.aus != b.aus:
        raise UserError(f"seed {seed}: {a.folder} and {b.folder} score different AUs; "
                        f"the arms must share the label schema")
    index = {n: i for i, n in enumerate(b.names)}
    only_a = [n for n in a.names if n not in index]
    if only_a or len(b.names) != len(a.names):
        only_b = sorted(set(b.names) - set(a.names))
        example = f"{only_a[0]!r} only in {a.folder}" if only_a else f"{only_b[0]!r} only in {b.folder}"
        raise UserError(f"seed {seed}: the arms were tested on different images ({len(a.names)} vs "
                        f"{len(b.names)}; {example}): not a paired comparison; both arms need the "
                        f"same dataset and evaluation")
    order = np.array([index[n] for n in a.names])
    if not np.array_equal(b.labels[order], a.labels):
        raise UserError(f"seed {seed}: the same test images have different labels in {a.folder} and "
                        f"{b.folder}; both arms need the same dataset")
    return b.pred[order]


# ------------------------------------------------------------ child processes
def core_groups(jobs: int) -> list[set[int]]:
    """This process's cores split into ``jobs`` disjoint groups (shared round-robin when
    there are fewer cores than jobs)."""
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    if jobs >= len(cores):
        return [{cores[i % len(cores)]} for i in range(jobs)]
    return [set(cores[i::jobs]) for i in range(jobs)]


def run_children(study: Study, todo: list[tuple[str, int]], jobs: int) -> list[tuple[tuple[str, int], int]]:
    """Run ``todo`` as ``python -m harness run FILE --resume`` children, ``jobs`` at a time;
    each child's output goes to its :meth:`Study.log_file`. Returns the failures, in ``todo``'s
    order: ``((label, seed), exit status)``."""
    free = core_groups(jobs)
    lock = threading.Lock()
    failures: list[tuple[tuple[str, int], int]] = []

    def one(item: tuple[str, int]) -> None:
        label, s = item
        with lock:
            cores = free.pop()
        log = study.log_file(label, s)
        cmd = [sys.executable, "-m", "harness", *study.command(label, s)[1:]]
        try:
            note(f"auh: arm-seed {label}/seed-{s}: started on cores {sorted(cores)} (log {log})", transient=True)
            with open(log, "ab") as out:
                pin = (lambda: os.sched_setaffinity(0, cores)) if hasattr(os, "sched_setaffinity") else None
                code = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, preexec_fn=pin).returncode
            if code:
                with lock:
                    failures.append((item, code))
            note(f"auh: arm-seed {label}/seed-{s}: {'finished' if code == 0 else f'failed (exit {code})'}",
                 transient=True)
        finally:
            with lock:
                free.append(cores)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(one, todo))
    return sorted(failures, key=lambda f: todo.index(f[0]))


# ---------------------------------------------------------------- building
def seed_list(seeds: int | Sequence[int], base: int) -> tuple[int, ...]:
    """``N`` -> ``base .. base+N-1``; a sequence is taken as given. At least two distinct seeds >= 0."""
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        _check_seed_count(int(seeds))
        out = tuple(range(base, base + int(seeds)))
    else:
        out = tuple(int(s) for s in seeds)
    if len(out) < 2 or len(set(out)) != len(out) or min(out) < 0:
        raise UserError(f"--seeds: expected at least 2 distinct seeds >= 0, got {seeds!r}")
    return out


def arm_id(recipe: Recipe) -> str:
    """``<run.name>-<sha8>``: what an arm is, whatever its seed, name and output folder."""
    return f"{recipe.run.name}-{_neutral_sha(recipe)}"


def study_root(kind: str, arms: dict[str, Recipe]) -> Path:
    """``{run.output}/KIND-<name>-<sha8>``: one folder per set of arms, whatever the seeds."""
    sha = hashlib.sha256(json.dumps({label: _neutral_sha(r) for label, r in arms.items()},
                                    sort_keys=True).encode()).hexdigest()[:8]
    names = list(dict.fromkeys(r.run.name for r in arms.values()))
    name = "-vs-".join(names[:2]) if len(names) <= 2 else names[0]
    return Path(next(iter(arms.values())).run.output) / f"{kind}-{name}-{sha}"


def _neutral_sha(recipe: Recipe) -> str:
    return recipes.digest(recipe.with_run(seed=0, output="", name=""))[:8]


def check_options(seeds: int | None, jobs: int, resamples: int) -> None:
    """A study's options (``seeds`` as a count; ``None``: not given), refused before any work."""
    if seeds is not None:
        _check_seed_count(seeds)
    if jobs < 1:
        raise UserError(f"--jobs: expected an integer >= 1, got {jobs}")
    if not 1 <= resamples <= MAX_RESAMPLES:
        raise UserError(f"--resamples: expected an integer in 1..{MAX_RESAMPLES}, got {resamples}")


def _check_seed_count(seeds: int) -> None:
    if not 2 <= seeds <= MAX_SEEDS:
        raise UserError(f"--seeds: expected an integer in 2..{MAX_SEEDS}, got {seeds}")


def check_study(study: Study) -> None:
    """Everything a study needs, refused before its first side effect."""
    from harness.pipeline import preflight_all

    check_output_folder(study.root, "comparison folder")
    first_uri = next(iter(study.arms.values())).run.tracking_uri
    for label, r in study.arms.items():
        if r.run.tracking_uri != first_uri:
            raise UserError(f"arm {label}: every arm of a comparison must use the same run.tracking_uri")
    preflight_all([study.recipe(label, study.seeds[0]) for label in study.arms])


def compare(recipe_a: RecipeSource, recipe_b: RecipeSource | None = None,
            *, vs: Sequence[str] = (), overrides: Sequence[str] = (),
            seeds: int | Sequence[int] = DEFAULT_SEEDS, jobs: int = 1,
            resamples: int = 1000, collect: bool = False, plugins: Sequence[str] = ()) -> Verdict:
    """Run A and B on the same seeds (reusing finished arm-seeds) and return the paired verdict.

    ``recipe_a`` / ``recipe_b``: recipe files, dicts or :class:`harness.recipe.Recipe`; without ``recipe_b``,
    B is A with the ``vs`` overrides (``["sampler.name=uniform"]``).
    ``overrides`` apply to both arms. ``collect=True`` runs nothing: the
    verdict comes from finished run folders only. Also logged to MLflow
    through the ``auh_compare_end`` hook, and written to ``verdict.json`` /
    ``verdict.txt`` in the study folder.
    """
    check_options(None, jobs, resamples)  # the seeds: by seed_list, as a count or a sequence
    study, a_name, b_name = plan_compare(recipe_a, recipe_b, vs=vs, overrides=overrides, seeds=seeds,
                                         plugins=plugins)
    if collect:
        missing = study.pending()
        if missing:
            raise UserError(f"--collect: {len(missing)} arm-seed(s) not finished, e.g. "
                            f"{' '.join(study.command(*missing[0]))}")
    else:
        check_study(study)
        study.prepare()
        study.run(jobs)
    verdict = study.verdict("A", "B", a_name=a_name, b_name=b_name, resamples=resamples)
    finish(study, {"B vs A": verdict})
    return verdict


def plan_compare(recipe_a: Any, recipe_b: Any = None, *, vs: Sequence[str] = (), overrides: Sequence[str] = (),
                 seeds: int | Sequence[int] = DEFAULT_SEEDS,
                 plugins: Sequence[str] = ()) -> tuple[Study, str, str]:
    """The study of a comparison and the arms' display names, without side effects."""
    if recipe_b is None and not vs:
        raise UserError("compare: give recipe B, or --vs SECTION.KEY=VALUE overrides that make B from A")
    if recipe_b is not None and vs:
        raise UserError("compare: give recipe B or --vs overrides, not both")
    a = recipes.from_source(recipe_a, overrides)
    b = recipes.from_source(recipe_b if recipe_b is not None else recipe_a, list(overrides) + list(vs))
    # The study sets each arm's run.seed, name and output: arms that differ only there are one arm.
    if _neutral_sha(a) == _neutral_sha(b):
        raise UserError("compare: arms A and B are the same recipe once the study sets run.seed, "
                        "run.name and run.output (every arm runs on --seeds); nothing to compare")
    a_name = _display(recipe_a, a)
    b_name = f"A with {', '.join(vs)}" if vs else _display(recipe_b, b)
    arms = {"A": a, "B": b}
    study = Study(study_root("compare", arms), arms, seed_list(seeds, a.run.seed), tuple(plugins))
    return study, a_name, b_name


def finish(study: Study, verdicts: dict[str, Verdict]) -> None:
    """Write the verdicts into the study folder and hand them to the ``auh_compare_end`` hook."""
    from harness.pipeline import hooks

    data = {k: v.to_dict() for k, v in verdicts.items()}
    with atomic_open(study.root / "verdict.json") as fh:
        json.dump(data, fh, indent=1)
    with atomic_open(study.root / "verdict.txt") as fh:
        fh.write("\n\n".join(f"== {k}\n{v.render()}" for k, v in verdicts.items()) + "\n")
    study.load_state()
    hooks().auh_compare_end(study=study, verdicts=verdicts)
    study.save_state()


def _display(source: Any, resolved: Recipe) -> str:
    return str(source) if isinstance(source, (str, Path)) else resolved.run.name

