"""`auh run` on the embedded synthetic BP4D, DISFA and Aff-Wild2 data (tiny), repeated
subject partitions, a cross-dataset run, and the shipped recipes reading an official layout."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import f1_score

from conftest import tiny_recipe
from harness import create
from harness import recipe as recipes
from harness.cli import main
from harness.pipeline import evaluation_splits
from plugins.benchmarks import shipped_manifest

SYNTHETIC = {"subjects": 3, "sequences": 1, "frames": 10, "size": 32, "identities": 3, "per_identity": 2,
             "per_expression": 2}
ONE_VIEW = {"face": {"pretrain": "identity", "backbone": {"name": "timm:resnet10t"}}}
TRAIN = {"epochs": 1, "batch_size": 16, "input_size": 32, "workers": 0}


def _recipe(folder: Path, name: str, dataset: dict, evaluation: dict) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(tiny_recipe(run={"name": name, "seed": 1, "tracking_uri": "off"}, dataset=dataset,
                                evaluation={"bootstrap": 20, **evaluation}, views=ONE_VIEW, train=TRAIN,
                                pretrain={"epochs": 1, "batch_size": 16}))
    return path


def _mean_f1(pred: np.ndarray, labels: np.ndarray) -> float:
    """The oracle: scikit-learn's F1 per AU on its known rows, averaged over the AUs."""
    scores = [f1_score(labels[labels[:, j] != 999, j], pred[labels[:, j] != 999, j], zero_division=0)
              for j in range(labels.shape[1]) if (labels[:, j] != 999).any()]
    return float(np.mean(scores))


def _subject_exclusive(dataset_table: dict, evaluation: dict) -> None:
    ds = create("dataset", dataset_table["name"], **{k: v for k, v in dataset_table.items() if k != "name"})
    recipe = recipes.resolve({"dataset": dataset_table, "evaluation": evaluation})
    rounds = evaluation_splits(ds, recipe)
    for r in rounds:
        assert not set(ds.subjects[r.test]) & set(ds.subjects[np.concatenate([r.train, r.val])])
        assert not set(ds.subjects[r.train]) & set(ds.subjects[r.val])
    per_partition = {}
    for r in rounds:
        per_partition.setdefault(r.partition, []).append(r.test)
    for tests in per_partition.values():  # each partition tests every row once
        assert sorted(np.concatenate(tests).tolist()) == list(range(len(ds)))


def test_bp4d_run_is_a_3_fold_subject_exclusive_mean_f1_scorecard(in_tmp, capsys):
    dataset = {"name": "bp4d", "synthetic": SYNTHETIC}
    path = _recipe(in_tmp, "bp4d", dataset, {"mode": "kfold", "folds": 3})
    assert main(["run", str(path)]) == 0
    out = capsys.readouterr().out
    result = json.loads((in_tmp / "runs" / "bp4d" / "result.json").read_text())
    folds = [f["final"] for f in result["folds"]]
    assert len(folds) == 3
    assert f"final {result['scores']['final']:.4f} = mean F1" in out
    assert f"{np.mean(folds):.4f} +- {np.std(folds, ddof=1):.4f}" in out
    assert "per fold: " + ", ".join(f"fold/{k} {v:.4f}" for k, v in enumerate(folds)) in out
    sha = hashlib.sha256(shipped_manifest("bp4d").read_bytes()).hexdigest()
    state = json.loads((in_tmp / "runs" / "bp4d" / "state.json").read_text())
    assert result["protocol"]["manifest_sha256"] == sha == state["protocol"]["manifest_sha256"]
    assert result["protocol"]["benchmark"] == "bp4d" and result["protocol"]["metric"] == "mean_f1"
    with np.load(in_tmp / "runs" / "bp4d" / "test_predictions.npz") as z:
        assert result["scores"]["final"] == pytest.approx(_mean_f1(z["pred"], z["labels"]), abs=1e-12)
        assert len(set(z["names"])) == len(z["names"])
    _subject_exclusive(dataset, {"mode": "kfold", "folds": 3})


def test_disfa_repeated_partitions_are_reshuffled_and_named(in_tmp, capsys):
    dataset = {"name": "disfa", "synthetic": {**SYNTHETIC, "subjects": 6, "frames": 6}}
    evaluation = {"mode": "kfold", "folds": 3, "repeats": 2}
    path = _recipe(in_tmp, "disfa", dataset, evaluation)
    assert main(["run", str(path)]) == 0
    out = capsys.readouterr().out
    assert "cross-validation: 6 folds" in out and "repeat/1/fold/2" in out
    with np.load(in_tmp / "runs" / "disfa" / "test_predictions.npz") as z:
        names = [str(n) for n in z["names"]]
    assert len(set(names)) == len(names) == 2 * 36
    assert {n.split("/")[0] for n in names} == {"partition-0", "partition-1"}
    _subject_exclusive(dataset, evaluation)
    ds = create("dataset", "disfa", synthetic=dataset["synthetic"])
    recipe = recipes.resolve({"dataset": dataset, "evaluation": evaluation})
    rounds = evaluation_splits(ds, recipe)
    first = {tuple(sorted(set(ds.subjects[r.test]))) for r in rounds if r.partition == 0}
    second = {tuple(sorted(set(ds.subjects[r.test]))) for r in rounds if r.partition == 1}
    assert first != second  # the second partition reshuffles the subjects
    assert first == {tuple(sorted(set(ds.subjects[ds.folds == k]))) for k in range(3)}  # the manifest's


def test_affwild2_run_uses_the_official_split(in_tmp, capsys):
    path = _recipe(in_tmp, "abaw", {"name": "affwild2", "synthetic": SYNTHETIC}, {"mode": "split"})
    assert main(["run", str(path)]) == 0
    assert "= mean F1" in capsys.readouterr().out
    ds = create("dataset", "affwild2", synthetic=SYNTHETIC)
    with np.load(in_tmp / "runs" / "abaw" / "test_predictions.npz") as z:
        assert [str(n) for n in z["names"]] == [ds.names[i] for i in ds.splits["test"]]
        assert all(str(ds.groups[i]).startswith("person000") for i in ds.splits["test"])


def test_cross_dataset_bp4d_to_disfa_scores_the_shared_aus(in_tmp, capsys):
    dataset = {"name": "cross", "train": {"name": "bp4d", "synthetic": SYNTHETIC},
               "test": {"name": "disfa", "synthetic": SYNTHETIC}}
    path = _recipe(in_tmp, "cross", dataset, {"mode": "split"})
    assert main(["run", str(path)]) == 0
    capsys.readouterr()
    result = json.loads((in_tmp / "runs" / "cross" / "result.json").read_text())
    assert list(result["scores"]["per_au"]) == ["AU1", "AU2", "AU4", "AU6", "AU12"]
    assert result["protocol"]["benchmark"] == "disfa"
    disfa = create("dataset", "disfa", synthetic=SYNTHETIC)
    with np.load(in_tmp / "runs" / "cross" / "test_predictions.npz") as z:
        assert [str(n) for n in z["names"]] == [f"disfa/{n}" for n in disfa.names]
        assert np.array_equal(z["labels"], disfa.labels[:, [0, 1, 2, 3, 5]])
        assert result["scores"]["final"] == pytest.approx(_mean_f1(z["pred"], z["labels"]), abs=1e-12)


def test_the_shipped_bp4d_recipe_reads_an_official_bp4d_folder(in_tmp, capsys):
    """The shipped recipe as a participant runs it on real data (--set dataset.root), on a BP4D
    folder in the official layout, shrunk by --set to test size."""
    folder = in_tmp / "BP4D"
    assert main(["synth", str(folder), "--benchmark", "bp4d", "--subjects", "3", "--sequences", "1",
                 "--frames", "8", "--size", "32", "--identities", "2", "--per-identity", "2",
                 "--per-expression", "1"]) == 0
    recipe = Path(recipes.__file__).parents[1] / "plugins" / "recipes" / "bp4d.toml"
    shrink = ["run.tracking_uri=off", "aligner.name=center", "train.epochs=1", "pretrain.epochs=1",
              "train.input_size=32", "views.face.backbone.name=timm:resnet10t",
              "views.emotion.backbone.name=timm:resnet10t", "evaluation.bootstrap=10"]
    args = [f"--set={s}" for s in [f"dataset.root={folder}", *shrink]]
    assert main(["run", str(recipe), *args]) == 0
    out = capsys.readouterr().out
    assert "cross-validation: 3 folds" in out and "per fold:" in out and "= mean F1" in out
