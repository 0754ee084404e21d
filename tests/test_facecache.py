"""The aligned-face cache: contents, resume, checksum rebuild, determinism, ranks, workers."""
from __future__ import annotations

import hashlib
import json
import os
import pickle

import numpy as np
import pytest
from PIL import Image

import harness
from harness.errors import UserError
from harness.facecache import FaceCache, build_cache, cache_path
from plugins.aligners import CenterAligner, OracleAligner, TEMPLATE_112

N = 10
SHARD = 4  # -> shards of 4, 4 and 2 images


class CountingAligner:
    """A center aligner that records which images it was asked to align."""

    def __init__(self, size: int = 16) -> None:
        self.inner = CenterAligner(size)
        self.cache_key = self.inner.cache_key
        self.seen: list[tuple[int, int]] = []

    def align(self, images):
        self.seen.extend(img.getpixel((0, 0))[:2] for img in images)
        return self.inner.align(images)


@pytest.fixture
def images(tmp_path):
    """N images of mixed sizes whose top-left pixel encodes their index."""
    rng = np.random.default_rng(0)
    paths = []
    for i in range(N):
        h, w = (30, 40) if i % 2 else (48, 36)
        arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        arr[0, 0] = (i, 7, 0)
        paths.append(tmp_path / "img" / f"{i:03d}.png")
        paths[-1].parent.mkdir(exist_ok=True)
        Image.fromarray(arr).save(paths[-1])
    return paths


def _index_of(seen) -> list[int]:
    """The images an aligner saw: the red value of their top-left pixel."""
    return sorted(i for i, _ in seen)


def test_contents_match_the_aligner(tmp_path, images):
    aligner = CenterAligner(16)
    cache = build_cache(images, aligner, tmp_path / "cache", shard_size=SHARD)
    assert len(cache) == N and cache.size == 16
    for i, p in enumerate(images):
        face = aligner.align([Image.open(p).convert("RGB")])[0]
        assert cache[i].dtype == np.uint8 and cache[i].shape == (16, 16, 3)
        assert np.array_equal(cache[i], np.asarray(face.image))
        np.testing.assert_allclose(cache.landmarks[i], face.landmarks)
    assert cache.found.dtype == bool and cache.found.all()
    assert np.array_equal(cache[-1], cache[N - 1])
    with pytest.raises(IndexError):
        cache[N]
    # the index: one sha256 per shard, of the shard's bytes
    index = json.loads((cache.path / "index.json").read_text())
    assert [s["n"] for s in index["shards"]] == [4, 4, 2]
    for s in index["shards"]:
        assert s["sha256"] == hashlib.sha256((cache.path / s["file"]).read_bytes()).hexdigest()
    assert index["cache_key"] == aligner.cache_key


def test_reading_is_memory_mapped_and_pickles(tmp_path, images):
    cache = build_cache(images, CenterAligner(16), tmp_path / "cache", shard_size=SHARD)
    cache[5]
    assert isinstance(cache._maps[1], np.memmap)
    clone = pickle.loads(pickle.dumps(cache))
    assert not clone._maps and np.array_equal(clone[5], cache[5])
    reopened = FaceCache(cache.path)
    assert np.array_equal(reopened[9], cache[9])


def test_second_build_aligns_nothing(tmp_path, images):
    build_cache(images, CountingAligner(), tmp_path / "cache", shard_size=SHARD)
    again = CountingAligner()
    build_cache(images, again, tmp_path / "cache", shard_size=SHARD)
    assert again.seen == []


def test_resume_after_an_interrupted_build(tmp_path, images):
    cache = build_cache(images, CenterAligner(16), tmp_path / "cache", shard_size=SHARD)
    expected = [cache[i] for i in range(N)]
    # killed after shard 1's crops were written but before its meta file:
    (cache.path / "shard-00001.meta.npz").unlink()
    (cache.path / "shard-00002.npy").unlink()
    (cache.path / "index.json").unlink()
    counting = CountingAligner()
    resumed = build_cache(images, counting, tmp_path / "cache", shard_size=SHARD)
    assert _index_of(counting.seen) == [4, 5, 6, 7, 8, 9]
    assert all(np.array_equal(resumed[i], expected[i]) for i in range(N))


def test_corrupt_shard_is_rebuilt_not_used(tmp_path, images):
    cache = build_cache(images, CenterAligner(16), tmp_path / "cache", shard_size=SHARD)
    expected = cache[2].copy()
    shard = cache.path / "shard-00000.npy"
    raw = bytearray(shard.read_bytes())
    raw[-10] ^= 0xFF  # flip bits in the pixel data, keep the header valid
    shard.write_bytes(bytes(raw))
    counting = CountingAligner()
    rebuilt = build_cache(images, counting, tmp_path / "cache", shard_size=SHARD)
    assert _index_of(counting.seen) == [0, 1, 2, 3]
    assert np.array_equal(rebuilt[2], expected)
    assert np.array_equal(rebuilt[3], np.asarray(CenterAligner(16).align(
        [Image.open(images[3]).convert("RGB")])[0].image))
    # without verification a corrupt shard would go unnoticed: that is the point of verify
    shard.write_bytes(bytes(raw))
    lazy = CountingAligner()
    build_cache(images, lazy, tmp_path / "cache", shard_size=SHARD, verify=False)
    assert lazy.seen == []


def test_deterministic_and_keyed(tmp_path, images):
    a = build_cache(images, CenterAligner(16), tmp_path / "a", shard_size=SHARD)
    b = build_cache(images, CenterAligner(16), tmp_path / "b", shard_size=SHARD)
    assert a.path.name == b.path.name
    assert [s["sha256"] for s in a.index["shards"]] == [s["sha256"] for s in b.index["shards"]]
    other = cache_path(images, CenterAligner(24), tmp_path / "a", shard_size=SHARD)
    fewer = cache_path(images[:-1], CenterAligner(16), tmp_path / "a", shard_size=SHARD)
    assert len({a.path, other, fewer}) == 3
    # a replaced image file (new bytes) is a new cache
    Image.new("RGB", (50, 50)).save(images[0])
    assert cache_path(images, CenterAligner(16), tmp_path / "a", shard_size=SHARD) != a.path


def test_root_makes_the_key_relocatable(tmp_path, images):
    moved = tmp_path / "moved"
    (moved / "img").mkdir(parents=True)
    copies = []
    for p in images:
        q = moved / "img" / p.name
        q.write_bytes(p.read_bytes())
        os.utime(q, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns))
        copies.append(q)
    here = cache_path(images, CenterAligner(16), tmp_path / "c", root=tmp_path)
    there = cache_path(copies, CenterAligner(16), tmp_path / "c", root=moved)
    assert here == there


def test_ranks_build_disjoint_shards(tmp_path, images):
    one = CountingAligner()
    with pytest.raises(UserError, match="still missing"):
        build_cache(images, one, tmp_path / "cache", shard_size=SHARD, rank=1, world_size=2,
                    wait_timeout=0)
    assert _index_of(one.seen) == [4, 5, 6, 7]  # shard 1 only
    zero = CountingAligner()
    cache = build_cache(images, zero, tmp_path / "cache", shard_size=SHARD, rank=0, world_size=2,
                        wait_timeout=5)
    assert _index_of(zero.seen) == [0, 1, 2, 3, 8, 9]  # shards 0 and 2
    whole = build_cache(images, CenterAligner(16), tmp_path / "single", shard_size=SHARD)
    assert all(np.array_equal(cache[i], whole[i]) for i in range(N))


def test_worker_processes_give_the_same_cache(tmp_path, images):
    serial = build_cache(images, CenterAligner(16), tmp_path / "serial", shard_size=SHARD)
    parallel = build_cache(images, CenterAligner(16), tmp_path / "parallel", shard_size=SHARD,
                           workers=2)
    assert serial.index["shards"] == parallel.index["shards"]


def test_oracle_gets_the_landmarks(tmp_path, images):
    # landmarks = the template moved by (+3, -2) in every image: the crop's
    # landmarks must come back on the 16 px template
    lms = np.repeat((TEMPLATE_112 * 16 / 112 + [3, -2])[None], N, axis=0)
    lms[4] = np.nan  # unknown: falls back, found=False
    cache = build_cache(images, OracleAligner(16), tmp_path / "cache", lms, shard_size=SHARD)
    assert cache.found.tolist() == [i != 4 for i in range(N)]
    np.testing.assert_allclose(cache.landmarks[0], TEMPLATE_112 * 16 / 112, atol=1e-3)
    # an aligner that takes no landmarks is not given them, and its key ignores them
    assert cache_path(images, CenterAligner(16), tmp_path / "c", lms) == \
        cache_path(images, CenterAligner(16), tmp_path / "c")


def test_user_errors(tmp_path, images):
    bad = tmp_path / "img" / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(UserError, match="bad.png"):
        build_cache(images + [bad], CenterAligner(16), tmp_path / "cache")
    with pytest.raises(UserError, match="missing.png"):
        build_cache([tmp_path / "missing.png"], CenterAligner(16), tmp_path / "cache")
    with pytest.raises(UserError, match="landmarks have shape"):
        build_cache(images, OracleAligner(16), tmp_path / "cache", np.zeros((N, 4, 2)))
    with pytest.raises(UserError, match="rank"):
        build_cache(images, CenterAligner(16), tmp_path / "cache", rank=2, world_size=2)
    with pytest.raises(UserError, match="index.json"):
        FaceCache(tmp_path / "nowhere")


def test_created_by_name(tmp_path, images):
    cache = build_cache(images, harness.create("aligner", "none", size=20), tmp_path / "cache")
    assert cache[0].shape == (20, 20, 3) and cache.path.name.startswith("none-")


PLUGIN = '''
from pathlib import Path

import numpy as np

from harness import hookimpl
from harness.data import AUDataset
from harness.schema import ENC2020


@hookimpl
def auh_datasets():
    def facecache_test_images():
        """The facecache test's images."""
        images = sorted(Path(__file__).parent.glob("img/*.png"))
        return AUDataset("facecache_test_images", ENC2020, images, np.zeros((len(images), 23), int))
    return {"facecache_test_images": facecache_test_images}
'''


def test_auh_align_fills_the_cache_that_runs_read(tmp_path, images, monkeypatch, capsys):
    from harness.cli import main

    monkeypatch.setenv("AUH_CACHE", str(tmp_path / "auh-cache"))
    plugin = tmp_path / "facecache_test_plugin.py"
    plugin.write_text(PLUGIN)
    argv = ["--plugin", str(plugin), "align", "facecache_test_images", "--aligner", "center",
            "--size", "16", "--workers", "1"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"facecache_test_images: {N} images aligned, no face found in 0" in out
    # the pipeline's own call finds everything there: nothing is aligned again
    counting = CountingAligner(16)
    build_cache(images, counting, tmp_path / "auh-cache" / "faces")
    assert counting.seen == []
    assert main(["align", "no_such_dataset"]) == 2
