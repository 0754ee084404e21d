"""Temporal smoothers (`auh_smoothers`): hand-worked values, brute force, video boundaries, the kit."""
from __future__ import annotations

import numpy as np
import pytest

import harness
from harness import recipe as recipes
from harness.cli import main
from harness.errors import UserError
from harness.smoothing import smooth_by_group, smooth_sequence
from harness.testing import check_component


def smooth(name: str, probs, **params) -> np.ndarray:
    return smooth_sequence(harness.create("smoother", name, **params), np.asarray(probs, dtype=float))


def brute_median(x: np.ndarray, window: int) -> np.ndarray:
    """Per frame, np.median of the frames of its centred window that exist."""
    h = window // 2
    return np.array([np.median(x[max(0, t - h):t + h + 1], axis=0) for t in range(len(x))])


def brute_ema(x: np.ndarray, alpha: float) -> np.ndarray:
    out, y = [], None
    for row in x:
        y = row if y is None else alpha * row + (1 - alpha) * y
        out.append(y)
    return np.array(out)


def test_median_hand_worked():
    x = [[0.1], [0.9], [0.2], [0.8], [0.3]]
    # window 3: frame 0 sees 0.1, 0.9 -> 0.5; frame 1: 0.1 0.9 0.2 -> 0.2; 2: 0.9 0.2 0.8 -> 0.8;
    # 3: 0.2 0.8 0.3 -> 0.3; 4: 0.8 0.3 -> 0.55
    np.testing.assert_allclose(smooth("median", x, window=3)[:, 0], [0.5, 0.2, 0.8, 0.3, 0.55])
    np.testing.assert_allclose(smooth("median", x, window=1), x)


def test_ema_hand_worked():
    x = [[0.0, 1.0], [1.0, 1.0], [1.0, 0.0]]
    # alpha 0.5: 0, 0.5, 0.75 | 1, 1, 0.5
    np.testing.assert_allclose(smooth("ema", x, alpha=0.5), [[0.0, 1.0], [0.5, 1.0], [0.75, 0.5]])
    np.testing.assert_allclose(smooth("ema", x, alpha=1), x)


@pytest.mark.parametrize("window", [1, 3, 5, 9, 21])
@pytest.mark.parametrize("n", [1, 2, 7, 40])
def test_median_equals_brute_force(window, n):
    x = np.random.default_rng(n * 100 + window).random((n, 4))
    np.testing.assert_allclose(smooth("median", x, window=window), brute_median(x, window), atol=1e-15)


@pytest.mark.parametrize("alpha", [0.05, 0.3, 0.99])
def test_ema_equals_brute_force(alpha):
    x = np.random.default_rng(5).random((50, 3))
    np.testing.assert_allclose(smooth("ema", x, alpha=alpha), brute_ema(x, alpha), atol=1e-12)


@pytest.mark.parametrize("name,params", [("median", {"window": 5}), ("ema", {"alpha": 0.2})])
def test_streamed_in_any_pieces_equals_whole(name, params):
    x = np.random.default_rng(1).random((33, 2))
    whole = smooth(name, x, **params)
    stream = harness.create("smoother", name, **params).stream()
    got = [stream.push(x[a:b]) for a, b in [(0, 1), (1, 1), (1, 4), (4, 20), (20, 33)]] + [stream.close()]
    np.testing.assert_allclose(np.concatenate([g.reshape(-1, 2) for g in got]), whole, atol=1e-15)


def test_none_is_the_identity():
    x = np.random.default_rng(2).random((9, 3))
    np.testing.assert_array_equal(smooth("none", x), x)


def test_videos_never_share_a_window():
    """Two videos interleaved in a table: each is smoothed on its own, rows stay where they are."""
    rng = np.random.default_rng(3)
    a, b = rng.random((6, 2)), rng.random((4, 2))
    groups = np.array(["a", "b", "a", "a", "b", "a", "b", "a", "b", "a"])
    probs = np.empty((10, 2))
    probs[groups == "a"], probs[groups == "b"] = a, b
    for name, params, brute in [("median", {"window": 3}, lambda x: brute_median(x, 3)),
                                ("ema", {"alpha": 0.4}, lambda x: brute_ema(x, 0.4))]:
        out = smooth_by_group(harness.create("smoother", name, **params), probs, groups)
        np.testing.assert_allclose(out[groups == "a"], brute(a))
        np.testing.assert_allclose(out[groups == "b"], brute(b))
    # an image-level dataset (no groups) is never smoothed
    np.testing.assert_array_equal(smooth_by_group(harness.create("smoother", "median"), probs, None), probs)


@pytest.mark.parametrize("name,params", [("none", {}), ("median", {}), ("median", {"window": 7}),
                                         ("ema", {}), ("ema", {"alpha": 0.1})])
def test_conformance(name, params):
    assert len(check_component("smoother", name, **params)) == 3


def test_the_kit_catches_a_smoother_that_depends_on_the_pieces():
    class EveryPushRestarts:  # an EMA that forgets its state between pushes
        def stream(self):

            class S:
                def push(self, probs):
                    return brute_ema(np.asarray(probs, float), 0.5) if len(probs) else np.empty((0, 5))

                def close(self):
                    return np.empty((0, 5))
            return S()

    from harness.testing import ComponentCheckError
    with pytest.raises(ComponentCheckError, match="pieces"):
        check_component("smoother", EveryPushRestarts)


@pytest.mark.parametrize("params,expected", [({"window": 4}, "odd"), ({"window": 0}, "odd"),
                                             ({"alpha": 0}, "(0, 1]"), ({"alpha": 1.5}, "(0, 1]")])
def test_bad_parameters_are_one_line(params, expected):
    name = "median" if "window" in params else "ema"
    with pytest.raises(UserError, match=expected.replace("(", r"\(").replace("]", r"\]")):
        harness.create("smoother", name, **params)


def test_recipe_section_defaults_to_none_and_takes_params():
    assert recipes.load(None).smoother.to_dict() == {"name": "none"}
    recipe = recipes.load(None, ["smoother.name=median", "smoother.window=5"])
    assert recipe.smoother.to_dict() == {"name": "median", "window": 5}
    assert recipes.build("smoother", recipe.smoother).window == 5
    with pytest.raises(UserError, match="smoother"):
        recipes.load(None, ["smoother.name=medain"])


def test_plugins_lists_the_kind(capsys):
    assert main(["plugins", "--kind", "smoother"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("none", "median", "ema"))


FRAMES_PLUGIN = '''
import dataclasses
import numpy as np
from harness import hookimpl


@hookimpl
def auh_datasets():
    def synth_frames(**params):
        """The synthetic benchmark read as videos of 8 consecutive rows (a frame-level dataset)."""
        import harness
        ds = harness.create("dataset", "synth", **params)
        return dataclasses.replace(ds, groups=np.arange(len(ds)) // 8)
    return {"synth_frames": synth_frames}
'''


def test_run_fits_thresholds_on_validation_probabilities_smoothed_per_video(in_tmp, monkeypatch):
    """`auh run` on a frame-level dataset with a median smoother: the ensemble's validation
    probabilities are the view's, median-smoothed within each video (brute force from the
    view's saved logits), and the thresholds are the search thresholder's on those."""
    from conftest import TINY_RECIPE

    monkeypatch.setattr(harness.registry, "_REGISTRY", None)  # the plugin's registry is this test's own
    (in_tmp / "frames.py").write_text(FRAMES_PLUGIN)
    dataset = {**TINY_RECIPE["dataset"], "name": "synth_frames"}
    recipe = recipes.dumps({**TINY_RECIPE, "dataset": dataset, "smoother": {"name": "median", "window": 3},
                            "views": {"face": {"pretrain": "none", "backbone": {"name": "timm:resnet10t"}}}})
    (in_tmp / "frames.toml").write_text(recipe)
    assert main(["--plugin", str(in_tmp / "frames.py"), "run", str(in_tmp / "frames.toml"),
                 "--set", "train.epochs=1", "--set", "pretrain.epochs=0"]) == 0
    run = in_tmp / "runs" / "tiny" / "split"
    saved = np.load(run / "ensemble" / "val_probs.npz")
    view = 1 / (1 + np.exp(-np.load(run / "face" / "finetune" / "logits.npz")["val"]))
    ds = harness.create("dataset", "synth_frames", **{k: v for k, v in dataset.items() if k != "name"})
    groups = ds.groups[[ds.names.index(n) for n in saved["names"]]]
    expected = np.empty_like(view)
    for g in np.unique(groups):
        expected[groups == g] = brute_median(view[groups == g], 3)
    assert not np.allclose(expected, view)  # the smoothing did something
    np.testing.assert_allclose(saved["probs"], expected, rtol=1e-6, atol=1e-7)
    import json
    thresholds = json.loads((run / "ensemble" / "thresholds.json").read_text())
    search = harness.create("thresholder", "search").fit(expected, saved["labels"]).thresholds_
    np.testing.assert_allclose(list(thresholds.values()), search, rtol=1e-6, atol=1e-7)
    assert json.loads((in_tmp / "runs" / "tiny" / "bundle" / "bundle.json").read_text())["smoother"] == {
        "name": "median", "window": 3}


def test_smooth_is_one_whole_video():
    x = np.random.default_rng(7).random((12, 3))
    np.testing.assert_allclose(harness.create("smoother", "median", window=3).smooth(x), brute_median(x, 3))
    np.testing.assert_allclose(harness.create("smoother", "ema", alpha=0.3).smooth(x), brute_ema(x, 0.3))
