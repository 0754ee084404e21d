"""Validate, score and record one submission: the work behind ``auh check`` and ``auh score``.

The order is the contract: the truth and the submission are validated
completely before anything is scored, and nothing reaches the ledger unless
validation and scoring succeeded and the team is within its cap.

Everything but :func:`score_submission` needs only numpy and the standard
library: :func:`validate_and_score` is the scorer that ``auh export`` packages
for Codabench and EvalAI.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import UserError
from harness.fileio import sha256_file
from harness.labels import read_labels, read_submission
from harness.metrics import DEFAULT_RESAMPLES, DEFAULT_SEED, bootstrap_ci, challenge_score
from harness.schema import AUSchema
from leaderboard.challenge import Challenge, Phase

VIEWS = ("public", "private")


@dataclass(frozen=True)
class Truth:
    """A truth label file, read and fingerprinted."""

    path: Path
    names: list[str]
    labels: np.ndarray
    sha256: str


@dataclass
class Result:
    """What ``auh score`` reports: the scorecard (all rows), the public and
    private scorecards when the phase splits its rows, and the ledger run."""

    score: dict[str, Any]
    views: dict[str, dict[str, Any]] = field(default_factory=dict)
    run_id: str = ""
    experiment: str = ""


def load_truth(path: Path | None, schema: AUSchema) -> Truth:
    """Read a truth file (text or CSV labels)."""
    if path is None:
        raise UserError("no truth file: pass --truth or a --challenge whose phase names one")
    names, labels = read_labels(path, schema)
    return Truth(Path(path), names, labels, sha256_file(path))


def scorecard(pred: np.ndarray, truth: np.ndarray, aus: tuple[str, ...],
              resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> dict[str, Any]:
    """The scorecard's JSON object: the challenge score plus ``ci95``
    (seeded bootstrap over images; ``[None, None]`` when undefined)."""
    score = challenge_score(pred, truth, aus)
    ci: list[float | None] = [None, None]
    if score["final"] is not None and resamples > 0:
        ci = bootstrap_ci(pred, truth, resamples, seed)
    ordered = {k: score[k] for k in ("final", "accuracy", "f1", "n_images")}
    ordered["ci95"] = ci
    ordered.update((k, v) for k, v in score.items() if k not in ordered)
    return ordered


def validate_and_score(challenge: Challenge, phase: Phase, submission: Path,
                       resamples: int = DEFAULT_RESAMPLES,
                       seed: int = DEFAULT_SEED) -> tuple[Truth, Result]:
    """Validate the truth and the submission, then score all rows and, when
    the phase splits its rows, the public and the private ones."""
    truth = load_truth(phase.truth, challenge.schema)
    pred = read_submission(submission, truth.names, challenge.schema)
    aus = challenge.schema.aus
    result = Result(scorecard(pred, truth.labels, aus, resamples, seed))
    if phase.has_private:
        public = challenge.public_mask(phase, truth.names)
        for view, rows in zip(VIEWS, (public, ~public)):
            result.views[view] = scorecard(pred[rows], truth.labels[rows], aus, resamples, seed)
    return truth, result


def score_submission(challenge: Challenge, phase: Phase, submission: Path, team: str, *,
                     tracking_uri: str | None = None, resamples: int = DEFAULT_RESAMPLES,
                     seed: int = DEFAULT_SEED) -> Result:
    """Validate, score, record one run in the ledger and call the ``auh_scored`` hook."""
    import harness  # the plugin registry and MLflow: only the recording needs them
    from harness.registry import _own_version
    from leaderboard import ledger

    if not team.strip():
        raise UserError("--team: expected a non-empty team name")
    ledger.check_text("--team", team, ledger.TEAM_MAX)
    ledger.check_text("submission file name", Path(submission).name)
    ledger.check_writable(tracking_uri)
    if phase.truth is not None:  # without one, validate_and_score says so
        ledger.check_text("truth path", str(Path(phase.truth).absolute()))
    truth, result = validate_and_score(challenge, phase, submission, resamples, seed)
    metrics = ledger.score_metrics(result.score)
    for view, card in result.views.items():
        metrics.update(ledger.score_metrics(card, prefix=f"{view}/"))
    result.experiment = challenge.experiment(phase)
    result.run_id = ledger.log_score(
        result.experiment, team=team, metrics=metrics, scorecard=result.score,
        submission=Path(submission), truth=truth.path, truth_sha256=truth.sha256,
        submission_sha256=sha256_file(submission), cap=phase.cap,
        scorer_version=_own_version(), tracking_uri=tracking_uri)
    harness.get_registry().hook.auh_scored(score=result.score, context={
        "team": team, "phase": phase.name, "challenge": challenge.name,
        "submission": str(submission), "truth": str(truth.path), "run_id": result.run_id})
    return result
