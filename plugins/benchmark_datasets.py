"""Datasets of the BP4D, DISFA and ABAW AU (Aff-Wild2) benchmarks, read from their official layouts.

``root`` holds the label folders as the datasets are distributed (facts as
summarized in au-harness issues 27 and 28):

* ``bp4d``: ``AUCoding/AU_OCC/<subject>_<task>.csv``, a header of AU numbers
  whose column ``0`` is the frame number, values 0/1, 9 = not coded.
* ``disfa``: ``ActionUnit_Labels/<SN>/<SN>_au<k>.txt``, lines
  ``frame,intensity`` (0-5); present at intensity >= ``threshold`` (default 2).
* ``affwild2``: ``AU_Detection_Challenge/Train_Set/<video>.txt`` and
  ``Validation_Set/<video>.txt``, the header ``AU1,...,AU26`` then one line
  per frame (frames counted from 1), -1 = not annotated.

Frame images live under ``images`` (default ``<root>/images``) at ``pattern``,
a Python format string of the fields ``subject``, ``task`` (BP4D), ``video``
(Aff-Wild2) and ``frame``, the frame number as the label file writes it
(``{frame:05d}`` pads it). Every image's header is checked before any work,
as the ``emotionet`` dataset does. A row with no known label (every AU
unknown: a frame nobody annotated) carries nothing to train or score and is
left out before that check.

Without ``root`` each dataset is its embedded synthetic benchmark: written
into the cache on first use in this very layout by ``auh synth --benchmark``
(:mod:`plugins.synth.official`), then read by the same reader. The views of
the paper's method pretrain on ``companions`` (named sets, as the ``emotionet``
dataset takes them); by default on the embedded synthetic identity and
expression sets, so a shipped recipe runs on real labels as it is.

Folds are subject-exclusive: BP4D and DISFA default to the partition shipped
beside their benchmark (``plugins/benchmarks/<name>_folds.json``: ME-GraphAU's),
``manifest`` names any other; Aff-Wild2 uses its official train/validation
split (``splits``) and seeded subject folds for ``evaluation.mode = "kfold"``.
"""
from __future__ import annotations

import csv
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from harness import hookimpl
from harness.benchmark import Benchmark, get_benchmark
from harness.data import AUDataset, LabelledImages, cache_root
from harness.errors import UserError
from harness.layouts import read_truth
from harness.progress import note
from harness.schema import UNKNOWN, AUSchema, Coding
from harness.splits import FoldManifest, manifest_folds, read_manifest, subject_folds, subject_holdout
from plugins.benchmarks import shipped_manifest

PATTERNS = {"bp4d": "{subject}/{task}/{frame}.jpg", "disfa": "{subject}/{frame}.png",
            "affwild2": "{video}/{frame:05d}.jpg"}
FIELDS = {"bp4d": ("subject", "task", "frame"), "disfa": ("subject", "frame"),
          "affwild2": ("video", "subject", "frame")}
DISFA_THRESHOLD = 2
AFFWILD2_FOLDS = 3


class FrameNumber(int):
    """A frame number that formats as the label file wrote it (``{frame}``) and as a
    number with a format spec (``{frame:05d}``)."""

    text: str

    def __new__(cls, text: str) -> "FrameNumber":
        number = super().__new__(cls, int(text))
        number.text = text
        return number

    def __format__(self, spec: str) -> str:
        return self.text if not spec else int.__format__(self, spec)


@dataclass
class Frames:
    """Labelled frames read from a benchmark's label files, in file order."""

    fields: list[dict[str, Any]] = field(default_factory=list)  # the pattern's fields, per row
    sequences: list[str] = field(default_factory=list)  # the video each row is a frame of
    blocks: list[np.ndarray] = field(default_factory=list)  # in-memory 1/0/999 labels, per file
    parts: list[str] = field(default_factory=list)  # Aff-Wild2: "train" / "validation" per row

    def add(self, sequence: str, rows: list[dict[str, Any]], labels: np.ndarray, part: str = "") -> None:
        self.fields += rows
        self.sequences += [sequence] * len(rows)
        self.blocks.append(labels)
        self.parts += [part] * len(rows)


# ------------------------------------------------------------------ readers
def read_bp4d(root: Path, schema: AUSchema) -> Frames:
    """Every ``AUCoding/AU_OCC/<subject>_<task>.csv`` under ``root``."""
    folder = _folder(root / "AUCoding" / "AU_OCC", "bp4d", "AUCoding/AU_OCC/<subject>_<task>.csv files")
    files = sorted(p for p in folder.glob("*.csv") if not p.name.startswith("."))
    if not files:
        raise UserError(f"dataset bp4d: no <subject>_<task>.csv label files in {folder}")
    frames = Frames()
    for path in files:
        subject, sep, task = path.stem.partition("_")
        if not sep or not subject or not task:
            raise UserError(f"dataset bp4d: {path}: expected a file named <subject>_<task>.csv")
        numbers, codes = _bp4d_file(path, schema)
        frames.add(path.stem, [{"subject": subject, "task": task, "frame": n} for n in numbers],
                   schema.coding.to_memory(codes))
    return frames


def _bp4d_file(path: Path, schema: AUSchema) -> tuple[list[FrameNumber], np.ndarray]:
    """The frame numbers and the coded values of the schema's AUs in one BP4D file."""
    rows = _csv_rows(path, "bp4d")
    header = [cell.strip() for cell in rows[0]]
    wanted = ["0"] + [au.removeprefix("AU") for au in schema.aus]
    missing = [c for c in wanted if c not in header]
    if missing:
        raise UserError(f"dataset bp4d: {path}: line 1: no column {missing[0]!r}; expected a header of "
                        f"AU numbers whose column 0 is the frame number")
    columns = [header.index(c) for c in wanted]
    accepted = set(schema.coding.accepted)
    numbers, codes = [], np.empty((len(rows) - 1, len(schema)), dtype=np.int64)
    for i, row in enumerate(rows[1:]):
        line = i + 2
        if len(row) != len(header):
            raise UserError(f"dataset bp4d: {path}: line {line}: {len(row)} fields, expected {len(header)}")
        numbers.append(_frame_number(row[columns[0]].strip(), path, line, "bp4d"))
        for j, (au, col) in enumerate(zip(schema.aus, columns[1:])):
            value = _integer(row[col].strip())
            if value not in accepted:
                raise UserError(f"dataset bp4d: {path}: line {line}: {au} is {row[col].strip()!r}; "
                                f"expected one of {', '.join(map(str, schema.coding.accepted))}")
            codes[i, j] = value
    return numbers, codes


def read_disfa(root: Path, schema: AUSchema, threshold: int) -> Frames:
    """Every ``ActionUnit_Labels/<SN>/<SN>_au<k>.txt`` under ``root``; present at ``threshold``."""
    folder = _folder(root / "ActionUnit_Labels", "disfa", "ActionUnit_Labels/<SN>/ folders")
    subjects = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not subjects:
        raise UserError(f"dataset disfa: no <SN> folders in {folder}")
    coding = Coding.intensities(top=5, present_from=threshold)
    frames = Frames()
    for sub in subjects:
        paths = [sub / f"{sub.name}_au{au.removeprefix('AU')}.txt" for au in schema.aus]
        columns = [_disfa_file(path) for path in paths]
        numbers = list(columns[0])
        for path, column in zip(paths[1:], columns[1:]):
            if list(column) != numbers:
                raise UserError(f"dataset disfa: {path}: its frames differ from those of {paths[0].name}; "
                                f"every AU file of a subject lists the same frames")
        codes = np.array([[column[n] for column in columns] for n in numbers], dtype=np.int64)
        frames.add(sub.name, [{"subject": sub.name, "frame": n} for n in numbers],
                   coding.to_memory(codes.reshape(len(numbers), len(schema))))
    return frames


def _disfa_file(path: Path) -> dict[FrameNumber, int]:
    """``frame -> intensity`` of one DISFA AU file, in file order."""
    if not path.is_file():
        raise UserError(f"dataset disfa: {path} does not exist; expected one <SN>_au<k>.txt file per AU")
    out: dict[FrameNumber, int] = {}
    for line, row in enumerate(_csv_rows(path, "disfa"), 1):
        if len(row) != 2:
            raise UserError(f"dataset disfa: {path}: line {line}: expected frame,intensity")
        frame = _frame_number(row[0].strip(), path, line, "disfa")
        value = _integer(row[1].strip())
        if value is None or not 0 <= value <= 5:
            raise UserError(f"dataset disfa: {path}: line {line}: intensity {row[1].strip()!r}; "
                            f"expected an integer from 0 to 5")
        if frame in out:
            raise UserError(f"dataset disfa: {path}: line {line}: frame {frame.text} again")
        out[frame] = value
    return out


def read_affwild2(root: Path, benchmark: Benchmark) -> Frames:
    """The per-video files of ``AU_Detection_Challenge/Train_Set`` and ``Validation_Set``."""
    base = _folder(root / "AU_Detection_Challenge", "affwild2",
                   "AU_Detection_Challenge/Train_Set and Validation_Set")
    frames = Frames()
    for part, sub in (("train", "Train_Set"), ("validation", "Validation_Set")):
        folder = _folder(base / sub, "affwild2", f"AU_Detection_Challenge/{sub} (per-video .txt files)")
        truth = read_truth(folder, benchmark)
        assert truth.videos is not None  # a folder truth is per video
        start = 0
        for video, count in zip(truth.videos.names, truth.videos.frames):
            rows = [{"video": video, "frame": FrameNumber(str(k))} for k in range(1, count + 1)]
            frames.add(video, rows, truth.labels[start:start + count], part)
            start += count
    clash = set(s for s, p in zip(frames.sequences, frames.parts) if p == "train") & \
        set(s for s, p in zip(frames.sequences, frames.parts) if p == "validation")
    if clash:
        raise UserError(f"dataset affwild2: video {sorted(clash)[0]!r} is in both Train_Set and Validation_Set")
    return frames


# ------------------------------------------------------------------ helpers
def _folder(path: Path, name: str, expected: str) -> Path:
    if not path.is_dir():
        raise UserError(f"dataset {name}: {path} is not a folder; expected {expected} under the root")
    return path


def _csv_rows(path: Path, name: str) -> list[list[str]]:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise UserError(f"dataset {name}: cannot read {path} ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise UserError(f"dataset {name}: {path} is not UTF-8 text") from None
    rows = [r for r in csv.reader(text.splitlines()) if any(cell.strip() for cell in r)]
    if not rows:
        raise UserError(f"dataset {name}: {path} is empty")
    return rows


def _integer(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        try:  # some label exports write 1.0
            value = float(text)
        except ValueError:
            return None
        return int(value) if value.is_integer() else None


def _frame_number(text: str, path: Path, line: int, name: str) -> FrameNumber:
    if not text.isdigit():
        raise UserError(f"dataset {name}: {path}: line {line}: frame {text!r}; expected a frame number")
    return FrameNumber(text)


def _checked_pattern(pattern: str, name: str) -> str:
    known = FIELDS[name]
    try:
        used = [f for _, f, _, _ in string.Formatter().parse(pattern) if f is not None]
    except ValueError as exc:
        raise UserError(f"dataset {name}: pattern {pattern!r}: {exc}") from None
    bad = [f for f in used if f not in known]
    if bad or "frame" not in used:
        raise UserError(f"dataset {name}: pattern {pattern!r}: expected the fields "
                        f"{', '.join('{' + f + '}' for f in known)} (frame required), got "
                        f"{', '.join('{' + f + '}' for f in used) or 'none'}")
    return pattern


# ------------------------------------------------------------------ assembly
@dataclass(frozen=True)
class Source:
    """Where a dataset's files are and how to read them (a factory's checked parameters)."""

    name: str
    benchmark: Benchmark
    root: Path
    images: Path
    pattern: str
    skip_bad: bool
    seed: int
    companions: dict[str, LabelledImages]


def _source(name: str, benchmark: str, root: str | None, images: str | None, pattern: str | None,
            skip_bad: bool, seed: int, companions: dict[str, Any] | None, synthetic: dict[str, Any] | None,
            ) -> Source:
    """Check a factory's parameters; without ``root``, the embedded synthetic benchmark."""
    bench = get_benchmark(benchmark)
    pattern = _checked_pattern(pattern if pattern is not None else PATTERNS[name], name)
    if companions is not None and not isinstance(companions, dict):
        raise UserError(f"dataset {name}: companions: expected a table of named sets, got {companions!r}")
    if synthetic is not None and not isinstance(synthetic, dict):
        raise UserError(f"dataset {name}: synthetic: expected a table of synth parameters, got {synthetic!r}")
    if root is None:
        from plugins.synth import official

        if images is not None or companions is not None:
            raise UserError(f"dataset {name}: images and companions need a root (real data)")
        folder = official.cached(bench.name, synthetic or {}, cache_root())
        sets = official.load_companions(folder)
        return Source(name, bench, folder, folder / "images", pattern, skip_bad, seed, sets)
    if synthetic is not None:
        raise UserError(f"dataset {name}: synthetic parameters apply only without a root")
    root_path = Path(root).expanduser()
    if not root_path.is_dir():
        raise UserError(f"dataset {name}: root {root!r} is not a folder")
    image_root = Path(images).expanduser() if images is not None else root_path / "images"
    if not image_root.is_dir():
        raise UserError(f"dataset {name}: images {str(image_root)!r} is not a folder")
    from plugins.datasets import companion_set  # at call time: that module loads the registry

    if companions is None:
        from plugins.synth import official

        note(f"dataset {name}: the views pretrain on the embedded synthetic identity and expression sets; "
             f"name real ones with companions (as the emotionet dataset's)")
        sets = official.load_companions(official.cached(bench.name, {}, cache_root()))
    else:
        sets = {k: companion_set(k, spec, skip_bad) for k, spec in companions.items()}
    return Source(name, bench, root_path, image_root, pattern, skip_bad, seed, sets)


def _assemble(src: Source, frames: Frames, subject_of: Callable[[dict[str, Any]], str]) -> dict[str, Any]:
    """The rows, checked: ``images``, ``labels``, ``ids``, ``groups``, ``subjects``, ``parts``."""
    labels = np.concatenate(frames.blocks) if frames.blocks else np.zeros((0, len(src.benchmark.schema)))
    keep = np.flatnonzero((labels != UNKNOWN).any(axis=1))
    rows = [frames.fields[i] for i in keep]
    from plugins.datasets import usable_images  # at call time: that module loads the registry

    ids = [src.pattern.format(**r) for r in rows]
    images = [src.images / i for i in ids]
    usable = usable_images(images, ids, f"labelled frames under {src.images}", src.skip_bad, f"dataset {src.name}")
    rows, ids, images = [rows[i] for i in usable], [ids[i] for i in usable], [images[i] for i in usable]
    keep = keep[usable]
    subjects = np.array([subject_of(r) for r in rows], dtype=object)
    if not len(rows):
        raise UserError(f"dataset {src.name}: no labelled frame with a usable image under {src.images}")
    return {"images": images, "labels": labels[keep], "ids": ids, "subjects": subjects,
            "groups": np.array([frames.sequences[i] for i in keep], dtype=object),
            "parts": np.array([frames.parts[i] for i in keep], dtype=object)}


def _dataset(src: Source, rows: dict[str, Any], folds: np.ndarray, splits: dict[str, np.ndarray],
             partition: dict[str, str], schema: AUSchema | None = None) -> AUDataset:
    return AUDataset(name=src.name, schema=schema or src.benchmark.schema, images=rows["images"],
                     labels=rows["labels"], splits=splits, folds=folds, root=src.images,
                     companions=src.companions, groups=rows["groups"],
                     subjects=rows["subjects"], ids=rows["ids"], partition=partition)


def _manifest_protocol(src: Source, rows: dict[str, Any], manifest: str | None) -> tuple[
        np.ndarray | None, dict[str, np.ndarray], dict[str, str]]:
    """Folds from the manifest; the fixed split tests fold 0 and holds out validation subjects.

    Data the manifest cannot partition (a subject it does not list, a fold left empty: a
    few subjects of a dataset) is still read: it has no folds nor split, the reason is
    said on stderr and recorded as the partition's ``problem``, which the run refuses."""
    where = f"dataset {src.name}: manifest"
    found: FoldManifest = read_manifest(manifest if manifest is not None else shipped_manifest(src.name), where)
    try:
        folds = manifest_folds(list(rows["subjects"]), found, where)
        everything = np.arange(len(folds))
        train, val = subject_holdout(everything[folds != 0], rows["subjects"], src.seed)
    except UserError as exc:
        note(f"{exc}; the data has no folds or split of this manifest")
        return None, {}, {**found.describe(), "problem": str(exc)}
    return folds, {"train": train, "val": val, "test": everything[folds == 0]}, found.describe()


def bp4d(root: str | None = None, images: str | None = None, pattern: str | None = None,
         manifest: str | None = None, skip_bad: bool = False, seed: int = 0,
         companions: dict[str, Any] | None = None, synthetic: dict[str, Any] | None = None) -> AUDataset:
    """BP4D-Spontaneous frames: ``AUCoding/AU_OCC/<subject>_<task>.csv`` under ``root`` (9 = not
    coded), images at ``pattern`` (default ``{subject}/{task}/{frame}.jpg``) under ``images``
    (default ``<root>/images``); folds from ``manifest`` (default: ME-GraphAU's 3 parts).
    Without ``root``: the embedded synthetic BP4D (``synthetic``: its ``auh synth`` parameters)."""
    src = _source("bp4d", "bp4d", root, images, pattern, skip_bad, seed, companions, synthetic)
    rows = _assemble(src, read_bp4d(src.root, src.benchmark.schema), lambda r: r["subject"])
    return _dataset(src, rows, *_manifest_protocol(src, rows, manifest))


def disfa(root: str | None = None, images: str | None = None, pattern: str | None = None,
          threshold: int = DISFA_THRESHOLD, manifest: str | None = None, skip_bad: bool = False,
          seed: int = 0, companions: dict[str, Any] | None = None,
          synthetic: dict[str, Any] | None = None) -> AUDataset:
    """DISFA frames: ``ActionUnit_Labels/<SN>/<SN>_au<k>.txt`` under ``root``, an AU present at
    intensity >= ``threshold`` (default 2), images at ``pattern`` (default ``{subject}/{frame}.png``);
    folds from ``manifest`` (default: ME-GraphAU's 3 parts). Without ``root``: the embedded
    synthetic DISFA."""
    if not isinstance(threshold, int) or isinstance(threshold, bool) or not 1 <= threshold <= 5:
        raise UserError(f"dataset disfa: threshold {threshold!r}; expected an integer intensity from 1 to 5")
    src = _source("disfa", "disfa", root, images, pattern, skip_bad, seed, companions, synthetic)
    rows = _assemble(src, read_disfa(src.root, src.benchmark.schema, threshold), lambda r: r["subject"])
    schema = AUSchema(src.benchmark.schema.name, src.benchmark.aus, src.benchmark.schema.flip_pairs,
                      Coding.intensities(top=5, present_from=threshold))
    return _dataset(src, rows, *_manifest_protocol(src, rows, manifest), schema=schema)


def affwild2(root: str | None = None, images: str | None = None, pattern: str | None = None,
             persons: str | None = None, folds: int = AFFWILD2_FOLDS, skip_bad: bool = False, seed: int = 0,
             companions: dict[str, Any] | None = None, synthetic: dict[str, Any] | None = None) -> AUDataset:
    """Aff-Wild2 frames of the ABAW AU track: ``AU_Detection_Challenge/Train_Set/*.txt`` and
    ``Validation_Set/*.txt`` under ``root`` (-1 = not annotated), images at ``pattern`` (default
    ``{video}/{frame:05d}.jpg``, frames from 1). The fixed split is the official one (training
    videos, a held-out share of their persons validating; the validation videos test);
    ``folds`` seeded subject-exclusive folds serve ``evaluation.mode = "kfold"``. ``persons``:
    a CSV ``video,person`` naming each video's person where known (else the video is its own)."""
    if not isinstance(folds, int) or isinstance(folds, bool) or folds < 3:
        raise UserError(f"dataset affwild2: folds {folds!r}; expected an integer >= 3")
    src = _source("affwild2", "abaw_au", root, images, pattern, skip_bad, seed, companions, synthetic)
    if root is None:  # the embedded synthetic videos say whose they are
        persons = str(src.root / "persons.csv")
    person = _persons(persons)
    frames = read_affwild2(src.root, src.benchmark)
    for r in frames.fields:
        r["subject"] = person.get(r["video"], r["video"])
    rows = _assemble(src, frames, lambda r: r["subject"])
    everything = np.arange(len(rows["ids"]))
    try:
        train, val = subject_holdout(everything[rows["parts"] == "train"], rows["subjects"], seed)
        if not (rows["parts"] == "validation").any():
            raise UserError("no usable frame in Validation_Set (the official test part)")
        splits = {"train": train, "val": val, "test": everything[rows["parts"] == "validation"]}
    except UserError as exc:  # read all the same; the official split is refused when a run needs it
        note(f"dataset affwild2: {exc}; the data has no official split")
        splits = {}
    enough = len(np.unique(rows["subjects"])) >= folds
    return _dataset(src, rows, subject_folds(rows["subjects"], folds, seed) if enough else None, splits,
                    {"split": "official"})


def _persons(path: str | None) -> dict[str, str]:
    if path is None:
        return {}
    rows = _csv_rows(Path(path).expanduser(), "affwild2")
    if [c.strip().lower() for c in rows[0]] == ["video", "person"]:
        rows = rows[1:]
    if any(len(r) != 2 or not r[0].strip() or not r[1].strip() for r in rows):
        raise UserError(f"dataset affwild2: persons {path!r}: expected lines video,person")
    return {r[0].strip(): r[1].strip() for r in rows}


# ------------------------------------------------------------- cross-dataset
def cross(train: dict[str, Any], test: dict[str, Any], seed: int = 0) -> AUDataset:
    """Train on one dataset and test on another, on the AUs both label.

    ``train`` and ``test`` are dataset tables (``{name = "bp4d", ...}``, as the recipe's
    ``[dataset]``). The fixed split trains on ``train``'s rows (a seeded share of its
    subjects held out to validate) and tests on every row of ``test``; scores follow the
    test dataset's benchmark on the shared AUs (BP4D to DISFA: AU1, 2, 4, 6, 12). Use it
    with ``evaluation.mode = "split"``.
    """
    from harness.recipe import build

    parts = {}
    for role, spec in (("train", train), ("test", test)):
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise UserError(f"dataset cross: {role}: expected a dataset table {{name = \"bp4d\", ...}}, got {spec!r}")
        if spec["name"] == "cross":
            raise UserError(f"dataset cross: {role}: a cross-dataset pair of pairs is not a protocol")
        try:
            parts[role] = build("dataset", spec)
        except UserError as exc:
            raise UserError(f"dataset cross: {role}: {exc}") from None
    source, target = parts["train"], parts["test"]
    shared = [au for au in target.schema.aus if au in source.schema.aus]
    if not shared:
        raise UserError(f"dataset cross: {source.name} and {target.name} label no AU in common")
    rows = len(source)
    columns = [list(d.schema.aus).index(au) for d in (source, target) for au in shared]
    labels = np.concatenate([source.labels[:, columns[:len(shared)]], target.labels[:, columns[len(shared):]]])
    subjects = np.concatenate([_tagged(source.name, source.subjects, rows, "train"),
                               _tagged(target.name, target.subjects, len(target), "test")])
    train_rows, val_rows = subject_holdout(np.arange(rows), subjects, seed)
    flips = tuple(p for p in target.schema.flip_pairs if p[0] in shared and p[1] in shared)
    # named as the test dataset's schema: the run is scored by that benchmark (its metric)
    schema = AUSchema(target.schema.name, tuple(shared), flips, target.schema.coding)
    groups = None if source.groups is None or target.groups is None else np.concatenate(
        [_tagged(source.name, source.groups, rows, ""), _tagged(target.name, target.groups, len(target), "")])
    return AUDataset(name=f"{source.name}->{target.name}", schema=schema, images=source.images + target.images,
                     labels=labels, splits={"train": train_rows, "val": val_rows,
                                            "test": np.arange(rows, rows + len(target))},
                     companions=source.companions, groups=groups,
                     subjects=subjects, ids=[f"{source.name}/{n}" for n in source.names] +
                     [f"{target.name}/{n}" for n in target.names],
                     partition={"train_dataset": source.name, "test_dataset": target.name,
                                "shared_aus": ",".join(shared)})


def _tagged(dataset: str, values: np.ndarray | None, n: int, fallback: str) -> np.ndarray:
    """``values`` named by their dataset (subjects of two datasets never merge); rows
    without them are each their own."""
    if values is None:
        return np.array([f"{dataset}/{fallback}{i}" for i in range(n)], dtype=object)
    return np.array([f"{dataset}/{v}" for v in values], dtype=object)


@hookimpl
def auh_datasets() -> dict:
    return {"bp4d": bp4d, "disfa": disfa, "affwild2": affwild2, "cross": cross}
