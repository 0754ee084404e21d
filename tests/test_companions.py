"""Pretraining tasks are the dataset's companion sets: a dataset with a task the core never
names (``pose``, from a test plugin) pretrains a view, and a task it lacks is refused."""
from __future__ import annotations

from pathlib import Path

from safetensors.torch import load_file

from conftest import tiny_recipe
from harness.cli import main

PLUGIN = Path(__file__).parent / "testplugins" / "pose_dataset.py"
RECIPE = tiny_recipe(
    dataset={"name": "posed_noise", "n": 60, "size": 32}, evaluation={"bootstrap": 0},
    train={"epochs": 1, "batch_size": 16, "input_size": 32, "workers": 0},
    views={"face": {"pretrain": "pose", "backbone": {"name": "timm:test_resnet"}},
           "emotion": {"pretrain": "none", "backbone": {"name": "timm:test_resnet"}}})


def test_a_new_companion_task_pretrains_a_view(in_tmp, capsys):
    (in_tmp / "r.toml").write_text(RECIPE)
    assert main(["--plugin", str(PLUGIN), "run", "r.toml"]) == 0
    out_dir = Path(capsys.readouterr().out.splitlines()[0].split(": ", 1)[1])
    pretrained = load_file(out_dir / "face" / "pretrain" / "final.safetensors")
    heads = [k for k, v in pretrained.items() if v.ndim == 2 and v.shape[0] == 3]
    assert heads  # a classifier for the 3 pose classes: the view trained on the pose task
    assert not (out_dir / "emotion" / "pretrain").exists()


def test_a_task_the_dataset_lacks_is_refused_naming_its_companions(in_tmp, capsys):
    (in_tmp / "r.toml").write_text(RECIPE)
    assert main(["--plugin", str(PLUGIN), "run", "r.toml", "--set", "views.face.pretrain=posture"]) == 2
    err = capsys.readouterr().err
    assert "recipe field views.face.pretrain: dataset 'noise' has no 'posture' companion set; " \
           "available: identity, expression, pose" in err
    assert not (in_tmp / "runs").exists()
