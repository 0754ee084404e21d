"""The aligned-face cache: detect and align once, then read crops from disk.

Layout of one cache (a directory under ``cache_dir``, named by a hash of
the aligner's ``cache_key``, the image list and the shard size)::

    shard-00000.npy         uint8 [n, S, S, 3] crops of images 0 .. shard_size-1
    shard-00000.meta.npz    found [n] bool, landmarks [n, 5, 2] float32,
                            sha256 of shard-00000.npy
    ...
    index.json              written once every shard exists: cache_key,
                            image-list hash, size, and each shard's sha256

Shards are written atomically (crops first, then the meta file, whose
presence marks the shard done), so an interrupted build resumes where it
stopped. With ``verify`` a shard whose crops fail their sha256 is rebuilt.
Found flags and landmarks live in the small per-shard meta files rather
than in ``index.json``: at a million images a JSON of landmarks would be
tens of megabytes.

The image list is identified by each file's path (relative to ``root``),
byte size and modification time: replacing an image invalidates the cache.
"""
from __future__ import annotations

import collections
import hashlib
import json
import os
import pickle
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from harness.errors import UserError
from harness.fileio import atomic_open, sha256_file
from harness.images import read_image
from harness.progress import progress
from harness.protocols import capabilities

FORMAT = 1
INDEX = "index.json"
OPEN_SHARDS = 32  # memory maps kept open per process (each holds a file descriptor)


# ------------------------------------------------------------------ reading
class FaceCache:
    """A finished cache: ``cache[i]`` is the ``[S, S, 3]`` uint8 crop of image ``i``.

    ``found`` (bool ``[N]``) and ``landmarks`` (float32 ``[N, 5, 2]``, crop
    coordinates) come from the aligner. Crops are read through memory maps,
    so opening a cache costs no I/O for the pixels; it pickles cheaply (for
    DataLoader workers), re-opening its maps in the new process.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        index_file = self.path / INDEX
        try:
            index = json.loads(index_file.read_text())
        except (OSError, ValueError) as exc:
            raise UserError(f"face cache {str(self.path)!r}: no readable {INDEX} ({exc}); "
                            f"build it with harness.facecache.build_cache or `auh align`") from None
        if index.get("format") != FORMAT:
            raise UserError(f"face cache {str(self.path)!r}: format {index.get('format')!r}, "
                            f"expected {FORMAT}; delete it to rebuild")
        self.index = index
        self.cache_key: str = index["cache_key"]
        self.size: int = index["size"]
        self.shard_size: int = index["shard_size"]
        metas = [_read_meta(self.path / s["meta"]) for s in index["shards"]]
        self.found = np.concatenate([m.found for m in metas]) if metas else np.zeros(0, bool)
        self.landmarks = (np.concatenate([m.landmarks for m in metas]) if metas
                          else np.zeros((0, 5, 2), np.float32))
        self._maps: collections.OrderedDict[int, np.ndarray] = collections.OrderedDict()

    def __len__(self) -> int:
        return int(self.index["n"])

    def __getitem__(self, i: int) -> np.ndarray:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"image {i} out of range for a face cache of {n}")
        shard, row = divmod(i % n, self.shard_size)
        return np.array(self._shard(shard)[row])  # a copy: callers may write to it

    def image(self, i: int) -> Image.Image:
        """Crop ``i`` as a PIL image."""
        return Image.fromarray(self[i])

    def _shard(self, k: int) -> np.ndarray:
        if k in self._maps:
            self._maps.move_to_end(k)
        else:
            self._maps[k] = np.load(self.path / self.index["shards"][k]["file"], mmap_mode="r")
            if len(self._maps) > OPEN_SHARDS:
                self._maps.popitem(last=False)
        return self._maps[k]

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_maps"] = collections.OrderedDict()
        return state

    def __repr__(self) -> str:
        return (f"FaceCache({str(self.path)!r}, n={len(self)}, size={self.size}, "
                f"found={int(self.found.sum())})")


@dataclass
class _Meta:
    found: np.ndarray
    landmarks: np.ndarray
    sha256: str


def _read_meta(path: Path) -> _Meta:
    with np.load(path, allow_pickle=False) as z:
        return _Meta(z["found"].astype(bool), z["landmarks"].astype(np.float32), str(z["sha256"]))


# ----------------------------------------------------------------- building
def cache_path(images: Sequence[Path], aligner: Any, cache_dir: str | Path,
               landmarks: np.ndarray | None = None, root: str | Path | None = None,
               shard_size: int = 1024) -> Path:
    """Where :func:`build_cache` keeps the cache for these arguments."""
    return Path(cache_dir) / _key(images, aligner, landmarks, root, shard_size)[0]


def build_cache(images: Sequence[str | Path], aligner: Any, cache_dir: str | Path,
                landmarks: np.ndarray | None = None, *, root: str | Path | None = None,
                batch_size: int = 32, workers: int = 1, shard_size: int = 1024,
                rank: int = 0, world_size: int = 1, verify: bool = True,
                wait_timeout: float | None = None) -> FaceCache:
    """Align ``images`` with ``aligner`` into a cache under ``cache_dir``; return it.

    Finished shards are reused (resume); with ``verify`` each one's sha256
    is checked first and a bad shard is rebuilt. ``landmarks`` (``[N, 5, 2]``,
    image coordinates, NaN where unknown) is passed to aligners whose
    ``align`` takes a ``landmarks`` argument (``oracle``). ``root`` makes
    the cache key independent of where the dataset lives.

    ``workers > 1`` aligns shards in that many processes (the aligner is
    pickled into each). Under ``torchrun``, each of ``world_size`` ranks
    calls this with its ``rank``: rank r builds shards r, r + world_size, ...,
    then waits (up to ``wait_timeout`` seconds; ``None``: no limit) until
    every shard exists, so all ranks return the same cache.
    """
    images = [Path(p) for p in images]
    _check_args(images, landmarks, batch_size, workers, shard_size, rank, world_size)
    name, key = _key(images, aligner, landmarks, root, shard_size)
    path = Path(cache_dir) / name
    path.mkdir(parents=True, exist_ok=True)
    use_landmarks = landmarks is not None and _takes_landmarks(aligner)
    n = len(images)
    n_shards = -(-n // shard_size)
    mine = [k for k in range(rank, n_shards, world_size)]
    todo = [k for k in mine if not _shard_done(path, k, _shard_len(k, n, shard_size), verify)]
    if todo:
        jobs = [_Job(path, k, images[k * shard_size:(k + 1) * shard_size],
                     None if not use_landmarks else landmarks[k * shard_size:(k + 1) * shard_size],
                     batch_size) for k in todo]
        _run_jobs(jobs, aligner, workers)
    if world_size > 1:
        _wait_for_shards(path, n, n_shards, shard_size, wait_timeout)
    _write_index(path, key, n, n_shards, shard_size)
    return FaceCache(path)


def _check_args(images: list[Path], landmarks: np.ndarray | None, batch_size: int, workers: int,
                shard_size: int, rank: int, world_size: int) -> None:
    if landmarks is not None and np.shape(landmarks) != (len(images), 5, 2):
        raise UserError(f"face cache: landmarks have shape {np.shape(landmarks)}, "
                        f"expected ({len(images)}, 5, 2)")
    for name, value in (("batch_size", batch_size), ("workers", workers),
                        ("shard_size", shard_size), ("world_size", world_size)):
        if value < 1:
            raise UserError(f"face cache: {name} must be >= 1, got {value}")
    if not 0 <= rank < world_size:
        raise UserError(f"face cache: rank {rank} is not in [0, {world_size})")


def _key(images: Sequence[Path], aligner: Any, landmarks: np.ndarray | None,
         root: str | Path | None, shard_size: int) -> tuple[str, dict[str, Any]]:
    cache_key = getattr(aligner, "cache_key", None)
    if not isinstance(cache_key, str) or not cache_key:
        raise UserError(f"aligner {type(aligner).__name__} has no cache_key string: "
                        f"the crop cache cannot tell its configurations apart")
    key = {
        "format": FORMAT,
        "cache_key": cache_key,
        "images_sha256": images_fingerprint(images, root),
        "landmarks_sha256": (_array_sha(landmarks) if landmarks is not None and _takes_landmarks(aligner)
                             else None),
        "shard_size": shard_size,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    label = "".join(c if c.isalnum() or c in "_-" else "-" for c in cache_key.split("/")[0])[:32]
    return f"{label}-{digest}", key


def images_fingerprint(images: Sequence[Path], root: str | Path | None = None) -> str:
    """sha256 over each image's path (relative to ``root``), byte size and mtime."""
    digest = hashlib.sha256()
    for p in images:
        try:
            st = os.stat(p)
        except OSError as exc:
            raise UserError(f"image {str(p)!r}: cannot be read ({exc.strerror})") from None
        name = os.path.relpath(p, root) if root is not None else os.path.abspath(p)
        digest.update(f"{name}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _array_sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a, dtype=np.float32).tobytes()).hexdigest()


def _takes_landmarks(aligner: Any) -> bool:
    return "landmarks" in capabilities(aligner)


def _shard_len(k: int, n: int, shard_size: int) -> int:
    return min(shard_size, n - k * shard_size)


def _files(path: Path, k: int) -> tuple[Path, Path]:
    return path / f"shard-{k:05d}.npy", path / f"shard-{k:05d}.meta.npz"


def _shard_done(path: Path, k: int, n: int, verify: bool) -> bool:
    """Whether shard ``k`` is complete (and, with ``verify``, intact)."""
    crops, meta_file = _files(path, k)
    if not (crops.is_file() and meta_file.is_file()):
        return False
    try:
        meta = _read_meta(meta_file)
    except (OSError, ValueError, KeyError, EOFError):
        return False
    if len(meta.found) != n:
        return False
    return not verify or sha256_file(crops) == meta.sha256


# ------------------------------------------------------------------- workers
@dataclass
class _Job:
    path: Path
    shard: int
    images: list[Path]
    landmarks: np.ndarray | None
    batch_size: int


def _run_jobs(jobs: list[_Job], aligner: Any, workers: int) -> None:
    total = sum(len(j.images) for j in jobs)
    with progress(total=total, unit="img", desc="align") as bar:
        if workers == 1 or len(jobs) == 1:
            for job in jobs:
                bar.update(_align_shard(job, aligner))
            return
        # spawn, not fork: a forked child of a process that already ran torch ops can deadlock.
        ctx = get_context("spawn")
        threads = max(1, (os.cpu_count() or 1) // workers)
        with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=ctx, initializer=_init_worker,
                                 initargs=(pickle.dumps(aligner), threads)) as pool:
            for future in as_completed([pool.submit(_align_shard_in_worker, job) for job in jobs]):
                bar.update(future.result())


_WORKER_ALIGNER: Any = None


def _init_worker(aligner_bytes: bytes, threads: int) -> None:
    global _WORKER_ALIGNER
    _WORKER_ALIGNER = pickle.loads(aligner_bytes)
    if "torch" in sys.modules:  # a torch-based aligner: share the cores between workers
        sys.modules["torch"].set_num_threads(threads)


def _align_shard_in_worker(job: _Job) -> int:
    return _align_shard(job, _WORKER_ALIGNER)


def _align_shard(job: _Job, aligner: Any) -> int:
    """Align one shard's images and write its two files; returns the image count."""
    crops: list[np.ndarray] = []
    found: list[bool] = []
    landmarks: list[np.ndarray] = []
    for start in range(0, len(job.images), job.batch_size):
        paths = job.images[start:start + job.batch_size]
        batch = [read_image(p) for p in paths]
        if job.landmarks is None:
            faces = aligner.align(batch)
        else:
            faces = aligner.align(batch, landmarks=list(job.landmarks[start:start + len(paths)]))
        if len(faces) != len(batch):
            raise UserError(f"aligner {type(aligner).__name__} returned {len(faces)} crops "
                            f"for {len(batch)} images")
        for p, face in zip(paths, faces):
            crop = np.asarray(face.image.convert("RGB"), dtype=np.uint8)
            if crops and crop.shape != crops[0].shape or crop.shape[0] != crop.shape[1]:
                raise UserError(f"aligner {type(aligner).__name__}: crop of {str(p)!r} has shape "
                                f"{crop.shape}, expected one square size for all images")
            crops.append(crop)
            found.append(bool(face.found))
            landmarks.append(np.asarray(face.landmarks, dtype=np.float32).reshape(5, 2))
    crops_file, meta_file = _files(job.path, job.shard)
    with atomic_open(crops_file, "wb") as fh:
        np.save(fh, np.stack(crops))
    with atomic_open(meta_file, "wb") as fh:
        np.savez(fh, found=np.array(found), landmarks=np.stack(landmarks),
                 sha256=np.array(sha256_file(crops_file)))
    return len(crops)


# -------------------------------------------------------------- finalising
def _wait_for_shards(path: Path, n: int, n_shards: int, shard_size: int,
                     timeout: float | None) -> None:
    deadline = None if timeout is None else time.monotonic() + timeout
    pending = set(range(n_shards))
    while True:
        pending = {k for k in pending if not _shard_done(path, k, _shard_len(k, n, shard_size), False)}
        if not pending:
            return
        if deadline is not None and time.monotonic() > deadline:
            raise UserError(f"face cache {str(path)!r}: {len(pending)} shards (e.g. {min(pending)}) "
                            f"still missing after {timeout:g} s; did another rank fail?")
        time.sleep(1.0)


def _write_index(path: Path, key: dict[str, Any], n: int, n_shards: int, shard_size: int) -> None:
    shards, sizes = [], set()
    for k in range(n_shards):
        crops, meta_file = _files(path, k)
        meta = _read_meta(meta_file)
        shards.append({"file": crops.name, "meta": meta_file.name, "n": len(meta.found),
                       "sha256": meta.sha256})
        sizes.add(np.load(crops, mmap_mode="r").shape[1])
    if len(sizes) > 1:
        raise UserError(f"face cache {str(path)!r}: shards have different crop sizes {sorted(sizes)}; "
                        f"delete the directory to rebuild")
    index = {**key, "n": n, "size": sizes.pop() if sizes else 0, "shards": shards}
    index_file = path / INDEX
    text = json.dumps(index, indent=1)
    if not index_file.is_file() or index_file.read_text() != text:
        with atomic_open(index_file) as fh:
            fh.write(text)
