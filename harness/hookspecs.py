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

The component interfaces (array-shaped; ``C`` = number of AUs, labels use
1 / 0 / 999 with 999 = unknown):

* aligner: ``align([PIL.Image, ...]) -> [AlignedFace(image, landmarks[5,2], found), ...]``;
  attribute ``cache_key`` (str) identifies its configuration for the crop cache.
* backbone: ``factory(num_classes=C, input_size=S, **params) -> torch.nn.Module``
  mapping ``[B,3,S,S]`` float images to logits ``[B,C]``.
* sampler: ``sample(labels[N,C], seed) -> int64 index array`` for one epoch
  (originals plus any clones, in training order).
* loss: a ``torch.nn.Module`` with ``forward(logits[N,C], labels[N,C]) -> scalar``;
  optionally ``fit(labels[N,C])`` to learn statistics from the training labels,
  and a ``generator`` (``torch.Generator``) for its random choices, which the
  engine reseeds every epoch so that a resumed run replays exactly.
* ensembler: ``combine([probs[N,C], ...], logits=None) -> probs[N,C]``;
  optionally ``fit([probs...], labels)`` on validation predictions.
* thresholder: ``fit(probs[N,C], labels[N,C]) -> thresholds[C]``; ``thresholds_``
  after fitting. Never fitted on test rows.
* dataset: ``factory(**params) -> harness.data.AUDataset``.
* reader: ``read(path) -> harness.tooloutput.ToolOutput`` (another tool's AU
  output file or folder, its columns mapped onto ENC AU names).
"""
from __future__ import annotations

from typing import Any, Callable

import pluggy

hookspec = pluggy.HookspecMarker("au_harness")

Factories = dict[str, Callable[..., Any]]


# ---------------------------------------------------------------- registration
@hookspec
def auh_aligners() -> Factories:
    """Register face aligners: ``{name: factory}``.

    The component's ``align(images)`` takes a list of RGB ``PIL.Image`` and
    returns one ``harness.data.AlignedFace`` per image, in order. An image
    without a face must still yield a crop (``found=False``), never be dropped.
    """


@hookspec
def auh_backbones() -> Factories:
    """Register backbones: ``{name: factory(num_classes, input_size, **params)}``.

    The module maps float images ``[B,3,S,S]`` (normalised to [-1, 1]) to
    logits ``[B,num_classes]``. ``init="path"`` loading of local weights is
    handled by the core, so factories need not implement it.
    """


@hookspec
def auh_samplers() -> Factories:
    """Register epoch samplers: ``{name: factory}``.

    ``sample(labels, seed)`` returns the row indices of one training epoch,
    originals plus any clones, already shuffled; the same ``(labels, seed)``
    must give the same sequence.
    """


@hookspec
def auh_losses() -> Factories:
    """Register multi-label losses: ``{name: factory}`` returning ``torch.nn.Module``.

    ``forward(logits, labels)`` must give rows labelled 999 zero weight. If
    the module has ``fit(labels)``, the pipeline calls it once with the
    training labels before training.
    """


@hookspec
def auh_ensemblers() -> Factories:
    """Register view ensemblers: ``{name: factory}``.

    ``combine(probs_list, logits=None)`` maps the views' probabilities
    (and their logits, for ensemblers that need them) to one ``[N,C]`` array.
    An optional ``fit(probs_list, labels)`` sees validation predictions only.
    """


@hookspec
def auh_thresholders() -> Factories:
    """Register per-AU threshold pickers: ``{name: factory}``.

    ``fit(probs, labels)`` returns ``thresholds[C]``; a score ``>=`` its
    threshold predicts 1. Only validation predictions may be passed to it.
    """


@hookspec
def auh_datasets() -> Factories:
    """Register datasets: ``{name: factory(**params) -> harness.data.AUDataset}``."""


@hookspec
def auh_readers() -> Factories:
    """Register readers of other tools' AU outputs: ``{name: factory}``.

    ``read(path)`` parses what the tool wrote (a file or a folder) into a
    :class:`harness.tooloutput.ToolOutput` whose columns are ENC AU names;
    a malformed file raises :class:`harness.errors.UserError` naming the
    file, the line and what was expected. ``auh score --from NAME`` uses it.
    """


@hookspec
def auh_add_commands(subparsers: Any) -> None:
    """Add ``auh`` subcommands: ``harness.cli.add_command(subparsers, name, handler)``
    where ``handler(args) -> int`` returns the exit status and its docstring is
    the command's help (first line) and description (the rest).

    The only way a command is added, the built-in ones included (``auh run``
    comes from :mod:`harness.commands`); plugins are asked in registration order."""


# ------------------------------------------------------------------- lifecycle
@hookspec
def auh_check_recipe(recipe: dict[str, Any]) -> None:
    """Refuse a resolved ``recipe`` before a run writes anything: raise
    ``harness.errors.UserError`` naming the field and what was expected.
    Called after every component the recipe names has been built once;
    must not write anything (no files, no tracking runs)."""


@hookspec
def auh_run_start(run: Any) -> None:
    """A pipeline run begins. ``run`` is a ``harness.pipeline.RunInfo``:
    ``run.recipe`` (resolved dict), ``run.out_dir``, ``run.run_id`` (stable
    across ``--resume``), ``run.resumed``."""


@hookspec
def auh_stage_start(run: Any, stage: str) -> None:
    """A stage begins. ``stage`` is a '/'-path such as ``fold/0/face/finetune``."""


@hookspec
def auh_epoch_end(run: Any, stage: str, epoch: int, metrics: dict[str, float]) -> None:
    """An epoch of ``stage`` ended; ``metrics`` holds the training loss and,
    for AU stages, validation ``final``, ``accuracy``, ``f1`` and ``au/<AU>/f1``."""


@hookspec
def auh_stage_end(run: Any, stage: str, metrics: dict[str, float], artifacts: dict[str, str]) -> None:
    """A stage ended with its final ``metrics`` and ``{name: file path}`` ``artifacts``."""


@hookspec
def auh_run_end(run: Any, result: dict[str, Any]) -> None:
    """A pipeline run ended. ``result`` has ``scores`` (the challenge score
    dict), ``baselines``, ``bundle`` (path) and ``artifacts`` ({name: path})."""


@hookspec
def auh_compare_end(study: Any, verdicts: dict[str, Any]) -> None:
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
