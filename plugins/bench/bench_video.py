"""``auh predict`` on a video: frames/s and peak memory, streamed vs decoding every frame first.

A synthetic MPEG-4 video (scikit-image's astronaut photo drifting across a
96 x 96 frame, 25 fps) of 1,000 and 10,000 frames (``--quick``: 50 and
200) is predicted with a tiny bundle (``timm:test_resnet`` at 32 px, the
``none`` aligner, so decoding and the table dominate) in a child process:

* harness: ``python -m harness predict BUNDLE video.mp4 --out t.parquet``,
  which decodes, aligns and classifies 64 frames at a time and appends each
  batch's rows to the Parquet file;
* baseline: the same bundle, but every frame decoded into a list first (the
  way py-feat's video reader and most scripts do it), then aligned and
  classified in the same batches and the table written at the end.

Each side's wall time includes the interpreter's start and imports; peak
RSS is the child's maximum resident set size (``wait4``). The two tables
must hold the same probabilities.
"""
from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from plugins.bench.bench_demo import run_child
from plugins.bench.rows import row

SIDE, FPS, BATCH = 96, 25, 64


def write_video(path: Path, n: int) -> Path:
    """``n`` frames of the astronaut drifting in a ``SIDE`` px square, MPEG-4."""
    import av
    import skimage.data
    from PIL import Image

    face = Image.fromarray(skimage.data.astronaut()).resize((SIDE, SIDE))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = SIDE, SIDE, "yuv420p"
        for i in range(n):
            shift = (i % 20) - 10
            image = face.transform((SIDE, SIDE), Image.AFFINE, (1, 0, shift, 0, 1, 0), fillcolor=(90, 90, 90))
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.asarray(image), format="rgb24")))
        container.mux(stream.encode())
    return path


def make_bundle(folder: Path) -> Path:
    import harness
    from harness import recipe as recipes
    from harness.bundle import save_bundle
    from plugins.benchmarks.enc2020 import SCHEMA as ENC2020
    from harness.weights import save_weights

    recipe = recipes.load(None, ["train.input_size=32", "aligner.name=none", "views.face.pretrain=none",
                                 "views.face.backbone.name=timm:test_resnet"])
    recipe = dataclasses.replace(recipe, views={"face": recipe.views["face"]})
    model = harness.create("backbone", "timm:test_resnet", num_classes=len(ENC2020), input_size=32)
    weights = save_weights(model, folder / "face.safetensors")
    return save_bundle(folder / "bundle", recipe, ENC2020, {"face": weights}, np.full(len(ENC2020), 0.5),
                       harness.create("ensembler", "mean_prob"), {"face": model.normalization})


def decode_all_then_predict(bundle_folder: str, video: str, out: str) -> None:
    """The baseline (run in its own process): every frame decoded into memory, then predicted."""
    import av
    import pandas as pd

    from harness.bundle import load_bundle
    from harness.predict import faces_per_image

    with av.open(video) as container:
        frames = [frame.to_image() for frame in container.decode(video=0)]  # the whole video at once
    bundle = load_bundle(bundle_folder)
    aligner, probs = bundle.aligner(), []
    for start in range(0, len(frames), BATCH):
        faces = faces_per_image(aligner, frames[start:start + BATCH])
        probs.append(bundle.predict_crops(np.stack([np.asarray(f[0].image.convert("RGB")) for f in faces]))[0])
    table = pd.DataFrame(np.concatenate(probs), columns=[f"{au}_prob" for au in bundle.aus])
    table.insert(0, "frame", np.arange(len(frames)))
    table.to_parquet(out)


def bench_video(quick: bool) -> list[dict[str, Any]]:
    import pandas as pd

    rows = []
    with tempfile.TemporaryDirectory(prefix="auh-bench-video-") as tmp:
        folder = Path(tmp)
        bundle = make_bundle(folder)
        env = {**os.environ, "AUH_QUIET": "1", "AUH_CACHE": str(folder / "cache")}
        for n in (50, 200) if quick else (1_000, 10_000):
            video = write_video(folder / f"video{n}.mp4", n)
            ours = [sys.executable, "-m", "harness", "predict", str(bundle), str(video),
                    "--out", str(folder / "streamed.parquet"), "--batch-size", str(BATCH)]
            theirs = [sys.executable, "-c", "import sys; from plugins.bench.bench_video import "
                      "decode_all_then_predict as f; f(*sys.argv[1:])", str(bundle), str(video),
                      str(folder / "in_memory.parquet")]
            wall, _, peak, _ = run_child(ours, folder, env)
            base_wall, _, base_peak, _ = run_child(theirs, folder, env)
            a = pd.read_parquet(folder / "streamed.parquet")
            b = pd.read_parquet(folder / "in_memory.parquet")
            probs = [c for c in b.columns if c.endswith("_prob")]
            same = len(a) == len(b) == n and a["frame"].tolist() == b["frame"].tolist() and bool(
                np.allclose(a[probs].to_numpy(float), b[probs].to_numpy(float), rtol=1e-5, atol=1e-6))
            rows.append(row(
                f"auh predict on a video, {n:,} frames", f"MPEG-4 {SIDE} x {SIDE}, {n:,} frames, "
                f"timm:test_resnet 32 px, aligner none", wall,
                "decode every frame into memory first, then predict in the same batches", base_wall, same,
                "same frames and probabilities to 1e-5",
                f"{n / wall:,.0f} frames/s streamed vs {n / base_wall:,.0f} frames/s; peak RSS "
                f"{peak:,.0f} MiB streamed vs {base_peak:,.0f} MiB decoding every frame first (wall and "
                f"peak of the whole process: interpreter start and imports included)",
                frames_s=n / wall, baseline_frames_s=n / base_wall, peak_rss_mib=peak,
                baseline_peak_rss_mib=base_peak, frames=n))
    return rows
