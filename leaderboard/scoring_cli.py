"""``auh check``, ``auh score``, ``auh convert``, ``auh leaderboard``: the organizer's commands
(:mod:`leaderboard.export` adds ``auh export`` and ``auh blind``)."""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from harness import hookimpl
from harness.cli import add_command
from harness.errors import UserError
from harness.fileio import check_not_inputs, check_output_file
from harness.benchmark import DEFAULT_BENCHMARK, get_benchmark
from harness.metrics import DEFAULT_RESAMPLES, DEFAULT_SEED, MAX_RESAMPLES
from leaderboard.challenge import DEFAULT_PHASE, Challenge, Phase, adhoc, load_challenge
from leaderboard.other_tools import (DEFAULT_INTENSITY, DEFAULT_THRESHOLD, FACE_RULES, MISSING_RULES,
                                   UNCOVERED_RULES, Rules)
from leaderboard.ranking import PICKS

if TYPE_CHECKING:
    from leaderboard.scoring import Truth

_SCORE_EPILOG = """\
examples:
  auh score --truth truth.txt --submission sub.csv --team alpha
  auh score --challenge challenge.toml --phase test --team alpha --submission sub.csv --json
  auh score --truth truth.txt --from openface2 --submission of2_csvs/ --missing zeros
"""


@hookimpl
def auh_add_commands(subparsers: argparse._SubParsersAction) -> None:
    check = add_command(subparsers, "check", cmd_check)
    _truth_args(check)
    check.add_argument("--submission", required=True, type=Path,
                       help="submission file, or folder of per-video files (with --from: the "
                            "tool's output file or folder)")
    _tool_args(check)

    score = add_command(subparsers, "score", cmd_score, epilog=_SCORE_EPILOG,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    _truth_args(score)
    score.add_argument("--submission", required=True, type=Path,
                       help="submission file, or folder of per-video files (with --from: the "
                            "tool's output file or folder)")
    score.add_argument("--team", help="team name (default: the tool's name with --from, else anonymous)")
    score.add_argument("--json", action="store_true", help="print the scorecard as JSON only")
    _ledger_args(score)
    _tool_args(score)

    convert = add_command(subparsers, "convert", cmd_convert)
    convert.add_argument("output", type=Path, help="the tool's output file or folder")
    _truth_args(convert)
    convert.add_argument("--out", required=True, type=Path, help="submission CSV to write")
    _tool_args(convert, required=True)

    board = add_command(subparsers, "leaderboard", cmd_leaderboard)
    _truth_args(board, truth_help="truth file for the significance test (default: the "
                                  "challenge's, or the one recorded at scoring)")
    board.add_argument("--private", action="store_true", help="rank on the private rows")
    board.add_argument("--format", choices=("md", "csv", "html"),
                       help="output format (default: from --out's extension, else md)")
    board.add_argument("--out", type=Path, help="write here (atomically) instead of stdout")
    board.add_argument("--pick", choices=PICKS, default="best",
                       help="each team's best submission (default) or its last")
    _ledger_args(board)


def _truth_args(p: argparse.ArgumentParser, truth_help: str = "truth label file "
                "(challenge text format or CSV)") -> None:
    p.add_argument("--truth", type=Path, help=truth_help)
    p.add_argument("--challenge", type=Path, help="challenge definition (TOML)")
    p.add_argument("--phase", help=f"challenge phase (default: the first; '{DEFAULT_PHASE}' "
                                   f"without --challenge)")
    add_benchmark_arg(p)


def add_benchmark_arg(p: argparse.ArgumentParser) -> None:
    """``--benchmark NAME`` (``--schema`` is its older name)."""
    p.add_argument("--benchmark", "--schema", dest="benchmark", metavar="NAME",
                   help=f"the benchmark (auh plugins --kind benchmark; default: the challenge's, "
                        f"else {DEFAULT_BENCHMARK})")


def challenge_benchmark(challenge: Challenge, name: str | None) -> None:
    """Refuse a ``--benchmark`` other than the challenge file's."""
    if name is not None and name != challenge.benchmark.name:
        get_benchmark(name)  # an unknown name is refused as such
        raise UserError(f"--benchmark {name}: the challenge's benchmark is "
                        f"{challenge.benchmark.name!r}; expected that or no --benchmark")


def _tool_args(p: argparse.ArgumentParser, required: bool = False) -> None:
    g = p.add_argument_group("another tool's output (--from TOOL)")
    g.add_argument("--from", dest="tool", metavar="TOOL", required=required,
                   help="read the submission as TOOL's output (a reader: auh plugins --kind reader)")
    g.add_argument("--tool-version", default="", help="the tool's version, for the ledger")
    g.add_argument("--map", dest="map_path", type=Path,
                   help="CSV 'key,image': the tool's path or frame number -> truth image "
                        "(default: match by basename)")
    g.add_argument("--face", choices=FACE_RULES, default="largest",
                   help="which face of an image with several (default: largest box, else the "
                        "highest confidence)")
    g.add_argument("--missing", choices=MISSING_RULES,
                   help="images the tool skipped or failed on: score as predicted absent, or "
                        "leave out (required when there are any)")
    g.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                   help=f"probability threshold (default {DEFAULT_THRESHOLD})")
    g.add_argument("--intensity-threshold", type=float,
                   help=f"use intensities (0-5) >= this instead of the tool's presence columns "
                        f"(default: presence; intensity-only AUs >= {DEFAULT_INTENSITY:g})")
    g.add_argument("--fit-thresholds", nargs=2, type=Path, metavar=("VAL_TRUTH", "VAL_OUTPUT"),
                   help="fit per-AU thresholds on a validation truth and the tool's output on it")
    g.add_argument("--pose-aus", action="store_true",
                   help="derive the head-pose AUs 51-56 from the tool's pose angles (thresholds "
                        "and signs fitted with --fit-thresholds; labelled 'derived from pose')")
    g.add_argument("--uncovered", choices=UNCOVERED_RULES, default="not-predicted",
                   help="AUs the tool does not predict: no credit (default) or scored as "
                        "predicted absent")


_TOOL_OPTIONS = {"tool_version": "", "map_path": None, "face": "largest", "missing": None,
                 "threshold": DEFAULT_THRESHOLD, "intensity_threshold": None,
                 "fit_thresholds": None, "uncovered": "not-predicted", "pose_aus": False}


def _rules(args: argparse.Namespace) -> Rules:
    """The tool options as rules; refuses them (never ignores them) without ``--from``."""
    if not args.tool:
        given = [k for k, default in _TOOL_OPTIONS.items() if getattr(args, k) != default]
        if given:
            option = "--" + given[0].replace("_path", "").replace("_", "-")
            raise UserError(f"{option}: only with --from TOOL (it reads a tool's output, not a "
                            f"submission)")
        return Rules()
    if not 0 < args.threshold <= 1:
        raise UserError(f"--threshold: expected a probability in (0, 1], got {args.threshold:g}")
    level = args.intensity_threshold
    if level is not None and not 0 < level <= 5:
        raise UserError(f"--intensity-threshold: expected an intensity in (0, 5], got {level:g}")
    return Rules(face=args.face, missing=args.missing, threshold=args.threshold,
                 intensity_threshold=level, uncovered=args.uncovered, map_path=args.map_path,
                 pose_aus=args.pose_aus)


def _inputs(args: argparse.Namespace, phase: Phase) -> dict[str, Path | None]:
    """The files a scoring command reads, by the option that names them."""
    fit = args.fit_thresholds or (None, None)
    return {"--challenge": args.challenge, "truth": phase.truth, "--map": args.map_path,
            "--fit-thresholds VAL_TRUTH": fit[0], "--fit-thresholds VAL_OUTPUT": fit[1]}


def _fit(args: argparse.Namespace) -> tuple[Path, Path] | None:
    return tuple(args.fit_thresholds) if args.fit_thresholds else None


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
        challenge_benchmark(challenge, args.benchmark)
        return challenge, replace(challenge.phase(args.phase), truth=args.truth)
    if args.challenge:
        challenge = load_challenge(args.challenge)
        challenge_benchmark(challenge, args.benchmark)
        return challenge, challenge.phase(args.phase)
    if truth_required and args.truth is None:
        raise UserError("missing --truth (or --challenge with a phase that names a truth file)")
    challenge = adhoc(args.phase, args.truth, get_benchmark(args.benchmark or DEFAULT_BENCHMARK))
    return challenge, challenge.phase(None)


# --------------------------------------------------------------------- check
def cmd_check(args: argparse.Namespace) -> int:
    """validate a submission against the truth's images (logs nothing)

    Run exactly the validation of `auh score`: one-line error and exit status 2 on the first
    problem, nothing written anywhere.
    """
    from harness.layouts import read_predictions
    from leaderboard.scoring import load_truth

    rules = _rules(args)
    challenge, phase = _challenge(args)
    truth = load_truth(phase.truth, challenge.benchmark)
    if args.tool:
        return _check_tool(args, challenge, truth, rules)
    pred = read_predictions(args.submission, truth, challenge.benchmark)
    print(f"ok: {args.submission} is a valid submission for {truth.path} "
          f"({pred.shape[0]:,} {challenge.benchmark.unit}s x {pred.shape[1]} AUs)")
    return 0


def _check_tool(args: argparse.Namespace, challenge: Challenge, truth: Truth, rules: Rules) -> int:
    from leaderboard.scoring import tool_prediction

    p = tool_prediction(challenge.benchmark, truth, args.tool, args.submission, rules, _fit(args))
    print(f"ok: {args.submission} is a valid {args.tool} output for {truth.path} "
          f"({len(truth.names):,} images)")
    print(coverage_text(p.covered, challenge.schema.aus, p.missing, p.settings.missing))
    return 0


def coverage_text(covered: Sequence[str], aus: Sequence[str], missing: list[str],
                  missing_rule: str | None) -> str:
    """Covered AUs and missing images, for people (the full list is in --json)."""
    shown = ", ".join(missing[:10]) + (", ..." if len(missing) > 10 else "")
    lines = [f"covers    {len(covered)} of {len(aus)} AUs: {', '.join(covered)}",
             f"missing   {len(missing):,} images" + (f" ({missing_rule}): {shown}" if missing else "")]
    return "\n".join(lines)


# --------------------------------------------------------------------- score
def cmd_score(args: argparse.Namespace) -> int:
    """validate, score and record a submission in the ledger

    Validate a submission, score it (challenge metric, bootstrap 95% CI), record one immutable
    MLflow run and print the scorecard.
    """
    from leaderboard.scoring import score_submission
    from plugins.tracking import store

    _check_resamples(args)
    _quiet_mlflow()
    rules = _rules(args)
    challenge, phase = _challenge(args)
    team = args.team if args.team is not None else (args.tool or "anonymous")
    if args.tool:
        from leaderboard.scoring import score_tool

        result = score_tool(challenge, phase, args.tool, args.submission, team, rules,
                            fit=_fit(args), tool_version=args.tool_version,
                            tracking_uri=args.tracking_uri, resamples=args.resamples, seed=args.seed)
    else:
        result = score_submission(challenge, phase, args.submission, team,
                                  tracking_uri=args.tracking_uri, resamples=args.resamples,
                                  seed=args.seed)
    if args.json:
        print(json.dumps(result.score, indent=2))
        return 0
    print(scorecard_text(result.score, result.views))
    uri = store.resolve_tracking_uri(args.tracking_uri)
    print(f"\nrecorded: run {result.run_id} in experiment {result.experiment!r}, team "
          f"{team!r}\nbrowse: {store.ui_command(uri)}")
    return 0


# ------------------------------------------------------------------- convert
def cmd_convert(args: argparse.Namespace) -> int:
    """turn another tool's AU output into a submission CSV

    Read a tool's output (--from), match it to the truth's images and write its 0/1 predictions
    as a submission: AUs the tool does not predict and missing images are written as 0 (a
    submission needs 0 or 1), and say so.
    """
    from harness.layouts import write_submission
    from leaderboard.scoring import load_truth, submission_matrix, tool_prediction

    check_output_file(args.out)
    rules = _rules(args)
    if rules.missing == "exclude":
        raise UserError("--missing exclude: a submission needs a row for every truth image; "
                        "expected --missing zeros")
    challenge, phase = _challenge(args)
    check_not_inputs({"--out": args.out}, {"OUTPUT": args.output, **_inputs(args, phase)})
    truth = load_truth(phase.truth, challenge.benchmark)
    p = tool_prediction(challenge.benchmark, truth, args.tool, args.output, rules, _fit(args))
    aus = challenge.schema.aus
    write_submission(args.out, truth.names, submission_matrix(p, truth, aus), challenge.benchmark)
    uncovered = [au for au in aus if au not in p.covered]
    print(f"wrote {args.out} ({len(truth.names):,} images x {len(aus)} AUs) from {args.tool} "
          f"output {args.output}")
    print(coverage_text(p.covered, aus, p.missing, p.settings.missing))
    if uncovered:
        print(f"written as 0 (not predicted by {args.tool}): {', '.join(uncovered)}")
    print(f"rules     {p.rules}")
    return 0


def scorecard_text(score: dict, views: dict[str, dict] | None = None) -> str:
    """The scorecard for people: totals, the 95% CI and a per-AU table."""
    def num(x: float | None) -> str:
        return "   n/a" if x is None else f"{x:.4f}"

    lo, hi = score["ci95"]
    ci = "" if lo is None else f"   95% CI [{lo:.4f}, {hi:.4f}]"
    lines = [f"final     {num(score['final'])}{ci}",
             *([f"          final = {score['headline']} ({score['benchmark']})"] if "headline" in score else []),
             f"accuracy  {num(score['accuracy'])}",
             f"F1        {num(score['f1'])}",
             f"images    {score['n_images']:,}"]
    for view, card in (views or {}).items():
        lines.append(f"{view:<9} {num(card['final'])}   ({card['n_images']:,} rows)")
    if "coverage" in score:
        lines += _tool_lines(score, num)
    lines += ["", f"{'AU':<6}{'n':>9}  {'accuracy':>8}  {'F1':>6}"]
    for au, entry in score["per_au"].items():
        scores = ("  not predicted" if entry.get("predicted") is False else
                  f"  {num(entry['accuracy']):>8}  {num(entry['f1']):>6}"
                  + ("  (derived from pose)" if entry.get("derived_from_pose") else ""))
        lines.append(f"{au:<6}{entry['n']:>9,}{scores}")
    if score.get("undefined_aus"):
        lines.append(f"undefined (no known truth rows, left out of the means): "
                     f"{', '.join(score['undefined_aus'])}")
    return "\n".join(lines)


def _tool_lines(score: dict, num: Callable[[float | None], str]) -> list[str]:
    """A tool's scorecard: the covered-AU score, coverage, missing images and the rules."""
    cov, covered = score["coverage"], score["covered"]
    return [f"covered   {num(covered['final'])}   (final on the {len(cov['covered'])} covered AUs; "
            f"accuracy {num(covered['accuracy'])}, F1 {num(covered['f1'])})",
            f"all AUs:  uncovered {cov['uncovered']}",
            *([f"derived from pose: {', '.join(cov['derived_from_pose'])}"]
              if cov["derived_from_pose"] else []),
            coverage_text(cov["covered"], list(score["per_au"]), score["missing"]["images"],
                          score["missing"]["rule"]),
            f"rules     {score['rules']}"]


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
    """rank teams from the ledger (md, csv or html)

    One row per team from the scoring ledger: rank (ties declared), scores, 95% CI, submissions,
    per-AU F1 and whether the gap to the next team is significant (paired bootstrap).
    """
    from leaderboard import render
    from leaderboard.ranking import build_board

    _check_resamples(args)
    _quiet_mlflow()
    challenge, phase = _challenge(args, truth_required=False)
    if args.out is not None:
        check_output_file(args.out)
        check_not_inputs({"--out": args.out}, {"--challenge": args.challenge, "truth": phase.truth})
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
