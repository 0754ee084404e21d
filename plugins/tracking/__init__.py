"""MLflow tracking of ``auh run``, as an ordinary plugin on the lifecycle hooks.

What lands in MLflow (experiment: the recipe's ``run.experiment``):

* one **parent run** per ``auh run`` (named after the run folder); ``--resume``
  continues the same parent run (its id is kept in the run's ``state.json``);
* **nested runs** following the stage path: ``fold/0`` > ``fold/0/face`` >
  ``fold/0/face/finetune`` (a numeric segment joins the one before it);
* **params**: the resolved recipe, flattened (``train.lr``); write-once, so a
  resumed run only adds what is missing. The recipe also as ``recipe.toml``;
* **metrics**: per epoch on the stage run with ``step=epoch``; at the end on the
  parent run: ``final``, ``accuracy``, ``f1``, ``au/AU12/f1``, ``fold/2/final``,
  ``baseline/prior/final``, ``cv/mean``...;
* **artifacts**: stage and run artifacts (thresholds, validation predictions),
  ``plots/`` (per-AU F1 bars, precision-recall and threshold curves from the
  validation predictions), and the model bundle as a pyfunc model (``model/``);
* **tags**: ``git.commit`` (when the working directory is in a git repository),
  ``version.<package>`` for au-harness, torch, timm, mlflow, numpy, and
  ``recipe.sha256``.

Where: ``run.tracking_uri`` (``--tracking-uri`` / recipe) > ``MLFLOW_TRACKING_URI``
> ``sqlite:///mlflow.db`` in the current directory (see :mod:`plugins.tracking.store`).
Off: ``run.tracking_uri = "off"`` in the recipe (or ``--tracking-uri off``), or
the environment variable ``AUH_TRACKING=off``; then nothing is written anywhere.
"""
from __future__ import annotations

import atexit
import hashlib
import json
import math
import numbers
import os
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from harness import hookimpl
from harness import recipe as recipes
from harness.progress import note
from harness.recipe import Recipe
from harness.registry import package_versions
from harness.results import REPORTS
from harness.run_folder import RunFolder
from plugins.tracking import store

OFF = "off"
STATE_KEY = "mlflow"
_BATCH = {"metrics": 1000, "params": 100, "tags": 100}  # MLflow's log_batch limits
_BAD_CHARS = re.compile(r"[^\w.\- /]")


# ------------------------------------------------------------ configuration
def enabled(recipe: Recipe, tracking_uri: str = "") -> bool:
    """False when ``AUH_TRACKING=off`` or the tracking URI (recipe or explicit) is ``off``."""
    settings = (os.environ.get("AUH_TRACKING", ""), tracking_uri, recipe.run.tracking_uri)
    return all(s.strip().lower() != OFF for s in settings)


def tracking_uri(run: Any) -> str:
    """The resolved tracking URI of ``run`` (see :func:`plugins.tracking.store.resolve_tracking_uri`)."""
    return store.resolve_tracking_uri(run.tracking_uri or run.recipe.run.tracking_uri or None)


def metric_key(name: str) -> str:
    """``name`` in the characters MLflow allows in metric and param keys (others -> ``_``),
    without empty, ``.`` or ``..`` path segments."""
    parts = [p for p in _BAD_CHARS.sub("_", str(name)).split("/") if p not in ("", ".", "..")]
    return "/".join(parts) or "_"


def stage_levels(stage: str) -> list[str]:
    """The nested-run paths of ``stage``: ``fold/0/face/finetune`` ->
    ``["fold/0", "fold/0/face", "fold/0/face/finetune"]``."""
    levels: list[str] = []
    for part in (p for p in stage.split("/") if p):
        if part.isdigit() and levels:
            levels[-1] += "/" + part
        else:
            levels.append(part)
    return ["/".join(levels[: i + 1]) for i in range(len(levels))]


# ------------------------------------------------------------------ tracker
@dataclass
class Tracker:
    """The MLflow side of one pipeline run. Its ids live in ``run.state["mlflow"]``
    (``parent_run_id``, ``runs`` {stage path: run id}, ``steps`` {stage: last epoch}),
    which the pipeline persists, so a resumed process picks them up."""

    client: Any
    uri: str
    experiment_id: str
    state: dict[str, Any]
    last_epoch: dict[str, dict[str, Any]] = field(default_factory=dict)  # stage -> its last epoch's metrics

    @property
    def parent(self) -> str:
        return self.state["parent_run_id"]

    def stage_run(self, stage: str, run_id: str) -> str:
        """The run of ``stage``, creating it and its missing ancestors under the parent."""
        parent = self.parent
        for path in stage_levels(stage):
            if path not in self.state["runs"]:
                created = store.with_retry(
                    self.client.create_run, self.experiment_id, run_name=path,
                    tags={"mlflow.parentRunId": parent, "auh.stage": path, "auh.run_id": run_id})
                self.state["runs"][path] = created.info.run_id
            parent = self.state["runs"][path]
        return parent

    def log_metrics(self, run_id: str, metrics: dict[str, Any], step: int = 0) -> None:
        """Numeric, non-None values only; keys made MLflow-safe."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        entries = [Metric(metric_key(k), float(v), now, step) for k, v in metrics.items() if _is_number(v)]
        for chunk in _chunks(entries, _BATCH["metrics"]):
            store.with_retry(self.client.log_batch, run_id, metrics=chunk)

    def log_params(self, run_id: str, params: dict[str, Any]) -> list[str]:
        """Log the params the run lacks; returns the keys whose logged value differs
        (they keep their first value: MLflow params are write-once)."""
        from mlflow.entities import Param

        logged = store.with_retry(self.client.get_run, run_id).data.params
        wanted = {metric_key(k): _param_value(v) for k, v in params.items()}
        new = [Param(k, v) for k, v in wanted.items() if k not in logged]
        for chunk in _chunks(new, _BATCH["params"]):
            store.with_retry(self.client.log_batch, run_id, params=chunk)
        return sorted(k for k, v in wanted.items() if k in logged and logged[k] != v)

    def set_missing_tags(self, run_id: str, tags: dict[str, str]) -> None:
        present = store.with_retry(self.client.get_run, run_id).data.tags
        self.set_tags(run_id, {k: v for k, v in tags.items() if k not in present})

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        for chunk in _chunks([RunTag(k, str(v)) for k, v in tags.items()], _BATCH["tags"]):
            store.with_retry(self.client.log_batch, run_id, tags=chunk)

    def log_files(self, run_id: str, files: dict[str, Any], artifact_path: str | None = None) -> None:
        """Upload each existing file or folder of ``{name: path}``; warn about missing ones."""
        for name, path in files.items():
            path = Path(path)
            if path.is_dir():
                store.with_retry(self.client.log_artifacts, run_id, str(path),
                                 "/".join(p for p in (artifact_path, name) if p))
            elif path.is_file():
                store.with_retry(self.client.log_artifact, run_id, str(path), artifact_path)
            else:
                note(f"auh: tracking: artifact {name!r} ({path}) does not exist; not logged")

    def finish(self, run_id: str, status: str = "FINISHED") -> None:
        store.with_retry(self.client.set_terminated, run_id, status)


_TRACKERS: dict[str, Tracker] = {}  # pipeline run id -> its tracker, while the run is open


def _tracker(run: Any) -> Tracker | None:
    return _TRACKERS.get(run.run_id)


# -------------------------------------------------------------------- hooks
@hookimpl
def auh_open_bundle(source: str, tracking_uri: str | None) -> Any:
    """An MLflow model URI (``runs:/``, ``models:/``) as a bundle folder, downloaded."""
    if not store.MODEL_URI.match(source):
        return None
    from plugins.tracking import pyfunc

    return pyfunc.downloaded_bundle(source, tracking_uri)


@hookimpl
def auh_check_recipe(recipe: Recipe) -> None:
    """A tracking URI that cannot take the run is refused before the run folder exists."""
    if not enabled(recipe):
        return
    store.check_store(store.resolve_tracking_uri(recipe.run.tracking_uri or None))


@hookimpl
def auh_run_start(run: Any) -> None:
    """Open (or, on resume, reopen) the parent run; log recipe params, recipe.toml, tags."""
    if not enabled(run.recipe, run.tracking_uri):
        return
    uri = tracking_uri(run)
    client = store.client_for(uri)
    experiment_id = store.get_or_create_experiment(run.recipe.run.experiment, uri)
    state = run.state.get(STATE_KEY) or {}
    parent = _known_run(client, uri, state, "parent_run_id")
    if state.get("parent_run_id") and not parent:
        note(f"auh: tracking: parent run {state['parent_run_id']} is not in {uri}; starting a new MLflow run")
    opened = _open_run(client, experiment_id, parent, Path(run.out_dir).name,
                       {"auh.run_id": run.run_id, "auh.out_dir": str(Path(run.out_dir).resolve())})
    if not parent:
        state = {"parent_run_id": opened, "runs": {}, "steps": {}}
    state.setdefault("runs", {})
    state.setdefault("steps", {})
    state.update(tracking_uri=uri, experiment_id=experiment_id)
    run.state[STATE_KEY] = state
    tracker = Tracker(client, uri, experiment_id, state)
    _TRACKERS[run.run_id] = tracker

    text = recipes.dumps(run.recipe)
    tracker.set_missing_tags(tracker.parent, run_tags(text))
    # how the rounds were drawn (the benchmark, the fold manifest and its sha256): tags to
    # search by, params to compare runs on
    protocol = {f"protocol.{k}": v for k, v in (run.state.get("protocol") or {}).items()}
    tracker.set_missing_tags(tracker.parent, {f"auh.{k}": str(v) for k, v in protocol.items()})
    changed = tracker.log_params(tracker.parent, {**recipes.flatten(run.recipe), **protocol})
    if changed:
        note(f"auh: tracking: run {tracker.parent} keeps its first value of params "
             f"{', '.join(changed)} (MLflow params are write-once)")
    if not _has_artifact(client, tracker.parent, "recipe.toml"):
        store.with_retry(client.log_text, tracker.parent, text, "recipe.toml")


@hookimpl
def auh_stage_start(run: Any, stage: str) -> None:
    tracker = _tracker(run)
    if tracker is None:
        return
    run_id = tracker.stage_run(stage, run.run_id)
    store.with_retry(tracker.client.update_run, run_id, status="RUNNING")


@hookimpl
def auh_epoch_end(run: Any, stage: str, epoch: int, metrics: dict[str, float]) -> None:
    tracker = _tracker(run)
    if tracker is None:
        return
    tracker.log_metrics(tracker.stage_run(stage, run.run_id), metrics, step=int(epoch))
    tracker.state["steps"][stage] = int(epoch)
    tracker.last_epoch[stage] = dict(metrics)


@hookimpl
def auh_stage_end(run: Any, stage: str, metrics: dict[str, float], artifacts: dict[str, str]) -> None:
    tracker = _tracker(run)
    if tracker is None:
        return
    run_id = tracker.stage_run(stage, run.run_id)
    # At the last epoch's step, so the final value is also the metric's latest one;
    # values that repeat the last epoch's are already there.
    last = tracker.last_epoch.pop(stage, {})
    tracker.log_metrics(run_id, {k: v for k, v in metrics.items() if k not in last or last[k] != v},
                        step=tracker.state["steps"].get(stage, 0))
    tracker.log_files(run_id, artifacts or {})
    tracker.finish(run_id)


@hookimpl
def auh_run_end(run: Any, result: Any) -> None:
    """Scores as metrics, plots, artifacts and the pyfunc model; close every run.
    Reports (the rule: :mod:`harness.results`) ``tracking_uri``, ``experiment_id``,
    ``run_id`` (the parent), ``model_uri`` and ``ui_command`` (what to type to browse it);
    ``result`` (a :class:`harness.results.RunResult`, or its JSON form) is only read."""
    tracker = _TRACKERS.pop(run.run_id, None)
    if tracker is None:
        return
    tracker.log_metrics(tracker.parent, result_metrics(result))
    scores = result.get("scores") or {}
    if "metric" in scores:  # a benchmark other than the default: say which "final" is
        tracker.set_tags(tracker.parent, {"benchmark": scores["benchmark"], "metric": scores["metric"]})
    with tempfile.TemporaryDirectory(prefix="auh-track-") as tmp:
        write_result_files(result, Path(tmp))
        store.with_retry(tracker.client.log_artifacts, tracker.parent, tmp)
    bundle = result.get("bundle")
    model_uri = ""
    if bundle and Path(bundle).is_dir():
        from plugins.tracking.pyfunc import log_bundle_model

        model_uri = log_bundle_model(tracker.client, tracker.parent, bundle, _aus(result))
    _finish_all(tracker, "FINISHED")
    # Where to look, for the scorecard the CLI prints and the caller of harness.pipeline.run.
    run.state.setdefault(REPORTS, {})["tracking"] = {
        "tracking_uri": tracker.uri, "experiment_id": tracker.experiment_id, "run_id": tracker.parent,
        "model_uri": model_uri, "ui_command": store.ui_command(tracker.uri)}


@hookimpl
def auh_compare_end(study: Any, verdicts: dict[str, Any]) -> None:
    """One MLflow run for the comparison, in the arms' experiment: each verdict's
    numbers as metrics and tags, the two figures, ``verdict.json``; the arm-seed
    runs are linked (``compare.<arm>.seed-<s>`` tags) and nested under it. The
    comparison's run id is kept in ``study.state`` so an extended study updates it."""
    first = next(iter(study.arms.values()))
    if not enabled(first):
        return
    uri = store.resolve_tracking_uri(first.run.tracking_uri or None)
    client = store.client_for(uri)
    experiment_id = store.get_or_create_experiment(first.run.experiment, uri)
    run_id = _open_run(client, experiment_id, _known_run(client, uri, study.state.get(STATE_KEY) or {}, "run_id"),
                       Path(study.root).name,
                       {"auh.kind": "comparison", "auh.out_dir": str(Path(study.root).resolve())})
    study.state[STATE_KEY] = {"run_id": run_id, "tracking_uri": uri, "experiment_id": experiment_id}
    tags = {"compare.seeds": ",".join(map(str, study.seeds))}
    for label in study.arms:
        for seed in study.seeds:
            child = _parent_run_of(study.finished(label, seed), uri)
            if child:
                tags[f"compare.{metric_key(label)}.seed-{seed}"] = child
                store.with_retry(client.set_tag, child, "mlflow.parentRunId", run_id)
    metrics: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="auh-compare-") as tmp:
        from plugins.tracking import plots

        for title, verdict in verdicts.items():
            key = metric_key(title.replace(" ", "_"))
            prefix = f"{key}/" if len(verdicts) > 1 else ""
            tags[f"compare.{key}.verdict"] = verdict.verdict
            tags[f"compare.{key}.a"] = verdict.a_name[:5000]
            tags[f"compare.{key}.b"] = verdict.b_name[:5000]
            for m in verdict.metrics.values():
                metrics.update({f"{prefix}{m.metric}/mean_diff": m.mean_diff,
                                f"{prefix}{m.metric}/ci_low": m.bootstrap_interval[0],
                                f"{prefix}{m.metric}/ci_high": m.bootstrap_interval[1],
                                f"{prefix}{m.metric}/p_b_better": m.p_b_better})
            plots.paired_finals(verdict, Path(tmp) / "plots" / f"{key}_paired_finals.png")
            plots.au_differences(verdict, Path(tmp) / "plots" / f"{key}_per_au.png")
        (Path(tmp) / "verdict.json").write_text(
            json.dumps({k: v.to_dict() for k, v in verdicts.items()}, indent=1))
        store.with_retry(client.log_artifacts, run_id, tmp)
    tags["compare.rule"] = next(iter(verdicts.values())).rule
    tracker = Tracker(client, uri, experiment_id, {"parent_run_id": run_id, "runs": {}, "steps": {}})
    tracker.log_metrics(run_id, {k: v for k, v in metrics.items() if math.isfinite(v)})
    tracker.set_tags(run_id, tags)
    tracker.finish(run_id)


def _known_run(client: Any, uri: str, state: dict[str, Any], key: str) -> str | None:
    """The run id ``state[key]``, when ``state`` was kept for ``uri`` and the run still exists there."""
    run_id = state.get(key)
    return run_id if run_id and state.get("tracking_uri") == uri and _exists(client, run_id) else None


def _open_run(client: Any, experiment_id: str, run_id: str | None, name: str, tags: dict[str, str]) -> str:
    """Reopen ``run_id`` (status RUNNING), or, when it is ``None``, create a run ``name`` with ``tags``."""
    if run_id:
        store.with_retry(client.update_run, run_id, status="RUNNING")
        return run_id
    return store.with_retry(client.create_run, experiment_id, run_name=name, tags=tags).info.run_id


def _parent_run_of(folder: Path | None, uri: str) -> str | None:
    """The MLflow parent run of a finished run folder logged to ``uri``."""
    if folder is None:
        return None
    try:
        state = RunFolder(Path(folder)).read_state().get(STATE_KEY) or {}
    except (OSError, ValueError):
        return None
    return state.get("parent_run_id") if state.get("tracking_uri") == uri else None


def _finish_all(tracker: Tracker, status: str) -> None:
    for run_id in tracker.state["runs"].values():
        info = store.with_retry(tracker.client.get_run, run_id).info
        if info.status == "RUNNING":
            tracker.finish(run_id, status)
    tracker.finish(tracker.parent, status)


@atexit.register
def _mark_unfinished() -> None:
    # A run that raised or was interrupted never reaches auh_run_end: say so in
    # MLflow instead of leaving it RUNNING forever (``--resume`` reopens it).
    while _TRACKERS:
        _, tracker = _TRACKERS.popitem()
        try:
            _finish_all(tracker, "FAILED")
        except Exception as exc:  # at exit, the store may be gone: report, never raise
            note(f"auh: tracking: could not mark MLflow run {tracker.parent} failed: {exc}")


# ------------------------------------------------------------ what is logged
def run_tags(recipe_text: str) -> dict[str, str]:
    """Tags of a parent run: recipe sha256, package versions, git commit (if any)."""
    tags = {"recipe.sha256": hashlib.sha256(recipe_text.encode()).hexdigest()}
    tags.update({f"version.{dist}": v for dist, v in package_versions().items()})
    commit = git_commit()
    if commit:
        tags["git.commit"] = tags["mlflow.source.git.commit"] = commit
    return tags


def git_commit(cwd: str | Path | None = None) -> str | None:
    """``HEAD`` of the git repository around ``cwd`` (default: the working directory)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                             text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and re.fullmatch(r"[0-9a-f]{40,64}", commit) else None


def result_metrics(result: dict[str, Any]) -> dict[str, float]:
    """The parent run's metrics from a pipeline result."""
    metrics: dict[str, float] = store.score_metrics(result.get("scores") or {})
    for k, fold in enumerate(result.get("folds") or []):
        metrics.update(store.score_metrics(fold, f"fold/{k}/", per_au=False))
    for name, base in (result.get("baselines") or {}).items():
        metrics.update(store.score_metrics(base, f"baseline/{name}/", per_au=False))
    for key, value in (result.get("cv") or {}).items():
        metrics[f"cv/{key}"] = value
    for view, value in (result.get("view_final") or {}).items():
        metrics[f"view/{view}/final"] = value
    if "faces" in result:
        metrics["faces/not_found"] = result["faces"]["not_found"]
    return metrics


def write_result_files(result: dict[str, Any], folder: Path) -> list[Path]:
    """Write what the parent run gets besides the pipeline's own artifacts, into
    ``folder``: ``plots/f1_per_au.png``, ``plots/pr_curves.png``,
    ``plots/threshold_curves.png``, ``val_predictions.npz`` (``probs``, ``labels``,
    ``aus``) and, when ``result["val"]`` has ``thresholds``, ``thresholds.json``."""
    from plugins.tracking import plots

    written: list[Path] = []
    scores = result.get("scores") or {}
    if scores.get("per_au"):
        written.append(plots.f1_bars(scores, folder / "plots" / "f1_per_au.png", result.get("baselines")))
    val = result.get("val") or {}
    if val.get("probs") is None or val.get("labels") is None:
        return written
    import numpy as np

    probs, labels, aus = np.asarray(val["probs"]), np.asarray(val["labels"]), _aus(result)
    thresholds = val.get("thresholds")
    written.append(plots.pr_curves(probs, labels, aus, folder / "plots" / "pr_curves.png"))
    written.append(plots.threshold_curves(probs, labels, aus, folder / "plots" / "threshold_curves.png",
                                          thresholds))
    np.savez_compressed(folder / "val_predictions.npz", probs=probs, labels=labels, aus=np.asarray(aus))
    written.append(folder / "val_predictions.npz")
    if thresholds is not None:
        (folder / "thresholds.json").write_text(
            json.dumps({au: float(t) for au, t in zip(aus, thresholds)}, indent=1))
        written.append(folder / "thresholds.json")
    return written


def _aus(result: dict[str, Any]) -> list[str]:
    val = result.get("val") or {}
    if val.get("aus") is not None:
        return [str(a) for a in val["aus"]]
    return list((result.get("scores") or {}).get("per_au") or {})


# ------------------------------------------------------------------ helpers
def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _param_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _exists(client: Any, run_id: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        store.with_retry(client.get_run, run_id)
        return True
    except MlflowException:
        return False


def _has_artifact(client: Any, run_id: str, path: str) -> bool:
    return any(f.path == path for f in store.with_retry(client.list_artifacts, run_id))
