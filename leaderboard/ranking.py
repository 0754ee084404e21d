"""From ledger entries to a ranked board: one row per team.

* Entries: re-scoring a file supersedes the earlier run of that (team,
  file); a team's *submissions* are its distinct files, each dated by when
  it was first scored.
* Pick: a team's best submission (by the tie-break order) or its last one.
* Rank: sorted by the tie-break keys (default final, F1, accuracy, then
  the earlier submission). Rows equal on every key share a rank; a row whose
  ``final`` equals its neighbour's says so and names the key that ordered them.
* Gap: a paired bootstrap (same resampled images) of each team against the
  next one gives the probability that the higher row really is better; the
  gap is called significant at 0.95.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from harness.benchmark import DEFAULT_BENCHMARK
from harness.errors import UserError
from harness.layouts import read_predictions
from harness.metrics import (DEFAULT_RESAMPLES, DEFAULT_SEED, Metric, PairedResult, bootstrap_finals,
                             final_score, paired_from_finals)
from leaderboard.challenge import DEFAULT_TIE_BREAK, Challenge, Phase
from leaderboard.ledger import Entry

SIGNIFICANCE = 0.95
PICKS = ("best", "last")


@dataclass
class Row:
    """One team on the board; ``values`` are read under the board's metric prefix."""

    team: str
    entry: Entry
    submitted_ms: int  # when this file was first scored
    submissions: int
    final: float | None
    accuracy: float | None
    f1: float | None
    ci95: tuple[float, float] | None
    per_au_f1: dict[str, float | None]
    covered: int | None = None  # AUs a tool predicts; None: a submission (all of them)
    rank: int = 0
    tie: str = ""
    gap: PairedResult | None = None

    @property
    def submitted(self) -> str:
        return dt.datetime.fromtimestamp(self.submitted_ms / 1000, dt.timezone.utc).strftime(
            "%Y-%m-%d %H:%M:%S UTC")

    @property
    def significant(self) -> bool | None:
        return None if self.gap is None else self.gap.p_a_better >= SIGNIFICANCE


@dataclass
class Board:
    """A ranked leaderboard and what it was computed from."""

    title: str
    view: str  # "public", "private" or "all"
    pick: str
    aus: tuple[str, ...]
    rows: list[Row]
    notes: list[str] = field(default_factory=list)


def build_rows(entries: Sequence[Entry], aus: Sequence[str], prefix: str, pick: str,
               tie_break: Sequence[str] = DEFAULT_TIE_BREAK) -> list[Row]:
    """One ranked row per team from finished ledger ``entries`` (oldest first)."""
    if pick not in PICKS:
        raise UserError(f"--pick: expected one of {', '.join(PICKS)}, got {pick!r}")
    latest: dict[tuple[str, str], Entry] = {}
    first_ms: dict[tuple[str, str], int] = {}
    for e in entries:
        key = (e.team, e.submission_sha256)
        latest[key] = e  # entries are oldest first: re-scoring supersedes
        first_ms.setdefault(key, e.start_time)
    by_team: dict[str, list[Row]] = {}
    for key, e in latest.items():
        by_team.setdefault(e.team, []).append(_row(e, first_ms[key], aus, prefix))
    rows = []
    for candidates in by_team.values():
        if pick == "best":
            chosen = sorted(candidates, key=lambda r: _sort_key(r, tie_break))[0]
        else:
            chosen = max(candidates, key=lambda r: r.submitted_ms)
        chosen.submissions = len(candidates)
        rows.append(chosen)
    return rank(rows, tie_break)


def rank(rows: list[Row], tie_break: Sequence[str] = DEFAULT_TIE_BREAK) -> list[Row]:
    """Sort by the tie-break keys; equal keys share a rank; equal finals are declared."""
    rows = sorted(rows, key=lambda r: _sort_key(r, tie_break))
    for i, row in enumerate(rows):
        prev = rows[i - 1] if i else None
        same = prev is not None and _sort_key(prev, tie_break) == _sort_key(row, tie_break)
        row.rank = prev.rank if same else i + 1
        if prev is not None and row.final is not None and row.final == prev.final:
            decided = next((k for k in tie_break if _value(prev, k) != _value(row, k)), None)
            how = f"; ordered by {decided}" if decided else ""
            row.tie = f"tied on final with {prev.team}{how}"
            prev.tie = prev.tie or f"tied on final with {row.team}{how}"
    return rows


def add_significance(rows: list[Row], predictions: Callable[[Entry], np.ndarray | None],
                     truth: np.ndarray, resamples: int = DEFAULT_RESAMPLES,
                     seed: int = DEFAULT_SEED, metric: Metric | None = None,
                     groups: np.ndarray | None = None) -> None:
    """Set ``row.gap`` for each row against the next one (paired bootstrap of
    the benchmark's ``metric`` on ``truth``'s rows, or on its videos with
    ``groups``); a row whose predictions are unavailable gets none.

    Every pair is compared on the resamples of the same seed, so each team's
    ``final`` per resample is computed once, one team at a time, and pairs
    read them: the same numbers as :func:`~harness.metrics.paired_bootstrap`
    of each pair, with one submission in memory at a time.
    """
    if resamples <= 0:
        return
    finals: list[tuple[float, np.ndarray] | None] = []
    for row in rows:
        pred = predictions(row.entry)
        finals.append(None if pred is None else (
            final_score(pred, truth, metric),
            bootstrap_finals([pred], truth, resamples, seed, metric, groups)[:, 0]))
    for i, (a, b) in enumerate(zip(finals, finals[1:])):
        if a is not None and b is not None:
            rows[i].gap = paired_from_finals(a[1], b[1], a[0] - b[0])


def build_board(challenge: Challenge, phase: Phase, *, private: bool = False, pick: str = "best",
                tracking_uri: str | None = None, resamples: int = DEFAULT_RESAMPLES,
                seed: int = DEFAULT_SEED) -> Board:
    """The leaderboard of ``phase``: a query over the ledger, plus the paired
    bootstrap of neighbours on the truth (the phase's, else the one recorded
    at scoring; a run scored against another truth gets no gap test)."""
    from leaderboard import ledger, scoring

    if phase.has_private:
        view = "private" if private else "public"
    elif private:
        raise UserError(f"--private: phase {phase.name!r} has no private rows "
                        f"(its public_fraction is 1)")
    else:
        view = "all"
    prefix = "" if view == "all" else f"{view}/"
    experiment = challenge.experiment(phase)
    entries = ledger.entries(experiment, tracking_uri)
    others = [e for e in entries if e.tags.get("benchmark", DEFAULT_BENCHMARK) != challenge.benchmark.name]
    entries = [e for e in entries if e not in others]
    entries, resplit = _by_split(entries, challenge, phase, prefix)
    rows = build_rows(entries, challenge.schema.aus, prefix, pick, challenge.tie_break)
    board = Board(f"{challenge.name} / {phase.name}: {view} leaderboard", view, pick,
                  challenge.schema.aus, rows,
                  notes=[f"ranked by {', then '.join(challenge.tie_break)} (time: the earlier "
                         f"submission first)"])
    if resplit:
        board.notes.append(f"scored with another public/private split than the challenge's now "
                           f"(its public_fraction or split_salt was edited): re-score them; not "
                           f"ranked: {', '.join(resplit)}")
    if others:
        board.notes.append(f"{len(others)} run(s) of another benchmark than "
                           f"{challenge.benchmark.name!r} in {experiment!r}: not on this board")
    if not entries:
        if not resplit and not others:
            board.notes.append(f"no scored submissions yet in experiment {experiment!r}")
        return board
    truth_path = phase.truth or Path(entries[-1].truth_path)
    if not truth_path.exists():
        board.notes.append(f"truth {truth_path} not found: gaps were not tested")
        return board
    truth = scoring.load_truth(truth_path, challenge.benchmark)
    keep: slice | np.ndarray = slice(None)  # all rows: views, not copies of millions
    if view != "all":
        public = challenge.public_mask(phase, truth.split_keys)
        keep = public if view == "public" else ~public
    stale = [r.team for r in rows if r.entry.truth_sha256 != truth.sha256]
    if stale:
        board.notes.append(f"scored against another truth than {truth_path.name} (re-score "
                           f"them; no gap test): {', '.join(stale)}")

    excluded = [r.team for r in rows if r.entry.tags.get("missing") == "exclude"]
    if excluded:
        board.notes.append(f"scored with --missing exclude (rows differ; no gap test): "
                           f"{', '.join(excluded)}")

    def predictions(entry: Entry) -> np.ndarray | None:
        if entry.truth_sha256 != truth.sha256 or entry.tags.get("missing") == "exclude":
            return None
        pred = ledger.recorded_predictions(entry, truth.sha256, truth.labels.shape, tracking_uri)
        if pred is None:  # recorded before the predictions were kept: read the submission
            with ledger.submission_copy(entry, tracking_uri) as copy:
                pred = read_predictions(copy, truth, challenge.benchmark)
        return _as_scored(pred, entry, truth.labels, challenge.schema.aus)[keep]

    groups = None if truth.groups is None else np.unique(truth.groups[keep], return_inverse=True)[1]
    add_significance(rows, predictions, truth.labels[keep], resamples, seed, challenge.metric, groups)
    return board


# ------------------------------------------------------------------ helpers
def _by_split(entries: Sequence[Entry], challenge: Challenge, phase: Phase,
              prefix: str) -> tuple[list[Entry], list[str]]:
    """The entries scored with the phase's current public/private split, and the teams
    that have none (their scores are of other rows: never ranked). Every run has its all-rows scores;
    a run recorded before the split was tagged counts when it has this view's scores."""
    from leaderboard.scoring import SPLIT_TAG

    if not prefix:
        return list(entries), []
    current = challenge.split_id(phase)

    def same_split(e: Entry) -> bool:
        tag = e.tags.get(SPLIT_TAG)
        return tag == current if tag is not None else any(k.startswith(prefix) for k in e.metrics)

    fresh = [e for e in entries if same_split(e)]
    ranked = {e.team for e in fresh}
    return fresh, list(dict.fromkeys(e.team for e in entries if e.team not in ranked))


def _as_scored(pred: np.ndarray, entry: Entry, truth: np.ndarray, aus: Sequence[str]) -> np.ndarray:
    """A tool's stored submission (uncovered AUs 0) as it was scored: "not predicted" AUs
    get no credit, exactly as in its scorecard."""
    from leaderboard.other_tools import full_predictions

    if "coverage" not in entry.tags:
        return pred
    covered = [au for au in entry.tags["coverage"].split(",") if au]
    cols = [aus.index(au) for au in covered]
    return full_predictions(pred[:, cols], covered, truth, aus, entry.tags.get("uncovered", "zeros"))


def _row(entry: Entry, first_ms: int, aus: Sequence[str], prefix: str) -> Row:
    m = entry.metrics

    def get(name: str) -> float | None:
        return m.get(prefix + name)

    lo, hi = get("ci95_lo"), get("ci95_hi")
    return Row(team=entry.team, entry=entry, submitted_ms=first_ms, submissions=1,
               final=get("final"), accuracy=get("accuracy"), f1=get("f1"),
               ci95=(lo, hi) if lo is not None and hi is not None else None,
               per_au_f1={au: get(f"au/{au}/f1") for au in aus},
               covered=len(entry.tags["coverage"].split(",")) if "coverage" in entry.tags else None)


def _value(row: Row, key: str) -> float:
    """The tie-break value, oriented so that smaller sorts first."""
    if key == "time":
        return float(row.submitted_ms)
    value = getattr(row, key)
    return float("inf") if value is None else -value


def _sort_key(row: Row, tie_break: Sequence[str]) -> tuple[float, ...]:
    return tuple(_value(row, k) for k in tie_break)
