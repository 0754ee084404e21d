"""``auh check``, ``auh score``, ``auh leaderboard`` (and, from :mod:`leaderboard.export`,
``auh export`` and ``auh blind``): the organizer's commands."""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

from harness.errors import UserError
from harness.fileio import check_output_file
from harness.metrics import DEFAULT_RESAMPLES, DEFAULT_SEED, MAX_RESAMPLES
from harness.schema import SCHEMAS, get_schema
from leaderboard import export
from leaderboard.challenge import DEFAULT_PHASE, Challenge, Phase, adhoc, load_challenge
from leaderboard.ranking import PICKS

_SCORE_EPILOG = """\
examples:
  auh score --truth truth.txt --submission sub.csv --team alpha
  auh score --challenge challenge.toml --phase test --team alpha --submission sub.csv --json
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    check = subparsers.add_parser(
        "check", help="validate a submission against the truth's images (logs nothing)",
        description="Run exactly the validation of `auh score`: one-line error and exit "
                    "status 2 on the first problem, nothing written anywhere.")
    _truth_args(check)
    check.add_argument("--submission", required=True, type=Path, help="submission CSV")
    check.set_defaults(func=cmd_check)

    score = subparsers.add_parser(
        "score", help="validate, score and record a submission in the ledger",
        description="Validate a submission, score it (challenge metric, bootstrap 95% CI), "
                    "record one immutable MLflow run and print the scorecard.",
        epilog=_SCORE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _truth_args(score)
    score.add_argument("--submission", required=True, type=Path, help="submission CSV")
    score.add_argument("--team", default="anonymous", help="team name (default: anonymous)")
    score.add_argument("--json", action="store_true", help="print the scorecard as JSON only")
    _ledger_args(score)
    score.set_defaults(func=cmd_score)

    board = subparsers.add_parser(
        "leaderboard", help="rank teams from the ledger (md, csv or html)",
        description="One row per team from the scoring ledger: rank (ties declared), scores, "
                    "95% CI, submissions, per-AU F1 and whether the gap to the next team is "
                    "significant (paired bootstrap).")
    _truth_args(board, truth_help="truth file for the significance test (default: the "
                                  "challenge's, or the one recorded at scoring)")
    board.add_argument("--private", action="store_true", help="rank on the private rows")
    board.add_argument("--format", choices=("md", "csv", "html"),
                       help="output format (default: from --out's extension, else md)")
    board.add_argument("--out", type=Path, help="write here (atomically) instead of stdout")
    board.add_argument("--pick", choices=PICKS, default="best",
                       help="each team's best submission (default) or its last")
    _ledger_args(board)
    board.set_defaults(func=cmd_leaderboard)
    export.register(subparsers)


def _truth_args(p: argparse.ArgumentParser, truth_help: str = "truth label file "
                "(challenge text format or CSV)") -> None:
    p.add_argument("--truth", type=Path, help=truth_help)
    p.add_argument("--challenge", type=Path, help="challenge definition (TOML)")
    p.add_argument("--phase", help=f"challenge phase (default: the first; '{DEFAULT_PHASE}' "
                                   f"without --challenge)")
    p.add_argument("--schema", choices=sorted(SCHEMAS), default="enc2020",
                   help="AU schema without --challenge (default: enc2020)")


def _ledger_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, "
                                          "else sqlite:///mlflow.db here)")
    p.add_argument("--resamples", type=int, default=DEFAULT_RESAMPLES,
                   help=f"bootstrap resamples (default {DEFAULT_RESAMPLES}; 0: none)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="bootstrap seed")


def _challenge(args: argparse.Namespace, truth_required: bool = True) -> tuple[Challenge, Phase]:
    if args.challenge and args.truth:
        if truth_required:
            raise UserError("give --truth or --challenge (whose phase names the truth), not both")
        challenge = load_challenge(args.challenge)
        return challenge, replace(challenge.phase(args.phase), truth=args.truth)
    if args.challenge:
        challenge = load_challenge(args.challenge)
        return challenge, challenge.phase(args.phase)
    if truth_required and args.truth is None:
        raise UserError("missing --truth (or --challenge with a phase that names a truth file)")
    challenge = adhoc(args.phase, args.truth, get_schema(args.schema))
    return challenge, challenge.phase(None)


# --------------------------------------------------------------------- check
def cmd_check(args: argparse.Namespace) -> int:
    from harness.labels import read_submission
    from leaderboard.scoring import load_truth

    challenge, phase = _challenge(args)
    truth = load_truth(phase.truth, challenge.schema)
    pred = read_submission(args.submission, truth.names, challenge.schema)
    print(f"ok: {args.submission} is a valid submission for {truth.path} "
          f"({pred.shape[0]:,} images x {pred.shape[1]} AUs)")
    return 0


# --------------------------------------------------------------------- score
def cmd_score(args: argparse.Namespace) -> int:
    from harness import store
    from leaderboard.scoring import score_submission

    _check_resamples(args)
    _quiet_mlflow()
    challenge, phase = _challenge(args)
    result = score_submission(challenge, phase, args.submission, args.team,
                              tracking_uri=args.tracking_uri, resamples=args.resamples,
                              seed=args.seed)
    if args.json:
        print(json.dumps(result.score, indent=2))
        return 0
    print(scorecard_text(result.score, result.views))
    uri = store.resolve_tracking_uri(args.tracking_uri)
    print(f"\nrecorded: run {result.run_id} in experiment {result.experiment!r}, team "
          f"{args.team!r}\nbrowse: {store.ui_command(uri)}")
    return 0


def scorecard_text(score: dict, views: dict[str, dict] | None = None) -> str:
    """The scorecard for people: totals, the 95% CI and a per-AU table."""
    def num(x: float | None) -> str:
        return "   n/a" if x is None else f"{x:.4f}"

    lo, hi = score["ci95"]
    ci = "" if lo is None else f"   95% CI [{lo:.4f}, {hi:.4f}]"
    lines = [f"final     {num(score['final'])}{ci}",
             f"accuracy  {num(score['accuracy'])}",
             f"F1        {num(score['f1'])}",
             f"images    {score['n_images']:,}"]
    for view, card in (views or {}).items():
        lines.append(f"{view:<9} {num(card['final'])}   ({card['n_images']:,} rows)")
    lines += ["", f"{'AU':<6}{'n':>9}  {'accuracy':>8}  {'F1':>6}"]
    for au, entry in score["per_au"].items():
        lines.append(f"{au:<6}{entry['n']:>9,}  {num(entry['accuracy']):>8}  {num(entry['f1']):>6}")
    if score.get("undefined_aus"):
        lines.append(f"undefined (no known truth rows, left out of the means): "
                     f"{', '.join(score['undefined_aus'])}")
    return "\n".join(lines)


def _quiet_mlflow() -> None:
    """The scorer's output is the scorecard: no MLflow banners or download bars
    (unless the user's environment asks for them)."""
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def _check_resamples(args: argparse.Namespace) -> None:
    if not 0 <= args.resamples <= MAX_RESAMPLES:
        raise UserError(f"--resamples: expected 0 to {MAX_RESAMPLES:,}, got {args.resamples}")
    if not 0 <= args.seed < 2 ** 63:
        raise UserError(f"--seed: expected an integer >= 0, got {args.seed}")


# --------------------------------------------------------------- leaderboard
def cmd_leaderboard(args: argparse.Namespace) -> int:
    from leaderboard import render
    from leaderboard.ranking import build_board

    _check_resamples(args)
    _quiet_mlflow()
    challenge, phase = _challenge(args, truth_required=False)
    if args.out is not None:
        check_output_file(args.out)
    fmt = args.format or _format_from(args.out)
    board = build_board(challenge, phase, private=args.private, pick=args.pick,
                        tracking_uri=args.tracking_uri, resamples=args.resamples, seed=args.seed)
    text = render.render(board, fmt)
    if args.out is None:
        sys.stdout.write(text)
    else:
        render.write(args.out, text)
        print(f"wrote {args.out} ({len(board.rows)} teams, {fmt})")
    return 0


def _format_from(out: Path | None) -> str:
    suffix = out.suffix.lower().lstrip(".") if out else ""
    return {"markdown": "md", "htm": "html"}.get(suffix, suffix) if suffix in (
        "md", "markdown", "csv", "html", "htm") else "md"
