"""A model bundle as an MLflow pyfunc model, so ``mlflow models predict`` runs it.

The model's input is a table with one column, ``path``: each value is an
image file, a folder of images or a text file listing images (as for
``auh predict``). Its output is a submission table: ``image`` (the file name)
and one 0/1 column per AU of the bundle::

    echo path > input.csv; echo /data/test_images >> input.csv
    MLFLOW_TRACKING_URI=sqlite:///mlflow.db \\
        mlflow models predict -m runs:/<run_id>/model -i input.csv -t csv --env-manager local

``--env-manager local`` uses the current environment, which must have
au-harness installed (it is not on PyPI, so MLflow cannot build one itself).
"""
from __future__ import annotations

import contextlib
import importlib.metadata as md
import os
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import mlflow.artifacts
import mlflow.pyfunc
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema

from harness.errors import UserError

if TYPE_CHECKING:
    from mlflow import MlflowClient

INPUT_COLUMN = "path"
ARTIFACT_PATH = "model"
_PROGRESS_ENV = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
ENTRY = Path(__file__).with_name("pyfunc_entry.py")  # the model's code ("models from code")
# What the model imports (MLflow adds itself).
_REQUIREMENTS = ("au-harness", "torch", "torchvision", "timm", "facenet-pytorch", "numpy", "pandas",
                 "pillow", "safetensors")


class BundleModel(mlflow.pyfunc.PythonModel):
    """``predict(DataFrame[path]) -> DataFrame[image, AU...]`` with a bundle's thresholds."""

    def load_context(self, context: Any) -> None:
        from harness.bundle import load_bundle

        self._bundle = load_bundle(context.artifacts["bundle"])

    # MLflow reads predict's type hints: ``pd.DataFrame`` is one it accepts, and
    # ``Any`` (or no hint on model_input) draws warnings; context stays unannotated.
    def predict(self, context, model_input: pd.DataFrame,  # type: ignore[no-untyped-def]
                params: dict[str, str] | None = None) -> pd.DataFrame:
        from harness.bundle import list_images

        paths = [image for source in _sources(model_input) for image in list_images(Path(source))]
        _, preds = self._bundle.predict_paths(paths)
        table = pd.DataFrame(preds.astype("int64"), columns=list(self._bundle.aus))
        table.insert(0, "image", [p.name for p in paths])
        return table


def _sources(model_input: Any) -> list[str]:
    if isinstance(model_input, pd.DataFrame):
        column = INPUT_COLUMN if INPUT_COLUMN in model_input.columns else model_input.columns[0]
        return [str(v) for v in model_input[column]]
    if isinstance(model_input, (str, Path)):
        return [str(model_input)]
    return [str(v) for v in model_input]


def signature(aus: list[str]) -> ModelSignature:
    """Input ``path`` (string); output ``image`` (string) and one long column per AU."""
    return ModelSignature(inputs=Schema([ColSpec("string", INPUT_COLUMN)]),
                          outputs=Schema([ColSpec("string", "image")] + [ColSpec("long", au) for au in aus]))


def requirements() -> list[str]:
    """``dist==version`` for each installed package the model imports, without local
    version labels (``2.3.0+cpu`` -> ``2.3.0``), as MLflow writes them itself."""
    pins = []
    for dist in _REQUIREMENTS:
        try:
            pins.append(f"{dist}=={md.version(dist).split('+')[0]}")
        except md.PackageNotFoundError:
            continue
    return pins


def log_bundle_model(client: "MlflowClient", run_id: str, bundle: str | Path, aus: list[str]) -> str:
    """Log ``bundle`` as the pyfunc model ``model`` of run ``run_id`` (an MLflow 3
    logged model: the run's "Logged models" in the UI); returns ``runs:/<run_id>/model``.

    The fluent API that logs models works on the active run at the global
    tracking URI: both are set to ``client``'s for the call and restored after,
    so the rest of the process keeps its own."""
    with _no_progress_bars(), _tracking_at(client.tracking_uri), mlflow.start_run(run_id=run_id):
        # The model is code (ENTRY), not a pickle; explicit requirements, since MLflow
        # would otherwise load the model in a subprocess to infer them. No input
        # example: it would need real images.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*input example was not provided")
            mlflow.pyfunc.log_model(name=ARTIFACT_PATH, python_model=str(ENTRY),
                                    artifacts={"bundle": str(Path(bundle).resolve())},
                                    signature=signature(aus), pip_requirements=requirements())
    return f"runs:/{run_id}/{ARTIFACT_PATH}"


def downloaded_bundle(model_uri: str, tracking_uri: str | None = None) -> "contextlib.AbstractContextManager[Path]":
    """The bundle inside MLflow model ``model_uri`` (``runs:/<run id>/model``,
    ``models:/<name>/<version>``) at ``tracking_uri`` (resolved as the other
    commands do), downloaded into a temporary folder that lives as long as
    the context."""
    from plugins.tracking import store

    uri = store.resolve_tracking_uri(tracking_uri)
    store.client_for(uri, create=False)  # no store there: one line, nothing created
    return _download(model_uri, uri)


@contextlib.contextmanager
def _download(model_uri: str, uri: str) -> Iterator[Path]:
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory(prefix="auh-model-") as tmp, _tracking_at(uri), _no_progress_bars():
        try:
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=tmp,
                                                             tracking_uri=uri, registry_uri=uri))
        except MlflowException as exc:
            raise UserError(f"{model_uri}: no such MLflow model at {uri} "
                            f"({' '.join(exc.message.split())[:200]})") from None
        yield _bundle_in_model(local, model_uri)


def _bundle_in_model(model: Path, model_uri: str) -> Path:
    """The bundle artifact inside a downloaded model (its MLmodel file says where)."""
    import yaml

    mlmodel = model / "MLmodel"
    if not mlmodel.is_file():
        raise UserError(f"{model_uri}: not an MLflow model (no MLmodel file)")
    flavor = (yaml.safe_load(mlmodel.read_text()) or {}).get("flavors", {}).get("python_function", {})
    bundle = (flavor.get("artifacts") or {}).get("bundle", {}).get("path")
    if not bundle:
        raise UserError(f"{model_uri}: an MLflow model without an au-harness bundle")
    return model / bundle


def _tracking_at(uri: str) -> "contextlib.AbstractContextManager[None]":
    # MLflow's fluent model logging, and its resolution of a logged model behind a
    # runs:/ URI, read the process-wide tracking URI whatever URI they are given:
    # set it for the call and restore it after (MLflow's own private helper).
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    return _use_tracking_uri(uri)


@contextlib.contextmanager
def _no_progress_bars() -> Iterator[None]:
    # Saving copies the bundle through MLflow's artifact download, which draws a bar.
    old = os.environ.get(_PROGRESS_ENV)
    os.environ[_PROGRESS_ENV] = "false"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(_PROGRESS_ENV, None)
        else:
            os.environ[_PROGRESS_ENV] = old

