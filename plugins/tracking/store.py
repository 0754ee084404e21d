"""Where MLflow data lives: the one tracking-URI resolver, experiment set-up and SQLite retry.

Both sides of the harness write to MLflow: the tracking plugin
(``plugins.tracking``, training runs) and the organizer's ledger
(``leaderboard.ledger``, scored submissions). They share this module so that
they agree on where data goes and how concurrent writers behave:

* :func:`resolve_tracking_uri`: ``--tracking-uri`` / recipe ``run.tracking_uri``
  > ``MLFLOW_TRACKING_URI`` > ``sqlite:///mlflow.db`` in the current directory.
  SQLite paths are made absolute, so the URI (and the ``mlflow ui`` command
  printed from it) means the same file from any directory.
* :func:`get_or_create_experiment`: with a SQLite store, MLflow would put
  artifacts under ``./mlruns`` of whatever directory the process runs in; the
  experiment's ``artifact_location`` is set explicitly to ``mlartifacts/``
  next to the database instead. A tracking server decides for itself
  (``--default-artifact-root`` / ``--artifacts-destination``).
* :func:`with_retry`: SQLite allows one writer at a time; databases are put in
  WAL mode (readers never block the writer) and a write that still meets
  "database is locked" is retried with backoff, so nothing is lost.
"""
from __future__ import annotations

import importlib
import logging
import os
import random
import re
import sqlite3
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, TypeVar
from urllib.parse import unquote

from harness.errors import UserError
from harness.fileio import UMASK, check_output_folder

# MLflow 3 sends usage telemetry over the network (and keeps a thread for it) unless
# told not to; the harness works offline and sends nothing anywhere by default. Set
# before MLflow is first imported (every MLflow use goes through this package);
# MLFLOW_DISABLE_TELEMETRY=false in the environment turns it back on.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

# The MLflow model URIs `auh predict` opens as bundles; here, so that telling one from a
# folder does not import MLflow (seconds and hundreds of MiB for every local bundle).
MODEL_URI = re.compile(r"^(runs|models):/")

if TYPE_CHECKING:  # mlflow is imported lazily: it costs seconds
    from mlflow import MlflowClient

T = TypeVar("T")

DEFAULT_DB = "mlflow.db"
ARTIFACT_DIR = "mlartifacts"
_SQLITE_PREFIX = "sqlite:///"
_SERVER_SCHEMES = ("http", "https", "postgresql", "mysql", "mssql", "databricks")
_LOCKED = ("database is locked", "database table is locked")
# MLflow 3's UI opens an experiment of this kind on its runs table, not on the
# GenAI overview (traces, evaluations) it shows an experiment it cannot classify.
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}


# ----------------------------------------------------------------- the URI
def resolve_tracking_uri(explicit: str | None = None) -> str:
    """The tracking URI to use: ``explicit`` (a flag or recipe field; ``None`` or
    ``""`` means unset) > ``MLFLOW_TRACKING_URI`` > ``sqlite:///mlflow.db`` in the
    current directory. SQLite URIs come back with an absolute path."""
    uri = (explicit or "").strip() or os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if not uri:
        uri = _SQLITE_PREFIX + DEFAULT_DB
    path = sqlite_path(uri)
    if path is not None:
        return _SQLITE_PREFIX + str(path)
    scheme = uri.split("://", 1)[0].split("+", 1)[0].lower() if "://" in uri else ""
    if scheme == "sqlite":
        raise UserError(f"tracking URI {uri!r}: expected a database file, sqlite:///path/to/mlflow.db")
    if scheme not in _SERVER_SCHEMES:
        raise UserError(f"tracking URI {uri!r}: expected sqlite:///path/to/mlflow.db or a tracking "
                        f"server (http://host:port); MLflow's file store (./mlruns) is not supported")
    return uri


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (absolute), else ``None``."""
    if not uri.startswith(_SQLITE_PREFIX):
        return None
    rest = unquote(uri[len(_SQLITE_PREFIX):]).split("?", 1)[0]
    if not rest or rest == ":memory:":
        return None
    return Path(rest).expanduser().absolute()


def artifact_location(uri: str, experiment: str) -> str | None:
    """Where a new experiment's artifacts go: ``mlartifacts/<experiment>`` beside a
    SQLite database (as a ``file://`` URI); ``None`` (the store decides) otherwise."""
    db = sqlite_path(uri)
    if db is None:
        return None
    slug = re.sub(r"[^\w.-]+", "_", experiment).strip("._") or "experiment"
    return (db.parent / ARTIFACT_DIR / slug).as_uri()


def ui_command(uri: str) -> str:
    """What a user types to browse ``uri``: ``mlflow ui --backend-store-uri ...``
    for a database, the address itself for a tracking server."""
    if uri.startswith(("http://", "https://")):
        return f"open {uri} in a browser"
    return f"mlflow ui --backend-store-uri {uri}"


# ------------------------------------------------------------- the client
_CLIENTS: dict[str, "MlflowClient"] = {}  # resolved URI -> its client, for the process's life
_OPEN_DBS: set[Path] = set()  # SQLite files those clients hold open


def client_for(uri: str, create: bool = True) -> "MlflowClient":
    """An ``MlflowClient`` for ``uri`` (resolved), one per URI for the process.

    A SQLite database is checked first (:func:`check_sqlite`); a missing one
    is created atomically, in WAL mode, when ``create`` (commands that only
    read pass ``False`` and are refused instead). A tracking server must
    answer ``/health`` within seconds (else MLflow would retry for minutes),
    and MLflow's "View run" lines on stdout are switched off for it.
    """
    if uri in _CLIENTS:
        return _CLIENTS[uri]
    from mlflow import MlflowClient

    # Table creation and migration notes are INFO lines on stderr: not for users.
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger(name).level))
    db = sqlite_path(uri)
    if db is not None:
        if check_sqlite(db, must_exist=not create):
            create_sqlite(db)
    elif uri.startswith(("http://", "https://")):
        check_server(uri)
        # MLflow prints "View run ... at: URL" on stdout whenever a run over HTTP
        # ends: noise in `auh run`, and it corrupts `auh score --json`.
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    client = _CLIENTS[uri] = with_retry(MlflowClient, tracking_uri=uri, registry_uri=uri)
    if db is not None:
        _OPEN_DBS.add(db)
    return client


_SQLITE_MAGIC = b"SQLite format 3\x00"
_MLFLOW_TABLES = {"alembic_version", "experiments", "runs", "metrics", "latest_metrics",
                  "params", "tags"}


def check_store(uri: str, version: bool = True) -> None:
    """Refuse, before any work, a tracking store a later write could not use:
    a SQLite file that :func:`check_sqlite` refuses, or a server that does not answer.
    Without ``version`` MLflow is not imported (seconds): a database of another MLflow
    version is then refused when :func:`client_for` opens it, for a command whose
    only write is to the store."""
    db = sqlite_path(uri)
    if db is not None:
        check_sqlite(db, version=version)
    elif uri.startswith(("http://", "https://")):
        check_server(uri)


def prewarm(uri: str) -> None:
    """Start importing MLflow's client (and, for a database, its SQL store: seconds of
    CPU in all) on a background thread, for a command that will record in ``uri`` once
    its reading and scoring are done: that work, mostly numpy that releases the GIL,
    overlaps the import. The import the recording then does waits for this one; a
    failure here is raised there again. Not a daemon: a command that stops early (a
    refused submission) waits for the import at exit, as it used to wait for it before
    reading, rather than leave interpreter shutdown racing an import."""
    modules = ["mlflow"]
    if sqlite_path(uri) is not None:
        modules += ["mlflow.store.db.utils", "mlflow.store.tracking.sqlalchemy_store"]
    threading.Thread(target=_import_quietly, args=(modules,), name="auh-import-mlflow").start()


def _import_quietly(modules: list[str]) -> None:
    try:
        for module in modules:
            importlib.import_module(module)
    except BaseException:  # noqa: BLE001 (the recording's own import reports it)
        pass


def check_sqlite(db: Path, must_exist: bool = False, version: bool = True) -> bool:
    """Refuse a database path MLflow could not use, before anything is written.

    Returns ``True`` when ``db`` does not exist yet (and may be created).
    A directory, a file that is not SQLite, and a database whose MLflow
    schema is incomplete (a creation that was interrupted) or (``version``)
    of another MLflow version are one-line errors saying what to do.
    """
    if db in _OPEN_DBS:
        # This process's MLflow client has it open, so it is usable; and opening and
        # closing another descriptor on it would drop that client's POSIX locks
        # (SQLite's locks are per process), which corrupts concurrent writers.
        return False
    if db.is_dir():
        raise UserError(f"ledger {db}: is a directory, not an MLflow database; point "
                        f"--tracking-uri (or MLFLOW_TRACKING_URI) at a database file")
    if not db.exists():
        if must_exist:
            raise UserError(f"no ledger at {db}: nothing has been recorded there; check "
                            f"--tracking-uri (or MLFLOW_TRACKING_URI) or run from the ledger's folder")
        check_output_folder(db.parent, f"ledger {db}: folder")
        return True
    try:
        with open(db, "rb") as fh:
            head = fh.read(len(_SQLITE_MAGIC))
    except OSError as exc:
        raise UserError(f"ledger {db}: cannot read it: {exc.strerror}") from None
    if head != _SQLITE_MAGIC:
        what = "is empty" if not head else "is not an SQLite database"
        raise UserError(f"ledger {db}: {what}; move it away or point --tracking-uri at the "
                        f"right file (a new ledger is created where none exists)")
    _check_schema(db, version)
    return False


def _check_schema(db: Path, version_too: bool) -> None:
    try:
        conn = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True, timeout=30)
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            version = (conn.execute("SELECT version_num FROM alembic_version").fetchone()
                       if "alembic_version" in tables else None)
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        if is_locked_error(exc):
            return  # a writer holds it: the schema is there, MLflow will wait and retry
        raise UserError(f"ledger {db}: not a readable SQLite database ({exc}); move it away "
                        f"or point --tracking-uri at the right file") from None
    if not _MLFLOW_TABLES <= tables or version is None:
        raise UserError(f"ledger {db}: its MLflow tables are incomplete (a creation that was "
                        f"interrupted, or not an MLflow database); nothing usable is in it: move "
                        f"it away and run the command again")
    if not version_too:
        return
    from mlflow.store.db.utils import _get_latest_schema_revision

    expected = _get_latest_schema_revision()
    if version[0] != expected:
        raise UserError(f"ledger {db}: MLflow schema version {version[0]}, but the installed "
                        f"MLflow expects {expected}; back it up and run "
                        f"`mlflow db upgrade sqlite:///{db}`, or use the MLflow that wrote it")


def create_sqlite(db: Path) -> None:
    """Create the MLflow database ``db`` atomically: MLflow builds the schema in
    a temporary file beside it; a copy of that file, which no connection of
    MLflow's has ever opened, is put in WAL mode and linked into place only if
    ``db`` still does not exist. A kill or a full disk midway leaves no ``db``.

    Linking the file MLflow built would be wrong: a connection MLflow still
    holds to it (its model-registry store opens one too) would then share the
    ledger's inode under another name, with a WAL index of its own, and
    concurrent writers see "disk I/O error".
    """
    from mlflow import MlflowClient

    db.parent.mkdir(parents=True, exist_ok=True)
    built, ready = (_temp_beside(db, suffix) for suffix in (".creating", ".ready"))
    try:
        MlflowClient(tracking_uri=_SQLITE_PREFIX + str(built)).search_experiments(max_results=1)
        source, copy = sqlite3.connect(built), sqlite3.connect(ready)
        try:
            source.backup(copy)  # a consistent copy, whatever MLflow still holds open
            copy.execute("PRAGMA journal_mode=WAL")  # persistent; the WAL is merged on close
        finally:
            source.close()
            copy.close()
        try:
            os.link(ready, db)  # never replaces a ledger another process created meanwhile
        except FileExistsError:
            pass
    except Exception as exc:
        if isinstance(exc, OSError) or "disk" in str(exc).lower():
            raise UserError(f"ledger {db}: cannot create it: {exc}") from None
        raise
    finally:
        for tmp in (built, ready):
            for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm"), Path(f"{tmp}-journal")):
                leftover.unlink(missing_ok=True)


def _temp_beside(db: Path, suffix: str) -> Path:
    """An empty temporary file next to ``db``, with the mode sqlite would give it."""
    fd, name = tempfile.mkstemp(prefix=f".{db.name}.", suffix=suffix, dir=db.parent)
    os.close(fd)
    os.chmod(name, 0o666 & ~UMASK)
    return Path(name)


def check_server(uri: str) -> None:
    import requests

    try:
        response = requests.get(uri.rstrip("/") + "/health", timeout=10)
        response.raise_for_status()
    except requests.RequestException as exc:
        raise UserError(f"MLflow tracking server {uri} does not answer ({type(exc).__name__}); "
                        f"start it (docs/tracking.md) or pass another --tracking-uri") from None


def get_or_create_experiment(name: str, tracking_uri: str | None = None) -> str:
    """The id of experiment ``name`` at ``tracking_uri`` (resolved), created with an
    explicit artifact location if absent. Safe when two processes race to create it.
    A deleted experiment of that name is an error (MLflow keeps the name reserved)."""
    from mlflow.exceptions import MlflowException

    uri = resolve_tracking_uri(tracking_uri)
    client = client_for(uri)
    experiment = with_retry(client.get_experiment_by_name, name)
    if experiment is None:
        try:
            return with_retry(client.create_experiment, name,
                              artifact_location=artifact_location(uri, name), tags=EXPERIMENT_TAGS)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            experiment = with_retry(client.get_experiment_by_name, name)  # another process won
    if experiment.lifecycle_stage == "deleted":
        raise UserError(f"MLflow experiment {name!r} at {uri} is deleted; restore it with "
                        f"`mlflow experiments restore --experiment-id {experiment.experiment_id}` "
                        f"or use another experiment name")
    return experiment.experiment_id


# ---------------------------------------------------------------- metrics
def score_metrics(score: dict[str, Any], prefix: str = "", per_au: bool = True) -> dict[str, float]:
    """A scorecard (``harness.metrics.challenge_score``) as MLflow metrics: ``final``,
    ``accuracy``, ``f1``, ``n_images``, ``ci95_lo``, ``ci95_hi`` and, with ``per_au``,
    ``au/AU12/accuracy|f1|n``; each name after ``prefix``. Undefined values (``None``)
    are left out. Shared by training runs and the scoring ledger."""
    flat: dict[str, Any] = {k: score.get(k) for k in ("final", "accuracy", "f1", "n_images")}
    if score.get("ci95"):
        flat["ci95_lo"], flat["ci95_hi"] = score["ci95"]
    if per_au:
        for au, entry in (score.get("per_au") or {}).items():
            for key, value in entry.items():
                flat[f"au/{au}/{key}"] = value
    return {prefix + k: float(v) for k, v in flat.items() if v is not None}


# ------------------------------------------------------------------ retry
def is_locked_error(exc: BaseException) -> bool:
    """True when ``exc`` (or an exception it wraps) is SQLite's "database is locked"."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if any(text in str(exc).lower() for text in _LOCKED):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def with_retry(fn: Callable[..., T], *args: Any, attempts: int = 10, base_delay: float = 0.05,
               max_delay: float = 2.0, sleep: Callable[[float], None] = time.sleep, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)``, retried with jittered exponential backoff while it fails
    with "database is locked" (at most ``attempts`` calls); any other error, or the
    last locked one, propagates unchanged."""
    for attempt in range(1, attempts + 1):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if attempt == attempts or not is_locked_error(exc):
                raise
            delay = min(max_delay, base_delay * 2 ** (attempt - 1))
            sleep(delay * (0.5 + random.random()))
    raise AssertionError("unreachable")  # pragma: no cover
