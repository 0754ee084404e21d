"""`auh predict`: the per-face table, the submission, skipped images, `--strict`, MLflow model URIs.

Real face photos from the installed packages (scikit-image's astronaut,
matplotlib's Grace Hopper, and the two side by side), a blank image (no
face), and files that are not images. The bundle has random weights: the
values are checked against independent computations, not against quality.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import harness
from harness import recipe as recipes
from harness.cli import main
from harness.schema import ENC2020

AUS = list(ENC2020.aus)
LANDMARK_COLUMNS = [f"{n}_{c}" for n in ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
                    for c in "xy"]
COLUMNS = (["image", "path", "face", "found", "score", "box_x0", "box_y0", "box_x1", "box_y1"]
           + LANDMARK_COLUMNS + [f"{au}_prob" for au in AUS] + AUS + ["error"])
THRESHOLDS = np.linspace(0.3, 0.7, len(AUS))


def face_photos(folder: Path) -> dict[str, Path]:
    import matplotlib.cbook
    import skimage.data

    folder.mkdir(parents=True, exist_ok=True)
    astronaut = Image.fromarray(skimage.data.astronaut())
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as fh:
        hopper = Image.open(fh).convert("RGB")
    pair = Image.new("RGB", (912, 600), (40, 40, 40))
    pair.paste(astronaut, (0, 0))
    pair.paste(hopper.resize((400, 512)), (512, 0))
    files = {"astronaut.png": astronaut, "grace_hopper.jpg": hopper, "pair.jpg": pair,
             "blank.jpg": Image.new("RGB", (200, 200), (120, 130, 140))}
    for name, image in files.items():
        image.save(folder / name)
    (folder / "notes.jpg").write_bytes(b"image,AU1\n")
    (folder / "empty.png").write_bytes(b"")
    return {name: folder / name for name in [*files, "notes.jpg", "empty.png"]}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from harness.bundle import load_bundle, save_bundle
    from harness.weights import save_weights

    root = tmp_path_factory.mktemp("predict")
    recipe = recipes.load(None, ["train.input_size=32", "aligner.name=mtcnn", "views.face.pretrain=none",
                                 "views.face.backbone.name=timm:test_resnet"])
    recipe = dataclasses.replace(recipe, views={"face": recipe.views["face"]})
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = harness.create("backbone", "timm:test_resnet", num_classes=len(AUS), input_size=32)
    weights = save_weights(model, root / "face.safetensors")
    folder = save_bundle(root / "bundle", recipe, ENC2020, {"face": weights}, THRESHOLDS,
                         harness.create("ensembler", "mean_prob"), {"face": model.normalization})
    photos = face_photos(root / "img")
    return root, folder, load_bundle(folder), photos


def predict(root: Path, *args: str) -> int:
    import os

    old = os.getcwd()
    os.chdir(root)
    try:
        return main(["predict", *args])
    finally:
        os.chdir(old)


@pytest.fixture(scope="module")
def table(setup):
    import pandas as pd

    root, folder, _, _ = setup
    assert predict(root, str(folder), "img", "--out", "p.parquet", "--submission", "sub.csv") == 0
    return pd.read_parquet(root / "p.parquet")


def test_columns_and_rows(table):
    assert list(table.columns) == COLUMNS
    # sorted folder order; the pair has two faces, every other image one row
    assert table[["image", "face"]].values.tolist() == [
        ["astronaut.png", 0], ["blank.jpg", 0], ["empty.png", 0], ["grace_hopper.jpg", 0],
        ["notes.jpg", 0], ["pair.jpg", 0], ["pair.jpg", 1]]
    assert table["found"].tolist() == [True, False, False, True, False, True, True]
    assert table["path"].tolist() == [f"img/{n}" for n in table["image"]]


def test_probabilities_equal_the_bundles_python_predictions(setup, table):
    root, _, bundle, photos = setup
    first = table[table["face"] == 0].set_index("image")
    for name in ("astronaut.png", "grace_hopper.jpg", "pair.jpg", "blank.jpg"):
        probs, _ = bundle.predict_paths([photos[name]])
        np.testing.assert_allclose(first.loc[name, [f"{au}_prob" for au in AUS]].to_numpy(float), probs[0],
                                   rtol=1e-5, atol=1e-6)
    probs = table[[f"{au}_prob" for au in AUS]].to_numpy(float)
    known = ~np.isnan(probs).any(1)
    np.testing.assert_array_equal(table.loc[known, AUS].to_numpy(int), (probs[known] >= THRESHOLDS).astype(int))


def test_boxes_scores_and_landmarks_are_the_detectors(setup, table):
    """Every face of the pair, in the detector's confidence order, and its own crop's probabilities."""
    root, _, bundle, photos = setup
    aligner = bundle.aligner()
    image = Image.open(photos["pair.jpg"]).convert("RGB")
    boxes, probs, points = aligner.detector.detect([image], landmarks=True)
    order = np.argsort(-np.asarray(probs[0], float))
    rows = table[table["image"] == "pair.jpg"]
    assert len(rows) == len(order) == 2
    for k, i in enumerate(order):
        row = rows[rows["face"] == k].iloc[0]
        assert row["score"] == pytest.approx(float(probs[0][i]), rel=1e-6)
        np.testing.assert_allclose(row[["box_x0", "box_y0", "box_x1", "box_y1"]].to_numpy(float),
                                   np.asarray(boxes[0][i], float), rtol=1e-5)
        np.testing.assert_allclose(row[LANDMARK_COLUMNS].to_numpy(float),
                                   np.asarray(points[0][i], float).reshape(10), rtol=1e-5)
        crop = np.asarray(aligner.to_template(image, np.asarray(points[0][i], float)).image)
        np.testing.assert_allclose(row[[f"{au}_prob" for au in AUS]].to_numpy(float),
                                   bundle.predict_crops(crop[None])[0][0], rtol=1e-5, atol=1e-6)
    # the faces are the astronaut (left) and Grace Hopper (right half)
    assert sorted(rows["box_x0"] > 512) == [False, True]


def test_face_not_found_and_unreadable_rows(table):
    blank = table[table["image"] == "blank.jpg"].iloc[0]
    assert not blank["found"] and blank["error"] == ""
    assert np.isnan(blank[["score", "box_x0", "left_eye_x"]].to_numpy(float)).all()
    assert not np.isnan(blank[[f"{au}_prob" for au in AUS]].to_numpy(float)).any()  # center crop
    bad = table[table["error"] != ""].set_index("image")
    assert bad["error"].to_dict() == {"empty.png": "empty file (0 bytes)",
                                      "notes.jpg": "not an image (unrecognised format)"}
    assert bad[AUS].isna().all().all() and np.isnan(bad[[f"{au}_prob" for au in AUS]].to_numpy(float)).all()
    assert not bad["found"].any()


def test_metadata_records_the_bundle_and_thresholds(setup, table):
    import hashlib

    from harness.predict import read_metadata

    root, folder, _, _ = setup
    meta = read_metadata(root / "p.parquet")
    assert meta["bundle_sha256"] == hashlib.sha256((folder / "bundle.json").read_bytes()).hexdigest()
    assert meta["bundle"] == str(folder) and meta["aus"] == AUS
    np.testing.assert_allclose([meta["thresholds"][au] for au in AUS], THRESHOLDS)
    assert meta["skipped"] == [{"path": "img/empty.png", "reason": "empty file (0 bytes)"},
                               {"path": "img/notes.jpg", "reason": "not an image (unrecognised format)"}]


def test_submission_is_face_0_thresholded_and_passes_check(setup, table, capsys):
    from harness.labels import read_labels, write_labels

    root, _, _, _ = setup
    names, sub = read_labels(root / "sub.csv", ENC2020)
    first = table[table["face"] == 0]
    assert names == first["image"].tolist()
    probs = first[[f"{au}_prob" for au in AUS]].to_numpy(float)
    expected = np.where(np.isnan(probs), 0, probs >= THRESHOLDS).astype(int)  # unreadable: all absent
    np.testing.assert_array_equal(sub, expected)
    truth = root / "truth.csv"
    write_labels(truth, names, np.random.default_rng(0).integers(0, 2, (len(names), len(AUS))), ENC2020)
    capsys.readouterr()
    assert main(["check", "--truth", str(truth), "--submission", str(root / "sub.csv")]) == 0


def test_summary_line_counts(setup, capsys):
    root, folder, _, _ = setup
    assert predict(root, str(folder), "img", "--out", "s.csv") == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out == ["wrote 7 rows for 6 images to s.csv: 4 faces in 3 images, 1 image without a face "
                   "(predicted from a center crop), 2 skipped as unreadable or unsupported (first: "
                   "img/empty.png: empty file (0 bytes); each is listed in the table's error column)"]


def test_csv_equals_parquet_and_has_a_sidecar(setup, table):
    import pandas as pd

    from harness.predict import read_metadata

    root, folder, _, _ = setup
    assert predict(root, str(folder), "img", "--out", "p.csv") == 0
    csv = pd.read_csv(root / "p.csv", keep_default_na=False, na_values=[""])
    assert list(csv.columns) == COLUMNS
    numeric = [c for c in COLUMNS if c not in ("image", "path", "error", "found")]
    np.testing.assert_allclose(csv[numeric].to_numpy(float), table[numeric].to_numpy(float), rtol=1e-12)
    assert csv["found"].tolist() == table["found"].tolist()
    assert read_metadata(root / "p.csv") == read_metadata(root / "p.parquet")
    assert (root / "p.csv.json").is_file()


def test_strict_stops_at_the_first_bad_image_and_writes_nothing(setup, capsys):
    root, folder, _, _ = setup
    before = set(p.name for p in root.iterdir())
    assert predict(root, str(folder), "img", "--out", "strict.parquet", "--submission", "strict.csv",
                   "--strict") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["auh: error: image 'img/empty.png': empty file (0 bytes)"]
    assert set(p.name for p in root.iterdir()) == before


@pytest.mark.parametrize("args, needle", [
    (["--out", "p.txt"], "expected a .parquet or .csv file name"),
    (["--out", "same.csv", "--submission", "same.csv"], "name the same file"),
    (["--out", "x.parquet", "--batch-size", "0"], "--batch-size"),
    (["--out", "nowhere/x.parquet"], "does not exist"),
])
def test_bad_arguments_write_nothing(setup, capsys, args, needle):
    root, folder, _, _ = setup
    before = set(p.name for p in root.iterdir())
    assert predict(root, str(folder), "img", *args) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1
    assert set(p.name for p in root.iterdir()) == before


# ------------------------------------------------------------ MLflow URIs
def test_runs_and_models_uris(setup, tmp_path, monkeypatch, capsys):
    import mlflow
    import pandas as pd

    from plugins.tracking import pyfunc, store

    root, folder, _, photos = setup
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = store.client_for(store.resolve_tracking_uri(uri))
    run_id = client.create_run(store.get_or_create_experiment("predict", uri)).info.run_id
    model_uri = pyfunc.log_bundle_model(client, run_id, folder, AUS)
    assert model_uri == f"runs:/{run_id}/model"
    images = tmp_path / "img"
    images.mkdir()
    for name in ("astronaut.png", "pair.jpg"):
        (images / name).write_bytes(photos[name].read_bytes())
    expected = tmp_path / "folder.parquet"
    assert main(["predict", str(folder), str(images), "--out", str(expected)]) == 0
    via_run = tmp_path / "run.parquet"
    assert main(["predict", model_uri, str(images), "--out", str(via_run), "--tracking-uri", uri]) == 0
    pd.testing.assert_frame_equal(pd.read_parquet(via_run), pd.read_parquet(expected))
    from harness.predict import read_metadata

    assert read_metadata(via_run)["bundle"] == model_uri
    assert read_metadata(via_run)["bundle_sha256"] == read_metadata(expected)["bundle_sha256"]

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # the registry of the same store
    version = mlflow.register_model(model_uri, "au-bundle").version
    via_registry = tmp_path / "registry.parquet"
    assert main(["predict", f"models:/au-bundle/{version}", str(images), "--out", str(via_registry)]) == 0
    pd.testing.assert_frame_equal(pd.read_parquet(via_registry), pd.read_parquet(expected))

    capsys.readouterr()
    assert main(["predict", f"runs:/{'0' * 32}/model", str(images), "--out", str(tmp_path / "n.parquet"),
                 "--tracking-uri", uri]) == 2
    err = capsys.readouterr().err
    assert "no such MLflow model" in err and len(err.strip().splitlines()) == 1
    assert main(["predict", model_uri, str(images), "--out", str(tmp_path / "n.parquet"),
                 "--tracking-uri", f"sqlite:///{tmp_path / 'absent.db'}"]) == 2
    assert "no ledger at" in capsys.readouterr().err
    assert not (tmp_path / "absent.db").exists() and not (tmp_path / "n.parquet").exists()
