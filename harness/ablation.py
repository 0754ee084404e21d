"""``auh ablate``: a recipe's ablation rows, each run, in one table (``harness.ablate``).

The rows come from the plugin that derives them (the ``auh_ablation`` hook;
the paper's Table 2: :mod:`plugins.recipes.ablation`): the core runs
whatever rows it is given. Without ``seeds`` each row runs once and the
table gives its scores; with ``seeds`` the rows are the arms of a study
(:mod:`harness.comparison`) run on the same seeds, and the table gives each
row's mean and 95% t-interval across seeds and the paired verdict of each
row against the row above and against the first row.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from harness import recipe as recipes
from harness.errors import UserError
from harness.fileio import atomic_open, check_output_folder
from harness.metrics import DEFAULT_RESAMPLES
from harness.recipe import Recipe, RecipeSource
from harness.registry import get_registry
from harness.results import RunResult
from harness.verdict import Verdict


@dataclass(frozen=True)
class Ablation:
    """What :func:`ablate` did: the table (markdown, with its legend), where it was
    written, and per row its result (without seeds) or the verdicts (with seeds:
    ``"<row> vs <other row>"`` -> :class:`harness.verdict.Verdict`)."""

    table: str
    path: Path
    rows: tuple[str, ...]
    results: dict[str, RunResult] = field(default_factory=dict)
    verdicts: dict[str, Verdict] = field(default_factory=dict)


def ablation_rows(base: Recipe) -> tuple[list[tuple[str, Recipe]], str]:
    """``auh ablate``'s rows for ``base`` (each resolved) and the legend under the table,
    from the plugin that derives them (``auh_ablation``)."""
    found = get_registry().hook.auh_ablation(recipe=base)
    if found is None:
        raise UserError("auh ablate: no plugin derives ablation rows (auh_ablation)")
    rows, legend = found
    return [(row, recipes.from_source(r)) for row, r in rows], legend


def ablate(recipe: RecipeSource | None = None, *, seeds: int | None = None, jobs: int = 1,
           resamples: int = DEFAULT_RESAMPLES, overrides: Sequence[str] = (), out: str | Path | None = None,
           plugins: Sequence[str] = ()) -> Ablation:
    """Run the ablation of ``recipe`` (a TOML file, a dict, a :class:`harness.recipe.Recipe`;
    ``None``: the demo recipe) and write its table to ``out`` (default
    ``{run.output}/{run.name}-ablation.md``).

    ``seeds``: run every row on ``N`` seeds (``run.seed`` on) as a study, reusing finished
    arm-seeds, ``jobs`` at a time in child processes (``plugins``: ``--plugin`` specs
    they load), with ``resamples`` bootstrap resamples per verdict.
    """
    from harness import comparison

    comparison.check_options(seeds, jobs, resamples)  # before any work, with seeds or without
    if seeds is None and jobs != 1:
        raise UserError(f"--jobs {jobs}: only with --seeds (without it the rows run one after "
                        f"another in this process)")
    base = recipes.from_source(recipes.demo_recipe() if recipe is None else recipe, list(overrides))
    rows, legend = ablation_rows(base)
    variants = dict(rows)
    path = Path(out) if out is not None else Path(base.run.output) / f"{base.run.name}-ablation.md"
    check_output_folder(path.parent, "--out folder")
    if seeds is not None:
        verdicts, n_seeds = seeded_ablation(base, variants, seeds, jobs, resamples, plugins)
        result = Ablation(ablation_table(list(variants), verdicts, legend, n_seeds), path, tuple(variants),
                          verdicts=verdicts)
    else:
        results = run_rows(variants)
        result = Ablation(scores_table(results, legend), path, tuple(variants), results=results)
    with atomic_open(path) as fh:
        fh.write(result.table + "\n")
    return result


def run_rows(variants: dict[str, Recipe]) -> dict[str, RunResult]:
    """Each row run once, in order; every row is refused before the first one runs."""
    from harness.pipeline import preflight_all, run

    preflight_all(list(variants.values()))
    return {row: run(r) for row, r in variants.items()}


def scores_table(results: dict[str, RunResult], legend: str) -> str:
    """Markdown: Acc / F1 / Avg of each row's run."""
    return "\n".join(["| method | Acc | F1 | Avg |", "|---|---|---|---|"] +
                     [f"| {row} | {r.scores['accuracy']:.3f} | {r.scores['f1']:.3f} | {r.scores['final']:.3f} |"
                      for row, r in results.items()] + ["", legend])


def seeded_ablation(base: Recipe, variants: dict[str, Recipe], seeds: int, jobs: int, resamples: int,
                    plugins: Sequence[str] = ()) -> tuple[dict[str, Verdict], int]:
    """The rows on several seeds: the paired verdict of each row against the row above
    and against the first row, and the number of seeds."""
    from harness import comparison

    comparison.check_options(seeds, jobs, resamples)
    labels = {row: f"row{k}" for k, row in enumerate(variants)}
    # Each row under the base recipe's name: a row is then the same arm as the recipe
    # it equals, and a later `auh compare` of two rows reuses their runs.
    arms = {labels[row]: r.with_run(name=base.run.name) for row, r in variants.items()}
    study = comparison.Study(comparison.study_root("ablate", {"base": base}), arms,
                             comparison.seed_list(seeds, base.run.seed), tuple(plugins))
    comparison.check_study(study)
    study.prepare()
    study.run(jobs)
    rows = list(variants)
    verdicts: dict[str, Verdict] = {}
    for k, row in enumerate(rows[1:], 1):
        for other in dict.fromkeys([rows[k - 1], rows[0]]):
            verdicts[f"{row} vs {other}"] = study.verdict(labels[other], labels[row], a_name=other, b_name=row,
                                                          resamples=resamples)
    comparison.finish(study, verdicts)
    return verdicts, len(study.seeds)


def ablation_table(rows: list[str], verdicts: dict[str, Any], legend: str, n_seeds: int) -> str:
    """Markdown: mean +- t half-width across seeds of Acc / F1 / Avg per row, and each
    row's verdict on Avg against the row above and the first row."""
    from harness.verdict import t_interval

    def cell(values: tuple[float, ...]) -> str:
        lo, hi = t_interval(values)
        return f"{(lo + hi) / 2:.3f} +- {(hi - lo) / 2:.3f}"

    def step(v: Any) -> str:
        m = v.metrics["final"]
        return (f"{m.mean_diff:+.3f} [{m.bootstrap_interval[0]:+.3f}, {m.bootstrap_interval[1]:+.3f}], "
                f"P={m.p_b_better:.2f}: {m.verdict.replace('B ', '')}")

    lines = ["| method | Acc | F1 | Avg | vs row above | vs first row |", "|---|---|---|---|---|---|"]
    for k, row in enumerate(rows):
        # A row's per-seed values: arm B of its step, or arm A of the first step for the first row.
        step_of = verdicts[f"{rows[max(k, 1)]} vs {rows[max(k, 1) - 1]}"]
        arm = "b" if k else "a"
        cells = [cell(getattr(step_of.metrics[m], arm)) for m in ("accuracy", "f1", "final")]
        above = step(verdicts[f"{row} vs {rows[k - 1]}"]) if k else ""
        first = step(verdicts[f"{row} vs {rows[0]}"]) if k > 1 else ""
        lines.append(f"| {row} | {' | '.join(cells)} | {above} | {first} |")
    return "\n".join(lines + ["", f"{n_seeds} seeds; mean +- 95% t-interval across seeds. Steps: "
                                   f"mean difference of Avg, two-level bootstrap 95% interval (seeds "
                                   f"and test images), P(B > A), verdict.", legend])
