"""The synthetic benchmark: determinism, label statistics, 999 logic, AU locality, files."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest

from harness.labels import read_labels
from harness.schema import ENC2020
from plugins.synth.face import AUS, Identity, Scene
from plugins.synth.labelmodel import FACIAL_AUS, LabelModel, load_stats
from plugins.synth.occluders import KINDS, Occluder
from plugins.synth.renderer import render
from plugins.synth.writer import EMOTIONS, SynthParams, au_sample, generate, load

SHARED = Path(os.environ.get("AUH_SHARED", Path(__file__).resolve().parents[2] / "shared"))
REAL_LABELS = SHARED / "data/emotionet2020/manual_labels_train.txt"
needs_shared = pytest.mark.skipif(not REAL_LABELS.is_file(), reason="../shared ENC-2020 labels absent")

UPPER = {"AU1", "AU2", "AU4", "AU5", "AU6", "AU43"}
MOUTH = {"AU10", "AU12", "AU15", "AU18", "AU20", "AU24", "AU25", "AU28"}
LOWER = MOUTH | {"AU9", "AU17", "AU26"}
POSE = {"AU51", "AU52", "AU53", "AU54", "AU55", "AU56"}
TINY = SynthParams(n=24, seed=7, size=40, identities=3, per_identity=2, per_expression=2)


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("synth") / "bench", TINY)


def _no_unsure() -> LabelModel:
    return dataclasses.replace(LabelModel.from_stats(), unsure_rate=np.zeros(len(AUS)))


# ------------------------------------------------------------- determinism
def test_same_seed_same_bytes(bench, tmp_path):
    again = generate(tmp_path / "again", TINY)
    files = sorted(p.relative_to(bench) for p in bench.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert len(files) == TINY.n + 6 + 16 + 9  # images + 5 tables + 2 per companion
    for rel in files:
        assert (bench / rel).read_bytes() == (again / rel).read_bytes(), rel


def test_image_does_not_depend_on_position_or_workers(tmp_path):
    # Image i has its own seed: a longer run, or two processes, give the same image i.
    a = generate(tmp_path / "a", dataclasses.replace(TINY, n=16), workers=2)
    b = generate(tmp_path / "b", dataclasses.replace(TINY, n=20))
    for i in range(16):
        name = f"images/synth_{i:06d}.jpg"
        assert (a / name).read_bytes() == (b / name).read_bytes()


def test_other_seed_other_data(bench, tmp_path):
    other = generate(tmp_path / "o", dataclasses.replace(TINY, seed=8))
    assert (other / "labels.txt").read_bytes() != (bench / "labels.txt").read_bytes()


# ------------------------------------------------------------------- files
def test_label_formats_round_trip_and_agree(bench):
    names_t, labels_t = read_labels(bench / "labels.txt", ENC2020)
    names_c, labels_c = read_labels(bench / "labels.csv", ENC2020)
    assert names_t == names_c == [f"synth_{i:06d}.jpg" for i in range(TINY.n)]
    assert np.array_equal(labels_t, labels_c)
    assert set(np.unique(labels_t)) <= {0, 1, 999}
    first = (bench / "labels.txt").read_text().splitlines()[0].split()
    assert len(first) == 24 and first[0] == "synth_000000.jpg"
    assert (bench / "labels.csv").read_text().splitlines()[0] == "image," + ",".join(ENC2020.aus)


def test_loaded_dataset(bench):
    ds = load(bench)
    assert len(ds) == TINY.n and ds.labels.shape == (TINY.n, 23)
    assert all(p.is_file() for p in ds.images)
    rows = np.sort(np.concatenate([ds.splits[k] for k in ("train", "val", "test")]))
    assert np.array_equal(rows, np.arange(TINY.n))
    assert set(ds.folds) == set(range(5))
    assert ds.landmarks.shape == (TINY.n, 5, 2)
    assert ((ds.landmarks > 0) & (ds.landmarks < TINY.size)).mean() > 0.95
    assert (ds.landmarks[:, 0, 0] < ds.landmarks[:, 1, 0]).all()  # left eye is image-left
    ident, expr = ds.companions["identity"], ds.companions["expression"]
    assert len(ident.images) == 6 and np.bincount(ident.targets).tolist() == [2, 2, 2]
    assert expr.classes == list(EMOTIONS) and np.bincount(expr.targets).tolist() == [2] * 8
    assert all(p.is_file() for p in ident.images + expr.images)


# ------------------------------------------------------------------- 999s
def test_mouth_occluder_hides_mouth_aus_only():
    ident = Identity()
    out = render(ident, np.zeros(23), Scene.clean(), 64, occluder=Occluder("mouth_bar"))
    assert {AUS[i] for i in np.flatnonzero(out.hidden)} == MOUTH
    out = render(ident, np.zeros(23), Scene.clean(), 64, occluder=Occluder("sunglasses"))
    assert {AUS[i] for i in np.flatnonzero(out.hidden)} == {"AU5", "AU6", "AU43"}


@pytest.mark.parametrize("kind", ["mouth_bar", "hand_mouth", "face_mask"])
def test_lower_face_occluders_never_hide_upper_face_or_pose(kind):
    model = _no_unsure()
    hidden = np.zeros(23, dtype=int)
    for i in range(25):
        s = au_sample(3, i, 48, model, occluder=Occluder(kind, np.random.default_rng(i).random(8)))
        unknown = {AUS[j] for j in np.flatnonzero(s.labels == 999)}
        assert unknown <= LOWER, unknown
        hidden += s.labels == 999
    assert hidden[AUS.index("AU25")] >= 20  # and they do hide the mouth


def test_no_occluder_no_unsure_no_999():
    model = _no_unsure()
    for i in range(10):
        assert not (au_sample(4, i, 32, model, occluder=None).labels == 999).any()


# ---------------------------------------------------------------- AU looks
# Where each AU may change the picture, in face units of a frontal face
# (x right, y down; the head's half-width is 1, eyes near y = -0.15, mouth near 0.7).
REGIONS = {
    **{au: (-1.0, -1.05, 1.0, 0.05) for au in ("AU1", "AU2", "AU4")},
    "AU5": (-0.7, -0.45, 0.7, 0.1), "AU43": (-0.7, -0.45, 0.7, 0.1),
    "AU6": (-0.9, -0.45, 0.9, 0.5), "AU9": (-0.45, -0.3, 0.45, 0.5),
    **{au: (-0.75, 0.1, 0.75, 1.15) for au in MOUTH},
    "AU17": (-0.6, 0.5, 0.6, 1.4), "AU26": (-1.0, 0.5, 1.0, 1.9),
}


def _au_change(au: str, aus: tuple[str, ...], region: tuple[float, float, float, float]) -> tuple[
        np.ndarray, np.ndarray]:
    """How much each pixel changes with ``au`` at full intensity (checked visible and growing
    with intensity), and which pixels lie in ``region`` (face units of a frontal face)."""
    size, scene, ident = 96, Scene.clean(), Identity()
    base = np.asarray(render(ident, np.zeros(len(aus)), scene, size).image, dtype=np.float64)
    intensities = np.zeros(len(aus))
    diffs = []
    for level in (0.4, 1.0):
        intensities[aus.index(au)] = level
        img = np.asarray(render(ident, intensities, scene, size).image, dtype=np.float64)
        diffs.append(np.abs(img - base).sum(2))
    weak, strong = diffs
    assert (strong > 30).sum() >= 4, "not visible at this size"
    assert 0 < weak.sum() < strong.sum()  # intensity matters
    x0, y0, x1, y1 = region
    cx, cy = np.array(scene.center) * size
    unit = scene.face_scale * size
    ys, xs = np.mgrid[0:size, 0:size] + 0.5
    inside = (xs >= cx + x0 * unit) & (xs <= cx + x1 * unit) & (ys >= cy + y0 * unit) & (ys <= cy + y1 * unit)
    return strong, inside


@pytest.mark.parametrize("au", FACIAL_AUS)
def test_each_au_changes_the_face_locally(au):
    strong, inside = _au_change(au, AUS, REGIONS[au])
    assert strong[inside].sum() / strong.sum() > 0.9


def test_pose_aus_move_the_landmarks():
    ident, scene = Identity(), Scene.clean()

    def marks(au: str) -> np.ndarray:
        v = np.zeros(23)
        if au:
            v[AUS.index(au)] = 1.0
        return render(ident, v, scene, 96).landmarks

    front = marks("")
    nose_offset = lambda m: m[2, 0] - m[:2, 0].mean()  # noqa: E731
    assert nose_offset(marks("AU51")) > nose_offset(front) + 3 > nose_offset(marks("AU52")) + 6
    drop = lambda m: m[2, 1] - m[:2, 1].mean()  # noqa: E731  (nose below the eyes)
    assert drop(marks("AU53")) < drop(front) - 2 and drop(marks("AU54")) > drop(front) + 2
    tilt = lambda m: m[1, 1] - m[0, 1]  # noqa: E731  (right eye lower than left)
    assert tilt(marks("AU55")) > 8 and tilt(marks("AU56")) < -8


# ------------------------------------------------------------ statistics
def test_latent_rates_follow_the_fitted_mixture():
    stats = load_stats()
    model = LabelModel.from_stats(stats)
    rng = np.random.default_rng(0)
    drawn = np.stack([model.sample(rng)[1] > 0 for _ in range(4000)])
    known_rate = np.asarray(stats["known_positive_rate"])
    assert np.abs(drawn.mean(0) - known_rate).max() < 0.03
    pairs = np.array([[drawn[:, AUS.index(a)] & drawn[:, AUS.index(b)] for a, b in
                       (("AU51", "AU52"), ("AU53", "AU54"), ("AU55", "AU56"))]])
    assert not pairs.any()  # left/right and up/down pose AUs exclude each other


@needs_shared
def test_stats_file_matches_the_shared_labels():
    _, real = read_labels(REAL_LABELS, ENC2020)
    stats = load_stats()
    assert stats["n_rows"] == len(real)
    assert np.allclose(stats["positive_rate"], (real == 1).mean(0), atol=1e-4)
    assert np.allclose(stats["unknown_rate"], (real == 999).mean(0), atol=1e-4)


@needs_shared
@pytest.mark.slow
def test_label_statistics_match_enc2020_on_4000_images():
    _, real = read_labels(REAL_LABELS, ENC2020)
    model = LabelModel.from_stats()
    labels = np.stack([au_sample(11, i, 24, model).labels for i in range(4000)])
    pos, real_pos = (labels == 1).mean(0), (real == 1).mean(0)
    assert np.abs(pos - real_pos).max() < 0.03
    unk, real_unk = (labels == 999).mean(0), (real == 999).mean(0)
    assert np.abs(unk - real_unk).max() < 0.03
    assert abs(unk.sum() - real_unk.sum()) < 0.25 * real_unk.sum()
    phi = np.nan_to_num(np.corrcoef((labels == 1).T.astype(float)))
    real_phi = np.nan_to_num(np.corrcoef((real == 1).T.astype(float)))
    assert np.abs(phi - real_phi)[np.triu_indices(23, 1)].mean() < 0.05
    i = {a: AUS.index(a) for a in ("AU6", "AU12", "AU24", "AU25", "AU1", "AU2")}
    assert phi[i["AU6"], i["AU12"]] > 0.3 and phi[i["AU24"], i["AU25"]] < -0.5
    assert phi[i["AU1"], i["AU2"]] > 0.1


def test_occluder_kinds_all_draw():
    for kind in KINDS:
        out = render(Identity(), np.zeros(23), Scene.clean(), 48, occluder=Occluder(kind))
        assert out.image.size == (48, 48)


# The AUs other benchmarks label (BP4D, ABAW): rendered after ENC-2020's 23, each in its own place.
NEW_REGIONS = {"AU7": (-0.75, -0.4, 0.75, 0.15), "AU14": (-0.8, 0.4, 0.8, 1.0), "AU23": (-0.6, 0.45, 0.6, 1.0)}


@pytest.mark.parametrize("au", sorted(NEW_REGIONS))
def test_lid_tightener_dimpler_and_lip_tightener_change_the_face_only_where_they_act(au):
    from plugins.synth.face import RENDER_AUS

    ident, scene = Identity(), Scene.clean()
    # a vector of ENC-2020's 23 renders as one with the new AUs absent
    assert np.array_equal(np.asarray(render(ident, np.zeros(len(RENDER_AUS)), scene, 96).image),
                          np.asarray(render(ident, np.zeros(23), scene, 96).image))
    strong, inside = _au_change(au, RENDER_AUS, NEW_REGIONS[au])
    assert strong[~inside].max() == 0, "changed pixels outside where the AU acts"
