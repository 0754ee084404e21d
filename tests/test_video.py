"""`auh predict` on videos: one row per frame and face, --every, smoothing per video, broken files.

The videos are made here with PyAV (MPEG-4 in .mp4 and .avi) from a real
face photo (scikit-image's astronaut) and blank frames; expected values come
from decoding the same files independently and predicting the frames as
images, and from brute-force medians.
"""
from __future__ import annotations

import dataclasses
import contextlib
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import harness
from harness import recipe as recipes
from harness.cli import main
from harness.schema import ENC2020

av = pytest.importorskip("av")

AUS = list(ENC2020.aus)
PROBS = [f"{au}_prob" for au in AUS]
THRESHOLDS = np.linspace(0.3, 0.7, len(AUS))
FPS = 10
N_FACE, N_BLANK = 8, 4


def frames() -> list[np.ndarray]:
    """The astronaut drifting right, then blank frames (no face)."""
    import skimage.data

    photo = Image.fromarray(skimage.data.astronaut()).resize((160, 160))
    moving = [np.asarray(photo.transform((160, 160), Image.AFFINE, (1, 0, -2 * i, 0, 1, 0), fillcolor=(90, 90, 90)))
              for i in range(N_FACE)]
    return moving + [np.full((160, 160, 3), (120, 130, 140), np.uint8)] * N_BLANK


def write_video(path: Path, images: list[np.ndarray]) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 160, 160, "yuv420p"
        for image in images:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return path


def decoded(path: Path) -> list[np.ndarray]:
    """Every frame of ``path`` as PyAV decodes it, independently of the harness."""
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from harness.bundle import load_bundle, save_bundle
    from harness.weights import save_weights

    torch = pytest.importorskip("torch")
    root = tmp_path_factory.mktemp("video")
    recipe = recipes.load(None, ["train.input_size=32", "aligner.name=mtcnn", "views.face.pretrain=none",
                                 "views.face.backbone.name=timm:test_resnet"])
    recipe = dataclasses.replace(recipe, views={"face": recipe.views["face"]})
    torch.manual_seed(0)
    model = harness.create("backbone", "timm:test_resnet", num_classes=len(AUS), input_size=32)
    folder = save_bundle(root / "bundle", recipe, ENC2020, {"face": save_weights(model, root / "face.safetensors")},
                         THRESHOLDS, harness.create("ensembler", "mean_prob"), {"face": model.normalization})
    media = root / "media"
    media.mkdir()
    images = frames()
    write_video(media / "clip.mp4", images)
    write_video(media / "other.avi", images[::-1][:6])
    Image.fromarray(images[0]).save(media / "still.png")
    return root, folder, load_bundle(folder)


def predict(root: Path, *args: str) -> int:
    with contextlib.chdir(root):
        return main(["predict", *args])


def read(root: Path, name: str):
    import pandas as pd

    return pd.read_parquet(root / name)


@pytest.fixture(scope="module")
def table(setup):
    root, folder, _ = setup
    assert predict(root, str(folder), "media/clip.mp4", "--out", "clip.parquet") == 0
    return read(root, "clip.parquet")


def test_one_row_per_frame_with_video_frame_and_timestamp(table):
    assert list(table.columns[:5]) == ["image", "path", "video", "frame", "timestamp"]
    first = table[table["face"] == 0]
    assert first["frame"].tolist() == list(range(N_FACE + N_BLANK))
    assert set(table["video"]) == {"clip"} and set(table["image"]) == {"clip.mp4"}
    np.testing.assert_allclose(first["timestamp"].to_numpy(float), np.arange(N_FACE + N_BLANK) / FPS)
    # the astronaut is found in every frame she is in; a blank frame is a row with found false
    assert first["found"].tolist() == [True] * N_FACE + [False] * N_BLANK
    assert (table["error"] == "").all()


def test_probabilities_are_those_of_the_frames_as_images(setup, table, tmp_path):
    _, _, bundle = setup
    paths = []
    for i, image in enumerate(decoded(setup[0] / "media" / "clip.mp4")):
        paths.append(tmp_path / f"{i:03d}.png")
        Image.fromarray(image).save(paths[-1])
    probs, _ = bundle.predict_paths(paths)
    first = table[table["face"] == 0]
    np.testing.assert_allclose(first[PROBS].to_numpy(float), probs, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(first[AUS].to_numpy(int), (probs >= THRESHOLDS).astype(int))


def test_every_n_and_batch_size_do_not_change_values(setup, table):
    root, folder, _ = setup
    assert predict(root, str(folder), "media/clip.mp4", "--out", "every.parquet", "--every", "3",
                   "--batch-size", "2") == 0
    every = read(root, "every.parquet")
    assert every[every["face"] == 0]["frame"].tolist() == [0, 3, 6, 9]
    same = table[table["frame"].isin([0, 3, 6, 9])].reset_index(drop=True)
    np.testing.assert_allclose(every[PROBS].to_numpy(float), same[PROBS].to_numpy(float), rtol=1e-6)


def test_median_smoothing_per_video(setup, table):
    """Two videos and an image in one folder: each video's face-0 rows are median-smoothed
    on their own (brute force over the unsmoothed table), the image is not smoothed."""
    root, folder, _ = setup
    assert predict(root, str(folder), "media", "--out", "raw.parquet", "--smoother", "none") == 0
    assert predict(root, str(folder), "media", "--out", "smooth.parquet", "--smoother", "median",
                   "--smoother-param", "window=3", "--batch-size", "5") == 0
    raw, smooth = read(root, "raw.parquet"), read(root, "smooth.parquet")
    assert raw[["path", "frame", "face"]].equals(smooth[["path", "frame", "face"]])
    for video in ("clip", "other"):
        rows = (raw["video"] == video) & (raw["face"] == 0)
        x = raw.loc[rows, PROBS].to_numpy(float)
        brute = np.array([np.median(x[max(0, t - 1):t + 2], axis=0) for t in range(len(x))])
        np.testing.assert_allclose(smooth.loc[rows, PROBS].to_numpy(float), brute, rtol=1e-12)
        np.testing.assert_array_equal(smooth.loc[rows, AUS].to_numpy(int), (brute >= THRESHOLDS).astype(int))
    still = raw["image"] == "still.png"
    assert raw.loc[still, "video"].tolist() == [""] and raw.loc[still, "frame"].isna().all()
    np.testing.assert_array_equal(smooth.loc[still, PROBS].to_numpy(float), raw.loc[still, PROBS].to_numpy(float))


def test_a_truncated_video_keeps_what_decoded_and_says_where_it_stopped(setup, capsys):
    root, folder, _ = setup
    data = (root / "media" / "other.avi").read_bytes()
    broken = root / "broken"
    broken.mkdir(exist_ok=True)
    (broken / "cut.avi").write_bytes(data[: len(data) * 3 // 4])
    with av.open(str(broken / "cut.avi")) as container:
        decodable = sum(1 for _ in container.decode(video=0))
    assert 0 < decodable < 6
    assert predict(root, str(folder), "broken/cut.avi", "--out", "cut.csv") == 0
    out = capsys.readouterr().out
    import pandas as pd

    cut = pd.read_csv(root / "cut.csv", keep_default_na=False, na_values=[""])
    assert cut["frame"].tolist() == list(range(decodable + 1))
    assert cut["error"].iloc[:decodable].isna().all()  # empty in the CSV
    assert f"decoding stopped at frame {decodable} of 6" in cut["error"].iloc[-1]
    assert f"decoding stopped at frame {decodable}" in out and "1 skipped" in out
    before = set(os.listdir(root))
    assert predict(root, str(folder), "broken/cut.avi", "--out", "strict.csv", "--strict") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"decoding stopped at frame {decodable}" in err[0]
    assert set(os.listdir(root)) == before


def test_a_file_that_is_not_a_video_is_one_row_with_its_reason(setup):
    root, folder, _ = setup
    (root / "junk").mkdir(exist_ok=True)
    (root / "junk" / "fake.mp4").write_bytes(b"not a video at all" * 10)
    (root / "list.txt").write_text("junk/fake.mp4\nmedia/other.avi\n")
    assert predict(root, str(folder), "list.txt", "--out", "list.parquet", "--every", "2") == 0
    rows = read(root, "list.parquet")
    fake = rows[rows["video"] == "fake"]
    assert len(fake) == 1 and not fake["found"].iloc[0] and fake["frame"].iloc[0] == 0
    assert "cannot be opened as a video" in fake["error"].iloc[0] and fake[PROBS].isna().all(axis=None)
    assert rows[rows["video"] == "other"]["frame"].tolist() == [0, 2, 4]


@pytest.mark.parametrize("args, needle", [
    (["--every", "0"], "--every"),
    (["--submission", "sub.csv"], "frame-level benchmark"),
    (["--smoother", "median", "--smoother-param", "window=4"], "odd"),
    (["--smoother", "medain"], "did you mean 'median'"),
    (["--smoother-param", "window=3"], "--smoother NAME"),
])
def test_bad_arguments_write_nothing(setup, capsys, args, needle):
    root, folder, _ = setup
    before = set(os.listdir(root))
    assert predict(root, str(folder), "media", "--out", "bad.parquet", *args) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1
    assert set(os.listdir(root)) == before


def test_the_metadata_records_the_smoother_and_sampling(setup):
    from harness.predict import read_metadata

    root, folder, _ = setup
    assert predict(root, str(folder), "media/other.avi", "--out", "m.csv", "--smoother", "ema",
                   "--smoother-param", "alpha=0.25", "--every", "2") == 0
    meta = read_metadata(root / "m.csv")
    assert meta["smoother"] == {"name": "ema", "alpha": 0.25} and meta["every"] == 2


# ------------------------------------------------- frame-level submissions (ABAW)
@pytest.fixture(scope="module")
def abaw_bundle(setup):
    """A bundle trained (here: random weights) on the ABAW AU track's 12 AUs."""
    from harness.benchmark import get_benchmark
    from harness.bundle import save_bundle
    from harness.weights import save_weights

    torch = pytest.importorskip("torch")
    root = setup[0]
    schema = get_benchmark("abaw_au").schema
    recipe = recipes.load(None, ["train.input_size=32", "aligner.name=none", "views.face.pretrain=none",
                                 "views.face.backbone.name=timm:test_resnet"])
    recipe = dataclasses.replace(recipe, views={"face": recipe.views["face"]})
    torch.manual_seed(1)
    model = harness.create("backbone", "timm:test_resnet", num_classes=len(schema), input_size=32)
    return save_bundle(root / "abaw_bundle", recipe, schema, {"face": save_weights(model, root / "abaw.safetensors")},
                       np.full(len(schema), 0.5), harness.create("ensembler", "mean_prob"),
                       {"face": model.normalization})


def abaw_truth(root: Path, videos: dict[str, int]) -> Path:
    folder = root / "abaw_truth"
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    header = "AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26"
    for video, n in videos.items():
        rows = [",".join(map(str, r)) for r in rng.choice([0, 1, -1], size=(n, 12))]
        (folder / f"{video}.txt").write_text("\n".join([header, *rows]) + "\n")
    return folder


@pytest.mark.parametrize("submission", ["abaw_files", "predictions.txt"])
def test_a_frame_level_abaw_submission_passes_auh_check(setup, abaw_bundle, capsys, submission):
    import pandas as pd

    root = setup[0]
    videos = root / "abaw_videos"
    videos.mkdir(exist_ok=True)
    for name in ("clip.mp4", "other.avi"):
        (videos / name).write_bytes((root / "media" / name).read_bytes())
    truth = abaw_truth(root, {"clip": N_FACE + N_BLANK, "other": 6})
    assert predict(root, str(abaw_bundle), "abaw_videos", "--out", f"abaw_{submission}.parquet",
                   "--submission", submission) == 0
    assert f"wrote the abaw_au submission ({'table' if '.' in submission else 'per-video files'}) for " \
           f"{N_FACE + N_BLANK + 6} frames of 2 videos" in capsys.readouterr().out
    with contextlib.chdir(root):
        assert main(["check", "--benchmark", "abaw_au", "--truth", str(truth), "--submission", submission]) == 0
    assert "is a valid submission" in capsys.readouterr().out
    # the submission is face 0 of each frame thresholded, frame k (from 0) named VIDEO/0000{k+1}.jpg
    table = read(root, f"abaw_{submission}.parquet")
    aus = ["AU1", "AU2", "AU4", "AU6", "AU7", "AU10", "AU12", "AU15", "AU23", "AU24", "AU25", "AU26"]
    if submission == "predictions.txt":
        sub = pd.read_csv(root / submission)
        assert sub["image_location"].iloc[0] == "clip/00001.jpg"
        np.testing.assert_array_equal(sub[aus].to_numpy(), table[table["face"] == 0][aus].to_numpy(int))
    else:
        other = np.loadtxt(root / submission / "other.txt", delimiter=",", skiprows=1, dtype=int)
        first = table[(table["video"] == "other") & (table["face"] == 0)]
        np.testing.assert_array_equal(other, first[aus].to_numpy(int))


def test_a_frame_level_submission_needs_every_frame_and_a_frame_benchmark(setup, abaw_bundle, capsys):
    root, folder, _ = setup
    before = set(os.listdir(root))
    assert predict(root, str(abaw_bundle), "media/clip.mp4", "--out", "x.parquet", "--submission", "s.txt",
                   "--every", "2") == 2
    assert "--every 1" in capsys.readouterr().err
    assert predict(root, str(folder), "media/clip.mp4", "--out", "x.parquet", "--submission", "s.txt") == 2
    assert "frame-level benchmark" in capsys.readouterr().err  # an ENC-2020 bundle: image rows only
    assert set(os.listdir(root)) == before


def test_the_table_written_in_small_pieces_is_the_same(setup, monkeypatch):
    """Rows are gathered into pieces (Parquet row groups) of ROWS_PER_PIECE: any piece size,
    smoothing included, gives the same table."""
    import pyarrow.parquet as pq

    import harness.predict

    root, folder, _ = setup
    args = ["media", "--smoother", "median", "--smoother-param", "window=5", "--batch-size", "4"]
    assert predict(root, str(folder), *args, "--out", "whole.parquet") == 0
    monkeypatch.setattr(harness.predict, "ROWS_PER_PIECE", 3)
    assert predict(root, str(folder), *args, "--out", "pieces.parquet") == 0
    assert pq.ParquetFile(root / "pieces.parquet").num_row_groups > 3
    assert read(root, "pieces.parquet").equals(read(root, "whole.parquet"))


@pytest.mark.parametrize("suffix, codec", [(".mp4", "mpeg4"), (".avi", "mpeg4"), (".mov", "mpeg4"),
                                           (".mkv", "mpeg4"), (".webm", "libvpx"), (".wmv", "wmv2")])
def test_every_container_decodes_frame_by_frame(tmp_path, suffix, codec):
    from harness.video import decode_frames, is_video

    if codec not in av.codecs_available:
        pytest.skip(f"this FFmpeg build has no {codec} encoder")
    path = tmp_path / f"v{suffix}"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for i in range(6):
            image = np.full((64, 64, 3), 40 * i, np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    frames = list(decode_frames(path, every=2))
    assert is_video(path) and [f for f, _, _ in frames] == [0, 2, 4]
    np.testing.assert_allclose([t for _, t, _ in frames], [0, 2 / FPS, 4 / FPS], atol=1e-3)
    assert [np.asarray(im).mean() for _, _, im in frames] == pytest.approx([0, 80, 160], abs=4)
