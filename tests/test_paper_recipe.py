"""`plugins/recipes/paper.toml` end to end on real folders, shrunk with `--set`.

The paper's recipe as shipped (emotionet, MTCNN, 5-fold cross-validation,
identity and expression pretraining, ML-ROS + selective learning, mean of
probabilities, threshold search) runs through every stage on fabricated
folders made of real face photos from the installed packages: an AU image
folder with a label file, an identity tree (one folder per person) and an
AffectNet-style expression label file. Only sizes are overridden (tiny
backbone, 32 px crops, one step per epoch, 3 folds).
"""
from __future__ import annotations

import importlib.resources
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps

from harness.cli import main
from harness.labels import write_labels
from harness.schema import ENC2020


def real_faces() -> list[Image.Image]:
    """The astronaut, Grace Hopper, the cameraman and LFW faces (25 px, enlarged)."""
    import matplotlib.cbook
    import skimage.data

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as fh:
        hopper = Image.open(fh).convert("RGB")
    faces = [Image.fromarray(skimage.data.astronaut()), hopper,
             Image.fromarray(skimage.data.camera()).convert("RGB")]
    lfw = skimage.data.lfw_subset()[:100]  # the first 100 are faces
    faces += [Image.fromarray((lfw[i] * 255).astype(np.uint8)).convert("RGB").resize((100, 100))
              for i in range(0, 100, 4)]
    return faces


def variant(face: Image.Image, k: int) -> Image.Image:
    """Another file of the same photo: mirrored and lit differently."""
    image = ImageOps.mirror(face) if k % 2 else face
    return ImageEnhance.Brightness(image).enhance(0.8 + 0.1 * (k % 5))


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("paper")
    faces = real_faces()
    rng = np.random.default_rng(0)
    au = root / "emotionet" / "images"
    au.mkdir(parents=True)
    names = []
    for i in range(30):
        names.append(f"enc_{i:03d}.jpg")
        variant(faces[i % len(faces)], i).save(au / names[-1])
    labels = rng.choice([0, 1, 999], size=(len(names), len(ENC2020)), p=[0.55, 0.4, 0.05])
    write_labels(root / "emotionet" / "labels.txt", names, labels, ENC2020)
    for person in range(3):  # identity tree: one folder per person
        folder = root / "ms1m" / f"person_{person}"
        folder.mkdir(parents=True)
        for k in range(3):
            variant(faces[3 + person * 3 + k], k).save(folder / f"{k}.jpg")
    affectnet = root / "affectnet" / "images"
    rows = ["subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,valence,arousal"]
    for k in range(12):  # classes 1-3, and one of AffectNet's "no face" (10), excluded by the recipe
        expression = 10 if k == 11 else 1 + k % 3
        (affectnet / str(k % 4)).mkdir(parents=True, exist_ok=True)
        variant(faces[(5 * k + 1) % len(faces)], k).save(affectnet / str(k % 4) / f"{k}.jpg")
        rows.append(f'{k % 4}/{k}.jpg,0,0,100,100,"1;2;3",{expression},0.0,0.0')
    (root / "affectnet" / "training.csv").write_text("\n".join(rows) + "\n")
    return root


def test_paper_recipe_runs_every_stage_on_real_folders(folders, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    recipe = Path(str(importlib.resources.files("plugins.recipes") / "paper.toml"))
    sets = {
        "dataset.root": folders / "emotionet" / "images",
        "dataset.labels": folders / "emotionet" / "labels.txt",
        "dataset.companions.identity.root": folders / "ms1m",
        "dataset.companions.expression.labels": folders / "affectnet" / "training.csv",
        "dataset.companions.expression.root": folders / "affectnet" / "images",
        "evaluation.folds": 3, "evaluation.bootstrap": 20, "run.device": "cpu",
        "train.epochs": 1, "train.max_steps": 1, "train.batch_size": 4, "train.input_size": 32,
        "train.workers": 0, "pretrain.epochs": 1, "pretrain.batch_size": 4,
        "views.face.backbone.name": "timm:test_resnet", "views.emotion.backbone.name": "timm:test_resnet",
    }
    args = [f"{k}={json.dumps(str(v)) if isinstance(v, Path) else v}" for k, v in sets.items()]
    assert main(["run", str(recipe), *[a for arg in args for a in ("--set", arg)],
                 "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]) == 0
    captured = capsys.readouterr()
    stages = ["face/pretrain", "emotion/pretrain"] + [
        f"fold/{k}/{part}" for k in range(3) for part in ("face/finetune", "emotion/finetune", "ensemble")]
    assert [ln for ln in captured.err.splitlines() if ln.startswith("stage ")] == [
        f"stage {k} of {len(stages)}: {s}" for k, s in enumerate(stages, 1)]
    assert "cross-validation: 3 folds" in captured.out

    run = tmp_path / "runs" / "paper"
    for stage in stages:
        if not stage.endswith("ensemble"):
            assert (run / stage / "done.json").is_file(), stage
    # each pretraining task's head: its companion's classes (3 people; expressions 1-3, 10 left out)
    from safetensors.torch import load_file

    for view in ("face", "emotion"):
        weights = load_file(run / view / "pretrain" / "final.safetensors")
        heads = {k: v.shape[0] for k, v in weights.items() if k.endswith("fc.weight")}
        assert list(heads.values()) == [3], heads
    result = json.loads((run / "result.json").read_text())
    assert result["cv"]["n_folds"] == 3 and 0 <= result["scores"]["final"] <= 1
    assert result["faces"]["n"] == 30
    bundle = json.loads((run / "bundle" / "bundle.json").read_text())
    assert set(bundle["views"]) == {"face", "emotion"} and bundle["aligner"]["name"] == "mtcnn"


def test_paper_recipe_refuses_a_missing_companion_folder_before_any_work(folders, tmp_path, monkeypatch,
                                                                          capsys):
    monkeypatch.chdir(tmp_path)
    recipe = Path(str(importlib.resources.files("plugins.recipes") / "paper.toml"))
    code = main(["run", str(recipe), "--set", f"dataset.root={json.dumps(str(folders / 'emotionet' / 'images'))}",
                 "--set", f"dataset.labels={json.dumps(str(folders / 'emotionet' / 'labels.txt'))}",
                 "--set", "run.device=cpu", "--tracking-uri", "off"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["auh: error: recipe field dataset: dataset emotionet: companions.identity.root: "
                   "'data/ms1m/images' is not a folder"]
    assert list(tmp_path.iterdir()) == []
