"""Writing and reading a synthetic benchmark folder (``auh synth OUT``).

Layout of ``OUT``::

    images/synth_000000.jpg ...        the AU benchmark images
    labels.txt, labels.csv             ENC-2020 labels (challenge text format and CSV)
    landmarks.csv                      image, 5 landmarks (x, y) in pixels, occluder, component
    splits.csv                         image, split (train/val/test), fold (0-4)
    identity/images/, identity/labels.csv, identity/landmarks.csv
    expression/images/, expression/labels.csv, expression/landmarks.csv
    meta.json                          parameters, renderer version, counts, each
                                       file's sha256 (written last)

Every image has its own seed, ``SeedSequence(seed, spawn_key=(set, index...))``,
so the output is identical for the same parameters whatever the order or
the number of worker processes, and any one image can be re-rendered alone.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator

import numpy as np
import pandas as pd

from harness.data import AUDataset, LabelledImages
from harness.errors import UserError
from harness.fileio import damaged_files, tree_sha256
from harness.labels import read_labels, write_labels
from harness.progress import note, progress
from harness.schema import UNKNOWN
from plugins.benchmarks.enc2020 import SCHEMA as ENC2020
from harness.splits import iterative_stratification, train_val_test_split
from plugins.synth import RENDERER_VERSION
from plugins.synth.face import AU_INDEX, AUS, Identity, Scene
from plugins.synth.labelmodel import POSE_IDX, LabelModel
from plugins.synth.occluders import Occluder
from plugins.synth.renderer import Rendered, render

AU_SET, IDENTITY_SET, EXPRESSION_SET = 0, 1, 2
LANDMARK_COLUMNS = [f"{p}_{c}" for p in ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
                    for c in ("x", "y")]
SPLIT_FRACTIONS = (0.7, 0.1, 0.2)
N_FOLDS = 5

# Basic emotions as FACS prototypes restricted to the 23 ENC-2020 AUs
# (Ekman & Friesen; AUs outside the set, such as 7, 14, 16 and 23, are left out).
EMOTIONS: dict[str, tuple[str, ...]] = {
    "neutral": (),
    "happiness": ("AU6", "AU12", "AU25"),
    "sadness": ("AU1", "AU4", "AU15", "AU17"),
    "surprise": ("AU1", "AU2", "AU5", "AU25", "AU26"),
    "fear": ("AU1", "AU2", "AU4", "AU5", "AU20", "AU25", "AU26"),
    "anger": ("AU4", "AU5", "AU24"),
    "disgust": ("AU9", "AU10", "AU15", "AU17"),
    "contempt": ("AU12",),  # one-sided (R12), rendered with a smirk
}


# Bounds of each parameter: a benchmark at most ENC-2020's size (about 950,000
# training images) and crops no larger than the paper's 224 px input needs.
LIMITS = {"n": (1, 2_000_000), "size": (16, 1024), "identities": (1, 100_000),
          "per_identity": (1, 10_000), "per_expression": (1, 1_000_000)}


@dataclass(frozen=True)
class SynthParams:
    """Everything that determines a synthetic benchmark (and its cache key)."""

    n: int = 2000
    seed: int = 0
    size: int = 112
    identities: int = 200
    per_identity: int = 5
    per_expression: int = 150

    def __post_init__(self) -> None:
        check_ranges(self, LIMITS)
        if self.identities * self.per_identity > LIMITS["n"][1]:
            raise ValueError(f"identities x per_identity must be at most {LIMITS['n'][1]:,}, got "
                             f"{self.identities * self.per_identity:,}")
        if self.n < 3 * N_FOLDS:
            raise ValueError(f"n must be at least {3 * N_FOLDS} for splits and {N_FOLDS} folds, got {self.n}")

    def key(self) -> str:
        """A folder name unique to these parameters and the renderer version."""
        return (f"v{RENDERER_VERSION}-n{self.n}-s{self.seed}-px{self.size}-id{self.identities}x"
                f"{self.per_identity}-ex{self.per_expression}")


def check_ranges(params: object, limits: dict[str, tuple[int, int]]) -> None:
    """Each field named in ``limits`` is an integer within its ``(low, high)`` (ValueError)."""
    for name, (low, high) in limits.items():
        value = getattr(params, name)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise ValueError(f"{name} must be an integer from {low} to {high:,}, got {value!r}")


def image_rng(seed: int, *key: int) -> np.random.Generator:
    """The generator of one image: depends only on the seed and the image's key."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


# ------------------------------------------------------------------ samples
@dataclass
class Sample:
    """One rendered image with what the files record about it."""

    rendered: Rendered
    quality: int                         # JPEG quality of its scene
    labels: np.ndarray | None = None     # AU set only: [23] 1/0/999
    occluder: str = ""
    component: int = -1                  # AU set only: latent expression component

    def jpeg(self) -> bytes:
        buf = io.BytesIO()
        self.rendered.image.save(buf, format="JPEG", quality=self.quality)
        return buf.getvalue()


def au_sample(seed: int, index: int, size: int, model: LabelModel,
              occluder: Occluder | None | str = "sample") -> Sample:
    """Image ``index`` of the AU set.

    ``occluder="sample"`` draws one with the standard rates; passing one (or
    ``None``) overrides it (tests and the 999 calibration do), leaving every
    other random draw of the image unchanged.
    """
    rng = image_rng(seed, AU_SET, index)
    ident, scene = Identity.sample(rng), Scene.sample(rng)
    component, au = model.sample(rng)
    jitter = rng.uniform(-1, 1, 3)
    drawn = Occluder.sample(rng)
    unsure = model.unsure(rng)
    occ = drawn if isinstance(occluder, str) else occluder
    out = render(ident, au, scene, size, occluder=occ, pose_jitter=jitter, rng=rng)
    labels = (au > 0).astype(np.int64)
    labels[out.hidden | unsure] = UNKNOWN
    return Sample(out, scene.jpeg_quality, labels, occ.kind if occ is not None else "", component)


def identity_sample(seed: int, person: int, shot: int, size: int, model: LabelModel) -> Sample:
    """Shot ``shot`` of identity ``person``: the same face, a new expression, pose and scene."""
    ident = Identity.sample(image_rng(seed, IDENTITY_SET, person))
    rng = image_rng(seed, IDENTITY_SET, person, shot + 1)
    scene = Scene.sample(rng)
    _, au = model.sample(rng)
    return Sample(render(ident, au, scene, size, pose_jitter=rng.uniform(-1, 1, 3), rng=rng),
                  scene.jpeg_quality)


def expression_sample(seed: int, emotion: int, index: int, size: int, model: LabelModel) -> Sample:
    """Image ``index`` of basic emotion number ``emotion`` (in the order of :data:`EMOTIONS`)."""
    name = list(EMOTIONS)[emotion]
    rng = image_rng(seed, EXPRESSION_SET, emotion, index)
    ident, scene = Identity.sample(rng), Scene.sample(rng)
    au = np.zeros(len(AUS))
    for a in EMOTIONS[name]:
        au[AU_INDEX[a]] = 0.6 + 0.4 * rng.random()
    _, sampled = model.sample(rng)  # head pose as in the wild; the face AUs are the prototype's
    au[POSE_IDX] = sampled[POSE_IDX]
    smirk = float(rng.choice([-1.0, 1.0])) if name == "contempt" else 0.0
    return Sample(render(ident, au, scene, size, pose_jitter=rng.uniform(-1, 1, 3), smirk=smirk, rng=rng),
                  scene.jpeg_quality)


def au_name(index: int) -> str:
    return f"synth_{index:06d}.jpg"


# ------------------------------------------------------------------ writing
@lru_cache(maxsize=1)
def _model() -> LabelModel:
    return LabelModel.from_stats()


def _job(spec: tuple) -> tuple[np.ndarray | None, np.ndarray, str, int]:
    """Render one image (any set), write its JPEG; return what the tables need."""
    kind, seed, key, size, path = spec
    make: Callable[..., Sample] = {AU_SET: au_sample, IDENTITY_SET: identity_sample,
                                   EXPRESSION_SET: expression_sample}[kind]
    sample = make(seed, *key, size, _model())
    Path(path).write_bytes(sample.jpeg())
    return sample.labels, sample.rendered.landmarks, sample.occluder, sample.component


def _run(specs: list[tuple], workers: int, desc: str) -> list[tuple]:
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            return list(progress(pool.map(_job, specs, chunksize=32), total=len(specs), desc=desc))
    return [_job(s) for s in progress(specs, desc=desc)]


def _landmark_frame(names: list[str], landmarks: Iterable[np.ndarray]) -> pd.DataFrame:
    frame = pd.DataFrame(np.round(np.stack(list(landmarks)).reshape(len(names), 10), 2),
                         columns=LANDMARK_COLUMNS)
    frame.insert(0, "image", names)
    return frame


def _write_companion(folder: Path, task: str, names: list[str], classes: list[str],
                     targets: list[int], landmarks: list[np.ndarray]) -> None:
    pd.DataFrame({"image": names, task: [classes[t] for t in targets]}).to_csv(
        folder / "labels.csv", index=False)
    _landmark_frame(names, landmarks).to_csv(folder / "landmarks.csv", index=False)


def generate(out: str | os.PathLike, params: SynthParams, workers: int = 1) -> Path:
    """Write the benchmark described by ``params`` into the new folder ``out``, atomically."""
    with atomic_folder(out) as tmp:
        _write_all(tmp, params, workers)
    return Path(out)


@contextmanager
def atomic_folder(out: str | os.PathLike) -> Iterator[Path]:
    """A temporary sibling of the new (or empty) folder ``out`` to write into; renamed to
    ``out`` when the block ends without an error, removed in any case."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out}: exists and is not an empty folder; choose a new output folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        yield tmp
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_all(root: Path, p: SynthParams, workers: int) -> None:
    (root / "images").mkdir(parents=True)
    # The AU benchmark.
    names = [au_name(i) for i in range(p.n)]
    rows = _run([(AU_SET, p.seed, (i,), p.size, root / "images" / names[i]) for i in range(p.n)],
                workers, "synth AU images")
    labels = np.stack([r[0] for r in rows])
    write_labels(root / "labels.txt", names, labels, ENC2020)
    write_labels(root / "labels.csv", names, labels, ENC2020)
    marks = _landmark_frame(names, (r[1] for r in rows))
    marks["occluder"] = [r[2] for r in rows]
    marks["component"] = [r[3] for r in rows]
    marks.to_csv(root / "landmarks.csv", index=False)
    split = np.empty(p.n, dtype=object)
    for name, idx in train_val_test_split(labels, SPLIT_FRACTIONS, seed=p.seed).items():
        split[idx] = name
    pd.DataFrame({"image": names, "split": split,
                  "fold": iterative_stratification(labels, N_FOLDS, seed=p.seed)}).to_csv(
        root / "splits.csv", index=False)
    people, shots = write_companions(root, p, workers)
    meta = {"format": "au-harness synth", "renderer_version": RENDERER_VERSION, "params": asdict(p),
            "counts": {"au": p.n, "identity": people, "expression": shots},
            "split_fractions": SPLIT_FRACTIONS, "folds": N_FOLDS, "sha256": tree_sha256(root)}
    (root / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")


def write_companions(root: Path, p: SynthParams, workers: int) -> tuple[int, int]:
    """The identity and expression companion sets under ``root``; their image counts."""
    for sub in ("identity/images", "expression/images"):
        (root / sub).mkdir(parents=True)
    # Identity companion: several shots of each synthetic person.
    people = [(i, j) for i in range(p.identities) for j in range(p.per_identity)]
    id_names = [f"id{i:05d}_{j:02d}.jpg" for i, j in people]
    rows = _run([(IDENTITY_SET, p.seed, key, p.size, root / "identity/images" / nm)
                 for key, nm in zip(people, id_names)], workers, "synth identity images")
    _write_companion(root / "identity", "identity", id_names, [f"id{i:05d}" for i in range(p.identities)],
                     [i for i, _ in people], [r[1] for r in rows])
    # Expression companion: neutral + 7 basic emotions.
    shots = [(e, j) for e in range(len(EMOTIONS)) for j in range(p.per_expression)]
    ex_names = [f"{list(EMOTIONS)[e]}_{j:05d}.jpg" for e, j in shots]
    rows = _run([(EXPRESSION_SET, p.seed, key, p.size, root / "expression/images" / nm)
                 for key, nm in zip(shots, ex_names)], workers, "synth expression images")
    _write_companion(root / "expression", "expression", ex_names, list(EMOTIONS), [e for e, _ in shots],
                     [r[1] for r in rows])
    return len(people), len(shots)


def damaged(root: str | os.PathLike) -> list[str]:
    """Files of the benchmark at ``root`` that fail the sha256 recorded in its
    ``meta.json`` (or ``["meta.json"]`` when that holds no checksums)."""
    try:
        recorded = json.loads((Path(root) / "meta.json").read_text())["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return ["meta.json"]
    return damaged_files(root, recorded)


def cached_build(folder: Path, generate: Callable[[], object]) -> Path:
    """``folder``, a generated data set in the cache (this layout or an official one): built
    by ``generate`` on first use, and again when files fail the checksums of its ``meta.json``."""
    if (folder / "meta.json").is_file() and (bad := damaged(folder)):
        note(f"synth: cached benchmark {folder} fails its checksums ({len(bad)} files, e.g. "
             f"{bad[0]}); rebuilding it")
        _discard(folder)
    if not (folder / "meta.json").is_file():
        try:
            generate()
        except OSError:
            if not (folder / "meta.json").is_file():  # not a concurrent run that finished first
                raise
    return folder


def _discard(folder: Path) -> None:
    """Move a bad cache folder out of the way (atomically), then delete it."""
    aside = folder.with_name(f".{folder.name}.bad-{os.getpid()}")
    try:
        folder.rename(aside)
    except FileNotFoundError:  # another process discarded it first
        return
    shutil.rmtree(aside, ignore_errors=True)


# ------------------------------------------------------------------ reading
def load(root: str | os.PathLike, name: str = "synth") -> AUDataset:
    """Read a folder written by :func:`generate` (or ``auh synth``) as an :class:`AUDataset`."""
    root = Path(root)
    if not (root / "meta.json").is_file():
        raise UserError(f"{root}: not a synthetic benchmark folder (no meta.json); "
                        f"write one with 'auh synth {root}'")
    names, labels = read_labels(root / "labels.csv", ENC2020)
    marks = pd.read_csv(root / "landmarks.csv").set_index("image").loc[names]
    splits = pd.read_csv(root / "splits.csv").set_index("image").loc[names]
    return AUDataset(
        name=name, schema=ENC2020, images=[root / "images" / n for n in names], labels=labels,
        splits={s: np.flatnonzero(splits["split"].to_numpy() == s) for s in ("train", "val", "test")},
        folds=splits["fold"].to_numpy(np.int64),
        landmarks=marks[LANDMARK_COLUMNS].to_numpy(np.float32).reshape(-1, 5, 2),
        companions={task: load_companion(root / task, task) for task in ("identity", "expression")},
        root=root)


def load_companion(folder: Path, task: str) -> LabelledImages:
    frame = pd.read_csv(folder / "labels.csv")
    classes = list(EMOTIONS) if task == "expression" else sorted(frame[task].unique())
    index = {c: i for i, c in enumerate(classes)}
    marks = pd.read_csv(folder / "landmarks.csv").set_index("image").loc[frame["image"]]
    return LabelledImages(task=task, images=[folder / "images" / n for n in frame["image"]],
                          targets=frame[task].map(index).to_numpy(), classes=classes,
                          landmarks=marks[LANDMARK_COLUMNS].to_numpy(np.float32).reshape(-1, 5, 2))
