"""Every hook of au-harness, with its contract.

A plugin is a plain module (or object) with functions decorated by
``harness.hookimpl`` whose names match the specs below. Two families:

* **Registration hooks** (one per component kind) return ``{name: factory}``.
  ``factory(**params)`` builds the component; the recipe's table for that
  component supplies ``params``. Names are global per kind: two plugins that
  register the same name are an error naming both. A name ending in ``:*``
  (``"timm:*"``) registers a family: ``create("backbone", "timm:resnet18")``
  calls that factory with ``"resnet18"`` as its first argument.
* **Lifecycle hooks** are called by the pipeline and the scorer so that
  tracking, logging or notifications are themselves plugins. They must not
  change results; an exception in one aborts the run (loudly, by design).

What each component must do (its protocol: methods, shapes and dtypes, the
keywords the harness passes to its factory, optional capabilities, the
fitting convention) is stated once, in :mod:`harness.protocols`; the
conformance kit :func:`harness.testing.check_component` checks it.
"""
from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, Callable, ContextManager

import pluggy

if TYPE_CHECKING:  # the real classes, for readers and type checkers; not imported at run time
    import argparse
    from pathlib import Path

    from harness.comparison import Study
    from harness.pipeline import RunView
    from harness.recipe import Recipe
    from harness.results import RunResult
    from harness.verdict import Verdict

hookspec = pluggy.HookspecMarker("au_harness")

Factories = dict[str, Callable[..., Any]]


# ---------------------------------------------------------------- registration
def _registration(name: str, contract: str) -> Callable[[], Factories]:
    """A registration hook: no arguments, returns ``{name: factory}`` (the rules are in
    the module docstring); ``contract`` says what each factory builds."""

    def hook() -> Factories: ...

    hook.__name__ = hook.__qualname__ = name
    hook.__doc__ = inspect.cleandoc(contract)
    return hookspec(hook)


# Every registration hook has this one shape; what differs is its contract.
auh_aligners = _registration("auh_aligners", """
    Register face aligners: ``{name: factory(size, **params)}``, each a
    :class:`harness.protocols.Aligner`.""")

auh_backbones = _registration("auh_backbones", """
    Register backbones: ``{name: factory(num_classes, input_size, **params)}``, each a
    :class:`harness.protocols.Backbone`.""")

auh_samplers = _registration("auh_samplers", """
    Register epoch samplers: ``{name: factory(**params)}``, each a
    :class:`harness.protocols.Sampler`. The engine asks it for every epoch's row order
    with a seed derived from the run's seed, the stage and the epoch, so a rerun draws the same rows.""")

auh_losses = _registration("auh_losses", """
    Register multi-label losses: ``{name: factory(**params)}``, each a
    :class:`harness.protocols.Loss` (an ``nn.Module`` of logits and labels whose unknown
    entries, 999, must not count).""")

auh_ensemblers = _registration("auh_ensemblers", """
    Register view ensemblers: ``{name: factory(**params)}``, each a
    :class:`harness.protocols.Ensembler`; one that takes ``metric`` is given the dataset's
    benchmark metric, for fitting its weights on validation.""")

auh_thresholders = _registration("auh_thresholders", """
    Register per-AU threshold pickers: ``{name: factory}``, each a
    :class:`harness.protocols.Thresholder`.""")

auh_smoothers = _registration("auh_smoothers", """
    Register temporal smoothers of per-frame probabilities: ``{name: factory}``, each a
    :class:`harness.protocols.Smoother`.""")

auh_datasets = _registration("auh_datasets", """
    Register datasets: ``{name: factory(**params) -> harness.data.AUDataset}``
    (:class:`harness.protocols.Dataset`).""")

auh_readers = _registration("auh_readers", """
    Register readers of other tools' AU outputs (``auh score --from NAME``):
    ``{name: factory}``, each a :class:`harness.protocols.Reader`.""")

auh_benchmarks = _registration("auh_benchmarks", """
    Register benchmarks (``--benchmark NAME``, ``benchmark = "NAME"`` in a challenge):
    ``{name: factory() -> harness.benchmark.Benchmark}`` (:class:`harness.protocols.BenchmarkFactory`).
    The factory's docstring is its line in ``auh plugins``.""")

auh_metrics = _registration("auh_metrics", """
    Register metrics, the headline score a benchmark names:
    ``{name: factory() -> harness.metrics.Metric}`` (:class:`harness.protocols.MetricFactory`).""")


@hookspec
def auh_add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``auh`` subcommands: ``harness.cli.add_command(subparsers, name, handler)``
    where ``handler(args) -> int`` returns the exit status and its docstring is
    the command's help (first line) and description (the rest).

    The only way a command is added, the built-in ones included (``auh run``
    comes from :mod:`harness.core_cli`); plugins are asked in registration order."""


@hookspec(firstresult=True)
def auh_ablation(recipe: Recipe) -> tuple[list[tuple[str, Recipe | dict[str, Any]]], str] | None:
    """``auh ablate``'s rows for a resolved ``recipe``: ``([(row name, recipe), ...],
    legend)``, each row a :class:`harness.recipe.Recipe` (derive one with
    ``dataclasses.replace``) or a plain recipe dict (resolved and checked by the core),
    rows in table order, the legend a line under the table saying what the
    rows' words mean. The first answer counts, and plugins loaded after the built-ins
    (entry points, ``--plugin``) are asked first; the paper's Table 2 comes from
    :mod:`plugins.recipes.ablation`. Refuse a recipe that cannot be ablated with
    ``harness.errors.UserError``."""


@hookspec(firstresult=True)
def auh_open_bundle(source: str, tracking_uri: str | None) -> ContextManager[Path] | None:
    """A model bundle named by something other than a folder (``auh predict
    SOURCE``): return a context manager whose value is the bundle folder
    while it is open (e.g. downloaded into a temporary folder), or ``None``
    when ``source`` is not this plugin's kind. The tracking plugin opens MLflow
    model URIs (``runs:/<id>/model``, ``models:/<name>/<version>``) at
    ``tracking_uri`` (``None``: as the other commands resolve it)."""


# ------------------------------------------------------------------- lifecycle
@hookspec
def auh_check_recipe(recipe: Recipe) -> None:
    """Refuse a resolved ``recipe`` before a run writes anything: raise
    ``harness.errors.UserError`` naming the field and what was expected.
    Called after every component the recipe names has been built once;
    must not write anything (no files, no tracking runs)."""


@hookspec
def auh_run_start(run: RunView) -> None:
    """A pipeline run begins. ``run`` is a read-only :class:`harness.pipeline.RunView`:
    ``run.recipe`` (the frozen :class:`harness.recipe.Recipe`), ``run.out_dir``,
    ``run.run_id`` (stable across ``--resume``), ``run.resumed``, ``run.stages``,
    and ``run.state``, the one writable part (saved in the run folder: a
    plugin's own key, and what it reports: the rule is in :mod:`harness.results`)."""


@hookspec
def auh_stage_start(run: RunView, stage: str) -> None:
    """A stage begins. ``stage`` is a '/'-path such as ``fold/0/face/finetune``."""


@hookspec
def auh_epoch_end(run: RunView, stage: str, epoch: int, metrics: dict[str, float]) -> None:
    """An epoch of ``stage`` ended (``epoch`` counts from 0). ``metrics``: ``loss`` (the
    epoch's mean training loss) and ``lr``; for AU fine-tuning stages also the validation
    rows' ``val/final``, ``val/accuracy``, ``val/f1`` and ``au/<AU>/f1`` (thresholds 0.5)."""


@hookspec
def auh_stage_end(run: RunView, stage: str, metrics: dict[str, float], artifacts: dict[str, str]) -> None:
    """A stage ended. Training stages (``.../pretrain``, ``.../finetune``) give their last
    epoch's ``metrics`` (as in :func:`auh_epoch_end`); an ensemble stage
    (``<split>/ensemble``) gives the test rows' ``final``, ``accuracy``, ``f1`` and
    ``view/<view>/final``, with ``artifacts`` ``{name: file path}`` (its thresholds and
    predictions)."""


@hookspec
def auh_run_end(run: RunView, result: RunResult) -> None:
    """A pipeline run ended. ``result`` is a :class:`harness.results.RunResult`, read-only
    (scores, folds, baselines, bundle, ...). What a plugin learns about the run (an id, a
    link) goes in ``run.state``, as :mod:`harness.results` states."""


@hookspec
def auh_compare_end(study: Study, verdicts: dict[str, Verdict]) -> None:
    """A comparison (``auh compare``, ``auh ablate --seeds``) has its verdicts.

    ``study`` is a ``harness.comparison.Study``: ``root`` (its folder),
    ``arms`` (label -> resolved recipe), ``seeds``, ``finished(label, seed)``
    (an arm-seed's run folder) and ``state`` (a dict saved in the study
    folder: keep ids there to find the same records when the study is
    extended). ``verdicts`` maps a title ("B vs A") to a
    ``harness.verdict.Verdict``. Must not change either."""


@hookspec
def auh_scored(score: dict[str, Any], context: dict[str, Any]) -> None:
    """A submission was validated and scored (``auh score``). ``score`` is the
    JSON object of the scorecard; ``context`` has ``team``, ``phase``,
    ``submission``, ``truth`` and the ledger ``run_id``."""
