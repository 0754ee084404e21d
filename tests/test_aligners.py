"""Aligners on real photos that ship inside installed packages.

The faces: scikit-image's astronaut (Eileen Collins) and camera (the
cameraman), matplotlib's Grace Hopper, and scikit-image's LFW subset
(100 faces and 100 non-face patches, 25 x 25 px). Expectations come from
the images themselves (re-detection on the crop, the LFW face/non-face
split) and from hand-worked geometry, not from the aligner.
"""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageOps

import harness
from harness.errors import UserError
from plugins.aligners import (TEMPLATE_112, CenterAligner, MTCNNAligner, OracleAligner,
                              ResizeAligner, similarity_matrix, template, transform_points, warp)

skdata = pytest.importorskip("skimage.data")
cbook = pytest.importorskip("matplotlib.cbook")


def _photos() -> dict[str, Image.Image]:
    return {
        "astronaut": Image.fromarray(skdata.astronaut()),
        "camera": Image.fromarray(skdata.camera()),  # grayscale: the aligner converts
        "grace_hopper": Image.open(cbook.get_sample_data("grace_hopper.jpg")).convert("RGB"),
    }


@pytest.fixture(scope="module")
def photos() -> dict[str, Image.Image]:
    return _photos()


@pytest.fixture(scope="module")
def mtcnn() -> MTCNNAligner:
    return harness.create("aligner", "mtcnn")


@pytest.fixture(scope="module")
def lfw() -> list[Image.Image]:
    return [Image.fromarray((x * 255).round().astype(np.uint8)) for x in skdata.lfw_subset()]


def test_builtin_aligners_registered():
    assert {"mtcnn", "oracle", "center", "none"} <= set(harness.available("aligner"))


# ------------------------------------------------------------ geometry
def test_similarity_recovers_a_known_transform():
    # dst = 2 R(30 deg) src + (5, -3): the least-squares fit must be exact.
    theta = np.deg2rad(30)
    rot = 2 * np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    dst = TEMPLATE_112 @ rot.T + [5, -3]
    m = similarity_matrix(TEMPLATE_112, dst)
    np.testing.assert_allclose(m[:2, :2], rot, atol=1e-9)
    np.testing.assert_allclose(m[:2, 2], [5, -3], atol=1e-9)
    assert similarity_matrix(np.zeros((5, 2)), TEMPLATE_112) is None  # degenerate
    assert similarity_matrix(np.full((5, 2), np.nan), TEMPLATE_112) is None


def test_template_scales_with_size():
    np.testing.assert_allclose(template(224), 2 * TEMPLATE_112)
    np.testing.assert_allclose(template(112)[0], [38.2946, 51.6963])


def test_warp_puts_a_marked_pixel_where_the_matrix_says():
    # A white dot at (x, y) = (70, 40) in a 200 x 100 image, shifted by (-20, +30)
    # and scaled by 0.5 about the origin -> (25, 35) in the crop.
    img = Image.new("RGB", (200, 100))
    img.putpixel((70, 40), (255, 255, 255))
    img.putpixel((71, 40), (255, 255, 255))
    img.putpixel((70, 41), (255, 255, 255))
    img.putpixel((71, 41), (255, 255, 255))
    m = np.array([[0.5, 0, -10], [0, 0.5, 15], [0, 0, 1]])
    crop = np.asarray(warp(img, m, 64))[..., 0].astype(float)
    ys, xs = np.nonzero(crop)
    cy, cx = (crop[ys, xs] * ys).sum() / crop[ys, xs].sum(), (crop[ys, xs] * xs).sum() / crop[ys, xs].sum()
    # centre of the 2x2 dot: (70.5, 40.5) -> (0.5 * 70.5 - 10, 0.5 * 40.5 + 15) = (25.25, 35.25)
    assert abs(cx - 25.25) < 0.3 and abs(cy - 35.25) < 0.3


def test_center_and_none(photos):
    grace = photos["grace_hopper"]  # 512 wide, 600 high
    face = CenterAligner(size=64).align([grace])[0]
    # the central 512 x 512 square, resized
    expected = grace.resize((64, 64), Image.Resampling.BILINEAR, box=(0, 44, 512, 556))
    assert face.found and face.image.size == (64, 64)
    assert np.array_equal(np.asarray(face.image), np.asarray(expected))
    np.testing.assert_allclose(face.landmarks, template(64), rtol=1e-6)
    whole = ResizeAligner(size=32).align([grace.convert("L")])[0]
    assert whole.image.mode == "RGB" and whole.image.size == (32, 32)


def test_oracle_uses_given_landmarks(photos):
    img = photos["astronaut"]
    # Put the template itself, scaled x2 and shifted, into a blank canvas:
    # the oracle must map it back onto the 112 template.
    pts = 2 * TEMPLATE_112 + [100, 50]
    face = harness.create("aligner", "oracle").align([img, img], landmarks=[pts, None])
    np.testing.assert_allclose(face[0].landmarks, TEMPLATE_112, atol=1e-4)
    assert face[0].found and not face[1].found
    with pytest.raises(UserError, match="landmarks"):
        OracleAligner().align([img])


def test_bad_parameters_are_user_errors():
    with pytest.raises(UserError, match="select"):
        harness.create("aligner", "mtcnn", select="biggest")
    with pytest.raises(UserError, match="size"):
        harness.create("aligner", "center", size=8)
    with pytest.raises(UserError, match="unknown parameter"):
        harness.create("aligner", "none", sise=112)


def test_cache_key_names_the_configuration():
    a, b = MTCNNAligner(size=112), MTCNNAligner(size=224)
    c = MTCNNAligner(size=112, select="largest")
    assert len({a.cache_key, b.cache_key, c.cache_key}) == 3
    assert a.cache_key.startswith("mtcnn/") and a.cache_key == MTCNNAligner().cache_key


# --------------------------------------------------------------- MTCNN
def _redetect_error(aligner: MTCNNAligner, face) -> np.ndarray:
    """Distance of each eye, re-detected on the aligned crop, from the template.

    The crop is padded with grey first: MTCNN is unreliable on faces that
    touch the image border, which says nothing about the alignment.
    """
    pad = aligner.size // 2
    points = aligner.detect([ImageOps.expand(face.image, pad, fill=(128, 128, 128))])[0]
    assert points is not None, "no face found on the aligned crop"
    return np.linalg.norm(points[:2] - pad - template(aligner.size)[:2], axis=1)


@pytest.mark.parametrize("name,tolerance", [("astronaut", 4.0), ("grace_hopper", 4.0),
                                            ("camera", 9.0)])  # camera: a three-quarter profile
def test_mtcnn_aligns_eyes_onto_the_template(photos, mtcnn, name, tolerance):
    face = mtcnn.align([photos[name]])[0]
    assert face.found and face.image.size == (112, 112)
    assert np.all(_redetect_error(mtcnn, face) < tolerance)


def test_mtcnn_at_224_scales_the_template(photos):
    aligner = MTCNNAligner(size=224)
    face = aligner.align([photos["astronaut"]])[0]
    assert face.image.size == (224, 224)
    assert np.all(_redetect_error(aligner, face) < 8.0)


def test_mtcnn_finds_lfw_faces_and_not_the_non_faces(mtcnn, lfw):
    # lfw_subset: 100 faces, then 100 non-face patches
    found = np.array([f.found for f in mtcnn.align(lfw)])
    assert found[:100].sum() >= 95
    assert found[100:].sum() <= 5


def test_no_face_falls_back_to_center_crop(mtcnn):
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8))
    face = mtcnn.align([noise])[0]
    assert not face.found
    center = CenterAligner(112).align([noise])[0]
    assert np.array_equal(np.asarray(face.image), np.asarray(center.image))


def test_one_by_one_equals_batched(photos, mtcnn, lfw):
    # mixed sizes (grouped by size inside), more images than one batch
    aligner = MTCNNAligner(batch_size=4)
    images = list(photos.values()) + lfw[::20]
    batched = aligner.align(images)
    for img, face in zip(images, batched):
        single = mtcnn.align([img])[0]
        assert single.found == face.found
        diff = np.abs(np.asarray(single.image, dtype=int) - np.asarray(face.image, dtype=int))
        assert diff.max() <= 1
        np.testing.assert_allclose(single.landmarks, face.landmarks, atol=1e-2)


def test_largest_versus_most_probable_face(photos, mtcnn):
    # Two faces side by side: the astronaut and a larger Grace Hopper.
    canvas = Image.new("RGB", (900, 520), (128, 128, 128))
    canvas.paste(photos["astronaut"], (0, 0))
    canvas.paste(photos["grace_hopper"].resize((350, 410)), (540, 80))
    boxes, probs, _ = mtcnn.detector.detect(canvas, landmarks=True)
    boxes, probs = np.asarray(boxes, float), np.asarray(probs, float)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    assert len(boxes) >= 2
    assert probs.argmax() != area.argmax()  # the two rules disagree on this image
    eyes = {}
    for select in ("prob", "largest"):
        eyes[select] = MTCNNAligner(select=select).detect([canvas])[0][0]
    # independently: the chosen face's left eye lies inside the chosen box
    for select, best in (("prob", probs.argmax()), ("largest", area.argmax())):
        x0, y0, x1, y1 = boxes[best]
        assert x0 <= eyes[select][0] <= x1 and y0 <= eyes[select][1] <= y1


# ------------------------------------------- where each face is in the image
def test_resize_and_center_locate_their_crop_by_hand():
    """Pixel-index coordinates: a crop pixel c covers the image span
    [(c) * w / size - 0.5, (c + 1) * w / size - 0.5] (worked by hand)."""
    image = Image.new("RGB", (200, 100))
    face = ResizeAligner(size=50).align([image])[0]
    np.testing.assert_allclose(face.box, [-0.5, -0.5, 199.5, 99.5], atol=1e-5)
    expected = (template(50) + 0.5) * [200 / 50, 100 / 50] - 0.5
    np.testing.assert_allclose(face.source_landmarks, expected, atol=1e-4)
    assert face.score is None

    face = CenterAligner(size=50, fraction=0.5).align([image])[0]
    # side 50 px centred: the region [75, 125] x [25, 75] (continuous), scale 1
    np.testing.assert_allclose(face.box, [74.5, 24.5, 124.5, 74.5], atol=1e-5)
    np.testing.assert_allclose(face.source_landmarks, template(50) + [75, 25], atol=1e-4)


def test_oracle_reports_the_given_landmarks_and_the_crops_footprint():
    points = np.array([[40.0, 50], [70, 50], [55, 65], [44, 80], [66, 80]])
    face = OracleAligner(size=112).align([Image.new("RGB", (120, 120))], landmarks=[points])[0]
    np.testing.assert_allclose(face.source_landmarks, points, atol=1e-4)
    # the footprint holds the face and is the crop's side scaled back into the image
    x0, y0, x1, y1 = face.box
    assert x0 < 40 and x1 > 70 and y0 < 50 and y1 > 80
    fallback = OracleAligner(size=112).align([Image.new("RGB", (120, 120))], landmarks=[None])[0]
    assert not fallback.found and fallback.box is None and fallback.source_landmarks is None


def test_mtcnn_align_all_puts_the_selected_face_first(photos, mtcnn):
    pair = Image.new("RGB", (1024, 512))
    pair.paste(photos["astronaut"], (0, 0))
    pair.paste(photos["grace_hopper"].resize((400, 512)), (512, 0))
    boxes, probs, points = mtcnn.detector.detect([pair], landmarks=True)
    faces = mtcnn.align_all([pair])[0]
    assert len(faces) == len(probs[0]) >= 2
    assert [f.score for f in faces] == sorted((float(p) for p in probs[0]), reverse=True)
    best = mtcnn.align([pair])[0]
    np.testing.assert_array_equal(np.asarray(best.image), np.asarray(faces[0].image))
    assert best.score == faces[0].score
    np.testing.assert_allclose(best.box, np.asarray(boxes[0][int(np.argmax(np.asarray(probs[0], float)))], float),
                               rtol=1e-6)
    empty = mtcnn.align_all([Image.new("RGB", (200, 200), (128, 128, 128))])[0]
    assert len(empty) == 1 and not empty[0].found and empty[0].score is None
