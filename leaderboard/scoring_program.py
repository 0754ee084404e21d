"""The scoring program of the Codabench and EvalAI bundles (``auh export``).

This module and the ones it imports (:mod:`leaderboard.scoring`,
:mod:`leaderboard.challenge`, :mod:`harness.labels`, :mod:`harness.metrics`,
...) are copied into the bundles as they are, and need only numpy and the
standard library: a submission is validated and scored there exactly as by
``auh check`` and ``auh score`` (without the bootstrap interval and the ledger).

The export writes :data:`CONFIG` next to the truth: the challenge's benchmark
(declared as plain data) and, per phase, the truth file and, for a
frame-level truth, its videos. The export set every private row of the truth
to unknown: every score computed here is of the public rows, and nothing here
can compute a private one.

* Codabench runs ``python3 -m leaderboard.scoring_program ../input ../output`` in the
  program folder: the truth is in ``input/ref``, the participant's files in
  ``input/res``; it writes ``output/scores.json`` and
  ``output/detailed_results.html``. A refused submission exits with status 2
  and its one-line reason, and writes nothing.
* EvalAI calls :func:`evaluate`.
"""
from __future__ import annotations

import html
import json
import math
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from harness.benchmark import Benchmark
from harness.errors import UserError, one_line
from harness.layouts import SUFFIX, Videos
from harness.schema import AUSchema
from leaderboard.challenge import Challenge, Phase
from leaderboard.scoring import Result, validate_and_score

CONFIG = "challenge.json"
TOTALS = (("final", "final"), ("accuracy", "accuracy"), ("f1", "F1"))


# ------------------------------------------------------------------ scores
def column_keys(schema: AUSchema) -> list[tuple[str, str]]:
    """``(key, title)`` of every score a platform records, in column order:
    final, accuracy, F1, then the F1 of each AU."""
    return [*TOTALS, *((f"f1_{au}", f"{au} F1") for au in schema.aus)]


def leaderboard_scores(card: dict[str, Any]) -> dict[str, float]:
    """The scorecard's numbers under :func:`column_keys`; an undefined score
    (no known truth row) is left out, so every value is finite."""
    values = {key: card[key] for key, _ in TOTALS}
    values.update((f"f1_{au}", entry["f1"]) for au, entry in card["per_au"].items())
    return {key: float(v) for key, v in values.items() if v is not None and math.isfinite(v)}


# ------------------------------------------------------------------ config
def load_config(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: missing; the bundle's reference data is incomplete") from None


def phase_of(config: dict[str, Any], phase: str, truth: Path) -> tuple[Challenge, Phase]:
    """The challenge and phase of ``config`` with the truth at ``truth``."""
    body = config["phases"].get(phase)
    if body is None:
        raise UserError(f"no phase {phase!r} in the bundle; phases: {', '.join(config['phases'])}")
    from plugins.metrics import BUILTIN  # the packaged metrics: no plugin registry here

    benchmark = Benchmark.from_dict(config["benchmark"])
    videos = body.get("videos")
    chosen = Phase(phase, truth, videos=None if videos is None else Videos(*map(tuple, zip(*videos))))
    challenge = Challenge(config["name"], benchmark, {phase: chosen}, metric=BUILTIN[benchmark.metric])
    return challenge, chosen


def score(config: dict[str, Any], phase: str, truth: Path, submission: Path) -> Result:
    """Validate and score one submission (no bootstrap: ``ci95`` is undefined)."""
    challenge, chosen = phase_of(config, phase, truth)
    return validate_and_score(challenge, chosen, submission, resamples=0)[1]


# --------------------------------------------------------------- Codabench
def codabench(input_dir: Path, output_dir: Path) -> dict[str, float]:
    """Score ``input/res`` against ``input/ref``; write scores.json and the detailed page."""
    ref = input_dir / "ref"
    config = load_config(ref / CONFIG)
    (phase, body), = config["phases"].items()  # one phase per reference data
    result = score(config, phase, ref / body["truth"],
                   _submission(input_dir / "res", Benchmark.from_dict(config["benchmark"])))
    scores = leaderboard_scores(result.score)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "detailed_results.html").write_text(detailed_html(result.score),
                                                      encoding="utf-8")
    (output_dir / "scores.json").write_text(json.dumps(scores, indent=1), encoding="utf-8")
    return scores


def _submission(res: Path, benchmark: Benchmark | None = None) -> Path:
    """The participant's upload (at its top level or in one folder): its one submission
    file (a CSV for an image benchmark), or, for a benchmark of per-video files, the
    folder of its video files."""
    frames = benchmark is not None and benchmark.unit == "frame"
    suffix = SUFFIX if frames else ".csv"
    found = sorted(p for p in res.rglob(f"*{suffix}") if not any(part.startswith((".", "__")) for
                                                                  part in p.relative_to(res).parts))
    folders = {p.parent for p in found}
    if len(found) > 1 and len(folders) == 1 and frames and "frame_files" in benchmark.submission_layouts:
        return found[0].parent
    if len(found) != 1:
        names = ", ".join(p.relative_to(res).as_posix() for p in found[:5]) or "none"
        raise UserError(f"the submission must hold exactly one {suffix} file (found: {names}); "
                        f"expected a zip of one submission file")
    return found[0]


def detailed_html(card: dict[str, Any]) -> str:
    """A self-contained page with the per-AU table of the public board's rows
    (never the private ones: participants see this page)."""
    headline = f"<p>final = {html.escape(card['headline'])}</p>" if "headline" in card else ""
    parts = [f"<h2>Per-AU scores ({card['n_images']:,} images)</h2>{headline}{_au_table(card)}"]
    style = ("body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Per-AU scores</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>\n")


def _au_table(card: dict[str, Any]) -> str:
    def num(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.4f}"

    rows = [f"<tr><th>{html.escape(au)}</th><td>{e['n']:,}</td><td>{num(e['accuracy'])}</td>"
            f"<td>{num(e['f1'])}</td></tr>" for au, e in card["per_au"].items()]
    total = (f"<tr><th>mean</th><td></td><td>{num(card['accuracy'])}</td><td>{num(card['f1'])}</td></tr>"
             f"<tr><th>final</th><td></td><td colspan='2'>{num(card['final'])}</td></tr>")
    return ("<table><tr><th>AU</th><th>known rows</th><th>accuracy</th><th>F1</th></tr>"
            f"{''.join(rows)}{total}</table>")


# ------------------------------------------------------------------ EvalAI
def evaluate(test_annotation_file: str, user_submission_file: str, phase_codename: str,
             **kwargs: Any) -> dict[str, Any]:
    """EvalAI's entry point: ``{"result": [{"public": scores}], "submission_result": scores}``,
    the phase's one dataset split (its public rows). A refused submission raises
    :class:`UserError` with its one-line reason.
    """
    config = load_config(Path(__file__).resolve().parent.parent / CONFIG)
    submission = Path(user_submission_file)
    if zipfile.is_zipfile(submission):  # a zip of per-video files (a video benchmark)
        with tempfile.TemporaryDirectory() as tmp:
            _unzip(submission, Path(tmp))
            found = _submission(Path(tmp), Benchmark.from_dict(config["benchmark"]))
            result = score(config, phase_codename, Path(test_annotation_file), found)
    else:
        result = score(config, phase_codename, Path(test_annotation_file), submission)
    scores = leaderboard_scores(result.score)
    return {"result": [{"public": scores}], "submission_result": scores}


def _unzip(archive: Path, into: Path) -> None:
    """Extract a participant's zip, refusing members that would land outside ``into``."""
    with zipfile.ZipFile(archive) as zf:
        for member in zf.namelist():
            target = (into / member).resolve()
            if not target.is_relative_to(into.resolve()):
                raise UserError(f"{archive.name}: member {member!r} points outside the archive")
        zf.extractall(into)


def main(argv: list[str] | None = None) -> int:
    """``python -m leaderboard.scoring_program INPUT OUTPUT`` (the Codabench command)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m leaderboard.scoring_program INPUT_DIR OUTPUT_DIR", file=sys.stderr)
        return 2
    try:
        scores = codabench(Path(args[0]), Path(args[1]))
    except UserError as exc:
        print(f"auh: error: {one_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
    print(json.dumps(scores))
    return 0


if __name__ == "__main__":
    sys.exit(main())
