"""BP4D, DISFA and Aff-Wild2 datasets: readers on hand-made official layouts, fold manifests,
subject-exclusive protocols, `auh synth --benchmark` read back, and tiny runs on each benchmark."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness import create
from harness.benchmark import benchmark_of
from harness.cli import main
from harness.errors import UserError
from harness.splits import read_manifest, subject_folds, subject_holdout
from plugins.benchmarks import shipped_manifest

# The partitions as au-harness issue 28 lists them (ME-GraphAU's).
ISSUE_BP4D = ["F001 M007 F018 F008 F002 M004 F010 F009 M012 M001 F016 M014 F023 M008",
              "M011 F003 M010 M002 F005 F022 M018 M017 F013 M016 F020 F011 M013 M005",
              "F007 F015 F006 F019 M006 M009 F012 M003 F004 F021 F017 M015 F014"]
ISSUE_DISFA = ["SN002 SN010 SN001 SN026 SN027 SN032 SN030 SN009 SN016",
               "SN013 SN018 SN011 SN028 SN012 SN006 SN031 SN021 SN024",
               "SN003 SN029 SN023 SN025 SN008 SN005 SN007 SN017 SN004"]


def _image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (120, 90, 60)).save(path)


# ------------------------------------------------------------------ manifests
@pytest.mark.parametrize("name, parts", [("bp4d", ISSUE_BP4D), ("disfa", ISSUE_DISFA)])
def test_shipped_partitions_are_the_issues_lists_and_keep_subjects_apart(name, parts):
    manifest = read_manifest(shipped_manifest(name))
    assert [list(f) for f in manifest.folds] == [p.split() for p in parts]
    every = [s for f in manifest.folds for s in f]
    assert len(every) == len(set(every))
    assert manifest.sha256 == hashlib.sha256(shipped_manifest(name).read_bytes()).hexdigest()


def test_a_manifest_with_a_subject_in_two_folds_is_refused(tmp_path):
    path = tmp_path / "folds.json"
    path.write_text(json.dumps({"folds": [["A", "B"], ["C", "A"]]}))
    with pytest.raises(UserError, match="subject 'A' is in fold 0 and fold 1"):
        read_manifest(path)


def test_seeded_subject_folds_keep_each_subject_in_one_fold():
    rng = np.random.default_rng(0)
    subjects = rng.choice([f"S{k}" for k in range(11)], size=500)
    folds = subject_folds(subjects, 3, seed=4)
    for s in np.unique(subjects):
        assert len(np.unique(folds[subjects == s])) == 1
    assert set(folds) == {0, 1, 2}
    assert np.array_equal(folds, subject_folds(subjects, 3, seed=4))
    assert not np.array_equal(folds, subject_folds(subjects, 3, seed=5))
    train, val = subject_holdout(np.flatnonzero(folds != 0), subjects, seed=1)
    assert not set(subjects[train]) & set(subjects[val]) and len(val) and len(train)


# ------------------------------------------------------------------ BP4D
def _bp4d(root: Path) -> None:
    """Three subjects (one per ME-GraphAU part); columns in another order, an AU outside
    the benchmark (27), 9 for not coded, a frame whose image is missing."""
    folder = root / "AUCoding" / "AU_OCC"
    folder.mkdir(parents=True)
    header = "0,27,24,23,17,15,14,12,10,7,6,4,2,1"
    rows = {"F001_T1": ["5,0,0,0,0,0,0,1,0,0,0,0,0,1", "6,1,0,0,0,0,0,9,0,0,0,0,1,1"],
            "M011_T2": ["1,0,1,1,1,1,1,1,1,1,1,1,1,1"],
            "F007_T1": ["10,0,0,0,0,0,0,0,0,0,0,0,0,0", "11,9,9,9,9,9,9,9,9,9,9,9,9,9"]}
    for stem, lines in rows.items():
        (folder / f"{stem}.csv").write_text("\n".join([header, *lines]) + "\n")
        subject, task = stem.split("_")
        for line in lines:
            _image(root / "images" / subject / task / f"{line.split(',')[0]}.jpg")


def test_bp4d_reads_the_official_layout(tmp_path):
    _bp4d(tmp_path)
    ds = create("dataset", "bp4d", root=str(tmp_path))
    aus = ds.schema.aus
    assert aus == ("AU1", "AU2", "AU4", "AU6", "AU7", "AU10", "AU12", "AU14", "AU15", "AU17", "AU23", "AU24")
    # the all-9 frame 11 of F007_T1 carries nothing: left out
    assert ds.names == ["F001/T1/5.jpg", "F001/T1/6.jpg", "F007/T1/10.jpg", "M011/T2/1.jpg"]
    row = dict(zip(aus, ds.labels[1]))
    assert row["AU1"] == 1 and row["AU2"] == 1 and row["AU12"] == 999 and row["AU24"] == 0
    assert ds.labels[0].tolist() == [1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0]
    assert ds.labels[3].tolist() == [1] * 12
    assert ds.folds.tolist() == [0, 0, 2, 1] and list(ds.subjects) == ["F001", "F001", "F007", "M011"]
    assert list(ds.groups) == ["F001_T1", "F001_T1", "F007_T1", "M011_T2"]
    assert benchmark_of(ds.schema).name == "bp4d" and ds.partition["manifest_sha256"] == read_manifest(shipped_manifest("bp4d")).sha256


def test_bp4d_missing_frame_is_listed_or_skipped(tmp_path):
    _bp4d(tmp_path)
    (tmp_path / "images" / "F001" / "T1" / "6.jpg").unlink()
    with pytest.raises(UserError, match=r"1 of 4 labelled frames .* F001/T1/6\.jpg \(no such file\).*skip_bad"):
        create("dataset", "bp4d", root=str(tmp_path))
    ds = create("dataset", "bp4d", root=str(tmp_path), skip_bad=True)
    assert "F001/T1/6.jpg" not in ds.names and len(ds) == 3


def test_bp4d_code_outside_0_1_9_is_refused_naming_file_line_and_au(tmp_path):
    _bp4d(tmp_path)
    path = tmp_path / "AUCoding" / "AU_OCC" / "M011_T2.csv"
    path.write_text(path.read_text().replace("1,0,1,1", "1,0,1,2"))
    with pytest.raises(UserError, match=r"M011_T2\.csv: line 2: AU23 is '2'"):
        create("dataset", "bp4d", root=str(tmp_path))


def test_bp4d_images_elsewhere_at_another_pattern(tmp_path):
    _bp4d(tmp_path)
    moved = tmp_path / "frames"
    for old in (tmp_path / "images").rglob("*.jpg"):
        subject, task = old.parent.parent.name, old.parent.name
        _image(moved / f"{subject}-{task}-{int(old.stem):04d}.jpg")
    ds = create("dataset", "bp4d", root=str(tmp_path), images=str(moved), pattern="{subject}-{task}-{frame:04d}.jpg")
    assert ds.names[0] == "F001-T1-0005.jpg"
    with pytest.raises(UserError, match=r"pattern '\{video\}/\{frame\}\.jpg'"):
        create("dataset", "bp4d", root=str(tmp_path), pattern="{video}/{frame}.jpg")


# ------------------------------------------------------------------ DISFA
def _disfa(root: Path, frames: int = 3) -> None:
    aus = (1, 2, 4, 6, 9, 12, 25, 26)
    for subject in ("SN002", "SN013", "SN003"):
        folder = root / "ActionUnit_Labels" / subject
        folder.mkdir(parents=True)
        for k in aus:
            # AU1: intensities 1, 2, 5 over the frames; every other AU 0
            values = [1, 2, 5] if k == 1 else [0] * frames
            (folder / f"{subject}_au{k}.txt").write_text("".join(f"{f + 1},{v}\n" for f, v in enumerate(values)))
        for f in range(frames):
            _image(root / "images" / subject / f"{f + 1}.png")


def test_disfa_presence_from_intensity_2_and_settable(tmp_path):
    _disfa(tmp_path)
    ds = create("dataset", "disfa", root=str(tmp_path))
    au1 = ds.labels[:, 0].reshape(3, 3)  # subjects in folder order: SN002, SN003, SN013
    assert au1.tolist() == [[0, 1, 1]] * 3  # intensity 1 absent, 2 and 5 present
    assert (ds.labels[:, 1:] == 0).all()
    assert ds.names[:3] == ["SN002/1.png", "SN002/2.png", "SN002/3.png"]
    assert ds.folds.tolist() == [0] * 3 + [2] * 3 + [1] * 3
    lenient = create("dataset", "disfa", root=str(tmp_path), threshold=1)
    assert lenient.labels[:, 0].tolist() == [1] * 9


def test_disfa_label_frame_without_an_image_and_a_bad_intensity(tmp_path):
    _disfa(tmp_path)
    (tmp_path / "images" / "SN013" / "3.png").unlink()
    with pytest.raises(UserError, match=r"SN013/3\.png \(no such file\)"):
        create("dataset", "disfa", root=str(tmp_path))
    path = tmp_path / "ActionUnit_Labels" / "SN002" / "SN002_au4.txt"
    path.write_text("1,0\n2,6\n3,0\n")
    with pytest.raises(UserError, match=r"SN002_au4\.txt: line 2: intensity '6'"):
        create("dataset", "disfa", root=str(tmp_path), skip_bad=True)


# ------------------------------------------------------------------ Aff-Wild2
ABAW_HEADER = "AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26"


def _affwild2(root: Path) -> None:
    base = root / "AU_Detection_Challenge"
    videos = {"Train_Set": ("10-60-1280x720", "12-24-1920x1080", "13-30-1920x1080"),
              "Validation_Set": ("118-30-640x480",)}
    for part, names in videos.items():
        (base / part).mkdir(parents=True)
        for v in names:
            lines = ["1,0,0,0,0,0,0,0,0,0,1,0", ",".join(["-1"] * 12), "0,1,-1,0,0,0,0,0,0,0,0,0"]
            (base / part / f"{v}.txt").write_text("\n".join([ABAW_HEADER, *lines]) + "\n")
            for frame in (1, 3):  # frame 2 is not annotated: no face, no image
                _image(root / "images" / v / f"{frame:05d}.jpg")


def test_affwild2_reads_the_official_split(tmp_path):
    _affwild2(tmp_path)
    ds = create("dataset", "affwild2", root=str(tmp_path))
    assert benchmark_of(ds.schema).name == "abaw_au" and len(ds) == 8
    assert ds.names[:2] == ["10-60-1280x720/00001.jpg", "10-60-1280x720/00003.jpg"]
    assert ds.labels[0].tolist() == [1] + [0] * 9 + [1, 0]
    assert ds.labels[1].tolist() == [0, 1, 999] + [0] * 9
    assert [ds.names[i] for i in ds.splits["test"]] == ["118-30-640x480/00001.jpg", "118-30-640x480/00003.jpg"]
    train_videos = {str(ds.groups[i]) for i in np.concatenate([ds.splits["train"], ds.splits["val"]])}
    assert train_videos == {"10-60-1280x720", "12-24-1920x1080", "13-30-1920x1080"}
    assert not {str(ds.groups[i]) for i in ds.splits["train"]} & {str(ds.groups[i]) for i in ds.splits["val"]}


def test_affwild2_persons_group_videos_and_a_missing_frame_is_listed(tmp_path):
    _affwild2(tmp_path)
    persons = tmp_path / "persons.csv"
    persons.write_text("video,person\n12-24-1920x1080,p1\n13-30-1920x1080,p1\n")
    ds = create("dataset", "affwild2", root=str(tmp_path), persons=str(persons))
    assert set(ds.subjects) == {"10-60-1280x720", "p1", "118-30-640x480"}
    (tmp_path / "images" / "118-30-640x480" / "00003.jpg").unlink()
    with pytest.raises(UserError, match=r"118-30-640x480/00003\.jpg \(no such file\)"):
        create("dataset", "affwild2", root=str(tmp_path))


# ---------------------------------------------------------- synth, read back
@pytest.mark.parametrize("benchmark, dataset", [("bp4d", "bp4d"), ("disfa", "disfa"), ("abaw_au", "affwild2")])
def test_auh_synth_benchmark_is_read_by_its_dataset_plugin(tmp_path, capsys, benchmark, dataset):
    out = tmp_path / benchmark
    assert main(["synth", str(out), "--benchmark", benchmark, "--subjects", "3", "--frames", "12",
                 "--size", "32", "--identities", "2", "--per-identity", "2", "--per-expression", "1"]) == 0
    persons = {"persons": str(out / "persons.csv")} if dataset == "affwild2" else {}
    ds = create("dataset", dataset, root=str(out), companions={}, **persons)
    assert len(np.unique(ds.subjects)) == 3 and len(ds) > 0
    if benchmark == "disfa":  # the reader's presence equals intensity >= 2 read straight off the files
        sub = ds.subjects[0]
        levels = np.loadtxt(out / "ActionUnit_Labels" / sub / f"{sub}_au12.txt", delimiter=",", dtype=int)
        assert levels[:, 1].max() <= 5
        assert ds.labels[ds.subjects == sub, 5].tolist() == (levels[:, 1] >= 2).astype(int).tolist()
    if benchmark == "bp4d":
        first = sorted((out / "AUCoding" / "AU_OCC").glob("*.csv"))[0]
        table = np.loadtxt(first, delimiter=",", skiprows=1, dtype=int)
        known = (table[:, 1:] != 9).any(axis=1)
        rows = ds.groups == first.stem
        assert ds.labels[rows].tolist() == np.where(table[known, 1:] == 9, 999, table[known, 1:]).tolist()
    # sequences evolve smoothly: an AU's label changes state in few frames
    changes = np.abs(np.diff(ds.labels[ds.groups == ds.groups[0]].astype(float), axis=0))
    assert changes[changes < 2].mean() < 0.25


def test_enc2020_benchmark_writes_the_existing_synth(tmp_path, capsys):
    args = ["--n", "16", "--size", "24", "--identities", "2", "--per-identity", "1", "--per-expression", "1"]
    assert main(["synth", str(tmp_path / "a"), *args]) == 0
    assert main(["synth", str(tmp_path / "b"), "--benchmark", "enc2020", *args]) == 0
    a, b = (sorted(p.relative_to(tmp_path / k) for p in (tmp_path / k).rglob("*") if p.is_file()) for k in "ab")
    assert a == b and all((tmp_path / "a" / p).read_bytes() == (tmp_path / "b" / p).read_bytes() for p in a)


def test_subjects_the_manifest_does_not_list_are_read_but_not_cross_validated(tmp_path):
    from harness import recipe as recipes
    from harness.rounds import evaluation_splits

    _bp4d(tmp_path)
    folder = tmp_path / "AUCoding" / "AU_OCC"
    (folder / "F007_T1.csv").rename(folder / "X999_T1.csv")
    (tmp_path / "images" / "F007").rename(tmp_path / "images" / "X999")
    ds = create("dataset", "bp4d", root=str(tmp_path), companions={})
    assert len(ds) == 4 and ds.folds is None and "X999" in ds.partition["problem"]
    with pytest.raises(UserError, match="cannot be cross-validated: .*X999 are in no fold"):
        evaluation_splits(ds, recipes.resolve({"evaluation": {"mode": "kfold", "folds": 3}}))
    manifest = tmp_path / "mine.json"
    manifest.write_text(json.dumps({"folds": [["F001"], ["M011"], ["X999"]]}))
    ds = create("dataset", "bp4d", root=str(tmp_path), companions={}, manifest=str(manifest))
    assert list(ds.subjects) == ["F001", "F001", "M011", "X999"] and ds.folds.tolist() == [0, 0, 1, 2]
    assert ds.partition["manifest_sha256"] == hashlib.sha256(manifest.read_bytes()).hexdigest()
