"""The conformance kit (``harness.testing``) over every built-in component and the test
plugins; each check failing on a component built to break it; registration refusing a
factory that cannot take what the harness passes; ``auh plugins --check``."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import harness
from harness.cli import main
from harness.errors import UserError
from harness.labels import write_labels
from harness.registry import FAMILY_SUFFIX, Provider, Registry
from harness.schema import ENC2020
from harness.testing import ComponentCheckError, check_component

TESTPLUGINS = Path(__file__).parent / "testplugins"
SMALL_SYNTH = dict(n=20, seed=1, size=32, identities=2, per_identity=2, per_expression=1)
NEEDS_PARAMS = {("dataset", "synth"), ("dataset", "emotionet"), ("dataset", "cross")}  # checked below


def builtins() -> list[tuple[str, str]]:
    table = harness.get_registry().table
    return [(kind, name) for kind, names in table.items() for name in sorted(names)
            if not name.endswith(FAMILY_SUFFIX) and (kind, name) not in NEEDS_PARAMS]


@pytest.mark.parametrize("kind, name", builtins(), ids=lambda v: v)
def test_every_built_in_component_passes_the_kit(kind, name):
    assert check_component(kind, name)


@pytest.mark.parametrize("kind, name, params", [
    ("backbone", "timm:test_resnet", {}),          # a member of the timm family
    ("ensembler", "weighted", {"fit_weights": True}),  # with state to carry through the bundle
    ("dataset", "synth", SMALL_SYNTH),
    ("dataset", "cross", {"train": {"name": "bp4d"}, "test": {"name": "disfa"}}),  # the embedded sets
], ids=lambda v: str(v))
def test_built_ins_with_parameters_pass_the_kit(kind, name, params):
    assert check_component(kind, name, **params)


def test_emotionet_on_a_small_folder_passes_the_kit(tmp_path):
    rng = np.random.default_rng(0)
    names = [f"N_{i:04d}.jpg" for i in range(12)]
    (tmp_path / "imgs").mkdir()
    for name in names:
        Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(tmp_path / "imgs" / name)
    write_labels(tmp_path / "labels.txt", names, rng.choice([0, 1, 999], size=(12, 23)), ENC2020)
    assert check_component("dataset", "emotionet", root=str(tmp_path / "imgs"),
                           labels=str(tmp_path / "labels.txt"), folds=3)


def test_the_test_plugins_pass_the_kit():
    harness.load_plugins([str(TESTPLUGINS / "noise_dataset.py"), str(TESTPLUGINS / "pose_dataset.py")])
    assert check_component("dataset", "noise", n=20, size=24)
    assert check_component("dataset", "posed_noise", n=12, size=24)


# ------------------------------------------------------- each check can fail
class ReturnsThresholds:
    """The old convention: fit returns the thresholds, not self."""

    def fit(self, probs, labels):
        self.thresholds_ = np.full(probs.shape[1], 0.5)
        return self.thresholds_

    def predict(self, probs):
        return (probs >= self.thresholds_).astype(np.int64)


class UsesUnknownRows:
    """A threshold per AU at the mean score of every row, 999 rows included."""

    def fit(self, probs, labels):
        self.thresholds_ = np.asarray(probs, dtype=np.float64).mean(axis=0)
        return self

    def predict(self, probs):
        return (probs >= self.thresholds_).astype(np.int64)


class LeaksTo999(torch.nn.Module):
    """BCE that forgets to mask the unknown labels."""

    def forward(self, logits, labels):
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, (labels == 1).float())


class UndeclaredFit:
    """An ensembler with a fit it does not declare."""

    def fit(self, probs_list, labels, thresholder):
        return self

    def combine(self, probs_list, logits=None):
        return np.mean(probs_list, axis=0)


class OverwritesItsParameter:
    """Learns into its constructor argument (what ``weighted`` used to do)."""

    capabilities = frozenset({"fit"})

    def __init__(self, weights=None):
        self.weights = weights

    def fit(self, probs_list, labels, thresholder):
        self.weights = [1.0, 0.0]
        return self

    def combine(self, probs_list, logits=None):
        return np.mean(probs_list, axis=0)


class BatchDependentAligner:
    """Crops brightened by the number of images aligned together."""

    def __init__(self, size=112):
        self.size, self.cache_key = size, f"batchy:{size}"

    def align(self, images):
        from harness.data import AlignedFace

        return [AlignedFace(img.convert("RGB").resize((self.size, self.size)).point(lambda v: min(255, v + len(images))),
                            np.zeros((5, 2), np.float32), True) for img in images]


class OtherFirstFace(BatchDependentAligner):
    """Declares all_faces, but its first face is a mirror of align's."""

    capabilities = frozenset({"all_faces"})

    def align(self, images):
        from harness.data import AlignedFace

        return [AlignedFace(img.convert("RGB").resize((self.size, self.size)), np.zeros((5, 2), np.float32), True)
                for img in images]

    def align_all(self, images):
        from PIL import ImageOps

        return [[type(f)(ImageOps.mirror(f.image), f.landmarks, f.found)] for f in self.align(images)]


class PresentWhenUnknown:
    """A sampler that counts 999 as a present label."""

    def sample(self, labels, seed):
        return np.flatnonzero((np.asarray(labels) != 0).any(axis=1)).astype(np.int64)


class NoNormalization(torch.nn.Module):
    def __init__(self, num_classes, input_size):
        super().__init__()
        self.head = torch.nn.Linear(3, num_classes)

    def forward(self, x):
        return self.head(x.mean(dim=(2, 3)))


@pytest.mark.parametrize("kind, factory, message", [
    ("thresholder", ReturnsThresholds, "thresholder ReturnsThresholds: thresholder fit convention: "
                                       "fit must return self"),
    ("thresholder", UsesUnknownRows, "the scores of rows labelled 999 change the thresholds"),
    ("loss", LeaksTo999, "loss LeaksTo999: loss value and 999: elements labelled 999 get a gradient"),
    ("ensembler", UndeclaredFit, "has fit() but does not declare the 'fit' capability"),
    ("ensembler", OverwritesItsParameter, "fit changed the constructor parameter 'weights'"),
    ("aligner", BatchDependentAligner, "an image's crop depends on the other images of its batch"),
    ("aligner", OtherFirstFace, "align_all's first face is not the one align returns"),
    ("sampler", PresentWhenUnknown, "999 is treated differently from 0"),
    ("backbone", NoNormalization, "normalization must be (mean, std)"),
], ids=lambda v: v if isinstance(v, str) else getattr(v, "__name__", ""))
def test_each_broken_component_fails_in_one_line(kind, factory, message):
    with pytest.raises(ComponentCheckError) as err:
        check_component(kind, factory)
    assert message in str(err.value) and "\n" not in str(err.value)


# -------------------------------------------------------------- registration
class NoSizeAligner:
    cache_key = "nosize"

    def align(self, images):
        return []


def _plugin(**hooks):
    return type("Plugin", (), {name: staticmethod(harness.hookimpl(fn)) for name, fn in hooks.items()})


def test_an_aligner_without_size_is_refused_at_registration_naming_the_plugin():
    registry = Registry()
    registry.register(_plugin(auh_aligners=lambda: {"nosize": NoSizeAligner}), Provider("facecrop"))
    with pytest.raises(UserError, match=r"plugin facecrop: aligner 'nosize': its factory does not take "
                                        r"size, which the harness passes to every aligner"):
        registry.available("aligner")


def test_a_backbone_without_input_size_is_refused_and_kwargs_are_accepted():
    refused = Registry()
    refused.register(_plugin(auh_backbones=lambda: {"net": lambda num_classes: None}), Provider("nets"))
    with pytest.raises(UserError, match="plugin nets: backbone 'net'.*does not take input_size"):
        refused.available("backbone")
    accepted = Registry()
    accepted.register(_plugin(auh_backbones=lambda: {"net": lambda **kw: None}), Provider("nets"))
    assert accepted.available("backbone") == ["net"]


# ---------------------------------------------------------------------- CLI
def test_auh_plugins_check(capsys, tmp_path):
    assert main(["plugins", "--check", "search"]) == 0
    assert "ok    thresholder search (5 checks)" in capsys.readouterr().out
    assert main(["plugins", "--check", "serch"]) == 2
    assert "did you mean 'search'?" in capsys.readouterr().err
    broken = tmp_path / "broken_thresholder.py"
    broken.write_text("import numpy as np\nfrom harness import hookimpl\n\n"
                      "class Half:\n    def fit(self, probs, labels):\n"
                      "        self.thresholds_ = np.full(probs.shape[1], 0.5)\n        return self.thresholds_\n\n"
                      "    def predict(self, probs):\n        return (probs >= 0.5).astype(np.int64)\n\n"
                      "@hookimpl\ndef auh_thresholders():\n    return {'half': Half}\n")
    assert main(["--plugin", str(broken), "plugins", "--check", "half"]) == 1
    assert "FAIL  thresholder 'half': thresholder fit convention: fit must return self" in capsys.readouterr().out
