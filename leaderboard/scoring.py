"""Validate, score and record one submission: the work behind ``auh check`` and ``auh score``.

The order is the contract: the truth and the submission are validated
completely before anything is scored, and nothing reaches the ledger unless
validation and scoring succeeded and the team is within its cap.

Everything but :func:`score_submission` needs only numpy and the standard
library: :func:`validate_and_score` is the scorer that ``auh export`` packages
for Codabench and EvalAI.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from harness.benchmark import Benchmark
from harness.errors import UserError
from harness.fileio import sha256_file
from harness.layouts import Videos, read_predictions, read_truth, write_submission
from harness.metrics import DEFAULT_RESAMPLES, DEFAULT_SEED, Metric, bootstrap_ci, challenge_score, named
from leaderboard.challenge import Challenge, Phase

if TYPE_CHECKING:  # the recording side's modules load only when a score is recorded
    from leaderboard import other_tools

VIEWS = ("public", "private")
SPLIT_TAG = "split"  # ledger tag: the phase's public/private split when scored (Challenge.split_id)


@dataclass(frozen=True)
class Truth:
    """A truth (a label file, or a folder of per-video files), read and fingerprinted."""

    path: Path
    names: list[str]
    labels: np.ndarray
    sha256: str
    videos: Videos | None = None  # frame-level truth: its videos, in row order

    @property
    def groups(self) -> np.ndarray | None:
        """The video of each row (the bootstrap's unit), or None for images."""
        return None if self.videos is None else self.videos.group_of_rows()

    @property
    def split_keys(self) -> list[str]:
        """What the public/private split hashes, per row: the image name, or the frame's
        video (a video is public or private whole)."""
        if self.videos is None:
            return self.names
        return [self.videos.names[g] for g in self.groups.tolist()]


@dataclass
class Result:
    """What ``auh score`` reports: the scorecard (all rows), the public and
    private scorecards when the phase splits its rows, and the ledger run."""

    score: dict[str, Any]
    views: dict[str, dict[str, Any]] = field(default_factory=dict)
    run_id: str = ""
    experiment: str = ""


def load_truth(path: Path | None, benchmark: Benchmark, videos: Videos | None = None) -> Truth:
    """Read a truth in the benchmark's layout (a label file, or a folder of per-video
    files; with ``videos``, a frame-level truth packaged as one table)."""
    if path is None:
        raise UserError("no truth file: pass --truth or a --challenge whose phase names one")
    table = read_truth(path, benchmark, videos)
    return Truth(Path(path), table.names, table.labels, _fingerprint(Path(path)), table.videos)


def _fingerprint(path: Path) -> str:
    """The file's SHA-256; a folder's is that of its files' names and SHA-256s."""
    if not path.is_dir():
        return sha256_file(path)
    import hashlib

    listing = "".join(f"{p.name}\t{sha256_file(p)}\n" for p in sorted(path.iterdir())
                      if p.is_file() and not p.name.startswith("."))
    return hashlib.sha256(listing.encode()).hexdigest()


def scorecard(pred: np.ndarray, truth: np.ndarray, aus: tuple[str, ...],
              resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED,
              benchmark: tuple[Benchmark, Metric] | None = None,
              groups: np.ndarray | None = None) -> dict[str, Any]:
    """The scorecard's JSON object: the benchmark's score plus ``ci95``
    (seeded bootstrap over images, or over videos with ``groups``;
    ``[None, None]`` when undefined). A benchmark other than the default also
    names itself, its metric and what ``final`` is (``"mean F1"``)."""
    bench, metric = benchmark or (None, None)
    score = challenge_score(pred, truth, aus, metric)
    ci: list[float | None] = [None, None]
    if score["final"] is not None and resamples > 0:
        ci = bootstrap_ci(pred, truth, resamples, seed, metric=metric, groups=groups)
    ordered = {k: score[k] for k in ("final", "accuracy", "f1", "n_images")}
    ordered["ci95"] = ci
    if bench is not None and metric is not None:
        ordered.update(named(bench.name, metric))
    ordered.update((k, v) for k, v in score.items() if k not in ordered)
    return ordered


def _card(challenge: Challenge, truth: Truth, pred: np.ndarray, resamples: int,
          seed: int) -> Callable[[np.ndarray], dict[str, Any]]:
    """The scorecard of the truth rows a mask keeps."""
    groups = truth.groups

    def card(rows: np.ndarray) -> dict[str, Any]:
        take = slice(None) if rows.all() else rows  # all rows: views, not copies of millions
        kept = None if groups is None else np.unique(groups[take], return_inverse=True)[1]
        return scorecard(pred[take], truth.labels[take], challenge.schema.aus, resamples, seed,
                         (challenge.benchmark, challenge.metric), kept)

    return card


def validate_and_score(challenge: Challenge, phase: Phase, submission: Path,
                       resamples: int = DEFAULT_RESAMPLES,
                       seed: int = DEFAULT_SEED) -> tuple[Truth, Result]:
    """Validate the truth and the submission, then score all rows and, when
    the phase splits its rows, the public and the private ones."""
    truth = load_truth(phase.truth, challenge.benchmark, phase.videos)
    pred = read_predictions(submission, truth, challenge.benchmark)
    card = _card(challenge, truth, pred, resamples, seed)
    result = Result(card(np.ones(len(truth.names), dtype=bool)))
    if phase.has_private:
        public = challenge.public_mask(phase, truth.split_keys)
        for view, rows in zip(VIEWS, (public, ~public)):
            result.views[view] = card(rows)
    return truth, result


def score_submission(challenge: Challenge, phase: Phase, submission: Path, team: str, *,
                     tracking_uri: str | None = None, resamples: int = DEFAULT_RESAMPLES,
                     seed: int = DEFAULT_SEED) -> Result:
    """Validate, score, record one run in the ledger and call the ``auh_scored`` hook."""
    from leaderboard import ledger

    _check_request(team, Path(submission), tracking_uri)
    truth = load_truth(phase.truth, challenge.benchmark)
    ledger.check_text("truth path", str(truth.path.absolute()))
    pred = read_predictions(submission, truth, challenge.benchmark)
    card = _card(challenge, truth, pred, resamples, seed)
    if not Path(submission).is_dir():
        return _record(challenge, phase, truth, team, Path(submission), pred, card,
                       tracking_uri=tracking_uri)
    with tempfile.TemporaryDirectory() as tmp:
        # per-video files: the ledger keeps them as one table file (the benchmark's own layout)
        table = Path(tmp) / f"{Path(submission).name}.txt"
        write_submission(table, truth.names, pred, challenge.benchmark)
        return _record(challenge, phase, truth, team, table, pred, card, tracking_uri=tracking_uri,
                       source=Path(submission))


def score_tool(challenge: Challenge, phase: Phase, tool: str, output: Path, team: str,
               rules: other_tools.Rules, *, fit: tuple[Path, Path] | None = None,
               tool_version: str = "", tracking_uri: str | None = None,
               resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> Result:
    """Score another tool's output like a submission: coverage in the scorecard, the tool, its
    version and the rules as ledger tags, its 0/1 predictions as the run's submission file."""
    from leaderboard import other_tools, ledger

    _check_request(team, Path(output), tracking_uri)
    ledger.check_text("--tool-version", tool_version, ledger.TEAM_MAX)
    truth = load_truth(phase.truth, challenge.benchmark)
    ledger.check_text("truth path", str(truth.path.absolute()))
    p = tool_prediction(challenge.benchmark, truth, tool, output, rules, fit)
    aus = challenge.schema.aus
    tags = {"tool": tool, "tool_version": tool_version or "unknown", "reader_rules": p.rules,
            "coverage": ",".join(p.covered), "derived_from_pose": ",".join(p.derived),
            "uncovered": rules.uncovered, "missing": rules.missing or "none"}
    for key, value in tags.items():  # file names reach the rules line
        ledger.check_text(key, value)
    output = Path(output)
    with tempfile.TemporaryDirectory() as tmp:
        # a CSV (the submission format) named after the tool's output, for the board's file column
        converted = Path(tmp) / (output.name if output.suffix.lower() == ".csv" else f"{output.name}.csv")
        recorded = submission_matrix(p, truth, aus)
        write_submission(converted, truth.names, recorded, challenge.benchmark)
        return _record(challenge, phase, truth, team, converted, recorded,
                       lambda rows: tool_scorecard(p, truth.labels, aus, rows, resamples, seed,
                                                   (challenge.benchmark, challenge.metric)),
                       tracking_uri=tracking_uri, tags=tags, source=output)


def tool_prediction(benchmark: Benchmark, truth: Truth, tool: str, output: Path,
                    rules: other_tools.Rules, fit: tuple[Path, Path] | None) -> other_tools.Prediction:
    """The tool's predictions for ``truth``, with thresholds fitted on ``fit`` = (val truth, val output)."""
    import dataclasses

    from leaderboard import other_tools

    if benchmark.unit == "frame":  # a video's rows match the benchmark's frame names
        rules = dataclasses.replace(rules, frame_name=benchmark.frame_name)
    fitted = None
    if fit is not None:
        val = load_truth(fit[0], benchmark)
        fitted = other_tools.fit_thresholds(tool, fit[1], val.names, val.labels, benchmark.aus, rules)
    return other_tools.predict(tool, output, truth.names, benchmark.aus, rules, fitted)


def submission_matrix(p: other_tools.Prediction, truth: Truth, aus: tuple[str, ...]) -> np.ndarray:
    """The tool's predictions as a submission: uncovered AUs and missing images 0."""
    from leaderboard import other_tools

    return other_tools.full_predictions(p.pred, p.covered, truth.labels, aus, "zeros")


def tool_scorecard(p: other_tools.Prediction, truth: np.ndarray, aus: Sequence[str], rows: np.ndarray,
                   resamples: int, seed: int,
                   benchmark: tuple[Benchmark, Metric] | None = None) -> dict[str, Any]:
    """The scorecard on all AUs (uncovered ones by the rule) of the truth ``rows`` that are
    kept, plus the covered-AU score, the coverage and the missing images."""
    from leaderboard import other_tools

    rows = rows & p.keep
    truth, pred = truth[rows], p.pred[rows]
    uncovered = p.settings.uncovered
    card = scorecard(other_tools.full_predictions(pred, p.covered, truth, aus, uncovered), truth, aus,
                     resamples, seed, benchmark)
    not_covered = [au for au in aus if au not in p.covered]
    if uncovered == "not-predicted":
        for au in not_covered:
            card["per_au"][au] = {"accuracy": None, "f1": None, "n": card["per_au"][au]["n"],
                                  "predicted": False}
    covered = scorecard(pred, truth[:, [list(aus).index(au) for au in p.covered]], p.covered,
                        resamples, seed, benchmark)
    card["covered"] = {k: covered[k] for k in ("final", "accuracy", "f1", "ci95")}
    for au in p.derived:
        card["per_au"][au]["derived_from_pose"] = True
    card["coverage"] = {"tool": p.tool, "covered": list(p.covered), "not_predicted": not_covered,
                        "derived_from_pose": list(p.derived), "uncovered": other_tools.UNCOVERED_TEXT[uncovered]}
    card["missing"] = {"count": len(p.missing), "rule": p.settings.missing, "images": p.missing}
    card["rules"] = p.rules
    card["thresholds"] = p.thresholds
    return card



def _check_request(team: str, submission: Path, tracking_uri: str | None) -> None:
    """Before any work: a team name, a file name and a ledger that can be recorded."""
    from leaderboard import ledger

    if not team.strip():
        raise UserError("--team: expected a non-empty team name")
    ledger.check_text("--team", team, ledger.TEAM_MAX)
    ledger.check_text("submission file name", submission.name)
    ledger.check_writable(tracking_uri)


def _record(challenge: Challenge, phase: Phase, truth: Truth, team: str, submission: Path,
            pred: np.ndarray, card: Callable[[np.ndarray], dict[str, Any]], *,
            tracking_uri: str | None, tags: dict[str, str] | None = None,
            source: Path | None = None) -> Result:
    """Scorecards of all rows and of each view, one ledger run, then the ``auh_scored`` hook.

    ``submission`` is the file recorded and ``pred`` its 0/1 predictions in truth row order
    (recorded too, for the board); ``source`` the file the user gave, when they differ
    (a tool's output, recorded as its 0/1 predictions)."""
    import harness  # the plugin registry and MLflow: only the recording needs them
    from harness.registry import _own_version
    from leaderboard import ledger

    every = np.ones(len(truth.names), dtype=bool)
    result = Result(card(every))
    metrics = ledger.score_metrics(result.score)
    if "covered" in result.score:
        metrics.update(ledger.score_metrics(result.score["covered"], prefix="covered/", per_au=False))
    if phase.has_private:
        public = challenge.public_mask(phase, truth.split_keys)
        for view, mask in zip(VIEWS, (public, ~public)):
            result.views[view] = card(mask)
            metrics.update(ledger.score_metrics(result.views[view], prefix=f"{view}/"))
    result.experiment = challenge.experiment(phase)
    tags = {**(tags or {}), "benchmark": challenge.benchmark.name}  # never ranked with another's runs
    result.run_id = ledger.log_score(
        result.experiment, team=team, metrics=metrics, scorecard=result.score,
        submission=submission, truth=truth.path, truth_sha256=truth.sha256,
        submission_sha256=sha256_file(submission), cap=phase.cap,
        scorer_version=_own_version(), tracking_uri=tracking_uri,
        extra_tags={**(tags or {}), SPLIT_TAG: challenge.split_id(phase)}, predictions=pred)
    harness.get_registry().hook.auh_scored(score=result.score, context={
        "team": team, "phase": phase.name, "challenge": challenge.name,
        "submission": str(source or submission), "truth": str(truth.path), "run_id": result.run_id})
    return result
