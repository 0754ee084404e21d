"""``auh export codabench|evalai`` and ``auh blind``: a challenge on a real platform.

Both bundles carry this project's scorer, :mod:`leaderboard.scoring_program` and the
modules it imports, copied file by file from the installed package
(:data:`SCORER_MODULES`): numpy and the standard library are all they need.
Everything is validated (the challenge, every truth file, the platforms'
limits) before the first byte is written, and the zip appears atomically.
"""
from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import io
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
NO_CAP = 100_000  # EvalAI needs a number where the challenge sets no cap
# EvalAI's visibility codes for a phase split: 1 host only, 3 public.
HOST_ONLY, PUBLIC = 1, 3
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
    out = _zip_path(args.out)
    checked = check_challenge(args.challenge)
    challenge_benchmark(checked.challenge, args.benchmark)
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
    written = ["images.txt", template]
    with atomic_open(args.out / "images.txt", "w", newline="\n") as fh:
        fh.writelines(f"{name}\n" for name in names)
    if videos is not None:
        write_truth_files(args.out / "blind_truth", Table(names, blind, videos), benchmark)
        written.insert(1, "blind_truth/")
    elif benchmark.coding.unknown:
        write_labels(args.out / "blind_truth.csv", names, blind, benchmark.schema)
        written.insert(1, "blind_truth.csv")
    write_submission(args.out / template, names, np.zeros(blind.shape, dtype=np.int64), benchmark)
    print(f"wrote {args.out}/{', '.join(written[:-1])} and {written[-1]} "
          f"({len(names):,} {benchmark.unit}s, phase {phase.name!r})")
    return 0


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


def truth_file(checked: Checked, phase: str) -> tuple[str, bytes]:
    """A phase's truth as the bundle holds it: ``(suffix, bytes)``. A folder of
    per-video files becomes one CSV table (its videos go into the config)."""
    source = checked.challenge.phases[phase].truth
    if not source.is_dir():
        return source.suffix, source.read_bytes()
    import tempfile

    from harness.layouts import Table, write_truth_table

    truth = checked.truths[phase]
    with tempfile.TemporaryDirectory() as tmp:
        table = Path(tmp) / "truth.csv"
        write_truth_table(table, Table(truth.names, truth.labels, truth.videos), checked.challenge.benchmark)
        return ".csv", table.read_bytes()


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
    from leaderboard.scoring_program import CONFIG, PRIVATE

    challenge = checked.challenge
    title = f"{challenge.name}: facial action unit detection"[:BOARD_TITLE_MAX]
    _check_sequential(challenge)
    files = {"logo.png": _logo(), **_pages(challenge, "md")}
    files.update(_scorer("scoring_program/"))
    files["scoring_program/metadata.yaml"] = _yaml({"command": CODABENCH_COMMAND})
    tasks, phases = [], []
    for index, (name, phase) in enumerate(challenge.phases.items()):
        ref = f"reference_data/{name}/"
        suffix, data = truth_file(checked, name)
        truth_name = "truth" + suffix
        files[ref + truth_name] = data
        files[ref + CONFIG] = _config(checked, {name: phase}, {name: truth_name})
        tasks.append({"index": index, "name": name, "description": f"Scoring of phase {name}",
                      "scoring_program": "scoring_program", "reference_data": ref.rstrip("/")})
        phases.append(_codabench_phase(index, name, phase, challenge))
    keys = columns(challenge.schema)
    if any(p.has_private for p in challenge.phases.values()):
        keys += [(PRIVATE + key, f"private {title}") for key, title in keys[:3]]
    cols = [_column(i, key, title, hidden=i >= 3) for i, (key, title) in enumerate(keys)]
    files["competition.yaml"] = _yaml({
        "version": 2, "title": title,
        "description": f"{challenge.name}: score = {challenge.metric.over_aus} over the AUs.",
        "image": "logo.png", "registration_auto_approve": False,
        "docker_image": CODABENCH_IMAGE, "enable_detailed_results": True,
        "terms": "pages/terms.md",
        "pages": [{"title": "Overview", "file": "pages/overview.md"},
                  {"title": "Evaluation", "file": "pages/evaluation.md"}],
        "tasks": tasks, "phases": phases,
        "leaderboards": [{"index": 0, "title": title, "key": "main", "primary_index": 0,
                          "columns": cols}],
    })
    return files


def _codabench_phase(index: int, name: str, phase: Phase, challenge: Challenge) -> dict[str, Any]:
    entry: dict[str, Any] = {"index": index, "name": name,
                             "description": _phase_text(phase, challenge),
                             "start": _when(phase.start or _today()), "tasks": [index]}
    if phase.end:
        entry["end"] = _when(phase.end)
    if phase.cap:
        entry["max_submissions"] = phase.cap
    return entry


def _column(index: int, key: str, title: str, hidden: bool) -> dict[str, Any]:
    return {"index": index, "title": title, "key": key, "sorting": "desc",
            "precision": PRECISION, "computation": None, "computation_indexes": None,
            "hidden": hidden}


def _check_sequential(challenge: Challenge) -> None:
    """Codabench refuses phases that overlap, or an open-ended phase with one after it."""
    phases = list(challenge.phases.values())
    for before, after in zip(phases, phases[1:]):
        if before.end is None:
            raise UserError(f"phases.{before.name}: Codabench needs an end date for a phase with "
                            f"another after it; add end = YYYY-MM-DD")
        if (after.start or _today()) < before.end:
            raise UserError(f"phases.{after.name}: starts before phases.{before.name} ends "
                            f"({before.end}); expected phases in time order")


# --------------------------------------------------------------------- EvalAI
def evalai_files(checked: Checked) -> dict[str, bytes]:
    """The challenge zip: challenge_config.yaml, templates, logo, annotations, evaluation script."""
    from leaderboard.scoring_program import CONFIG

    challenge = checked.challenge
    script = {**_scorer(""), "__init__.py": _EVALAI_INIT.encode()}
    packed = {name: truth_file(checked, name) for name in challenge.phases}
    truths = {name: f"{name}{suffix}" for name, (suffix, _) in packed.items()}
    script[CONFIG] = _config(checked, challenge.phases, truths)
    files = {"logo.png": _logo(), **_pages(challenge, "html")}
    files.update((f"evaluation_script/{name}", data) for name, data in script.items())
    files["evaluation_script.zip"] = _zip_bytes(script)
    phases, splits = [], []
    for index, (name, phase) in enumerate(challenge.phases.items(), start=1):
        files[f"annotations/{truths[name]}"] = packed[name][1]
        files[f"templates/phase_{name}.html"] = f"<p>{_phase_text(phase, challenge)}</p>\n".encode()
        phases.append(_evalai_phase(index, name, phase, f"annotations/{truths[name]}", challenge))
        splits.append(_split(index, 1, PUBLIC))
        if phase.has_private:
            splits.append(_split(index, 2, HOST_ONLY))
    dataset_splits = [{"id": 1, "name": "Public rows", "codename": "public"}]
    if any(p.has_private for p in challenge.phases.values()):
        dataset_splits.append({"id": 2, "name": "Private rows", "codename": "private"})
    starts = [p["start_date"] for p in phases]
    ends = [p["end_date"] for p in phases]
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
        "start_date": min(starts), "end_date": max(ends), "published": False,
        "leaderboard": [{"id": 1, "schema": {"labels": [key for key, _ in columns(challenge.schema)],
                                             "default_order_by": "final"}}],
        "challenge_phases": phases,
        "dataset_splits": dataset_splits,
        "challenge_phase_splits": splits,
    })
    return files


_EVALAI_INIT = '''"""EvalAI's entry point: au-harness's scorer, packaged by `auh export evalai`."""
import os
import sys

# The packaged modules import each other as `harness.*` and `leaderboard.*`.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from leaderboard.scoring_program import evaluate  # noqa: E402,F401
'''


def _evalai_phase(index: int, name: str, phase: Phase, annotations: str,
                  challenge: Challenge) -> dict[str, Any]:
    cap = phase.cap or NO_CAP
    return {"id": index, "name": name, "description": f"templates/phase_{name}.html",
            "leaderboard_public": True, "is_public": True, "is_submission_public": False,
            "start_date": _evalai_time(phase.start or _today()),
            "end_date": _evalai_time(phase.end or dt.datetime(2099, 12, 31, 23, 59, 59)),
            "test_annotation_file": annotations, "codename": name,
            "max_submissions_per_day": cap, "max_submissions_per_month": cap,
            "max_submissions": cap, "is_restricted_to_select_one_submission": False,
            "is_partial_submission_evaluation_enabled": False,
            "allowed_submission_file_types": ".csv" if challenge.benchmark.unit == "image" else ".txt,.zip"}


def _split(phase_id: int, split_id: int, visibility: int) -> dict[str, Any]:
    return {"challenge_phase_id": phase_id, "leaderboard_id": 1, "dataset_split_id": split_id,
            "visibility": visibility, "leaderboard_decimal_precision": PRECISION,
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


def _config(checked: Checked, phases: dict[str, Phase], truths: dict[str, str]) -> bytes:
    """What the packaged scorer needs to know: the benchmark, split salt, each phase's
    truth and split, and the videos of a frame-level truth."""
    challenge = checked.challenge

    def phase_config(name: str, phase: Phase) -> dict[str, Any]:
        body: dict[str, Any] = {"truth": truths[name], "public_fraction": phase.public_fraction}
        videos = checked.truths[name].videos
        if videos is not None:
            body["videos"] = [[v, n] for v, n in zip(videos.names, videos.frames)]
        return body

    return json.dumps({
        "name": challenge.name, "schema": challenge.schema.name, "split_salt": challenge.split_salt,
        "benchmark": challenge.benchmark.to_dict(),
        "phases": {name: phase_config(name, phase) for name, phase in phases.items()},
    }, indent=1).encode()


def _phase_text(phase: Phase, challenge: Challenge) -> str:
    unit = challenge.benchmark.unit
    split = (f" {phase.public_fraction:.0%} of the {unit}s rank the public board; the rest, "
             f"the private one." if phase.has_private else "")
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
    return moment.isoformat(sep=" ")


def _evalai_time(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


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
