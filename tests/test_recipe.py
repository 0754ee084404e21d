"""Recipes: overrides, validation messages with dotted paths, round trip."""
from __future__ import annotations

import dataclasses
import tomllib

import pytest

from harness import recipe
from harness.errors import UserError


def load(*overrides: str) -> recipe.Recipe:
    return recipe.load(None, list(overrides), check_components=False)


def test_defaults_are_the_papers_training_settings():
    r = load()
    train = r.to_dict()["train"]
    assert train == {**train, "lr": 0.01, "momentum": 0.9, "weight_decay": 1e-5,
                     "batch_size": 16, "lr_step": 10, "lr_gamma": 0.1, "input_size": 224}
    assert set(r.views) == {"face", "emotion"}
    assert r.views["face"].pretrain == "identity"
    assert r.views["emotion"].pretrain == "expression"


def test_set_parses_toml_values_and_strings():
    r = load("train.epochs=3", "train.lr=0.5", "sampler.percent=30", "run.name=my run",
             "views.face.backbone.name=timm:resnet18", "thresholder.thresholds=[0.1, 0.2]")
    assert r.train.epochs == 3 and r.train.lr == 0.5
    assert r.sampler.to_dict() == {"name": "mlros", "percent": 30}
    assert r.run.name == "my run"
    assert r.views["face"].backbone.name == "timm:resnet18"
    assert r.thresholder.kwargs()["thresholds"] == [0.1, 0.2]


def test_int_accepted_where_float_expected_but_not_bool():
    assert load("train.lr=1").train.lr == 1.0
    with pytest.raises(UserError, match="train.amp: expected bool, got int 1"):
        load("train.amp=1")
    with pytest.raises(UserError, match="train.epochs: expected int, got bool"):
        load("train.epochs=true")


@pytest.mark.parametrize("override, message", [
    ("train.epochs=-1", "recipe field train.epochs: expected an integer >= 0, got -1"),
    ("train.keep_epochs=3", "recipe field train.keep_epochs: expected bool, got int 3"),
    ("trian.epochs=1", "unknown recipe section 'trian'; available: .* \\(did you mean 'train'\\?\\)"),
    ("train.epoch=3", "unknown recipe key 'train.epoch'; .*did you mean 'epochs'"),
    ("evaluation.folds=2", "evaluation.folds: expected an integer >= 3"),
    ("evaluation.mode=cv", "evaluation.mode: expected one of split, kfold, got 'cv'"),
    ("views.face.pretrain=''", "views.face.pretrain: expected a companion set of the dataset, or none"),
    ("views.face.backbone.num_classes=3", "views.face.backbone.num_classes: set by the pipeline"),
    ("train=3", "recipe field train: expected a table"),
    ("noequals", "--set 'noequals': expected section.key=value"),
])
def test_bad_fields_name_their_path(override, message):
    with pytest.raises(UserError, match=message):
        load(override)


def test_component_names_and_params_checked_against_registry(monkeypatch):
    from harness import hookimpl
    from harness.registry import Provider, Registry
    import types

    class Mlros:  # stands in for every kind: takes what the harness passes to aligners and backbones
        def __init__(self, percent: int = 25, size: int = 0, num_classes: int = 0, input_size: int = 0):
            self.percent = percent

    reg = Registry()
    names = {"dataset": "synth", "aligner": "mtcnn", "sampler": "mlros", "loss": "selective",
             "ensembler": "mean_prob", "thresholder": "search", "backbone": "ir152", "smoother": "none"}
    hooks = {f"auh_{k}s" if k != "loss" else "auh_losses": (lambda n=n: {n: Mlros}) for k, n in names.items()}
    reg.register(types.SimpleNamespace(**{k: hookimpl(v) for k, v in hooks.items()}), Provider("t"))
    monkeypatch.setattr("harness.registry._REGISTRY", reg)
    assert recipe.load(None, ["sampler.percent=10"]).sampler.params["percent"] == 10
    with pytest.raises(UserError, match="recipe field sampler: unknown sampler 'mlross'; .*did you mean 'mlros'"):
        recipe.load(None, ["sampler.name=mlross"])
    with pytest.raises(UserError, match="recipe field sampler: sampler 'mlros': unknown parameter 'pct'"):
        recipe.load(None, ["sampler.pct=10"])
    with pytest.raises(UserError, match="recipe field views.face.backbone: unknown backbone 'ir15'"):
        recipe.load(None, ["views.face.backbone.name=ir15"])


def test_file_errors(tmp_path):
    with pytest.raises(UserError, match="recipe '.*missing.toml' does not exist"):
        recipe.load(tmp_path / "missing.toml", check_components=False)
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\nepochs = 1\n")
    with pytest.raises(UserError, match="recipe '.*bad.toml' is not valid TOML"):
        recipe.load(bad, check_components=False)


def test_dumps_round_trips():
    r = load("train.epochs=2", "thresholder.thresholds=[0.25, 0.75]", "run.name=a \"quoted\" name")
    assert recipe.resolve(tomllib.loads(recipe.dumps(r)), check_components=False) == r


def test_flatten():
    assert recipe.flatten({"a": {"b": 1, "c": {"d": "x"}}, "e": 2}) == {"a.b": 1, "a.c.d": "x", "e": 2}


def test_a_component_may_be_named_by_a_string(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text('dataset = "synth"\nsampler = "uniform"\n\n[views.face]\nbackbone = "ir50"\n')
    r = recipe.load(path, check_components=False)
    assert r.dataset.to_dict() == {"name": "synth"} and r.sampler.to_dict() == {"name": "uniform"}
    assert r.views["face"].backbone.to_dict() == {"name": "ir50"}
    with pytest.raises(UserError, match="recipe field sampler: expected a sampler name or a table, got 3"):
        load("sampler=3")


# The default recipe with two overrides, as `recipe.toml`, MLflow's recipe artifact and
# every digest were written before the recipe became a typed object (the text the
# dict-based resolver gave, kept byte for byte: run folders and arm-seeds are found by it).
WRITTEN_BEFORE = '''[run]
name = "run"
seed = 0
device = "auto"
deterministic = true
output = "runs"
experiment = "au-harness"
tracking_uri = ""

[evaluation]
mode = "split"
folds = 5
bootstrap = 1000

[train]
epochs = 10
batch_size = 16
lr = 0.01
momentum = 0.9
weight_decay = 1e-05
lr_step = 10
lr_gamma = 0.1
input_size = 224
workers = 2
amp = true
channels_last = true
flip = true
augment_scale = [1, 1.25]
augment_shift = 0.0
augment_jitter = 0.0
max_steps = 0
keep_epochs = false

[pretrain]
epochs = 5
batch_size = 64
lr = 0.01

[dataset]
name = "synth"

[aligner]
name = "mtcnn"

[sampler]
name = "mlros"
percent = 30

[loss]
name = "selective"

[ensembler]
name = "mean_prob"

[thresholder]
name = "search"

[views.face]
pretrain = "identity"
init = ""

[views.face.backbone]
name = "ir152"

[views.emotion]
pretrain = "expression"
init = ""

[views.emotion.backbone]
name = "ir152"
'''


def test_the_recipe_is_written_and_hashed_as_before():
    import hashlib

    r = load("train.augment_scale=[1, 1.25]", "sampler.percent=30")
    assert recipe.dumps(r) == WRITTEN_BEFORE
    assert recipe.digest(r) == hashlib.sha256(WRITTEN_BEFORE.encode()).hexdigest()
    flat = recipe.flatten(r)
    assert flat["train.augment_scale"] == [1, 1.25] and flat["sampler.percent"] == 30
    assert list(flat)[:2] == ["run.name", "run.seed"] and list(flat)[-1] == "views.emotion.backbone.name"
    # the default recipe alone: the digest every run folder of it was started with
    assert recipe.digest(load()) == "03dbe621849e1855be9c4cee1ed753327e4b5a6157c53f1871b460794f41c765"


def test_the_recipe_is_a_frozen_typed_dataclass():
    import pickle

    r = load("sampler.percent=30")
    assert dataclasses.is_dataclass(recipe.Recipe) and isinstance(r, recipe.Recipe)
    assert all(dataclasses.is_dataclass(getattr(r, f.name)) for f in dataclasses.fields(r) if f.name != "views")
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.train.lr = 0.5  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.run = r.run  # type: ignore[misc]
    with pytest.raises(TypeError):
        r.sampler.params["percent"] = 10  # type: ignore[index]
    with pytest.raises(TypeError):
        r.views["face"] = r.views["emotion"]  # type: ignore[index]
    assert pickle.loads(pickle.dumps(r)) == r  # it crosses to other ranks under torchrun
    assert r.with_run(seed=7).run.seed == 7 and r.run.seed == 0
    kwargs = r.sampler.kwargs()
    kwargs["percent"] = 1  # a factory's own copy: the recipe stays as it was
    assert r.sampler.params["percent"] == 30


def test_each_field_is_declared_once():
    """Settings are declared (type, range, default) in harness/recipe.py; the recipes
    plugin's default recipe names components and views only."""
    import importlib.resources
    import typing

    shipped = tomllib.loads((importlib.resources.files("plugins.recipes") / "defaults.toml").read_text())
    assert set(shipped) == set(recipe.COMPONENTS) | {"views"}
    assert set(recipe.SETTINGS) == {"run", "evaluation", "train", "pretrain"}
    r = load()
    for section, kind in recipe.SETTINGS.items():
        hints = typing.get_type_hints(kind)
        for f in dataclasses.fields(kind):  # the declared default is what a recipe gets
            assert getattr(getattr(r, section), f.name) == f.default, f"{section}.{f.name}"
            assert hints[f.name] in (str, int, float, bool) or typing.get_origin(hints[f.name]) is tuple


def test_a_section_added_later_is_written_only_when_it_is_used():
    plain = load()
    assert "smoother" not in plain.to_dict()
    assert "[smoother]" not in recipe.dumps(plain) and plain.smoother.name == "none"
    smoothed = load("smoother.name=median", "smoother.window=5")
    text = recipe.dumps(smoothed)
    assert '[smoother]\nname = "median"\nwindow = 5' in text
    assert recipe.digest(smoothed) != recipe.digest(plain)
    again = recipe.resolve(tomllib.loads(text))
    assert again == smoothed and recipe.dumps(again) == text
