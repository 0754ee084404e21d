"""Datasets: the embedded synthetic benchmark (``synth``) and real ENC-2020 data (``emotionet``).

Also adds ``auh synth OUT`` to write the synthetic benchmark to a folder.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from harness import hookimpl
from harness.cli import add_command
from harness.data import AUDataset, LabelledImages, cache_root
from harness.errors import UserError
from harness.fileio import check_input_file
from harness.images import IMAGE_SUFFIXES, ImageError, check_image
from harness.labels import read_labels
from harness.progress import note, progress
from plugins.benchmarks.enc2020 import SCHEMA as ENC2020
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
    return writer.load(writer.cached_build(folder, lambda: writer.generate(folder, params, workers=workers)))


def emotionet(root: str, labels: str, skip_bad: bool = False, seed: int = 0, folds: int = 5,
              fractions: Sequence[float] = (0.7, 0.1, 0.2),
              companions: dict[str, Any] | None = None) -> AUDataset:
    """Real ENC-2020 data: an image folder and a label file (challenge text format or CSV).

    Every labelled image must exist under ``root`` and open as an image;
    the bad ones are reported together in one error, or skipped (with a
    count on stderr) when ``skip_bad`` is true. Splits and folds are
    stratified with ``seed``. ``companions`` names the pretraining sets,
    each read by :func:`companion_set` (checked the same way, before the AU
    images, so a mistyped folder is reported at once).
    """
    root_path = Path(root).expanduser()
    if not root_path.is_dir():
        raise UserError(f"dataset emotionet: root {root!r} is not a folder")
    if companions is not None and not isinstance(companions, dict):
        raise UserError(f"dataset emotionet: companions: expected a table of named sets "
                        f"([dataset.companions.identity] ...), got {companions!r}")
    sets = {name: companion_set(name, spec, skip_bad) for name, spec in (companions or {}).items()}
    names, y = read_labels(Path(labels).expanduser(), ENC2020)
    paths = [root_path / n for n in names]
    keep = usable_images(paths, names, f"labelled images under {root_path}", skip_bad, "dataset emotionet")
    paths, y = [paths[i] for i in keep], y[keep]
    if len(paths) < max(folds, 3):
        raise UserError(f"dataset emotionet: {len(paths)} usable images; need at least {max(folds, 3)}")
    return AUDataset(name="emotionet", schema=ENC2020, images=paths, labels=y,
                     splits=train_val_test_split(y, fractions, seed=seed),
                     folds=iterative_stratification(y, folds, seed=seed), root=root_path, companions=sets)


def usable_images(paths: list[Path], shown: list[str], what: str, skip_bad: bool, where: str) -> np.ndarray:
    """Indices of the ``paths`` that exist and open as images (headers only). The
    bad ones are one error naming the first few (``shown`` names them), or with
    ``skip_bad`` a line on stderr and left out."""
    bad = [(i, why) for i, p in enumerate(progress(paths, desc=f"checking {what}"))
           if (why := _problem(p)) is not None]
    if bad:
        listed = ", ".join(f"{shown[i]} ({why})" for i, why in bad[:SHOW_BAD])
        more = f", and {len(bad) - SHOW_BAD} more" if len(bad) > SHOW_BAD else ""
        summary = f"{len(bad)} of {len(paths)} {what} are missing or unreadable"
        if not skip_bad:
            raise UserError(f"{where}: {summary}: {listed}{more}; fix them or set skip_bad = true")
        note(f"{where}: skipped {summary}: {listed}{more}")
    return np.setdiff1d(np.arange(len(paths)), [i for i, _ in bad])


# ------------------------------------------------------ companions from real data
COMPANION_KEYS = ("root", "labels", "exclude")
PATH_COLUMNS = ("subdirectory_filepath", "path", "image", "file")  # AffectNet's name first
CLASS_COLUMNS = ("expression", "class", "label", "identity")


def companion_set(name: str, spec: Any, skip_bad: bool = False) -> LabelledImages:
    """A pretraining set (``identity``, ``expression``, ...) from real files.

    ``spec`` is the recipe's ``[dataset.companions.NAME]`` table, either

    * ``root = FOLDER``: an image-folder tree, one sub-folder per class, its
      images at any depth below it (MS-Celeb-1M and VGGFace2 identities,
      FER-style expression sets); or
    * ``labels = FILE`` (and ``root``, the folder its paths are relative to;
      default: the file's folder): one image and its class per line,
      AffectNet's CSV (``subDirectory_filePath, ..., expression``) or any CSV
      with a header naming a path and a class column, or two columns
      ``path,class`` without a header.

    ``exclude`` lists classes to leave out (AffectNet's 8, 9, 10: none,
    uncertain, no face). Images are checked like the AU images.
    """
    where = f"dataset emotionet: companions.{name}"
    if not isinstance(spec, dict):
        raise UserError(f"{where}: expected a table (root = FOLDER, or labels = FILE), got {spec!r}")
    for key in spec:
        if key not in COMPANION_KEYS:
            raise UserError(f"{where}.{key}: unknown key; expected {', '.join(COMPANION_KEYS)}")
    for key in ("root", "labels"):
        if key in spec and not isinstance(spec[key], str):
            raise UserError(f"{where}.{key}: expected a path, got {spec[key]!r}")
    exclude = spec.get("exclude", [])
    if not isinstance(exclude, list) or not all(isinstance(c, (str, int)) for c in exclude):
        raise UserError(f"{where}.exclude: expected a list of class names, got {exclude!r}")
    if "labels" in spec:
        labels = Path(spec["labels"]).expanduser()
        base = Path(spec["root"]).expanduser() if "root" in spec else labels.parent
        if not base.is_dir():
            raise UserError(f"{where}.root: {str(base)!r} is not a folder")
        paths, classes = _label_file(labels, base, where)
    elif "root" in spec:
        paths, classes = _folder_tree(Path(spec["root"]).expanduser(), where)
    else:
        raise UserError(f"{where}: needs root (an image-folder tree, one folder per class) or "
                        f"labels (a file of image paths and classes)")
    dropped = {str(c) for c in exclude}
    kept = [i for i, c in enumerate(classes) if c not in dropped]
    paths, classes = [paths[i] for i in kept], [classes[i] for i in kept]
    keep = usable_images(paths, [str(p) for p in paths], f"{name} images", skip_bad, where)
    paths, classes = [paths[i] for i in keep], [classes[i] for i in keep]
    names = sorted(set(classes))
    if len(names) < 2:
        raise UserError(f"{where}: {len(paths)} usable images in {len(names)} class"
                        f"{'es' * (len(names) != 1)}; a pretraining task needs at least 2 classes")
    index = {c: k for k, c in enumerate(names)}
    return LabelledImages(task=name, images=paths, targets=[index[c] for c in classes], classes=names)


def _folder_tree(root: Path, where: str) -> tuple[list[Path], list[str]]:
    """Images of ``root/<class>/...`` and their class (the sub-folder's name)."""
    if not root.is_dir():
        raise UserError(f"{where}.root: {str(root)!r} is not a folder")
    loose = sorted(p.name for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if loose:
        raise UserError(f"{where}.root: {str(root)!r} holds images directly ({loose[0]}, ...); "
                        f"expected one sub-folder per class")
    paths: list[Path] = []
    classes: list[str] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        images = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        paths += images
        classes += [folder.name] * len(images)
    if not paths:
        raise UserError(f"{where}.root: no images in class folders under {str(root)!r} "
                        f"({', '.join(sorted(IMAGE_SUFFIXES))})")
    return paths, classes


def _label_file(path: Path, base: Path, where: str) -> tuple[list[Path], list[str]]:
    """``(image paths under base, classes)`` from a label file (see :func:`companion_set`)."""
    import csv

    if not path.exists():
        raise UserError(f"{where}.labels: {str(path)!r} does not exist")
    check_input_file(path, f"{where}.labels")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UserError(f"{where}.labels: {str(path)!r} is not UTF-8 text") from None
    rows = [r for r in csv.reader(text.splitlines()) if any(cell.strip() for cell in r)]
    if not rows:
        raise UserError(f"{where}.labels: {str(path)!r} is empty")
    header = [cell.strip().lower() for cell in rows[0]]
    path_col = next((header.index(c) for c in PATH_COLUMNS if c in header), None)
    class_col = next((header.index(c) for c in CLASS_COLUMNS if c in header), None)
    if path_col is not None and class_col is not None:
        rows, first_line = rows[1:], 2
    elif len(header) == 2:
        path_col, class_col, first_line = 0, 1, 1
    else:
        raise UserError(f"{where}.labels: {str(path)!r}: expected a header naming the image path "
                        f"({', '.join(PATH_COLUMNS)}) and class ({', '.join(CLASS_COLUMNS)}) columns, "
                        f"or two columns path,class")
    width = len(rows[0]) if first_line == 1 else len(header)
    paths, classes = [], []
    for line, row in enumerate(rows, first_line):
        if len(row) != width or not row[path_col].strip() or not row[class_col].strip():
            raise UserError(f"{where}.labels: {str(path)!r} line {line}: expected {width} fields "
                            f"with an image path and a class")
        paths.append(base / row[path_col].strip())
        classes.append(row[class_col].strip())
    if not paths:
        raise UserError(f"{where}.labels: {str(path)!r} lists no images")
    return paths, classes


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
    p.add_argument("--benchmark", default="enc2020", choices=("enc2020", "bp4d", "disfa", "abaw_au"),
                   help="whose official layout to write (default enc2020: the in-the-wild ENC-2020 set); "
                        "bp4d, disfa and abaw_au write frame sequences their dataset plugin reads")
    p.add_argument("--subjects", type=int, default=6, help="bp4d/disfa/abaw_au: people (default 6)")
    p.add_argument("--sequences", type=int, default=2, help="bp4d/disfa/abaw_au: sequences per person (default 2)")
    p.add_argument("--frames", type=int, default=40, help="bp4d/disfa/abaw_au: frames per sequence (default 40)")


def cmd_synth(args: argparse.Namespace) -> int:
    """write the synthetic AU benchmark to a folder

    Write the synthetic in-the-wild ENC-2020 benchmark: JPEG images, labels (challenge text and
    CSV), 5-point landmarks, train/val/test splits, 5 stratified folds, and the identity and
    expression companion sets. The same seed gives identical files. With --benchmark bp4d, disfa
    or abaw_au: that dataset's official layout (label files and frame images of subjects'
    sequences) instead, read by the bp4d, disfa and affwild2 dataset plugins.
    """
    from plugins.synth import official, writer

    try:
        params = writer.SynthParams(n=args.n, seed=args.seed, size=args.size, identities=args.identities,
                                    per_identity=args.per_identity, per_expression=args.per_expression)
        layout = None if args.benchmark == "enc2020" else official.OfficialParams.make(
            benchmark=args.benchmark, subjects=args.subjects, sequences=args.sequences, frames=args.frames,
            size=args.size, seed=args.seed, identities=args.identities, per_identity=args.per_identity,
            per_expression=args.per_expression)
    except ValueError as exc:
        raise UserError(f"auh synth: {exc}") from None
    if layout is not None:
        out = official.generate(args.out, layout)
        print(f"wrote {args.benchmark}: {layout.subjects} subjects x {layout.sequences} sequences x "
              f"{layout.frames} frames, {params.identities * params.per_identity} identity and "
              f"{8 * params.per_expression} expression images to {out}")
        return 0
    out = writer.generate(args.out, params, workers=max(1, args.workers))
    print(f"wrote {params.n} AU images, {params.identities * params.per_identity} identity and "
          f"{8 * params.per_expression} expression images to {out}")
    return 0
