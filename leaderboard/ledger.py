"""The scoring ledger: one immutable MLflow run per scored submission.

One experiment per challenge phase (``<challenge>/<phase>``). A run is
created, filled (tags, metrics, the submission file and the scorecard as
artifacts) and finished in one go, and never touched again. Re-scoring the
same file for the same team makes a new run whose ``previous_run`` tag
points at the last one; the leaderboard then uses the newest.

Where the data lives, WAL mode, the atomic creation of a new ledger and the
"database is locked" retry come from :mod:`plugins.tracking.store` (shared with
training runs). On top of that, writers to one SQLite ledger take an
exclusive file lock beside the database for the whole write: checking a
team's submission cap and creating its run is then atomic, so eight
concurrent ``auh score`` processes make eight runs and none can slip past
the cap. (A tracking server serializes on its own; the cap check there is
best effort.)
"""
from __future__ import annotations

import contextlib
import datetime as dt
import shutil
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from plugins.tracking import store
from harness.errors import RefusedError, UserError
from plugins.tracking.store import score_metrics  # noqa: F401  (ledger.score_metrics; shared with training runs)

SUBMISSION_ARTIFACT = "submission.csv"
SCORECARD_ARTIFACT = "scorecard.json"
# The 0/1 predictions as scored, in truth row order, bit-packed: the board reads
# them instead of parsing each team's submission again (3 s per million rows).
PREDICTIONS_ARTIFACT = "predictions.npz"
PREDICTIONS_TAG = "predictions_artifact"  # set on the runs that have one
_LOCK_TIMEOUT_S = 300


@dataclass(frozen=True)
class Entry:
    """One scored submission as read back from the ledger."""

    run_id: str
    team: str
    submission_sha256: str
    truth_sha256: str
    truth_path: str
    submission_name: str
    start_time: int  # ms since the epoch
    previous_run: str
    metrics: dict[str, float]
    tags: dict[str, str] = field(default_factory=dict)


TEAM_MAX = 100  # characters: a team name is a label on a board, not a document
TEXT_MAX = 4000  # characters of any other recorded string (MLflow tags hold 8000)


def check_text(what: str, value: str, limit: int = TEXT_MAX) -> str:
    """Refuse a string the ledger would store but could not keep readable: bytes
    that were not UTF-8 (surrogate escapes from a file name), control characters
    (a line end in a team name would break every CSV and terminal line it is
    printed in) and more than ``limit`` characters. Returns ``value``."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise UserError(f"{what}: {value!r} is not valid UTF-8; rename it") from None
    bad = next((c for c in value if not c.isprintable() and c != " "), None)
    if bad is not None:
        raise UserError(f"{what}: {value!r} contains the control character {bad!r}; "
                        f"expected printable text")
    if len(value) > limit:
        raise UserError(f"{what}: {len(value):,} characters, at most {limit:,} allowed")
    return value


def check_writable(tracking_uri: str | None = None) -> None:
    """Refuse, before any work, a ledger that a later write could not use; then start
    importing MLflow in the background (:func:`~plugins.tracking.store.prewarm`): the
    ledger is the scorer's only write, and its MLflow version is checked before it."""
    uri = store.resolve_tracking_uri(tracking_uri)
    store.check_store(uri, version=False)
    store.prewarm(uri)


def log_score(experiment: str, *, team: str, metrics: dict[str, float], scorecard: dict[str, Any],
              submission: Path, truth: Path, truth_sha256: str, submission_sha256: str,
              cap: int | None, scorer_version: str, tracking_uri: str | None = None,
              extra_tags: dict[str, str] | None = None, predictions: np.ndarray | None = None) -> str:
    """Record one scoring as a new finished run; return its id. ``extra_tags`` adds run tags
    (a tool's name, version, reader rules and coverage); ``predictions`` (0/1 ``[N, C]`` in
    truth row order: the submission as read) are kept for :func:`recorded_predictions`.

    Raises :class:`RefusedError` (and records nothing) when ``team`` already
    has ``cap`` distinct submissions in ``experiment`` and this file is not
    one of them.
    """
    uri = store.resolve_tracking_uri(tracking_uri)
    client = store.client_for(uri)  # a new ledger is created whole (atomically) before any lock
    with _writer_lock(uri):
        experiment_id = store.get_or_create_experiment(experiment, uri)
        mine = [e for e in entries(experiment, uri) if e.team == team]
        shas = {e.submission_sha256 for e in mine}
        if cap is not None and submission_sha256 not in shas and len(shas) >= cap:
            raise RefusedError(f"team {team!r} has used its {cap} submission{'s' * (cap > 1)} "
                               f"in {experiment}; {submission} is refused and not recorded")
        earlier = [e for e in mine if e.submission_sha256 == submission_sha256]
        tags = {
            **(extra_tags or {}),
            "team": team,
            "submission_sha256": submission_sha256,
            "submission_name": Path(submission).name,
            "truth_sha256": truth_sha256,
            "truth_path": str(Path(truth).absolute()),
            "scorer_version": scorer_version,
            "scored_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "previous_run": earlier[-1].run_id if earlier else "",
        }
        if predictions is not None:
            tags[PREDICTIONS_TAG] = PREDICTIONS_ARTIFACT
        run = store.with_retry(client.create_run, experiment_id, tags=tags,
                               run_name=f"{team} #{len(shas) + (not earlier)}")
        run_id = run.info.run_id
        try:
            _fill(client, run_id, metrics, scorecard, submission, predictions)
        except BaseException:
            store.with_retry(client.set_terminated, run_id, "FAILED")
            raise
        store.with_retry(client.set_terminated, run_id, "FINISHED")
    return run_id


def _fill(client: Any, run_id: str, metrics: dict[str, float], scorecard: dict[str, Any],
          submission: Path, predictions: np.ndarray | None) -> None:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    batch = [Metric(k, v, now, 0) for k, v in metrics.items()]
    for start in range(0, len(batch), 1000):  # MLflow's per-batch metric limit
        store.with_retry(client.log_batch, run_id, metrics=batch[start:start + 1000])
    with tempfile.TemporaryDirectory() as tmp:
        # A fixed artifact name: team and file names never become paths.
        copy = Path(tmp) / SUBMISSION_ARTIFACT
        shutil.copyfile(submission, copy)
        client.log_artifact(run_id, str(copy))
        if predictions is not None:
            packed = Path(tmp) / PREDICTIONS_ARTIFACT
            np.savez(packed, bits=np.packbits(predictions.astype(bool, copy=False), axis=None),
                     shape=np.array(predictions.shape, dtype=np.int64))
            client.log_artifact(run_id, str(packed))
    client.log_dict(run_id, scorecard, SCORECARD_ARTIFACT)


def recorded_predictions(entry: Entry, truth_sha256: str, shape: tuple[int, int],
                         tracking_uri: str | None = None) -> np.ndarray | None:
    """The 0/1 predictions ``entry`` was scored with (uint8 ``shape``, truth row order), as
    recorded beside its submission; None where the run has none (recorded before they were
    kept) or they are not of this truth: then read its submission (:func:`submission_copy`)."""
    if entry.tags.get(PREDICTIONS_TAG) != PREDICTIONS_ARTIFACT or entry.truth_sha256 != truth_sha256:
        return None
    client = store.client_for(store.resolve_tracking_uri(tracking_uri), create=False)
    with tempfile.TemporaryDirectory() as tmp:
        path = store.with_retry(client.download_artifacts, entry.run_id, PREDICTIONS_ARTIFACT, tmp)
        try:
            with np.load(path, allow_pickle=False) as found:
                if tuple(found["shape"]) != tuple(shape):
                    return None
                bits = np.unpackbits(found["bits"], count=shape[0] * shape[1])
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):  # damaged: the submission says it
            return None
    return bits.reshape(shape)


def entries(experiment: str, tracking_uri: str | None = None, page_size: int = 1000) -> list[Entry]:
    """Every finished run of ``experiment``, oldest first (all pages)."""
    uri = store.resolve_tracking_uri(tracking_uri)
    client = store.client_for(uri, create=False)  # reading never creates a ledger
    found = store.with_retry(client.get_experiment_by_name, experiment)
    if found is None:
        return []
    runs, token = [], None
    while True:
        page = store.with_retry(client.search_runs, [found.experiment_id],
                                filter_string="attributes.status = 'FINISHED'",
                                max_results=page_size, order_by=["attributes.start_time ASC"],
                                page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            break
    return [_entry(run) for run in runs]


def _entry(run: Any) -> Entry:
    tags = run.data.tags
    return Entry(run_id=run.info.run_id, team=tags.get("team", ""),
                 submission_sha256=tags.get("submission_sha256", ""),
                 truth_sha256=tags.get("truth_sha256", ""), truth_path=tags.get("truth_path", ""),
                 submission_name=tags.get("submission_name", ""), start_time=run.info.start_time,
                 previous_run=tags.get("previous_run", ""), metrics=dict(run.data.metrics),
                 tags=dict(tags))


@contextlib.contextmanager
def submission_copy(entry: Entry, tracking_uri: str | None = None) -> Iterator[Path]:
    """A temporary local copy of the submission ``entry`` scored."""
    client = store.client_for(store.resolve_tracking_uri(tracking_uri), create=False)
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(client.download_artifacts(entry.run_id, SUBMISSION_ARTIFACT, tmp))


@contextlib.contextmanager
def _writer_lock(uri: str) -> Iterator[None]:
    """Exclusive lock on ``<db>.lock`` for a SQLite store; nothing for a server."""
    db = store.sqlite_path(uri)
    if db is None:
        yield
        return
    import fcntl

    with open(f"{db}.lock", "a") as fh:
        deadline = time.monotonic() + _LOCK_TIMEOUT_S
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"ledger lock {db}.lock held for over "
                                       f"{_LOCK_TIMEOUT_S} s") from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
