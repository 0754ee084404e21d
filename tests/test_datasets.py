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


# ------------------------------------------------------ companions from real data
def _tree(root, classes: dict[str, int], suffix: str = ".png"):
    rng = np.random.default_rng(1)
    for name, count in classes.items():
        (root / name / "sub").mkdir(parents=True)
        for i in range(count):  # at any depth below the class folder
            where = root / name / ("sub" if i % 2 else "") / f"{name}_{i}{suffix}"
            Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(where)
    return root


def _with_companions(tmp_path, companions):
    root, names, labels = _folder(tmp_path)
    write_labels(tmp_path / "labels.txt", names, labels, ENC2020)
    return harness.create("dataset", "emotionet", root=str(root), labels=str(tmp_path / "labels.txt"),
                          companions=companions)


def test_companion_from_an_image_folder_tree(tmp_path):
    tree = _tree(tmp_path / "ids", {"bob": 3, "alice": 2, "carol": 1})
    ds = _with_companions(tmp_path, {"identity": {"root": str(tree)}})
    c = ds.companions["identity"]
    assert c.task == "identity" and c.classes == ["alice", "bob", "carol"]
    assert [c.classes[t] for t in c.targets] == [p.parts[len(tree.parts)] for p in c.images]
    assert sorted(p.name for p in c.images) == sorted(
        ["alice_0.png", "alice_1.png", "bob_0.png", "bob_1.png", "bob_2.png", "carol_0.png"])


def test_companion_from_an_affectnet_label_file(tmp_path):
    tree = _tree(tmp_path / "aff", {"1": 2, "2": 2, "8": 1})
    files = sorted(tree.rglob("*.png"))
    lines = ["subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,valence,arousal"]
    lines += [f'{p.relative_to(tree)},0,0,16,16,"1.0;2.0;3.0",{p.parts[len(tree.parts)]},0.1,0.2' for p in files]
    (tmp_path / "training.csv").write_text("\n".join(lines) + "\n")
    ds = _with_companions(tmp_path, {"expression": {"labels": str(tmp_path / "training.csv"), "root": str(tree),
                                                    "exclude": [8]}})
    c = ds.companions["expression"]
    assert c.classes == ["1", "2"] and len(c.images) == 4
    assert [c.classes[t] for t in c.targets] == [p.parts[len(tree.parts)] for p in c.images]


def test_companion_from_two_columns_relative_to_the_file(tmp_path):
    tree = _tree(tmp_path / "fer", {"happy": 2, "sad": 2})
    files = sorted(tree.rglob("*.png"))
    (tree / "list.csv").write_text("".join(f"{p.relative_to(tree)},{p.parts[len(tree.parts)]}\n" for p in files))
    c = _with_companions(tmp_path, {"expression": {"labels": str(tree / "list.csv")}}).companions["expression"]
    assert c.images == files and [c.classes[t] for t in c.targets] == ["happy", "happy", "sad", "sad"]


@pytest.mark.parametrize("spec, needle", [
    ({"root": "nope"}, "companions.identity.root: 'nope' is not a folder"),
    ({}, "needs root (an image-folder tree"),
    ({"root": "TREE", "colour": 1}, "companions.identity.colour: unknown key"),
    ({"root": "LOOSE"}, "holds images directly"),
    ({"root": "ONE"}, "in 1 class; a pretraining task needs at least 2 classes"),
    ({"labels": "BADLINE"}, "line 3: expected 2 fields"),
    ({"labels": "NOHEADER"}, "expected a header naming the image path"),
    ({"root": "BROKEN"}, "1 of 4 identity images are missing or unreadable"),
    ({"root": "TREE", "exclude": "x"}, "companions.identity.exclude: expected a list"),
])
def test_bad_companions_are_one_line(tmp_path, spec, needle):
    tree = _tree(tmp_path / "tree", {"a": 2, "b": 2})
    one = _tree(tmp_path / "one", {"a": 2})
    loose = _tree(tmp_path / "loose", {"a": 1, "b": 1})
    Image.new("RGB", (8, 8)).save(loose / "stray.jpg")
    broken = _tree(tmp_path / "broken", {"a": 2, "b": 2})
    next(broken.rglob("*.png")).write_bytes(b"")
    (tmp_path / "badline.csv").write_text("tree/a/a_0.png,a\ntree/b/b_0.png,b\ntree/b/b_1.png\n")
    (tmp_path / "noheader.csv").write_text("x,y,z\n1,2,3\n")
    where = {"TREE": tree, "ONE": one, "LOOSE": loose, "BROKEN": broken,
             "BADLINE": tmp_path / "badline.csv", "NOHEADER": tmp_path / "noheader.csv"}
    spec = {k: str(where.get(v, v)) if isinstance(v, str) else v for k, v in spec.items()}
    with pytest.raises(UserError) as err:
        _with_companions(tmp_path, {"identity": spec})
    assert needle in str(err.value) and "\n" not in str(err.value)
    assert str(err.value).startswith("dataset emotionet: companions.identity")
