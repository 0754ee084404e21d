"""Caches other runs trust: a damaged entry is rebuilt, never used.

(The face cache's own check is tests/test_facecache.py::test_corrupt_shard_is_rebuilt_not_used.)
"""
from __future__ import annotations

import json

import numpy as np

from harness.fileio import damaged_files, tree_sha256
from plugins import datasets
from plugins.synth import writer

SMALL = dict(n=15, seed=3, size=32, identities=2, per_identity=2, per_expression=1)


def test_tree_sha256_and_damaged_files(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.bin").write_bytes(b"x")
    (tmp_path / "y.txt").write_text("y")
    recorded = tree_sha256(tmp_path)
    assert recorded == {"a/x.bin": "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881",
                        "y.txt": "a1fce4363854ff888cff4b8e7875d600c2682390412a8cf79b37d0b11148b0fa"}
    assert damaged_files(tmp_path, recorded) == []
    (tmp_path / "a" / "x.bin").write_bytes(b"z")
    (tmp_path / "y.txt").unlink()
    assert damaged_files(tmp_path, recorded) == ["a/x.bin", "y.txt"]


def test_a_damaged_synth_cache_is_rebuilt(tmp_path, capsys):
    first = datasets.synth(cache=str(tmp_path), **SMALL)
    folder = first.root
    meta = json.loads((folder / "meta.json").read_text())
    assert len(meta["sha256"]) == sum(1 for p in folder.rglob("*") if p.is_file()) - 1  # all but meta.json
    image = first.images[4]
    good = image.read_bytes()
    image.write_bytes(good[: len(good) // 2])  # a half-written image, as a full disk would leave
    (folder / "labels.csv").write_text((folder / "labels.csv").read_text().replace(",1,", ",0,", 1))

    again = datasets.synth(cache=str(tmp_path), **SMALL)
    err = capsys.readouterr().err
    assert f"cached benchmark {folder} fails its checksums (2 files" in err and "rebuilding" in err
    assert image.read_bytes() == good
    np.testing.assert_array_equal(again.labels, first.labels)
    assert writer.damaged(folder) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder.name]  # nothing left aside


def test_an_intact_synth_cache_is_reused_without_a_word(tmp_path, capsys, monkeypatch):
    datasets.synth(cache=str(tmp_path), **SMALL)
    capsys.readouterr()

    def refuse(*args, **kwargs):
        raise AssertionError("regenerated an intact cache")

    monkeypatch.setattr(writer, "generate", refuse)
    datasets.synth(cache=str(tmp_path), **SMALL)
    assert capsys.readouterr().err == ""


def test_a_cache_without_checksums_is_rebuilt(tmp_path):
    folder = datasets.synth(cache=str(tmp_path), **SMALL).root
    meta = json.loads((folder / "meta.json").read_text())
    del meta["sha256"]  # as written before checksums were recorded
    (folder / "meta.json").write_text(json.dumps(meta))
    assert writer.damaged(folder) == ["meta.json"]
    datasets.synth(cache=str(tmp_path), **SMALL)
    assert writer.damaged(folder) == []
