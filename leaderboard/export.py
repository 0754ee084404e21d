"""``auh export codabench|evalai`` and ``auh blind``: a challenge on a real platform.

Both bundles carry this project's scorer, :mod:`leaderboard.scoring_program` and the
modules it imports, copied file by file from the installed package
(:data:`SCORER_MODULES`): numpy and the standard library are all they need.
Everything is validated (the challenge, every truth file, the platforms'
limits) before the first byte is written, and the zip appears atomically.

No private-row label enters a bundle: each phase's truth is packaged with its
private rows unknown (999 for enc2020), so a platform scores, stores and shows
the public rows only, whatever it returns to participants (Codabench's API
returns every score of a submission, hidden columns included). The private
board is ``auh score`` on the submissions downloaded after the phase
(docs/organizer.md).
"""
from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import io
import itertools
import json
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from harness import hookimpl
from harness.cli import add_command
from harness.errors import UserError
from leaderboard.scoring_cli import add_benchmark_arg, challenge_benchmark

if TYPE_CHECKING:  # imported by the commands that need them: `auh --help` stays light
    from harness.schema import AUSchema
    from leaderboard.challenge import Challenge, Phase
    from leaderboard.scoring import Truth

# The scorer's modules, in dependency order; `platform` imports the rest.
SCORER_MODULES: tuple[str, ...] = (
    "harness.errors", "harness.schema", "harness.fileio", "harness.labels", "harness.metrics",
    "harness.benchmark", "harness.layouts", "plugins", "plugins.metrics",
    "leaderboard", "leaderboard.challenge", "leaderboard.scoring", "leaderboard.scoring_program",
)
# `harness/__init__.py` loads the plugin system (pluggy): the bundle gets this instead.
_HARNESS_INIT = '"""The scorer of au-harness, packaged by `auh export` (numpy and the standard library only)."""\n'
CODABENCH_IMAGE = "codalab/codalab-legacy:py39"
CODABENCH_COMMAND = "python3 -m leaderboard.scoring_program ../input ../output"  # run in the program folder
KEY_MAX, TITLE_MAX, BOARD_TITLE_MAX = 36, 36, 64  # Codabench's column and leaderboard limits
PRECISION = 4
# Both platforms need numbers where the challenge sets no cap (EvalAI's own default).
NO_CAP = 100_000
INT32_MAX = 2 ** 31 - 1  # the platforms' integer fields (PostgreSQL integer)
# EvalAI (apps/challenges/models.py): CharField(max_length=100) for the title, and the
# FileField of a phase's annotation (default max_length 100) stores the path the zip
# was extracted to: tempfile.mkdtemp() ("/tmp/tmpXXXXXXXX", 16) + "/" + a 10-character
# folder + "/" before the bundle's own path.
EVALAI_TITLE_MAX, EVALAI_FILE_MAX, EVALAI_EXTRACT_PREFIX = 100, 100, 28
PUBLIC = 3  # EvalAI's visibility code of a phase split shown to everyone
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_ZIP_TIME = (2020, 1, 1, 0, 0, 0)  # fixed: the same challenge gives the same bytes


@dataclass(frozen=True)
class Checked:
    """A challenge whose truth files were all read and validated."""

    challenge: Challenge
    truths: dict[str, Truth]  # by phase name


# ------------------------------------------------------------------ commands
@hookimpl
def auh_add_commands(subparsers: argparse._SubParsersAction) -> None:
    export = add_command(subparsers, "export", cmd_export)
    export.add_argument("platform", choices=sorted(EXPORTERS), help="the platform")
    export.add_argument("--challenge", required=True, type=Path, help="challenge definition (TOML)")
    add_benchmark_arg(export)
    export.add_argument("out", type=Path, metavar="OUT.zip", help="the zip to write")

    blind = add_command(subparsers, "blind", cmd_blind)
    blind.add_argument("--challenge", required=True, type=Path, help="challenge definition (TOML)")
    blind.add_argument("--phase", help="phase (default: the first)")
    add_benchmark_arg(blind)
    blind.add_argument("out", type=Path, metavar="OUT", help="folder to write")


def cmd_export(args: argparse.Namespace) -> int:
    """a Codabench or EvalAI bundle of a challenge, scored by this scorer

    Write a bundle to upload to Codabench (competition bundle, v2) or EvalAI (challenge
    configuration zip). Its scoring program is this project's scorer, needing only numpy. See
    docs/organizer.md.
    """
    from harness.fileio import check_not_inputs

    out = _zip_path(args.out)
    checked = check_challenge(args.challenge)
    challenge_benchmark(checked.challenge, args.benchmark)
    check_not_inputs({"OUT.zip": out}, _challenge_inputs(args.challenge, checked))
    files = EXPORTERS[args.platform](checked)
    write_zip(out, files)
    print(f"wrote {out} ({args.platform}, {len(checked.truths)} phase"
          f"{'s' * (len(checked.truths) > 1)}, {len(files)} files)")
    return 0


def cmd_blind(args: argparse.Namespace) -> int:
    """what participants get: the test image list and a submission template

    Write OUT/images.txt (the phase's test images, sorted), OUT/blind_truth.csv (every label
    unknown, 999 for enc2020: `auh check --truth` it; a folder of per-video files for a video
    benchmark; none for a benchmark without an unknown code) and OUT/submission_template.csv
    (the submission header, every image with all AUs 0: a valid submission to edit; .txt for
    a video benchmark). Never any truth label.
    """
    import numpy as np

    from harness.fileio import atomic_open, check_output_folder
    from harness.layouts import Table, write_submission, write_truth_files
    from harness.labels import write_labels
    from harness.schema import UNKNOWN

    check_output_folder(args.out, "OUT")
    checked = check_challenge(args.challenge)
    challenge_benchmark(checked.challenge, args.benchmark)
    phase = checked.challenge.phase(args.phase)
    benchmark, truth = checked.challenge.benchmark, checked.truths[phase.name]
    videos = truth.videos  # a video's frames keep their order: only whole videos are listed
    names = truth.names if videos is not None else sorted(truth.names)  # sorted: the order tells nothing
    blind = np.full((len(names), len(benchmark.aus)), UNKNOWN)
    template = "submission_template" + (".txt" if videos is not None else ".csv")
    truth_name = "blind_truth/" if videos is not None else "blind_truth.csv" if benchmark.coding.unknown else None
    written = ["images.txt", *([truth_name] if truth_name else []), template]
    _check_targets(args.out, written, _challenge_inputs(args.challenge, checked))
    with atomic_open(args.out / "images.txt", "w", newline="\n") as fh:
        fh.writelines(f"{name}\n" for name in names)
    if videos is not None:
        write_truth_files(args.out / "blind_truth", Table(names, blind, videos), benchmark)
    elif truth_name:
        write_labels(args.out / truth_name, names, blind, benchmark.schema)
    write_submission(args.out / template, names, np.zeros(blind.shape, dtype=np.int64), benchmark)
    print(f"wrote {args.out}/{', '.join(written[:-1])} and {written[-1]} "
          f"({len(names):,} {benchmark.unit}s, phase {phase.name!r})")
    return 0


def _check_targets(out: Path, names: list[str], inputs: dict[str, Path]) -> None:
    """Every file (and ``name/`` folder) ``auh blind`` writes under ``out`` can be written
    and replaces no input: refused before the first is written."""
    from harness.fileio import check_not_inputs, check_output_folder

    for name in names:
        path = out / name.rstrip("/")
        if name.endswith("/"):
            check_output_folder(path, f"OUT/{name}")
        elif path.is_dir():
            raise UserError(f"OUT/{name} ({str(path)!r}): is a directory; expected a file name to write")
    check_not_inputs({f"OUT/{name}": out / name.rstrip("/") for name in names}, inputs)


def _challenge_inputs(path: Path, checked: Checked) -> dict[str, Path]:
    """The challenge file and its truth files, which no output may replace."""
    return {"--challenge": path, **{f"phases.{name}.truth": phase.truth
                                    for name, phase in checked.challenge.phases.items()}}


# ----------------------------------------------------------------- checking
def check_challenge(path: Path) -> Checked:
    """Load the challenge and read every phase's truth (the same checks as ``auh score``)."""
    from leaderboard.challenge import load_challenge
    from leaderboard.scoring import load_truth

    challenge = load_challenge(path)
    for name in challenge.phases:
        if not _SAFE_NAME.fullmatch(name):
            raise UserError(f"{path}: phases.{name}: expected a phase name of letters, digits, "
                            f"'-', '_' and '.' (it names folders and codenames on the platforms)")
    _check_packaged_metric(path, challenge)
    truths = {name: load_truth(phase.truth, challenge.benchmark) for name, phase in challenge.phases.items()}
    return Checked(challenge, truths)


def _check_packaged_metric(path: Path, challenge: Challenge) -> None:
    """The packaged scorer carries the built-in metrics only (numpy and the standard library)."""
    from plugins.metrics import BUILTIN

    name = challenge.benchmark.metric
    if BUILTIN.get(name) is not challenge.metric:
        raise UserError(f"{path}: benchmark {challenge.benchmark.name!r} is scored by metric {name!r}, "
                        f"which the packaged scorer does not carry; expected one of "
                        f"{', '.join(sorted(BUILTIN))}")


def public_truth(checked: Checked, phase: str) -> bytes:
    """A phase's truth as a bundle holds it: one CSV table, every private row unknown
    (a frame-level truth's videos go into the config). All a platform gets."""
    import tempfile

    from harness.layouts import Table, write_truth_table
    from harness.schema import UNKNOWN

    challenge, truth = checked.challenge, checked.truths[phase]
    private = ~challenge.public_mask(challenge.phases[phase], truth.split_keys)
    if private.any() and not challenge.benchmark.coding.unknown:
        raise UserError(f"phases.{phase}: benchmark {challenge.benchmark.name!r} has no code for an "
                        f"unknown label, so its private rows cannot be kept off the platform; "
                        f"expected public_fraction = 1 (score the private rows with `auh score`)")
    labels = truth.labels.copy()
    labels[private] = UNKNOWN
    with tempfile.TemporaryDirectory() as tmp:
        table = Path(tmp) / "truth.csv"
        write_truth_table(table, Table(truth.names, labels, truth.videos), challenge.benchmark)
        return table.read_bytes()


def _zip_path(out: Path) -> Path:
    from harness.fileio import check_output_file

    if out.suffix.lower() != ".zip":
        raise UserError(f"{out}: expected a file name ending in .zip")
    return check_output_file(out, "OUT.zip")


def columns(schema: AUSchema) -> list[tuple[str, str]]:
    """``(key, title)`` of the leaderboard columns, checked against Codabench's limits."""
    from leaderboard.scoring_program import column_keys

    cols = column_keys(schema)
    keys = [key for key, _ in cols]
    if len(set(keys)) != len(keys):
        raise UserError(f"schema {schema.name!r}: two AUs give the same column key")
    for key, title in cols:
        if len(key) > KEY_MAX or len(title) > TITLE_MAX:
            raise UserError(f"schema {schema.name!r}: column {key!r} ({title!r}) is longer than "
                            f"{KEY_MAX} characters, Codabench's limit; expected shorter AU names")
    return cols


# ------------------------------------------------------------------ Codabench
def codabench_files(checked: Checked) -> dict[str, bytes]:
    """The competition bundle: competition.yaml, pages, logo, scoring program, reference data."""
    from leaderboard.scoring_program import CONFIG

    challenge = checked.challenge
    title = f"{challenge.name}: facial action unit detection"[:BOARD_TITLE_MAX]
    _check_sequential(challenge)
    files = {"logo.png": _logo(), **_pages(challenge, "md")}
    files.update(_scorer("scoring_program/"))
    files["scoring_program/metadata.yaml"] = _yaml({"command": CODABENCH_COMMAND})
    tasks, phases = [], []
    for index, (name, phase) in enumerate(challenge.phases.items()):
        ref = f"reference_data/{name}/"
        files[ref + "truth.csv"] = public_truth(checked, name)
        files[ref + CONFIG] = _config(checked, {name: "truth.csv"})
        tasks.append({"index": index, "name": name, "description": f"Scoring of phase {name}",
                      "scoring_program": "scoring_program", "reference_data": ref.rstrip("/")})
        phases.append(_codabench_phase(index, name, phase, challenge))
    cols = [_column(i, key, title) for i, (key, title) in enumerate(ranking_columns(challenge))]
    files["competition.yaml"] = _yaml({
        "version": 2, "title": title,
        "description": f"{challenge.name}: score = {challenge.metric.over_aus} over the AUs.",
        "image": "logo.png", "registration_auto_approve": False,
        "docker_image": CODABENCH_IMAGE, "enable_detailed_results": True,
        "terms": "pages/terms.md",
        "pages": [{"title": "Overview", "file": "pages/overview.md"},
                  {"title": "Evaluation", "file": "pages/evaluation.md"}],
        "tasks": tasks, "phases": phases,
        # Force_Best: each participant's best by the columns' order, as `auh leaderboard`'s pick.
        "leaderboards": [{"index": 0, "title": title, "key": "main", "primary_index": 0,
                          "submission_rule": "Force_Best", "columns": cols}],
    })
    return files


def ranking_columns(challenge: Challenge) -> list[tuple[str, str]]:
    """The leaderboard columns, ``(key, title)``, in the challenge's tie-break order.

    Codabench orders by the primary column, then every other column in
    order, then the earlier submission: the score keys of ``tie_break`` up
    to ``time`` are exactly that order (a key after ``time`` never decides,
    since no two submissions share a time). Per-AU scores are on the
    detailed results page, not columns, which would break ties first.
    """
    titles = dict(columns(challenge.schema))
    keys = list(itertools.takewhile(lambda key: key != "time", challenge.tie_break))
    if not keys:
        raise UserError(f"tie_break {list(challenge.tie_break)}: starts with time; neither "
                        f"platform can rank by submission time first: expected a score first")
    return [(key, titles[key]) for key in keys]


def _cap(phase: Phase) -> int:
    """The phase's cap for a platform's 32-bit field (``NO_CAP`` where it sets none)."""
    if phase.cap is not None and phase.cap > INT32_MAX:
        raise UserError(f"phases.{phase.name}.cap: {phase.cap} does not fit the platforms' "
                        f"32-bit fields; expected at most {INT32_MAX}")
    return phase.cap or NO_CAP


def _codabench_phase(index: int, name: str, phase: Phase, challenge: Challenge) -> dict[str, Any]:
    cap = _cap(phase)
    # Written explicitly: without them Codabench applies 5 a day and 100 in all.
    entry: dict[str, Any] = {"index": index, "name": name, "description": _phase_text(phase, challenge),
                             "start": _when(phase.start or _today()), "tasks": [index],
                             "max_submissions_per_day": cap, "max_submissions": cap,
                             # Logs carry a refused submission's one-line reason; the bundle
                             # has no prediction step, and scores.json repeats the board.
                             "hide_output": False, "hide_prediction_output": True,
                             "hide_score_output": True}
    if phase.end:
        entry["end"] = _when(phase.end)
    return entry


def _column(index: int, key: str, title: str) -> dict[str, Any]:
    return {"index": index, "title": title, "key": key, "sorting": "desc",
            "precision": PRECISION, "computation": None, "computation_indexes": None,
            "hidden": False}


def _check_sequential(challenge: Challenge) -> None:
    """Codabench refuses phases that overlap, a phase that starts when the one before
    ends ("Phases dates conflict"), and an open-ended phase with one after it."""
    phases = list(challenge.phases.values())
    for before, after in zip(phases, phases[1:]):
        if before.end is None:
            raise UserError(f"phases.{before.name}: Codabench needs an end date for a phase with "
                            f"another after it; add end = YYYY-MM-DD")
        start = after.start or _today()
        if start <= before.end:
            how = "starts when" if start == before.end else "starts before"
            raise UserError(f"phases.{after.name}: {how} phases.{before.name} ends ({before.end}); "
                            f"Codabench needs each phase to start after the previous one ends")


# --------------------------------------------------------------------- EvalAI
def evalai_files(checked: Checked) -> dict[str, bytes]:
    """The challenge zip: challenge_config.yaml, templates, logo, annotations, evaluation script."""
    from leaderboard.scoring_program import CONFIG

    challenge = checked.challenge
    # Annotation files by phase number: EvalAI stores the extraction path in 100 characters.
    truths = {name: f"phase{index}.csv" for index, name in enumerate(challenge.phases, start=1)}
    script = {**_scorer(""), "__init__.py": _EVALAI_INIT.encode()}
    script[CONFIG] = _config(checked, truths)
    files = {"logo.png": _logo(), **_pages(challenge, "html")}
    files.update((f"evaluation_script/{name}", data) for name, data in script.items())
    files["evaluation_script.zip"] = _zip_bytes(script)
    phases = []
    for index, (name, phase) in enumerate(challenge.phases.items(), start=1):
        files[f"annotations/{truths[name]}"] = public_truth(checked, name)
        files[f"templates/phase_{name}.html"] = f"<p>{_phase_text(phase, challenge)}</p>\n".encode()
        phases.append(_evalai_phase(index, name, phase, f"annotations/{truths[name]}", challenge))
    ranked = [key for key, _ in ranking_columns(challenge)]
    labels = ranked + [key for key, _ in columns(challenge.schema) if key not in ranked]
    files["challenge_config.yaml"] = _yaml({
        "title": challenge.name,
        "short_description": f"Facial action unit detection: {challenge.metric.over_aus}",
        "description": "templates/description.html",
        "evaluation_details": "templates/evaluation_details.html",
        "terms_and_conditions": "templates/terms_and_conditions.html",
        "image": "logo.png",
        "submission_guidelines": "templates/submission_guidelines.html",
        "leaderboard_description": f"final = {challenge.metric.over_aus} over the AUs",
        "evaluation_script": "evaluation_script.zip",
        "remote_evaluation": False, "is_docker_based": False,
        "start_date": min(p["start_date"] for p in phases), "end_date": max(p["end_date"] for p in phases),
        "published": False,
        "leaderboard": [{"id": 1, "schema": {"labels": labels, "default_order_by": ranked[0]}}],
        "challenge_phases": phases,
        "dataset_splits": [{"id": 1, "name": "Public rows", "codename": "public"}],
        "challenge_phase_splits": [_split(p["id"]) for p in phases],
    })
    _check_evalai_limits(challenge, files)
    return files


def _check_evalai_limits(challenge: Challenge, files: dict[str, bytes]) -> None:
    """EvalAI's field lengths, checked on what the bundle holds (see EVALAI_*)."""
    if len(challenge.name) > EVALAI_TITLE_MAX:
        raise UserError(f"name: {len(challenge.name)} characters; EvalAI's challenge title holds at "
                        f"most {EVALAI_TITLE_MAX}: expected a shorter challenge name")
    for name in files:
        if name.startswith("annotations/") and EVALAI_EXTRACT_PREFIX + len(name) > EVALAI_FILE_MAX:
            raise UserError(f"{name}: EvalAI stores an annotation file's extraction path in "
                            f"{EVALAI_FILE_MAX} characters; expected a shorter file name")


_EVALAI_INIT = '''"""EvalAI's entry point: au-harness's scorer, packaged by `auh export evalai`."""
import os
import sys

# The packaged modules import each other as `harness.*` and `leaderboard.*`.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from leaderboard.scoring_program import evaluate  # noqa: E402,F401
'''


def _evalai_phase(index: int, name: str, phase: Phase, annotations: str,
                  challenge: Challenge) -> dict[str, Any]:
    cap = _cap(phase)
    # is_submission_public: every scored submission is on the public board, as with `auh leaderboard`.
    return {"id": index, "name": name, "description": f"templates/phase_{name}.html",
            "leaderboard_public": True, "is_public": True, "is_submission_public": True,
            "start_date": _when(phase.start or _today()),
            "end_date": _when(phase.end or dt.datetime(2099, 12, 31, 23, 59, 59)),
            "test_annotation_file": annotations, "codename": name,
            "max_submissions_per_day": cap, "max_submissions_per_month": cap,
            "max_submissions": cap, "is_restricted_to_select_one_submission": False,
            "is_partial_submission_evaluation_enabled": False,
            "allowed_submission_file_types": ".csv" if challenge.benchmark.unit == "image" else ".txt,.zip"}


def _split(phase_id: int) -> dict[str, Any]:
    return {"challenge_phase_id": phase_id, "leaderboard_id": 1, "dataset_split_id": 1,
            "visibility": PUBLIC, "leaderboard_decimal_precision": PRECISION,
            "is_leaderboard_order_descending": True}


EXPORTERS: dict[str, Callable[[Checked], dict[str, bytes]]] = {
    "codabench": codabench_files, "evalai": evalai_files,
}


# -------------------------------------------------------------------- pieces
def _scorer(prefix: str) -> dict[str, bytes]:
    """The scorer's module files, read from the installed package."""
    files = {}
    for module in SCORER_MODULES:
        origin = Path(importlib.util.find_spec(module).origin)
        rel = Path(*module.split(".")).with_suffix(".py") if origin.name != "__init__.py" \
            else Path(*module.split("."), "__init__.py")
        files[prefix + rel.as_posix()] = origin.read_bytes()
    files[prefix + "harness/__init__.py"] = _HARNESS_INIT.encode()
    return files


def _config(checked: Checked, truths: dict[str, str]) -> bytes:
    """What the packaged scorer needs to know: the benchmark, each phase's truth file (its
    known rows are the public rows: no split salt leaves the organizer) and the videos of
    a frame-level truth."""
    def phase_config(name: str) -> dict[str, Any]:
        body: dict[str, Any] = {"truth": truths[name]}
        videos = checked.truths[name].videos
        if videos is not None:
            body["videos"] = [[v, n] for v, n in zip(videos.names, videos.frames)]
        return body

    challenge = checked.challenge
    return json.dumps({"name": challenge.name, "schema": challenge.schema.name,
                       "benchmark": challenge.benchmark.to_dict(),
                       "phases": {name: phase_config(name) for name in truths}}, indent=1).encode()


def _phase_text(phase: Phase, challenge: Challenge) -> str:
    unit = challenge.benchmark.unit
    split = (f" {phase.public_fraction:.0%} of the {unit}s rank this board; the rest rank the "
             f"final board, scored by the organizers after the phase (no score of theirs is "
             f"shown here)." if phase.has_private else "")
    cap = f" At most {phase.cap} submissions." if phase.cap else ""
    what = "one submission CSV" if unit == "image" else "one submission file or its per-video files"
    return f"Phase {phase.name}: upload a zip holding {what}.{split}{cap}"


def _pages(challenge: Challenge, kind: str) -> dict[str, bytes]:
    from harness.labels import submission_header

    benchmark, unit = challenge.benchmark, challenge.benchmark.unit
    header = submission_header(challenge.schema, benchmark.image_column)
    overview = (f"{challenge.name}: detect {len(challenge.schema)} facial action units "
                f"({challenge.schema.name} schema) in every test {unit}.")
    unknown = " or ".join(map(str, benchmark.coding.unknown))
    dropped = f"rows whose truth is {unknown} (unknown) are left out; " if unknown else ""
    evaluation = (f"For each AU, {dropped}accuracy and F1 are computed on the "
                  f"{'rest' if unknown else 'rows'}. accuracy and F1 are the means over the AUs, "
                  f"and final = {challenge.metric.headline}.")
    submit = (f"A {'CSV' if unit == 'image' else 'file'} with the header {header} and one row "
              f"per test {unit}, 0 or 1 per AU (check it first with `auh check`).")
    terms = "Submissions are scored automatically; the organizers may remove any submission."
    if kind == "md":
        return {"pages/overview.md": f"# Overview\n\n{overview}\n\n{submit}\n".encode(),
                "pages/evaluation.md": f"# Evaluation\n\n{evaluation}\n".encode(),
                "pages/terms.md": f"# Terms\n\n{terms}\n".encode()}
    return {f"templates/{name}.html": f"<p>{text}</p>\n".encode() for name, text in (
        ("description", overview), ("evaluation_details", evaluation),
        ("submission_guidelines", submit), ("terms_and_conditions", terms))}


def _today() -> dt.datetime:
    return dt.datetime.combine(dt.datetime.now(dt.timezone.utc).date(), dt.time())


def _when(moment: dt.datetime) -> str:
    """``YYYY-MM-DD HH:MM:SS``, the year always in 4 digits (strftime's %Y is not, before 1000)."""
    return f"{moment.year:04d}-{moment:%m-%d %H:%M:%S}"


def _yaml(data: dict[str, Any]) -> bytes:
    import yaml  # PyYAML: only the export writes YAML

    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True).encode()


def _logo(size: int = 64) -> bytes:
    """A plain PNG: both platforms require a logo file; organizers replace it."""
    raw = b"".join(b"\x00" + bytes((60, 90, 160)) * size for _ in range(size))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))


def _zip_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(files):
            zf.writestr(zipfile.ZipInfo(name, _ZIP_TIME), files[name], zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def write_zip(out: Path, files: dict[str, bytes]) -> None:
    """Write the zip atomically: a temporary file beside ``out``, renamed when complete."""
    from harness.fileio import atomic_path

    data = _zip_bytes(files)
    with atomic_path(out) as tmp:
        tmp.write_bytes(data)
