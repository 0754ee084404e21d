"""MLflow tracking plugin and the shared store: hooks driven directly with a fake RunContext."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

mlflow = pytest.importorskip("mlflow")

from harness import recipe as recipes  # noqa: E402
from plugins.tracking import store  # noqa: E402
from plugins import tracking  # noqa: E402
from support import RUN_AUS, fake_run, make_recipe, make_result  # noqa: E402

AUS = list(RUN_AUS)


def hooks_through_epoch(run: types.SimpleNamespace, stage: str, epochs: range) -> None:
    tracking.auh_run_start(run=run)
    tracking.auh_stage_start(run=run, stage=stage)
    for epoch in epochs:
        tracking.auh_epoch_end(run=run, stage=stage, epoch=epoch,
                               metrics={"loss": 1.0 / epoch, "val/final": 0.5 + epoch / 100,
                                        "au/AU12/f1": 0.1 * epoch})


# ------------------------------------------------------------------- store
def test_resolve_tracking_uri_precedence(in_tmp, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert store.resolve_tracking_uri() == f"sqlite:///{in_tmp / 'mlflow.db'}"
    assert store.resolve_tracking_uri("") == f"sqlite:///{in_tmp / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert store.resolve_tracking_uri() == "http://127.0.0.1:5999"
    assert store.resolve_tracking_uri("sqlite:///sub/x.db") == f"sqlite:///{in_tmp / 'sub' / 'x.db'}"
    assert store.resolve_tracking_uri("sqlite:////abs/y.db") == "sqlite:////abs/y.db"
    assert store.artifact_location("sqlite:////abs/y.db", "my exp/1") == "file:///abs/mlartifacts/my_exp_1"
    assert store.artifact_location("http://host:5000", "e") is None


@pytest.mark.parametrize("set_by_user", [None, "false"])
def test_mlflow_telemetry_is_off_unless_the_user_turns_it_on(tmp_path, set_by_user):
    """MLflow 3 sends usage telemetry over the network by default; importing the harness's
    MLflow side turns it off before MLflow is imported, and a user's own setting stands."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK")}
    if set_by_user is not None:
        env["MLFLOW_DISABLE_TELEMETRY"] = set_by_user
    code = "import plugins.tracking.store, mlflow.environment_variables as v; print(v.MLFLOW_DISABLE_TELEMETRY.get())"
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          env={**env, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ("False" if set_by_user == "false" else "True")


def test_with_retry_retries_only_locked_errors():
    calls, sleeps = [], []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            try:
                raise sqlite3.OperationalError("database is locked")
            except sqlite3.OperationalError as exc:  # wrapped, as SQLAlchemy and MLflow do
                raise RuntimeError("(sqlite3.OperationalError) wrapped") from exc
        return "done"

    assert store.with_retry(flaky, sleep=sleeps.append) == "done"
    assert len(calls) == 3 and len(sleeps) == 2

    def other():
        calls.append(1)
        raise ValueError("no such table")

    calls.clear()
    with pytest.raises(ValueError):
        store.with_retry(other, sleep=sleeps.append)
    assert len(calls) == 1

    def always_locked():
        raise sqlite3.OperationalError("database is locked")

    with pytest.raises(sqlite3.OperationalError):
        store.with_retry(always_locked, attempts=4, sleep=sleeps.append)


def test_get_or_create_experiment_is_idempotent(tmp_path):
    uri = f"sqlite:///{tmp_path / 'db' / 'm.db'}"
    first = store.get_or_create_experiment("exp", uri)
    assert store.get_or_create_experiment("exp", uri) == first
    experiment = store.client_for(uri).get_experiment(first)
    assert experiment.artifact_location == (tmp_path / "db" / "mlartifacts" / "exp").as_uri()
    # the kind MLflow 3's UI opens on its runs table ("Machine learning"), not the GenAI overview
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    with sqlite3.connect(tmp_path / "db" / "m.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


# ------------------------------------------------------------ pure helpers
def test_stage_levels_and_metric_keys():
    assert tracking.stage_levels("fold/0/face/finetune") == ["fold/0", "fold/0/face", "fold/0/face/finetune"]
    assert tracking.stage_levels("fold/12/ensemble") == ["fold/12", "fold/12/ensemble"]
    assert tracking.stage_levels("face/pretrain") == ["face", "face/pretrain"]
    assert tracking.metric_key("au/AU12/f1") == "au/AU12/f1"
    assert tracking.metric_key("/val/../x:y+z//") == "val/x_y_z"


def test_enabled_switches(monkeypatch):
    monkeypatch.delenv("AUH_TRACKING", raising=False)
    assert tracking.enabled(make_recipe())
    assert not tracking.enabled(make_recipe(tracking_uri="off"))
    assert not tracking.enabled(make_recipe(), tracking_uri="OFF")
    monkeypatch.setenv("AUH_TRACKING", "off")
    assert not tracking.enabled(make_recipe())


# ------------------------------------------------------------ a whole run
@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """One run driven through every hook; tests below read what MLflow holds."""
    tmp = tmp_path_factory.mktemp("tracked")
    subprocess.run(["git", "init", "-q", str(tmp)], check=True)
    subprocess.run(["git", "-C", str(tmp), "-c", "user.name=t", "-c", "user.email=t@t",
                    "commit", "-q", "--allow-empty", "-m", "x"], check=True)
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    recipe = make_recipe(experiment="tracked", tracking_uri=uri)
    run = fake_run(recipe, tmp / "runs" / "demo")
    stage_artifact = tmp / "val_fold0.csv"
    stage_artifact.write_text("image,AU1\n")
    cwd = os.getcwd()
    os.chdir(tmp)  # git.commit comes from the working directory's repository
    try:
        hooks_through_epoch(run, "fold/0/face/finetune", range(1, 4))
        tracking.auh_stage_end(run=run, stage="fold/0/face/finetune",
                               metrics={"val/final": 0.7, "loss": 1.0 / 3},  # loss repeats epoch 3's
                               artifacts={"val_predictions": str(stage_artifact)})
        tracking.auh_stage_start(run=run, stage="fold/0/ensemble")
        tracking.auh_stage_end(run=run, stage="fold/0/ensemble", metrics={"final": 0.66}, artifacts={})
        result = make_result(tmp)
        tracking.auh_run_end(run=run, result=result)
    finally:
        os.chdir(cwd)
    client = store.client_for(store.resolve_tracking_uri(uri))
    head = subprocess.run(["git", "-C", str(tmp), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    return types.SimpleNamespace(run=run, client=client, result=result, tmp=tmp, head=head,
                                 experiment=store.get_or_create_experiment("tracked", uri))


def runs_by_name(client, experiment_id):
    return {r.info.run_name: r for r in client.search_runs([experiment_id])}


def test_parent_and_nested_runs(tracked):
    runs = runs_by_name(tracked.client, tracked.experiment)
    assert set(runs) == {"demo", "fold/0", "fold/0/face", "fold/0/face/finetune", "fold/0/ensemble"}
    parent = runs["demo"].info.run_id
    assert tracked.run.state["mlflow"]["parent_run_id"] == parent
    expected_parent = {"fold/0": parent, "fold/0/face": runs["fold/0"].info.run_id,
                       "fold/0/face/finetune": runs["fold/0/face"].info.run_id,
                       "fold/0/ensemble": runs["fold/0"].info.run_id}
    for name, parent_id in expected_parent.items():
        assert runs[name].data.tags["mlflow.parentRunId"] == parent_id
    assert {r.info.status for r in runs.values()} == {"FINISHED"}
    experiment = tracked.client.get_experiment(tracked.experiment)
    assert experiment.artifact_location == (tracked.tmp / "mlartifacts" / "tracked").as_uri()
    assert not (tracked.tmp / "mlruns").exists()


def test_recipe_params_tags_and_artifact(tracked):
    parent = runs_by_name(tracked.client, tracked.experiment)["demo"]
    flat = recipes.flatten(tracked.run.recipe)
    assert parent.data.params == {k: v if isinstance(v, str) else json.dumps(v) for k, v in flat.items()}
    assert parent.data.params["train.lr"] == "0.01"
    text = recipes.dumps(tracked.run.recipe)
    tags = parent.data.tags
    assert tags["recipe.sha256"] == hashlib.sha256(text.encode()).hexdigest()
    assert tags["version.mlflow"] == mlflow.__version__
    assert tags["version.numpy"] == np.__version__
    assert tags["git.commit"] == tracked.head
    local = tracked.client.download_artifacts(parent.info.run_id, "recipe.toml", str(tracked.tmp / "dl"))
    assert Path(local).read_text() == text


def test_epoch_metrics_have_steps(tracked):
    runs = runs_by_name(tracked.client, tracked.experiment)
    stage = runs["fold/0/face/finetune"].info.run_id
    history = tracked.client.get_metric_history(stage, "loss")
    assert sorted((m.step, m.value) for m in history) == [(1, 1.0), (2, 0.5), (3, pytest.approx(1 / 3))]
    au = tracked.client.get_metric_history(stage, "au/AU12/f1")
    assert sorted((m.step, round(m.value, 6)) for m in au) == [(1, 0.1), (2, 0.2), (3, 0.3)]
    # the stage's final metrics are logged at its last epoch, so they are the latest values
    assert runs["fold/0/face/finetune"].data.metrics["val/final"] == 0.7
    assert runs["fold/0/ensemble"].data.metrics["final"] == 0.66


def test_run_end_metrics(tracked):
    parent = runs_by_name(tracked.client, tracked.experiment)["demo"]
    metrics, scores = parent.data.metrics, tracked.result["scores"]
    assert metrics["final"] == pytest.approx(scores["final"])
    assert metrics["au/AU12/f1"] == pytest.approx(scores["per_au"]["AU12"]["f1"])
    assert metrics["au/AU12/n"] == scores["per_au"]["AU12"]["n"]
    assert metrics["ci95_hi"] == pytest.approx(scores["final"] + 0.05)
    assert metrics["fold/1/final"] == pytest.approx(tracked.result["folds"][1]["final"])
    assert metrics["baseline/all_zeros/accuracy"] == pytest.approx(
        tracked.result["baselines"]["all_zeros"]["accuracy"])
    assert metrics["cv/std"] == 0.01
    assert tracked.run.state["reports"]["tracking"] == {
        "tracking_uri": f"sqlite:///{tracked.tmp / 'mlflow.db'}", "experiment_id": tracked.experiment,
        "run_id": parent.info.run_id, "model_uri": "",
        "ui_command": f"mlflow ui --backend-store-uri sqlite:///{tracked.tmp / 'mlflow.db'}"}


def test_run_end_artifacts(tracked):
    runs = runs_by_name(tracked.client, tracked.experiment)
    parent = runs["demo"].info.run_id
    dl = Path(tracked.client.download_artifacts(parent, "", str(tracked.tmp / "all")))
    for name in ("f1_per_au.png", "pr_curves.png", "threshold_curves.png"):
        assert (dl / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = np.load(dl / "val_predictions.npz")
    np.testing.assert_array_equal(saved["labels"], tracked.result["val"]["labels"])
    np.testing.assert_allclose(saved["probs"], tracked.result["val"]["probs"])
    assert json.loads((dl / "thresholds.json").read_text()) == dict(zip(AUS, [0.4, 0.5, 0.6, 0.5]))
    assert not (dl / "model").exists()  # result["bundle"] points nowhere
    stage = runs["fold/0/face/finetune"].info.run_id
    assert [f.path for f in tracked.client.list_artifacts(stage)] == ["val_fold0.csv"]


# ------------------------------------------------------------------ resume
def test_resume_reuses_parent_and_does_not_relog_params(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    recipe = make_recipe(experiment="resume", tracking_uri=uri)
    first = fake_run(recipe, tmp_path / "runs" / "r", run_id="keep")
    hooks_through_epoch(first, "fold/0/face/finetune", range(1, 3))
    tracking._TRACKERS.pop("keep")  # the process dies here: no stage end, no run end
    state = json.loads(json.dumps(first.state))  # what state.json holds

    batches = []
    client = store.client_for(store.resolve_tracking_uri(uri))
    real_log_batch = client.log_batch
    monkeypatch.setattr(client, "log_batch", lambda run_id, metrics=(), params=(), tags=(), **kw: (
        batches.append((run_id, list(params))), real_log_batch(run_id, metrics=metrics, params=params,
                                                                tags=tags, **kw))[1])
    again = fake_run(recipe, tmp_path / "runs" / "r", run_id="keep", resumed=True, state=state)
    tracking.auh_run_start(run=again)
    tracking.auh_stage_start(run=again, stage="fold/0/face/finetune")
    tracking.auh_epoch_end(run=again, stage="fold/0/face/finetune", epoch=3, metrics={"loss": 0.25})
    tracking.auh_stage_end(run=again, stage="fold/0/face/finetune", metrics={}, artifacts={})
    tracking.auh_run_end(run=again, result={})

    assert again.state["mlflow"]["parent_run_id"] == state["mlflow"]["parent_run_id"]
    assert all(params == [] for _, params in batches)
    experiment = store.get_or_create_experiment("resume", uri)
    runs = runs_by_name(client, experiment)
    assert set(runs) == {"r", "fold/0", "fold/0/face", "fold/0/face/finetune"}  # nothing duplicated
    stage = runs["fold/0/face/finetune"].info.run_id
    assert sorted(m.step for m in client.get_metric_history(stage, "loss")) == [1, 2, 3]
    assert {r.info.status for r in runs.values()} == {"FINISHED"}
    artifacts = [f.path for f in client.list_artifacts(runs["r"].info.run_id)]
    assert artifacts.count("recipe.toml") == 1


def test_resume_with_changed_param_keeps_first_value(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    recipe = make_recipe(experiment="changed", tracking_uri=uri)
    first = fake_run(recipe, tmp_path / "runs" / "c", run_id="c")
    tracking.auh_run_start(run=first)
    tracking._TRACKERS.pop("c")
    changed = make_recipe(experiment="changed", tracking_uri=uri)
    changed = dataclasses.replace(changed, train=dataclasses.replace(changed.train, lr=0.5))
    again = fake_run(changed, tmp_path / "runs" / "c", run_id="c", resumed=True,
                     state=json.loads(json.dumps(first.state)))
    capsys.readouterr()
    tracking.auh_run_start(run=again)  # a note (harness.progress.note, the one channel) names it
    assert "train.lr" in capsys.readouterr().err
    tracking.auh_run_end(run=again, result={})
    client = store.client_for(store.resolve_tracking_uri(uri))
    parent = client.get_run(again.state["mlflow"]["parent_run_id"])
    assert parent.data.params["train.lr"] == "0.01"


def test_interrupted_run_is_marked_failed_at_exit(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run = fake_run(make_recipe(experiment="failed", tracking_uri=uri), tmp_path / "runs" / "f", run_id="f")
    hooks_through_epoch(run, "fold/0/face/finetune", range(1, 2))
    tracking._mark_unfinished()  # what atexit does when the pipeline raised
    client = store.client_for(store.resolve_tracking_uri(uri))
    ids = [run.state["mlflow"]["parent_run_id"], *run.state["mlflow"]["runs"].values()]
    assert [client.get_run(i).info.status for i in ids] == ["FAILED"] * 4
    assert "f" not in tracking._TRACKERS


# ------------------------------------------------------------- switched off
@pytest.mark.parametrize("how", ["recipe", "env"])
def test_tracking_off_writes_nothing(in_tmp, monkeypatch, how):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    recipe = make_recipe(tracking_uri="off") if how == "recipe" else make_recipe()
    if how == "env":
        monkeypatch.setenv("AUH_TRACKING", "off")
    run = fake_run(recipe, in_tmp / "runs" / "off")
    hooks_through_epoch(run, "fold/0/face/finetune", range(1, 2))
    tracking.auh_stage_end(run=run, stage="fold/0/face/finetune", metrics={"f1": 0.1}, artifacts={})
    tracking.auh_run_end(run=run, result=make_result(in_tmp))
    assert "mlflow" not in run.state
    assert sorted(p.name for p in in_tmp.iterdir()) == ["runs"]  # no mlflow.db
    assert "reports" not in run.state


# -------------------------------------------------------------- pyfunc model
class StubBundle:
    """Predicts AU1 when the image is bright, AU2 when it is dark."""

    aus = ["AU1", "AU2"]

    def predict_paths(self, paths):
        from PIL import Image

        bright = np.array([np.asarray(Image.open(p)).mean() > 127 for p in paths])
        preds = np.stack([bright, ~bright], axis=1).astype(np.int64)
        return preds.astype(float), preds


def test_pyfunc_model_predicts_a_folder(tmp_path, monkeypatch):
    harness_bundle = pytest.importorskip("harness.bundle")
    from PIL import Image

    from plugins.tracking import pyfunc

    images = tmp_path / "images"
    images.mkdir()
    for name, value in (("a.png", 250), ("b.png", 10), ("c.jpg", 200)):
        Image.new("RGB", (8, 8), (value,) * 3).save(images / name)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "bundle.json").write_text("{}")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = store.client_for(store.resolve_tracking_uri(uri))
    run_id = client.create_run(store.get_or_create_experiment("pyfunc", uri)).info.run_id
    assert pyfunc.log_bundle_model(client, run_id, bundle, StubBundle.aus) == f"runs:/{run_id}/model"

    # MLflow 3: a logged model of the run, listed with it (the UI's "Logged models")
    logged = client.search_logged_models(experiment_ids=[client.get_run(run_id).info.experiment_id])
    assert [(m.name, m.source_run_id) for m in logged] == [("model", run_id)]
    assert [o.model_id for o in client.get_run(run_id).outputs.model_outputs] == [logged[0].model_id]

    monkeypatch.setattr(harness_bundle, "load_bundle", lambda path: StubBundle())
    monkeypatch.setenv("MLFLOW_TRACKING_URI", client.tracking_uri)  # where runs:/ resolves
    model = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    import pandas as pd

    out = model.predict(pd.DataFrame({"path": [str(images)]}))
    assert list(out.columns) == ["image", "AU1", "AU2"]
    assert out.to_dict("list") == {"image": ["a.png", "b.png", "c.jpg"], "AU1": [1, 0, 1], "AU2": [0, 1, 0]}
    shipped = Path(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/model", dst_path=str(tmp_path / "d"),
                                                       tracking_uri=client.tracking_uri))
    assert (shipped / "artifacts" / "bundle" / "bundle.json").read_text() == "{}"


@pytest.fixture
def real_bundle(tiny_run, tmp_path):
    """The session's tiny trained bundle (two timm:resnet10t views, 32 px, center crop)
    and 3 images, with what the bundle itself predicts for them."""
    bundle_mod = pytest.importorskip("harness.bundle")
    from PIL import Image

    folder = Path(tiny_run.bundle)
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(images / f"{i}.png")
    return types.SimpleNamespace(folder=folder, images=images, aus=list(tiny_run.aus),
                                 expected=bundle_mod.load_bundle(folder).predict_paths(
                                     sorted(images.iterdir()))[1])


def test_pyfunc_real_bundle_matches_predict_paths(real_bundle, tmp_path, monkeypatch):
    import pandas as pd

    from plugins.tracking import pyfunc

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = store.client_for(store.resolve_tracking_uri(uri))
    run_id = client.create_run(store.get_or_create_experiment("real", uri)).info.run_id
    model_uri = pyfunc.log_bundle_model(client, run_id, real_bundle.folder, real_bundle.aus)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", client.tracking_uri)
    model = mlflow.pyfunc.load_model(model_uri)
    out = model.predict(pd.DataFrame({"path": [str(real_bundle.images)]}))
    assert list(out.columns) == ["image", *real_bundle.aus]
    assert out["image"].tolist() == ["0.png", "1.png", "2.png"]
    np.testing.assert_array_equal(out[real_bundle.aus].to_numpy(), real_bundle.expected)


@pytest.mark.slow
def test_mlflow_models_predict_cli(real_bundle, tmp_path):
    """``mlflow models predict`` on a folder of images gives the bundle's predictions."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = store.client_for(store.resolve_tracking_uri(uri))
    run_id = client.create_run(store.get_or_create_experiment("cli", uri)).info.run_id
    from plugins.tracking import pyfunc

    model_uri = pyfunc.log_bundle_model(client, run_id, real_bundle.folder, real_bundle.aus)
    (tmp_path / "input.csv").write_text(f"path\n{real_bundle.images}\n")
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([str(Path(sys.executable).with_name("mlflow")), "models", "predict", "-m", model_uri,
                           "-i", str(tmp_path / "input.csv"), "-t", "csv", "--env-manager", "local",
                           "-o", str(tmp_path / "out.json")], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads((tmp_path / "out.json").read_text())["predictions"]
    assert [r["image"] for r in rows] == ["0.png", "1.png", "2.png"]
    np.testing.assert_array_equal([[r[au] for au in real_bundle.aus] for r in rows], real_bundle.expected)
