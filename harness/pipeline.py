"""``auh run``: align -> views (pretrain, fine-tune) -> ensemble -> thresholds -> score.

The pipeline knows stages, not methods: every component comes from the
registry by the name in the recipe, and every stage announces itself through
the lifecycle hooks (tracking is a plugin). Each stage writes its results
under the run folder before the next starts, so ``--resume`` skips finished
stages and continues an unfinished one from its last epoch checkpoint.

The recipe (:class:`harness.recipe.Recipe`) is read once, at the boundary;
what a run does with it (device, thread plan, splits, every stage by name) is
its :class:`RunPlan`, computed once before anything is written; where it
writes is its :class:`harness.run_folder.RunFolder`.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from harness import distributed, threads
from harness import recipe as recipes
from harness.augment import Augment
from harness.data import AUDataset, LabelledImages, cache_root
from harness.errors import UserError
from harness.fileio import atomic_open, atomic_path, check_output_folder
from harness.benchmark import benchmark_of
from harness.metrics import (SCORE_KEYS, Metric, bootstrap_ci, challenge_score, default_metric, get_metric,
                             named, sigmoid)
from harness.progress import note
from harness.protocols import IR_NORMALIZATION, capabilities
from harness.recipe import Recipe
from harness.registry import get_registry
from harness.results import REPORTS, FoldResult, RunResult, read_only
from harness.rounds import Split, evaluation_splits
from harness.run_folder import RunFolder, new_run_folder, run_folders
from harness.schema import POSITIVE, UNKNOWN
from harness.smoothing import smooth_by_group
from harness.training import (Checkpoint, StageConfig, Task, derive_seed, predict_logits, resolve_device,
                              train_stage)
from harness.weights import load_weights

# Outputs of the dry build that checks a view's backbone table before any work: any
# number tells whether the factory takes the table (the real head follows the dataset).
DRY_BUILD_OUTPUTS = 2


PROTOCOL = "protocol"  # the key of state.json and result.json that records RunPlan.protocol


@dataclass(frozen=True)
class RunPlan:
    """What a run does, computed once from its recipe and dataset before anything is
    written: the device, the thread plan, the evaluation rounds, and every stage by name.

    A stage is a '/'-path: ``<view>/pretrain`` (once per view that pretrains), then for
    each round (``split``, or ``fold/<k>``) ``<round>/<view>/finetune`` per view and
    ``<round>/ensemble``. Its folder in the run folder has the same path.
    """

    device: str
    threads: threads.Plan
    splits: tuple[Split, ...]
    views: tuple[str, ...]
    pretrained: tuple[str, ...]  # the views with a pretraining stage
    # how rounds were drawn (benchmark, metric, the fold manifest and its sha256, repeats):
    # recorded in state.json, result.json and the tracking run
    protocol: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def pretrain_stage(view: str) -> str:
        return f"{view}/pretrain"

    @staticmethod
    def finetune_stage(split: str, view: str) -> str:
        return f"{split}/{view}/finetune"

    @staticmethod
    def ensemble_stage(split: str) -> str:
        return f"{split}/ensemble"

    @property
    def stages(self) -> tuple[str, ...]:
        """Every stage of the run, in order."""
        rounds = [[self.finetune_stage(s.name, v) for v in self.views] + [self.ensemble_stage(s.name)]
                  for s in self.splits]
        return tuple([self.pretrain_stage(v) for v in self.pretrained] + [st for r in rounds for st in r])


def plan_run(recipe: Recipe, dataset: AUDataset) -> RunPlan:
    """The :class:`RunPlan` of ``recipe`` on ``dataset`` (refuses a dataset without the
    recipe's evaluation rounds)."""
    device = device_of(recipe)
    benchmark = benchmark_of(dataset.schema)
    evaluation = recipe.evaluation
    protocol = {"benchmark": benchmark.name, "metric": benchmark.metric, "mode": evaluation.mode,
                **({"folds": evaluation.folds, "repeats": evaluation.repeats} if evaluation.mode == "kfold" else {}),
                **dataset.partition}
    return RunPlan(device, threads.plan(device, recipe.train.workers, local_ranks=distributed.local_world_size()),
                   tuple(evaluation_splits(dataset, recipe)), tuple(recipe.views),
                   tuple(v for v, spec in recipe.views.items() if spec.pretrain != "none"), protocol)


@dataclass(frozen=True)
class RunView:
    """What lifecycle hooks see of a run (see ``harness.hookspecs``): read-only,
    except ``state``, the plugins' channel.

    ``recipe`` is the :class:`harness.recipe.Recipe` (frozen). ``state`` is saved
    as the run folder's ``state.json`` (and read back on ``--resume``); a plugin
    keeps its own entries there under its own key, and reports what it learned
    as :mod:`harness.results` states (the reports rule).
    """

    recipe: Recipe
    out_dir: Path
    run_id: str
    resumed: bool
    tracking_uri: str
    state: dict[str, Any]
    stages: tuple[str, ...]


@dataclass
class RunContext:
    """The pipeline's own record of a run; lifecycle hooks get its :attr:`view`."""

    recipe: Recipe
    folder: RunFolder
    run_id: str
    resumed: bool
    plan: RunPlan
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def out_dir(self) -> Path:
        return self.folder.path

    @property
    def view(self) -> RunView:
        """The read-only :class:`RunView` handed to lifecycle hooks (``state`` is shared)."""
        return RunView(self.recipe, self.out_dir, self.run_id, self.resumed, self.recipe.run.tracking_uri,
                       self.state, self.plan.stages)

    def announce(self, stage: str) -> None:
        """A line that stays on the terminal: where ``stage`` is in the whole run."""
        if distributed.is_main():
            stages = self.plan.stages
            note(f"stage {stages.index(stage) + 1} of {len(stages)}: {stage}")

    def save_state(self) -> None:
        if distributed.is_main():
            self.folder.write_state(self.state)


# ---------------------------------------------------------------- run folder
def prepare_run(recipe: Recipe, plan: RunPlan, resume: bool) -> RunContext:
    """Pick the run folder: a new ``output/name[-k]``, or with ``resume`` the latest one.

    Under torchrun rank 0 decides and every rank gets the same folder and id.
    """
    info = _prepare_run(recipe, plan, resume) if distributed.is_main() else None
    return distributed.broadcast(info)


def _prepare_run(recipe: Recipe, plan: RunPlan, resume: bool) -> RunContext:
    existing = run_folders(recipe.run.output, recipe.run.name)
    digest = recipes.digest(recipe)
    if resume and not existing:
        # Deliberate: `auh run --resume` is the one command a job scheduler reruns
        # after a kill, and a kill may come before the run folder exists.
        note(f"auh: --resume: no run of {recipe.run.name!r} under {Path(recipe.run.output)} yet; "
             f"starting a new one")
    if resume and existing:
        folder = existing[-1]
        state = folder.read_state()
        if state.get(RunFolder.DIGEST) != digest:
            raise UserError(f"--resume: {folder.path} was started with a different recipe; "
                            f"resume with the same recipe and --set values")
        return RunContext(recipe, folder, state[RunFolder.RUN_ID], True, plan, state)
    folder = new_run_folder(recipe.run.output, recipe.run.name)
    run_id = hashlib.sha1(f"{folder.path.resolve()}/{time.time_ns()}".encode()).hexdigest()[:16]
    info = RunContext(recipe, folder, run_id, False, plan,
                      {RunFolder.RUN_ID: run_id, RunFolder.DIGEST: digest, RunFolder.FINISHED: False,
                       PROTOCOL: plan.protocol})
    with atomic_open(folder.recipe_file) as fh:
        fh.write(recipes.dumps(recipe))
    info.save_state()
    return info


# ----------------------------------------------------------------- the run
def run(recipe: Recipe, resume: bool = False) -> RunResult:
    """Run the whole pipeline for a resolved recipe (see :class:`harness.results.RunResult`)."""
    _set_determinism(recipe)
    dataset = preflight(recipe)
    plan = plan_run(recipe, dataset)
    distributed.setup(plan.device)
    threads.apply(plan.threads)  # once, before any work: every stage runs alike
    info = prepare_run(recipe, plan, resume)
    hook = hooks()
    hook.auh_run_start(run=info.view)
    info.save_state()

    aus = list(dataset.schema.aus)
    faces = align(dataset.images, recipe, dataset.landmarks, dataset.root)
    pretrained = {v: pretrain_view(info, v, dataset) for v in plan.views}
    fold_results = [run_split(info, split, dataset, faces, pretrained) for split in plan.splits]
    result = pool_and_save(info, fold_results, dataset, aus, faces)
    if distributed.is_main():
        with atomic_open(info.folder.result_file) as fh:
            json.dump(result.to_json(), fh, indent=1)
    info.state[RunFolder.FINISHED] = True
    info.save_state()
    hook.auh_run_end(run=info.view, result=result)  # read-only: what plugins learn goes in run.state
    info.save_state()
    return result.with_reports(info.state.get(REPORTS, {}))


def preflight(recipe: Recipe) -> AUDataset:
    """Check everything ``recipe`` names before anything is written; return its dataset.

    Every component is built once (a factory that refuses its parameters,
    or fails, is an error naming the recipe field), the device, the output
    and cache folders, ``init`` files and pretraining companions are
    checked, and plugins may refuse the recipe (``auh_check_recipe``): a
    refused recipe leaves no run folder, face cache or tracking run. The
    dataset is built last, since building it may fill its own data cache
    (only its companions are checked after it).
    """
    return preflight_all([recipe])[0]


def preflight_all(recipe_list: Sequence[Recipe]) -> list[AUDataset]:
    """:func:`preflight` of several recipes (a comparison's arms, an ablation's rows):
    every check that writes nothing, for every recipe, before the first dataset is built."""
    for recipe in recipe_list:
        _check_components(recipe)
    return [_checked_dataset(recipe) for recipe in recipe_list]


def _check_components(recipe: Recipe) -> None:
    device_of(recipe)
    check_output_folder(recipe.run.output, "recipe field run.output")
    check_output_folder(cache_root(), "face cache folder (AUH_CACHE)")
    _in_field("aligner", lambda: make_aligner(recipe))
    for section in ("sampler", "loss", "ensembler", "thresholder", "smoother"):
        _in_field(section, lambda: recipes.build(section, getattr(recipe, section)))
    for view, spec in recipe.views.items():
        # A dry build: any number of outputs tells whether the factory takes the view's table.
        _in_field(f"views.{view}.backbone", lambda: recipes.build(
            "backbone", spec.backbone, num_classes=DRY_BUILD_OUTPUTS, input_size=recipe.train.input_size))
        if spec.init and not Path(spec.init).is_file():
            raise UserError(f"recipe field views.{view}.init: checkpoint {spec.init!r} does not exist")
    hooks().auh_check_recipe(recipe=recipe)


def _checked_dataset(recipe: Recipe) -> AUDataset:
    dataset = _in_field("dataset", lambda: recipes.build("dataset", recipe.dataset))
    for view, spec in recipe.views.items():
        if spec.pretrain != "none" and spec.pretrain not in dataset.companions:
            raise UserError(f"recipe field views.{view}.pretrain: dataset {dataset.name!r} has no "
                            f"{spec.pretrain!r} companion set; available: "
                            f"{', '.join(dataset.companions) or '(none)'}")
    return dataset


def _in_field(path: str, build: Any) -> Any:
    """``build()``, with a refusal prefixed by the recipe field it came from."""
    try:
        return build()
    except UserError as exc:
        if str(exc).startswith("recipe field"):
            raise
        raise UserError(f"recipe field {path}: {exc}") from None


def _set_determinism(recipe: Recipe) -> None:
    torch.manual_seed(recipe.run.seed)
    if recipe.run.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


class _Silent:
    """Lifecycle hooks on ranks other than 0: calls that do nothing."""

    def __getattr__(self, name: str) -> Any:
        return lambda **kwargs: None


def hooks() -> Any:
    """The lifecycle hooks, called by rank 0 only (one MLflow run, not one per rank)."""
    return get_registry().hook if distributed.is_main() else _Silent()


def device_of(recipe: Recipe) -> str:
    wanted = resolve_device(recipe.run.device, "recipe field run.device")
    if wanted == "cuda" and distributed.world_size() > 1:
        return f"cuda:{os.environ.get('LOCAL_RANK', '0')}"
    return wanted


# --------------------------------------------------------------- alignment
def make_aligner(recipe: Recipe) -> Any:
    return recipes.build("aligner", recipe.aligner, size=recipe.train.input_size)


def align(images: list[Path], recipe: Recipe, landmarks: np.ndarray | None = None,
          root: Path | None = None) -> Any:
    """The aligned-face cache for ``images`` (built on first use, then reused).

    With ``root`` the cache is keyed by paths relative to it, so moving the
    dataset keeps its cache.
    """
    from harness.facecache import build_cache

    aligner = make_aligner(recipe)
    return build_cache(images, aligner, cache_root() / "faces", landmarks=landmarks, root=root,
                       workers=max(1, recipe.train.workers),
                       rank=distributed.rank(), world_size=distributed.world_size())


# ---------------------------------------------------------------- training
def stage_config(recipe: Recipe, plan: RunPlan, pretraining: bool = False) -> StageConfig:
    train = recipe.train
    table = recipe.pretrain if pretraining else train
    return StageConfig(
        epochs=table.epochs, batch_size=table.batch_size, lr=table.lr,
        momentum=train.momentum, weight_decay=train.weight_decay, lr_step=train.lr_step,
        lr_gamma=train.lr_gamma, workers=plan.threads.workers, amp=train.amp,
        channels_last=train.channels_last, max_steps=train.max_steps,
        seed=recipe.run.seed, device=plan.device,
        augment=Augment(tuple(map(float, train.augment_scale)), train.augment_shift, train.augment_jitter))


def checkpoint(info: RunContext, stage: str) -> Checkpoint:
    return Checkpoint(info.folder.stage(stage), keep_epochs=info.recipe.train.keep_epochs)


def new_backbone(recipe: Recipe, view: str, num_classes: int, stage: str) -> torch.nn.Module:
    """A freshly initialised backbone for ``stage``.

    Its random initialisation is seeded from ``(seed, stage)``, not from
    whatever the global generator went through before: a resumed run skips
    finished stages, and must still build the same models.
    """
    torch.manual_seed(derive_seed(recipe.run.seed, stage, "init"))
    return recipes.build("backbone", recipe.views[view].backbone, num_classes=num_classes,
                         input_size=recipe.train.input_size)


def pretrain_view(info: RunContext, view: str, dataset: AUDataset) -> Path | None:
    """The view's starting weights: a pretraining stage, an ``init`` checkpoint, or none.

    Pretraining does not depend on the AU folds, so it runs once per view.
    """
    recipe = info.recipe
    spec = recipe.views[view]
    if spec.pretrain == "none":
        return Path(spec.init) if spec.init else None
    companion = dataset.companions[spec.pretrain]  # present: checked by preflight
    stage = RunPlan.pretrain_stage(view)
    info.announce(stage)
    model = new_backbone(recipe, view, len(companion.classes), stage)
    if spec.init:
        _init_weights(model, spec.init, f"views.{view}.init",
                      (spec.pretrain, len(companion.classes), "the checkpoint's head"))
    faces = align(companion.images, recipe, companion.landmarks, dataset.root)
    task = classification_task(companion, faces, recipe)
    cfg = stage_config(recipe, info.plan, pretraining=True)
    _stage(info, stage, lambda: train_stage(model, task, cfg, recipe.train.input_size,
                                            checkpoint(info, stage), stage,
                                            _epoch_hook(info, stage, cfg.epochs)))
    return info.folder.final_weights(stage)


def classification_task(companion: LabelledImages, faces: Any, recipe: Recipe) -> Task:
    n = len(companion.targets)
    return Task(images=faces, targets=companion.targets,
                order=lambda seed: np.random.default_rng(seed).permutation(n),
                loss=torch.nn.CrossEntropyLoss(), flip_perm=[] if recipe.train.flip else None)


def run_split(info: RunContext, split: Split, dataset: AUDataset, faces: Any,
              pretrained: dict[str, Path | None]) -> FoldResult:
    """Fine-tune every view on one split, ensemble, fit thresholds on val, score test."""
    recipe = info.recipe
    labels, aus = dataset.labels, list(dataset.schema.aus)
    smoother = recipes.build("smoother", recipe.smoother)

    def smooth(probs: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Per video, before any threshold is fitted or applied (image-level datasets: as is)."""
        return smooth_by_group(smoother, probs, None if dataset.groups is None else dataset.groups[rows])
    val_probs, test_probs, val_logits, test_logits = [], [], [], []
    view_scores: dict[str, float] = {}
    normalization = {}
    for view in recipe.views:
        logits = finetune_view(info, RunPlan.finetune_stage(split.name, view), view, split, dataset, faces,
                               pretrained[view])
        normalization[view] = logits["normalization"]
        val_logits.append(logits["val"])
        test_logits.append(logits["test"])
        val_probs.append(sigmoid(logits["val"]))
        test_probs.append(sigmoid(logits["test"]))
    ens_stage = RunPlan.ensemble_stage(split.name)
    info.announce(ens_stage)
    hooks().auh_stage_start(run=info.view, stage=ens_stage)
    metric = dataset_metric(dataset)
    ensembler = build_for_metric("ensembler", recipe.ensembler, metric)
    if "fit" in capabilities(ensembler):
        ensembler.fit(val_probs, labels[split.val], make_thresholder(recipe, metric))
    val_ens = smooth(ensembler.combine(val_probs, logits=val_logits), split.val)
    test_ens = smooth(ensembler.combine(test_probs, logits=test_logits), split.test)
    thresholds = fit_thresholds(recipe, val_ens, labels[split.val], metric)
    test_pred = (test_ens >= thresholds).astype(np.int64)
    score = challenge_score(test_pred, labels[split.test], aus, metric)
    for i, view in enumerate(recipe.views):  # each view alone, thresholded the same way
        view_pred = smooth(test_probs[i], split.test) >= fit_thresholds(
            recipe, smooth(val_probs[i], split.val), labels[split.val], metric)
        view_scores[view] = challenge_score(view_pred.astype(np.int64), labels[split.test], aus, metric)["final"]
    artifacts = (_save_predictions(info.folder.ensemble_files(ens_stage), dataset, split, aus, val_ens,
                                   thresholds, test_pred) if distributed.is_main() else {})
    metrics = {**{k: score[k] for k in SCORE_KEYS}, **{f"view/{v}/final": s for v, s in view_scores.items()}}
    hooks().auh_stage_end(run=info.view, stage=ens_stage, metrics=read_only(metrics), artifacts=read_only(artifacts))
    info.save_state()
    return FoldResult(split.name, score, view_scores, thresholds, split.test, split.val, test_pred, val_ens,
                      ensembler, normalization)


def dataset_metric(dataset: AUDataset) -> Metric:
    """The metric of the benchmark the dataset's schema names: what every score of a run uses."""
    return get_metric(benchmark_of(dataset.schema).metric)


def make_thresholder(recipe: Recipe, metric: Metric) -> Any:
    """The recipe's thresholder; one whose factory takes ``metric`` (``search``) maximizes
    the benchmark's per-AU score unless the recipe names a metric itself."""
    return build_for_metric("thresholder", recipe.thresholder, metric)


def build_for_metric(kind: str, spec: Any, metric: Metric) -> Any:
    """The component ``spec`` names, given the benchmark's ``metric`` (its name) when its
    factory takes one and the recipe sets none."""
    component, _ = get_registry().get(kind, spec.name)
    try:
        takes = "metric" in inspect.signature(component.factory).parameters
    except (TypeError, ValueError):  # a factory without a signature: nothing to pass
        takes = False
    return recipes.build(kind, spec, **({"metric": metric.name} if takes else {}))


def fit_thresholds(recipe: Recipe, val_probs: np.ndarray, val_labels: np.ndarray,
                   metric: Metric | None = None) -> np.ndarray:
    """Per-AU thresholds from the recipe's thresholder, fitted on validation rows only."""
    thresholder = make_thresholder(recipe, metric or default_metric()).fit(val_probs, val_labels)
    return np.asarray(thresholder.thresholds_, dtype=float)


def finetune_view(info: RunContext, stage: str, view: str, split: Split, dataset: AUDataset,
                  faces: Any, start: Path | None) -> dict[str, np.ndarray]:
    """The view's validation and test logits, and ``normalization`` (``[2, 3]``: the
    backbone's input mean and std), from a fine-tuning stage or its saved result."""
    recipe = info.recipe
    preds_file = info.folder.logits(stage)
    if preds_file.is_file():  # finished before a resume
        with np.load(preds_file) as saved:
            # a stage saved before backbones declared normalization used the IR nets' for all
            return {"val": saved["val"], "test": saved["test"],
                    "normalization": saved["normalization"] if "normalization" in saved
                    else np.asarray(IR_NORMALIZATION)}
    info.announce(stage)
    labels = dataset.labels
    model = new_backbone(recipe, view, len(dataset.schema), stage)
    if start is not None:
        replaced = ("the pretraining head" if recipe.views[view].pretrain != "none"
                    else "the init checkpoint's head")
        _init_weights(model, start, f"views.{view}", ("AU", len(dataset.schema), replaced))
    sampler = recipes.build("sampler", recipe.sampler)
    loss = recipes.build("loss", recipe.loss)
    if "fit" in capabilities(loss):
        loss.fit(labels[split.train])
    cfg = stage_config(recipe, info.plan)
    size = recipe.train.input_size
    train_rows, val_rows = split.train, split.val
    val_crops = _Rows(faces, val_rows)

    def evaluate(m: torch.nn.Module) -> dict[str, float]:
        probs = sigmoid(predict_logits(m, val_crops, size, device=cfg.device, channels_last=cfg.channels_last))
        s = challenge_score((probs >= 0.5).astype(np.int64), labels[val_rows], list(dataset.schema.aus),
                            dataset_metric(dataset))
        out = {f"val/{k}": s[k] for k in SCORE_KEYS}
        out.update({f"au/{au}/f1": v["f1"] for au, v in s["per_au"].items() if v["f1"] is not None})
        return {k: v for k, v in out.items() if v is not None}

    flip = dataset.schema.flip_permutation() if recipe.train.flip else None
    task = Task(images=_Rows(faces, train_rows), targets=labels[train_rows],
                order=lambda seed: sampler.sample(labels[train_rows], seed), loss=loss,
                flip_perm=flip, evaluate=evaluate)
    _stage(info, stage, lambda: train_stage(model, task, cfg, size, checkpoint(info, stage), stage,
                                            _epoch_hook(info, stage, cfg.epochs)))
    logits = {part: predict_logits(model, _Rows(faces, rows), size, device=cfg.device,
                                   channels_last=cfg.channels_last)
              for part, rows in (("val", split.val), ("test", split.test))}
    logits["normalization"] = np.asarray(model.normalization, dtype=np.float64)
    if distributed.is_main():
        with atomic_path(preds_file) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **logits)
    return logits


class _Rows:
    """Rows ``rows`` of a face cache, indexed from 0 (no copy)."""

    def __init__(self, faces: Any, rows: np.ndarray) -> None:
        self.faces, self.rows = faces, np.asarray(rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.faces[int(self.rows[i])]


def _init_weights(model: torch.nn.Module, path: str | Path, field: str,
                  head: tuple[str, int, str] | None = None) -> None:
    """Load starting weights into ``model``; say what did not fit.

    ``head`` is ``(task, outputs, what it replaces)``: a checkpoint whose only
    misfit is a classifier of another size is the expected case (a new head
    for this task), and is said so rather than reported as a mismatch.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"recipe field {field}: checkpoint {str(path)!r} does not exist")
    report = load_weights(model, path)
    if head and report.mismatched and not report.missing and not report.unexpected:
        shapes = model.state_dict()
        if all(shapes[k].shape[0] == head[1] for k in report.mismatched):
            note(f"auh: {field}: new {head[0]} head ({head[1]} outputs) in place of {head[2]}")
            return
    if report.missing or report.unexpected or report.mismatched:
        note(f"auh: {field} = {str(path)!r}: {report.summary()}")


def _stage(info: RunContext, stage: str, body: Any) -> None:
    hook = hooks()
    hook.auh_stage_start(run=info.view, stage=stage)
    info.save_state()
    metrics = body()
    hook.auh_stage_end(run=info.view, stage=stage, metrics=read_only(metrics), artifacts=read_only({}))
    info.save_state()


def _epoch_hook(info: RunContext, stage: str, epochs: int) -> Any:
    def on_epoch_end(epoch: int, metrics: dict[str, float]) -> None:
        note(epoch_line(stage, epoch, epochs, metrics))
        hooks().auh_epoch_end(run=info.view, stage=stage, epoch=epoch, metrics=read_only(metrics))
        info.save_state()
    return on_epoch_end


def epoch_line(stage: str, epoch: int, epochs: int, metrics: dict[str, float]) -> str:
    """``face/pretrain epoch 2/5: loss 1.2345`` (and the validation scores, where there are)."""
    parts = [f"loss {metrics['loss']:.4f}"] + [
        f"val {k} {metrics['val/' + k]:.4f}" for k in SCORE_KEYS if f"val/{k}" in metrics]
    return f"{stage} epoch {epoch + 1}/{epochs}: {', '.join(parts)}"


def _save_predictions(paths: dict[str, Path], dataset: AUDataset, split: Split, aus: list[str],
                      val_probs: np.ndarray, thresholds: np.ndarray, test_pred: np.ndarray) -> dict[str, str]:
    from harness.labels import write_predictions

    paths["thresholds"].parent.mkdir(parents=True, exist_ok=True)
    names = dataset.names
    with atomic_open(paths["thresholds"]) as fh:
        json.dump(dict(zip(aus, map(float, thresholds))), fh, indent=1)
    with atomic_path(paths["val_probs"]) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, probs=val_probs, labels=dataset.labels[split.val],
                 names=np.array([names[i] for i in split.val]))
    write_predictions(paths["test_submission"], [names[i] for i in split.test], test_pred, dataset.schema)
    return {k: str(v) for k, v in paths.items()}


# ---------------------------------------------------------------- summary
def save_test_predictions(path: Path, names: list[str], pred: np.ndarray, labels: np.ndarray,
                          aus: list[str]) -> Path:
    """The pooled test rows of a run (image names, 0/1 predictions, truth): what
    ``auh compare`` pairs across arms, image by image."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, names=np.array(names), pred=pred.astype(np.int8), labels=labels.astype(np.int16),
                 aus=np.array(aus))
    return path


def baselines(dataset: AUDataset, splits: list[Split] | tuple[Split, ...], seed: int) -> dict[str, dict[str, Any]]:
    """Trivial predictors on the pooled test rows of ``splits``: all zeros, and
    draws at each AU's prior, taken for each split from its own training rows
    (a fold's test rows are never part of the prior they are scored against)."""
    labels, aus = dataset.labels, list(dataset.schema.aus)
    rng = np.random.default_rng(seed)
    test = np.concatenate([s.test for s in splits])
    draws = []
    for split in splits:
        train = labels[split.train]
        prior = (train == POSITIVE).sum(0) / np.maximum((train != UNKNOWN).sum(0), 1)
        draws.append((rng.random((len(split.test), len(aus))) < prior).astype(np.int64))
    metric = dataset_metric(dataset)
    return {"all_zeros": challenge_score(np.zeros((len(test), len(aus)), np.int64), labels[test], aus, metric),
            "prior": challenge_score(np.concatenate(draws), labels[test], aus, metric)}


def pool_and_save(info: RunContext, folds: list[FoldResult], dataset: AUDataset, aus: list[str],
                  faces: Any) -> RunResult:
    """Pool the test predictions of every split, score them with a CI, and write the
    pooled test rows and the model bundle into the run folder."""
    recipe = info.recipe
    test_rows = np.concatenate([f.test_rows for f in folds])
    pred = np.concatenate([f.test_pred for f in folds])
    metric = dataset_metric(dataset)
    scores = {**challenge_score(pred, dataset.labels[test_rows], aus, metric),
              **named(benchmark_of(dataset.schema).name, metric)}
    if recipe.evaluation.bootstrap:
        scores["ci95"] = bootstrap_ci(pred, dataset.labels[test_rows], recipe.evaluation.bootstrap,
                                      seed=recipe.run.seed, metric=metric)
    finals = np.array([f.score["final"] for f in folds], dtype=float)
    first = folds[0]
    if distributed.is_main():  # the first split's models: the fixed split, or fold 0 of k
        from harness.bundle import save_bundle

        # With repeated partitions a row is tested once per partition: its name says which,
        # so `auh compare` pairs arms on the same (seed, partition) row by row.
        names = dataset.names
        tested = [(f"partition-{s.partition}/" if recipe.evaluation.repeats > 1 else "") + names[i]
                  for s in info.plan.splits for i in s.test]
        save_test_predictions(info.folder.test_predictions, tested, pred, dataset.labels[test_rows], aus)
        save_bundle(info.folder.bundle, recipe, dataset.schema,
                    {v: info.folder.final_weights(RunPlan.finetune_stage(first.name, v)) for v in recipe.views},
                    first.thresholds, first.ensembler, first.normalization)
    return RunResult(
        scores=scores, folds=tuple(folds),
        cv={"mean": float(finals.mean()), "std": float(finals.std(ddof=1)) if len(finals) > 1 else 0.0,
            "n_folds": len(folds)},
        view_final={v: float(np.mean([f.view_final[v] for f in folds])) for v in recipe.views},
        baselines=baselines(dataset, info.plan.splits, recipe.run.seed),
        faces={"n": len(faces.found), "not_found": int(np.sum(~np.asarray(faces.found, bool)))},
        bundle=str(info.folder.bundle), out_dir=str(info.out_dir), aus=tuple(aus),
        val_labels=dataset.labels[first.val_rows], protocol=info.plan.protocol)
