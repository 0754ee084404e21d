"""Synthetic BP4D, DISFA and ABAW AU data in each dataset's official layout (``auh synth --benchmark``).

The output is read by the real dataset plugin (:mod:`plugins.benchmark_datasets`)::

    bp4d:     AUCoding/AU_OCC/<subject>_<task>.csv       images/<subject>/<task>/<frame>.jpg
    disfa:    ActionUnit_Labels/<SN>/<SN>_au<k>.txt      images/<SN>/<frame>.png
    abaw_au:  AU_Detection_Challenge/{Train_Set,Validation_Set}/<video>.txt
                                                        images/<video>/<frame:05d>.jpg
              persons.csv                               video,person (each video's identity)
    identity/, expression/                              the pretraining companions (as ``auh synth``)
    meta.json                                           parameters, each file's sha256 (written last)

Each subject is one synthetic identity; each sequence (a BP4D task, a DISFA
recording, an Aff-Wild2 video) keeps one scene while its AUs evolve smoothly
over frames: each AU's events rise (onset), hold (apex) and fall (offset),
with the share of frames where an AU is present near the benchmark's base
rate. The rates are APPROXIMATE: rounded from occurrence rates commonly
reported for these datasets in AU detection papers, not fitted to the labels
(which are not redistributable). BP4D marks stretches of an AU not coded (9),
Aff-Wild2 stretches of frames not annotated (-1, and no image, as faces the
release did not detect), DISFA writes intensities 0-5 (present from 2).
Subjects are named after those of the shipped fold manifests, dealt across
their folds, so the standard partition applies to the synthetic data too.
"""
from __future__ import annotations

import inspect
import io
import json
import os
from dataclasses import asdict, dataclass
from types import SimpleNamespace
from pathlib import Path
from typing import Any

import numpy as np

from harness.benchmark import Benchmark, get_benchmark
from harness.data import LabelledImages
from harness.errors import UserError
from harness.fileio import tree_sha256
from harness.layouts import Table, Videos, frame_names, write_truth_files
from harness.schema import UNKNOWN
from harness.splits import read_manifest
from plugins.benchmarks import shipped_manifest
from plugins.synth import RENDERER_VERSION
from plugins.synth.face import AU_INDEX, Identity, Scene
from plugins.synth.renderer import render
from plugins.synth.writer import (SynthParams, atomic_folder, cached_build, check_ranges, image_rng,
                                  load_companion, write_companions)

BENCHMARKS = ("bp4d", "disfa", "abaw_au")
SEQUENCE_SET = 10  # the key space of the sequences' generators (writer.py uses 0-2)
PRESENT = 0.3  # rendered intensity from which an AU counts as present (DISFA: 5 x 0.3 = 1.5 rounds to 2)
MEAN_EVENT = 12  # frames an AU event lasts on average (onset + apex + offset)
UNKNOWN_SHARE = 0.08  # of the frames of a sequence in one unknown stretch (BP4D 9, Aff-Wild2 -1)

# Approximate share of frames where each AU is present (see the module docstring).
BASE_RATES: dict[str, dict[str, float]] = {
    "bp4d": {"AU1": 0.21, "AU2": 0.17, "AU4": 0.20, "AU6": 0.46, "AU7": 0.55, "AU10": 0.59,
             "AU12": 0.56, "AU14": 0.47, "AU15": 0.17, "AU17": 0.34, "AU23": 0.17, "AU24": 0.15},
    "disfa": {"AU1": 0.06, "AU2": 0.05, "AU4": 0.19, "AU6": 0.10, "AU9": 0.05, "AU12": 0.16,
              "AU25": 0.28, "AU26": 0.12},
    "abaw_au": {"AU1": 0.12, "AU2": 0.05, "AU4": 0.16, "AU6": 0.26, "AU7": 0.39, "AU10": 0.34,
                "AU12": 0.24, "AU15": 0.03, "AU23": 0.03, "AU24": 0.03, "AU25": 0.63, "AU26": 0.09},
}
DATASET_OF = {"bp4d": "bp4d", "disfa": "disfa", "abaw_au": "affwild2"}
# 41 subjects: BP4D's partition lists 41 (DISFA's 27, checked apart)
LIMITS = {"subjects": (3, 41), "sequences": (1, 50), "frames": (4, 100_000), "size": (16, 1024),
          "seed": (0, 2 ** 63 - 1)}


@dataclass(frozen=True)
class OfficialParams:
    """Everything that determines a synthetic benchmark in an official layout (and its cache key):
    the benchmark, its people and sequences, and ``base``, the image size, the seed and the
    companion sets (as ``auh synth`` takes them; its ``n`` is unused). :meth:`make` builds it."""

    benchmark: str
    subjects: int
    sequences: int
    frames: int
    base: SynthParams

    @classmethod
    def make(cls, benchmark: str = "bp4d", subjects: int = 6, sequences: int = 2, frames: int = 40,
             size: int = 64, seed: int = 0, identities: int = 20, per_identity: int = 4,
             per_expression: int = 20) -> "OfficialParams":
        """Checked parameters (ValueError naming the one out of range)."""
        check_ranges(SimpleNamespace(size=size, seed=seed), {"size": LIMITS["size"], "seed": LIMITS["seed"]})
        return cls(benchmark, subjects, sequences, frames,
                   SynthParams(n=15, seed=seed, size=size, identities=identities, per_identity=per_identity,
                               per_expression=per_expression))

    def __post_init__(self) -> None:
        if self.benchmark not in BENCHMARKS:
            raise ValueError(f"benchmark must be one of {', '.join(BENCHMARKS)}, got {self.benchmark!r}")
        check_ranges(self, {k: LIMITS[k] for k in ("subjects", "sequences", "frames")})
        if self.benchmark == "disfa" and self.subjects > 27:
            raise ValueError(f"subjects must be at most 27 for disfa (its partition's), got {self.subjects}")

    @property
    def seed(self) -> int:
        return self.base.seed

    @property
    def size(self) -> int:
        return self.base.size

    def key(self) -> str:
        b = self.base
        return (f"v{RENDERER_VERSION}-{self.benchmark}-sub{self.subjects}x{self.sequences}x{self.frames}"
                f"-s{b.seed}-px{b.size}-id{b.identities}x{b.per_identity}-ex{b.per_expression}")


# ------------------------------------------------------------------ labels
def trajectories(rng: np.random.Generator, frames: int, rates: np.ndarray) -> np.ndarray:
    """``[frames, C]`` intensities in [0, 1]: per AU, events (onset, apex, offset) separated
    by gaps, so the share of frames at or above :data:`PRESENT` is near ``rates``."""
    out = np.zeros((frames, len(rates)))
    for c, rate in enumerate(rates):
        t = int(rng.integers(0, max(1, int(MEAN_EVENT * (1 - rate) / max(rate, 1e-3)))))
        while t < frames:
            length = max(4, int(round(MEAN_EVENT * rng.uniform(0.6, 1.4))))
            peak = rng.uniform(0.55, 1.0)
            rise = fall = max(1, length // 4)
            profile = np.concatenate([np.linspace(0, peak, rise + 2)[1:-1], np.full(length - 2 * rise, peak),
                                      np.linspace(peak, 0, fall + 2)[1:-1]])
            out[t:t + len(profile), c] = profile[:frames - t]
            # the gap: mean chosen so that present frames / all frames is about the rate
            gap = MEAN_EVENT * (1 - rate) / max(rate, 1e-3)
            t += len(profile) + int(rng.exponential(gap))
    return out


def _unknown_stretch(rng: np.random.Generator, frames: int) -> slice:
    length = max(1, int(UNKNOWN_SHARE * frames))
    start = int(rng.integers(0, frames - length + 1))
    return slice(start, start + length)


# ------------------------------------------------------------------ sequences
@dataclass
class Sequence:
    """One synthetic sequence: its subject and name, and per frame the rendered intensities."""

    subject: str
    name: str
    key: tuple[int, int]  # (subject, sequence) numbers: what seeds its face, scene and frames
    intensity: np.ndarray  # [frames, C] in the benchmark's AU order
    unknown: np.ndarray  # [frames, C] bool


def subject_names(benchmark: str, count: int) -> list[str]:
    """``count`` subject names dealt across the folds of the shipped partition (Aff-Wild2: persons)."""
    if benchmark == "abaw_au":
        return [f"person{k:03d}" for k in range(count)]
    folds = read_manifest(shipped_manifest(DATASET_OF[benchmark])).folds
    dealt = [f[i] for i in range(max(map(len, folds))) for f in folds if i < len(f)]
    return dealt[:count]


def sequences(p: OfficialParams, bench: Benchmark) -> list[Sequence]:
    """Every subject's sequences (DISFA records one video per subject: its sequences run on
    as one recording)."""
    rates = np.array([BASE_RATES[p.benchmark][au] for au in bench.aus])
    count, frames = (1, p.frames * p.sequences) if p.benchmark == "disfa" else (p.sequences, p.frames)
    out = []
    for s, subject in enumerate(subject_names(p.benchmark, p.subjects)):
        for j in range(count):
            rng = image_rng(p.seed, SEQUENCE_SET, s, j)
            intensity = trajectories(rng, frames, rates)
            unknown = np.zeros_like(intensity, dtype=bool)
            if p.benchmark == "bp4d" and rng.random() < 0.5:  # one AU not coded for a while
                unknown[_unknown_stretch(rng, frames), int(rng.integers(len(rates)))] = True
            if p.benchmark == "abaw_au" and rng.random() < 0.5:  # frames nobody annotated
                unknown[_unknown_stretch(rng, frames), :] = True
            name = {"bp4d": f"T{j + 1}", "disfa": subject, "abaw_au": f"{subject}-video{j + 1}"}[p.benchmark]
            out.append(Sequence(subject, name, (s, j), intensity, unknown))
    return out


def _frame_image(p: OfficialParams, bench: Benchmark, f: int, seq: Sequence) -> bytes:
    """Frame ``f`` of ``seq``: its subject's face, its own scene."""
    s, j = seq.key
    ident = Identity.sample(image_rng(p.seed, SEQUENCE_SET, s))
    scene_rng = image_rng(p.seed, SEQUENCE_SET, s, j, 1)
    scene = Scene.sample(scene_rng)
    jitter = scene_rng.uniform(-1, 1, 3)
    au = np.zeros(len(AU_INDEX))
    for c, name in enumerate(bench.aus):
        au[AU_INDEX[name]] = seq.intensity[f, c]
    rng = image_rng(p.seed, SEQUENCE_SET, s, j, 2, f)
    image = render(ident, au, scene, p.size, pose_jitter=jitter, rng=rng).image
    buf = io.BytesIO()
    if p.benchmark == "disfa":
        image.save(buf, format="PNG")
    else:
        image.save(buf, format="JPEG", quality=scene.jpeg_quality)
    return buf.getvalue()


# ------------------------------------------------------------------ writing
def generate(out: str | os.PathLike, p: OfficialParams) -> Path:
    """Write the synthetic benchmark ``p`` into the new folder ``out`` (atomically)."""
    with atomic_folder(out) as tmp:
        _write_all(tmp, p)
    return Path(out)


def _write_all(root: Path, p: OfficialParams) -> None:
    bench = get_benchmark(p.benchmark)
    seqs = sequences(p, bench)
    for seq in seqs:
        for f in range(len(seq.intensity)):
            if seq.unknown[f].all():
                continue  # a frame with no annotation has no detected face in the release either
            path = root / "images" / _image_path(p.benchmark, seq, f)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(_frame_image(p, bench, f, seq))
    {"bp4d": _write_bp4d, "disfa": _write_disfa, "abaw_au": _write_abaw}[p.benchmark](root, seqs, bench)
    write_companions(root, p.base, workers=1)
    meta = {"format": "au-harness synth", "layout": p.benchmark, "renderer_version": RENDERER_VERSION,
            "params": asdict(p), "base_rates": BASE_RATES[p.benchmark], "sha256": tree_sha256(root)}
    (root / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")


def _image_path(benchmark: str, seq: Sequence, f: int) -> str:
    """Frame ``f`` (from 0) as the dataset's default pattern names it (frames from 1)."""
    if benchmark == "bp4d":
        return f"{seq.subject}/{seq.name}/{f + 1}.jpg"
    if benchmark == "disfa":
        return f"{seq.subject}/{f + 1}.png"
    return f"{seq.name}/{f + 1:05d}.jpg"


def _write_bp4d(root: Path, seqs: list[Sequence], bench: Benchmark) -> None:
    folder = root / "AUCoding" / "AU_OCC"
    folder.mkdir(parents=True)
    numbers = [au.removeprefix("AU") for au in bench.aus]
    for seq in seqs:
        codes = np.where(seq.intensity >= PRESENT, 1, 0)
        codes[seq.unknown] = bench.coding.unknown[0]
        lines = [",".join(["0", *numbers])] + [
            ",".join([str(f + 1), *map(str, row)]) for f, row in enumerate(codes)]
        (folder / f"{seq.subject}_{seq.name}.csv").write_text("\n".join(lines) + "\n")


def _write_disfa(root: Path, seqs: list[Sequence], bench: Benchmark) -> None:
    for seq in seqs:
        folder = root / "ActionUnit_Labels" / seq.subject
        folder.mkdir(parents=True)
        levels = np.clip(np.rint(5 * seq.intensity), 0, 5).astype(int)
        for c, au in enumerate(bench.aus):
            text = "".join(f"{f + 1},{v}\n" for f, v in enumerate(levels[:, c]))
            (folder / f"{seq.subject}_au{au.removeprefix('AU')}.txt").write_text(text)


def _write_abaw(root: Path, seqs: list[Sequence], bench: Benchmark) -> None:
    base = root / "AU_Detection_Challenge"
    subjects = sorted({seq.subject for seq in seqs})
    validation = set(subjects[::3])  # a third of the persons: the official split keeps people apart
    for part, folder in (("train", "Train_Set"), ("validation", "Validation_Set")):
        chosen = [seq for seq in seqs if (seq.subject in validation) == (part == "validation")]
        (base / folder).mkdir(parents=True)
        labels = np.concatenate([np.where(seq.intensity >= PRESENT, 1, 0) for seq in chosen])
        unknown = np.concatenate([seq.unknown for seq in chosen])
        labels[unknown] = UNKNOWN
        videos = Videos(tuple(seq.name for seq in chosen), tuple(len(seq.intensity) for seq in chosen))
        write_truth_files(base / folder, Table(frame_names(videos, bench), labels, videos), bench)
    # whose each video is: what the affwild2 dataset's persons parameter reads
    (root / "persons.csv").write_text("video,person\n" + "".join(f"{seq.name},{seq.subject}\n" for seq in seqs))


# ------------------------------------------------------------------ reading
def cached(benchmark: str, synthetic: dict[str, Any], cache: Path) -> Path:
    """The synthetic benchmark of ``synthetic`` (``OfficialParams`` fields) in the cache:
    generated on first use, rebuilt when its checksums fail."""
    accepted = [name for name in inspect.signature(OfficialParams.make).parameters if name != "benchmark"]
    unknown = [key for key in synthetic if key not in accepted]
    if unknown:
        raise UserError(f"synthetic: unknown parameter {unknown[0]!r}; accepts: {', '.join(accepted)}")
    try:
        params = OfficialParams.make(benchmark=benchmark, **synthetic)
    except ValueError as exc:
        raise UserError(f"synthetic: {exc}") from None
    folder = cache / "synth" / params.key()
    return cached_build(folder, lambda: generate(folder, params))


def load_companions(folder: Path) -> dict[str, LabelledImages]:
    """The identity and expression companion sets written beside the layout."""
    return {task: load_companion(folder / task, task) for task in ("identity", "expression")}
