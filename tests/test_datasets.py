"""Dataset plugins: ``synth`` (cached generation) and ``emotionet`` (real folder + labels), ``auh synth``."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import harness
from harness.cli import main
from harness.data import cache_root
from harness.errors import UserError
from harness.labels import write_labels
from harness.schema import ENC2020
from plugins.synth import writer

SMALL = dict(n=20, seed=1, size=32, identities=2, per_identity=2, per_expression=1)


def test_synth_generates_once_into_the_cache(tmp_path, monkeypatch):
    ds = harness.create("dataset", "synth", cache=str(tmp_path), **SMALL)
    assert ds.name == "synth" and ds.labels.shape == (20, 23) and ds.landmarks.shape == (20, 5, 2)
    assert set(ds.companions) == {"identity", "expression"}
    folders = [p for p in tmp_path.iterdir()]
    assert len(folders) == 1 and (folders[0] / "meta.json").is_file()  # no temporary left over

    def refuse(*args, **kwargs):
        raise AssertionError("regenerated a cached benchmark")

    monkeypatch.setattr(writer, "generate", refuse)
    again = harness.create("dataset", "synth", cache=str(tmp_path), **SMALL)
    assert np.array_equal(again.labels, ds.labels) and again.images == ds.images


def test_cache_root_is_auh_cache_else_the_home_cache(tmp_path, monkeypatch):
    # one cache root for the synthetic benchmark and the face cache
    monkeypatch.setenv("AUH_CACHE", str(tmp_path))
    assert cache_root() == tmp_path
    monkeypatch.setenv("AUH_CACHE", "")  # empty counts as unset
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "au-harness"


def test_synth_bad_parameter_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="size"):
        harness.create("dataset", "synth", cache=str(tmp_path), **{**SMALL, "size": 4})


def test_auh_synth_command_and_root_parameter(tmp_path, capsys):
    out = tmp_path / "bench"
    args = ["synth", str(out), "--n", "20", "--size", "32", "--identities", "2", "--per-identity", "2",
            "--per-expression", "1"]
    assert main(args) == 0
    assert "wrote 20 AU images" in capsys.readouterr().out
    ds = harness.create("dataset", "synth", root=str(out))
    assert len(ds) == 20 and ds.root == out
    assert main(args) == 2  # refuses to overwrite
    assert "not an empty folder" in capsys.readouterr().err


# ---------------------------------------------------------------- emotionet
def _folder(tmp_path, n: int = 12):
    root = tmp_path / "imgs"
    root.mkdir()
    rng = np.random.default_rng(0)
    names = [f"N_{i:04d}.jpg" for i in range(n)]
    for name in names:
        Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(root / name)
    labels = rng.choice([0, 1, 999], size=(n, 23), p=[0.6, 0.35, 0.05])
    return root, names, labels


@pytest.mark.parametrize("suffix", [".txt", ".csv"])
def test_emotionet_loads_text_and_csv_labels(tmp_path, suffix):
    root, names, labels = _folder(tmp_path)
    write_labels(tmp_path / f"labels{suffix}", names, labels, ENC2020)
    ds = harness.create("dataset", "emotionet", root=str(root), labels=str(tmp_path / f"labels{suffix}"))
    assert [p.name for p in ds.images] == names
    assert np.array_equal(ds.labels, labels)
    rows = np.sort(np.concatenate([ds.splits[k] for k in ("train", "val", "test")]))
    assert np.array_equal(rows, np.arange(len(names)))
    assert ds.folds.shape == (len(names),) and set(ds.folds) == set(range(5))


def test_emotionet_reports_all_bad_images_at_once(tmp_path):
    root, names, labels = _folder(tmp_path)
    (root / names[3]).unlink()
    (root / names[7]).write_bytes(b"not a jpeg")
    write_labels(tmp_path / "labels.txt", names, labels, ENC2020)
    with pytest.raises(UserError) as err:
        harness.create("dataset", "emotionet", root=str(root), labels=str(tmp_path / "labels.txt"))
    msg = str(err.value)
    assert "2 of 12" in msg and names[3] in msg and "missing" in msg and names[7] in msg
    assert "skip_bad" in msg and "\n" not in msg


def test_emotionet_skip_bad_counts_what_it_skips(tmp_path, capsys):
    root, names, labels = _folder(tmp_path)
    (root / names[0]).unlink()
    write_labels(tmp_path / "labels.txt", names, labels, ENC2020)
    ds = harness.create("dataset", "emotionet", root=str(root), labels=str(tmp_path / "labels.txt"),
                        skip_bad=True)
    assert len(ds) == 11 and np.array_equal(ds.labels, labels[1:])
    assert "skipped 1 of 12" in capsys.readouterr().err


def test_emotionet_missing_root(tmp_path):
    with pytest.raises(UserError, match="not a folder"):
        harness.create("dataset", "emotionet", root=str(tmp_path / "nope"), labels="x.txt")
