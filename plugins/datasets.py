"""Datasets: the embedded synthetic benchmark (``synth``) and real ENC-2020 data (``emotionet``).

Also adds ``auh synth OUT`` to write the synthetic benchmark to a folder.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from harness import hookimpl
from harness.cli import add_command
from harness.data import AUDataset, cache_root
from harness.errors import UserError
from harness.images import ImageError, check_image
from harness.labels import read_labels
from harness.progress import progress
from harness.schema import ENC2020
from harness.splits import iterative_stratification, train_val_test_split

SHOW_BAD = 5  # bad images named in an error message


def synth(n: int = 2000, seed: int = 0, size: int = 112, identities: int = 200, per_identity: int = 5,
          per_expression: int = 150, cache: str | None = None, root: str | None = None,
          workers: int = 1) -> AUDataset:
    """Synthetic in-the-wild ENC-2020 benchmark, generated into a cache on first use.

    ``root`` reads a folder written by ``auh synth`` instead. The cache
    folder is keyed by every parameter and the renderer version; it is
    written to a temporary folder and renamed, so a killed run never leaves
    a half benchmark that a later run would trust; a cached benchmark whose
    files fail the sha256 recorded in its ``meta.json`` is rebuilt.
    """
    from plugins.synth import writer  # pandas and the renderer: only when a benchmark is used

    if root is not None:
        return writer.load(root)
    params = writer.SynthParams(n=n, seed=seed, size=size, identities=identities,
                                per_identity=per_identity, per_expression=per_expression)
    folder = (Path(cache).expanduser() if cache else cache_root() / "synth") / params.key()
    if (folder / "meta.json").is_file() and (bad := writer.damaged(folder)):
        print(f"synth: cached benchmark {folder} fails its checksums ({len(bad)} files, e.g. "
              f"{bad[0]}); rebuilding it", file=sys.stderr)
        _discard(folder)
    if not (folder / "meta.json").is_file():
        try:
            writer.generate(folder, params, workers=workers)
        except OSError:
            if not (folder / "meta.json").is_file():  # not a concurrent run that finished first
                raise
    return writer.load(folder)


def _discard(folder: Path) -> None:
    """Move a bad cache folder out of the way (atomically), then delete it."""
    aside = folder.with_name(f".{folder.name}.bad-{os.getpid()}")
    try:
        folder.rename(aside)
    except FileNotFoundError:  # another process discarded it first
        return
    shutil.rmtree(aside, ignore_errors=True)


def emotionet(root: str, labels: str, skip_bad: bool = False, seed: int = 0, folds: int = 5,
              fractions: Sequence[float] = (0.7, 0.1, 0.2)) -> AUDataset:
    """Real ENC-2020 data: an image folder and a label file (challenge text format or CSV).

    Every labelled image must exist under ``root`` and open as an image;
    the bad ones are reported together in one error, or skipped (with a
    count on stderr) when ``skip_bad`` is true. Splits and folds are
    stratified with ``seed``.
    """
    root_path = Path(root).expanduser()
    if not root_path.is_dir():
        raise UserError(f"dataset emotionet: root {root!r} is not a folder")
    names, y = read_labels(Path(labels).expanduser(), ENC2020)
    paths = [root_path / n for n in names]
    bad = [(i, why) for i, p in enumerate(progress(paths, desc="checking images"))
           if (why := _problem(p)) is not None]
    if bad:
        shown = ", ".join(f"{names[i]} ({why})" for i, why in bad[:SHOW_BAD])
        more = f", and {len(bad) - SHOW_BAD} more" if len(bad) > SHOW_BAD else ""
        what = f"{len(bad)} of {len(names)} labelled images under {root_path} are missing or unreadable"
        if not skip_bad:
            raise UserError(f"dataset emotionet: {what}: {shown}{more}; fix them or set skip_bad = true")
        print(f"emotionet: skipped {what}: {shown}{more}", file=sys.stderr)
        keep = np.setdiff1d(np.arange(len(names)), [i for i, _ in bad])
        paths, y = [paths[i] for i in keep], y[keep]
    if len(paths) < max(folds, 3):
        raise UserError(f"dataset emotionet: {len(paths)} usable images; need at least {max(folds, 3)}")
    return AUDataset(name="emotionet", schema=ENC2020, images=paths, labels=y,
                     splits=train_val_test_split(y, fractions, seed=seed),
                     folds=iterative_stratification(y, folds, seed=seed), root=root_path)


def _problem(path: Path) -> str | None:
    """Why an image cannot be used, or ``None``. Reads the header only (fast)."""
    try:
        check_image(path)
    except ImageError as exc:
        return exc.reason
    return None


@hookimpl
def auh_datasets() -> dict:
    return {"synth": synth, "emotionet": emotionet}


# ---------------------------------------------------------------- auh synth
@hookimpl
def auh_add_commands(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(subparsers, "synth", cmd_synth)
    p.add_argument("out", help="output folder (new or empty)")
    p.add_argument("--n", type=int, default=2000, help="AU images (default 2000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=112, help="image side in pixels (default 112)")
    p.add_argument("--identities", type=int, default=200, help="identity companion: people")
    p.add_argument("--per-identity", type=int, default=5, help="identity companion: images per person")
    p.add_argument("--per-expression", type=int, default=150,
                   help="expression companion: images per class (neutral + 7 emotions)")
    p.add_argument("--workers", type=int, default=1, help="processes (output is the same)")


def cmd_synth(args: argparse.Namespace) -> int:
    """write the synthetic AU benchmark to a folder

    Write the synthetic in-the-wild ENC-2020 benchmark: JPEG images, labels (challenge text and
    CSV), 5-point landmarks, train/val/test splits, 5 stratified folds, and the identity and
    expression companion sets. The same seed gives identical files.
    """
    from plugins.synth import writer

    try:
        params = writer.SynthParams(n=args.n, seed=args.seed, size=args.size, identities=args.identities,
                                    per_identity=args.per_identity, per_expression=args.per_expression)
    except ValueError as exc:
        raise UserError(f"auh synth: {exc}") from None
    out = writer.generate(args.out, params, workers=max(1, args.workers))
    print(f"wrote {params.n} AU images, {params.identities * params.per_identity} identity and "
          f"{8 * params.per_expression} expression images to {out}")
    return 0
