"""Figures of the synthetic benchmark for docs/synth.md.

    python tools/synth_figures.py sheet   [--out docs/synth_contact_sheet.png]
    python tools/synth_figures.py mtcnn   [--n 500] [--size 112]
    python tools/synth_figures.py learn   [--n 4000] [--minutes 4]
    python tools/synth_figures.py stats   [--n 4000]
    python tools/synth_figures.py speed   [--n 1000] [--size 112]

``sheet``: a 6 x 8 contact sheet of benchmark images (every occluder kind
appears in the last row). ``mtcnn``: facenet-pytorch MTCNN detection rate
on unoccluded images and its landmark error against the ground truth.
``learn``: a small CNN trained for a few minutes on CPU against the trivial
baselines, scored with the challenge metric on the test split. ``stats``:
per-AU positive and 999 rates of synthetic labels next to ENC-2020's, as a
Markdown table. ``speed``: images per second of ``auh synth`` on one core.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.metrics import challenge_score  # noqa: E402
from plugins.synth.face import AUS  # noqa: E402
from plugins.synth.labelmodel import LabelModel  # noqa: E402
from plugins.synth.occluders import KINDS, Occluder  # noqa: E402
from plugins.synth.writer import SynthParams, au_sample, generate, load  # noqa: E402


def contact_sheet(out: Path, size: int = 112, seed: int = 0) -> None:
    model = LabelModel.from_stats()
    tiles = [au_sample(seed, i, size, model).rendered.image for i in range(40)]
    for k, kind in enumerate(KINDS + ("sunglasses",)):
        occ = Occluder(kind, np.random.default_rng(k).random(8))
        tiles.append(au_sample(seed, 1000 + k, size, model, occluder=occ).rendered.image)
    sheet = Image.new("RGB", (8 * size, 6 * size), "white")
    for k, tile in enumerate(tiles):
        sheet.paste(tile, ((k % 8) * size, (k // 8) * size))
    ImageDraw.Draw(sheet).text((4, 5 * size + 2), "occluders ->", fill=(255, 255, 255))
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, optimize=True)
    print(f"wrote {out}")


def mtcnn_rate(n: int, size: int, seed: int = 100) -> dict:
    import torch
    from facenet_pytorch import MTCNN

    torch.set_num_threads(2)
    model = LabelModel.from_stats()
    detector = MTCNN(keep_all=False, device="cpu")
    samples = [au_sample(seed, i, size, model, occluder=None) for i in range(n)]
    found, err = [], []
    for start in range(0, n, 50):
        batch = samples[start:start + 50]
        boxes, _, points = detector.detect([s.rendered.image for s in batch], landmarks=True)
        for s, box, pts in zip(batch, boxes, points):
            ok = box is not None and len(box) > 0
            found.append(ok)
            if ok:  # numpy 2: facenet-pytorch may return object arrays
                p = np.asarray(np.asarray(pts, dtype=object)[0], dtype=np.float32).reshape(5, 2)
                truth = s.rendered.landmarks
                err.append(np.linalg.norm(p - truth, axis=1).mean() / np.linalg.norm(truth[0] - truth[1]))
    result = {"n": n, "size": size, "detection_rate": float(np.mean(found)),
              "median_landmark_error_iod": float(np.median(err))}
    print(json.dumps(result))
    return result


def learnability(n: int, minutes: float, size: int = 112, train_px: int = 64, seed: int = 0,
                 epochs: int | None = None) -> dict:
    """Train for ``epochs`` (reproducible) or, when None, for ``minutes`` of wall time."""
    import torch
    from torch import nn

    import harness

    torch.manual_seed(seed)
    torch.set_num_threads(2)
    folder = Path(tempfile.mkdtemp()) / "bench"
    generate(folder, SynthParams(n=n, seed=seed, size=size, identities=1, per_identity=1, per_expression=1))
    ds = load(folder)
    x = torch.from_numpy(np.stack([np.asarray(Image.open(p).convert("RGB").resize((train_px, train_px),
                                                                                   Image.BILINEAR))
                                   for p in ds.images])).permute(0, 3, 1, 2).float() / 127.5 - 1
    y = torch.from_numpy(ds.labels)
    tr, va, te = (torch.from_numpy(ds.splits[k]) for k in ("train", "val", "test"))

    def block(i: int, o: int) -> nn.Module:
        return nn.Sequential(nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(),
                             nn.Conv2d(o, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(),
                             nn.MaxPool2d(2))

    stem = nn.Sequential(nn.Conv2d(3, 32, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU())
    net = nn.Sequential(stem, block(32, 64), block(64, 96), block(96, 128),
                        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Dropout(0.2), nn.Linear(512, len(AUS)))
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    known_pos = ((y[tr] == 1).float().sum(0) / (y[tr] != 999).float().sum(0)).clamp(0.01, 0.99)
    pos_weight = ((1 - known_pos) / known_pos).sqrt()  # mild re-weighting of rare AUs
    start, done = time.time(), 0
    while (done < epochs) if epochs is not None else (time.time() - start < minutes * 60):
        net.train()
        for idx in tr[torch.randperm(len(tr))].split(64):
            xb, yb = x[idx], y[idx]  # no flips: they would swap the sided pose AUs
            mask = (yb != 999).float()
            logits = net(xb)
            loss = nn.functional.binary_cross_entropy_with_logits(
                logits, (yb == 1).float(), weight=mask, pos_weight=pos_weight, reduction="sum") / mask.sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        done += 1

    net.eval()
    with torch.no_grad():
        probs = {k: torch.sigmoid(torch.cat([net(x[i]) for i in rows.split(256)])).numpy()
                 for k, rows in (("val", va), ("test", te))}
    labels = ds.labels
    thresholder = harness.create("thresholder", "search")
    thresholds = thresholder.fit(probs["val"], labels[va.numpy()])
    truth = labels[te.numpy()]
    prior = (labels[tr.numpy()] == 1).mean(0)
    rng = np.random.default_rng(seed)
    rows = {
        "all zeros": np.zeros_like(truth),
        "all ones": np.ones_like(truth),
        "per-AU prior (random, training rates)": (rng.random(truth.shape) < prior).astype(np.int64),
        "small CNN, thresholds searched on val": (probs["test"] >= thresholds).astype(np.int64),
    }
    scores = {name: challenge_score(p, truth, list(AUS)) for name, p in rows.items()}
    result = {"n": n, "train_px": train_px, "epochs": done, "minutes": round((time.time() - start) / 60, 1),
              "scores": {k: {m: round(v[m], 4) for m in ("final", "accuracy", "f1")} for k, v in scores.items()},
              "cnn_per_au_f1": {au: round(s["f1"], 3) for au, s in scores[list(rows)[-1]]["per_au"].items()},
              "train_positive_rate": {au: round(float(r), 3) for au, r in zip(AUS, prior)}}
    print(json.dumps(result, indent=1))
    return result


def label_table(n: int) -> None:
    from plugins.synth.labelmodel import load_stats

    stats = load_stats()
    model = LabelModel.from_stats(stats)
    labels = np.stack([au_sample(11, i, 24, model).labels for i in range(n)])
    print(f"| AU | positive (synth) | positive (ENC-2020) | 999 (synth) | 999 (ENC-2020) |")
    print("|---|---|---|---|---|")
    for j, au in enumerate(AUS):
        print(f"| {au} | {(labels[:, j] == 1).mean():.3f} | {stats['positive_rate'][j]:.3f} | "
              f"{(labels[:, j] == 999).mean():.3f} | {stats['unknown_rate'][j]:.3f} |")
    diff = np.abs((labels == 1).mean(0) - np.asarray(stats["positive_rate"])).max()
    print(f"\nmax |positive rate difference| = {diff:.3f} on {n} images")


def speed(n: int, size: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        params = SynthParams(n=n, size=size, identities=1, per_identity=1, per_expression=1)
        start = time.perf_counter()
        generate(Path(tmp) / "b", params)
        elapsed = time.perf_counter() - start
    total = n + 1 + 8
    print(json.dumps({"images": total, "size": size, "seconds": round(elapsed, 2),
                      "images_per_second": round(total / elapsed, 1)}))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=["sheet", "mtcnn", "learn", "stats", "speed"])
    ap.add_argument("--out", default="docs/synth_contact_sheet.png")
    ap.add_argument("--n", type=int)
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--minutes", type=float, default=4.0)
    ap.add_argument("--epochs", type=int, help="learn: train this many epochs instead of --minutes")
    args = ap.parse_args()
    if args.what == "sheet":
        contact_sheet(Path(args.out), args.size)
    elif args.what == "mtcnn":
        mtcnn_rate(args.n or 500, args.size)
    elif args.what == "learn":
        learnability(args.n or 4000, args.minutes, args.size, epochs=args.epochs)
    elif args.what == "stats":
        label_table(args.n or 4000)
    else:
        speed(args.n or 1000, args.size)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
