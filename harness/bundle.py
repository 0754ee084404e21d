"""A trained ensemble as one folder, and ``auh predict``.

Layout::

    bundle/
      bundle.json         AU list, input size, aligner, views (backbone, weights and
                          input normalization each), ensembler (with its fitted
                          ``*_`` state), thresholds, versions
      recipe.toml         the resolved recipe that trained it
      views/<view>.safetensors

Weights are safetensors only, so loading a bundle never unpickles anything.
Format 1 (before backbones declared their normalization) had one
normalization for every view, ``[-1, 1]``, and the ensembler's public
attributes as its state; it still loads.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from harness import recipe as recipes
from harness.recipe import Recipe
from harness.training import load_exact, predict_logits, resolve_device
from harness.errors import UserError
from harness.fileio import check_input_file, sha256_file
from harness.images import IMAGE_SUFFIXES, read_image
from harness.video import VIDEO_SUFFIXES
from harness.metrics import sigmoid
from harness.protocols import IR_NORMALIZATION, fitted_state, set_fitted_state
from harness.schema import AUSchema
from harness.registry import package_versions

FORMAT = 2
READS = (1, 2)  # formats this version loads


def save_bundle(folder: Path, recipe: Recipe, schema: AUSchema, weights: dict[str, Path],
                thresholds: np.ndarray, ensembler: Any, normalization: dict[str, Any]) -> Path:
    """Write the bundle into ``folder`` (replaced as a whole, never half-written).

    ``normalization[view]`` is the view's backbone input ``(mean, std)``, 3 floats each.
    """
    folder = Path(folder)
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "views").mkdir(parents=True)
    for view, path in weights.items():
        _link_or_copy(Path(path), tmp / "views" / f"{view}.safetensors")
    meta = {
        "format": FORMAT,
        "schema": {"name": schema.name, "aus": list(schema.aus), "flip_pairs": [list(p) for p in schema.flip_pairs]},
        "input_size": recipe.train.input_size,
        "aligner": recipe.aligner.to_dict(),
        # The weights' sha256 makes bundle.json's own sha256 the bundle's id.
        "views": {v: {"backbone": recipe.views[v].backbone.to_dict(), "weights": f"views/{v}.safetensors",
                      "normalization": dict(zip(("mean", "std"), np.asarray(normalization[v]).tolist())),
                      "sha256": sha256_file(path)} for v, path in weights.items()},
        "ensembler": {**recipe.ensembler.to_dict(), "fitted": fitted_state(ensembler)},
        "thresholds": [float(t) for t in thresholds],
        # the thresholds were fitted on probabilities smoothed by it: auh predict smooths videos alike
        "smoother": recipe.smoother.to_dict(),
        "versions": package_versions(),
    }
    (tmp / "bundle.json").write_text(json.dumps(meta, indent=1))
    (tmp / "recipe.toml").write_text(recipes.dumps(recipe))
    old = folder.with_name(f".{folder.name}.old")
    if folder.exists():
        folder.rename(old)
    tmp.rename(folder)
    shutil.rmtree(old, ignore_errors=True)
    return folder


def _link_or_copy(source: Path, target: Path) -> None:
    """A hard link where the file system allows one (weights files are replaced,
    never rewritten in place, so sharing them is safe and costs no space), else a copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


@dataclass
class Bundle:
    """A loaded bundle: ``predict_paths`` turns image files into probabilities and 0/1."""

    folder: Path
    meta: dict[str, Any]
    models: dict[str, torch.nn.Module]
    ensembler: Any
    thresholds: np.ndarray
    device: str = "cpu"

    @property
    def aus(self) -> list[str]:
        return list(self.meta["schema"]["aus"])

    @property
    def schema(self) -> AUSchema:
        s = self.meta["schema"]
        return AUSchema(s["name"], tuple(s["aus"]), tuple(tuple(p) for p in s["flip_pairs"]))

    def aligner(self) -> Any:
        return recipes.build("aligner", self.meta["aligner"], size=self.meta["input_size"])

    def smoother(self) -> Any:
        """The recipe's temporal smoother (``none`` for a bundle saved before smoothers existed)."""
        return recipes.build("smoother", self.meta.get("smoother", {"name": "none"}))

    def predict_crops(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """uint8 crops ``[N,S,S,3]`` -> ``(probs, preds)``."""
        size = self.meta["input_size"]
        logits = [predict_logits(m, crops, size, device=self.device) for m in self.models.values()]
        probs = self.ensembler.combine([sigmoid(x) for x in logits], logits=logits)
        return probs, (probs >= self.thresholds).astype(np.int64)

    def predict_paths(self, paths: Sequence[Path], batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """Image files -> ``(probs [N,C], preds [N,C])``; aligned with the bundle's aligner.

        ``batch_size`` images are read and aligned at a time; the result does
        not depend on it.
        """
        aligner = self.aligner()
        crops = []
        for start in range(0, len(paths), batch_size):
            images = [read_image(p) for p in paths[start:start + batch_size]]
            crops.extend(np.asarray(face.image.convert("RGB")) for face in aligner.align(images))
        if not crops:
            raise UserError("no images to predict")
        return self.predict_crops(np.stack(crops))


def load_bundle(folder: str | Path, device: str = "cpu") -> Bundle:
    """Load a bundle folder; a damaged one (bad JSON, missing fields or weights) is refused."""
    folder = Path(folder)
    meta = read_meta(folder)
    device = resolve_device(device, "--device")
    n_aus = len(meta["schema"]["aus"])
    models = {}
    for view, spec in meta["views"].items():
        model = recipes.build("backbone", spec["backbone"], num_classes=n_aus, input_size=meta["input_size"])
        load_exact(model, folder / spec["weights"])
        model.normalization = _normalization(spec)  # what it was trained with, whatever the code says now
        models[view] = model.to(device).eval()
    ensembler = recipes.build("ensembler", {k: v for k, v in meta["ensembler"].items() if k != "fitted"})
    set_fitted_state(ensembler, meta["ensembler"].get("fitted", {}))
    return Bundle(folder, meta, models, ensembler, np.asarray(meta["thresholds"], dtype=float), device)


def _normalization(view: dict[str, Any]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    if "normalization" not in view:  # format 1
        return IR_NORMALIZATION
    return tuple(map(float, view["normalization"]["mean"])), tuple(map(float, view["normalization"]["std"]))


def read_meta(folder: Path) -> dict[str, Any]:
    """``bundle.json``, checked field by field before anything is built from it."""
    meta_file = folder / "bundle.json"
    if not meta_file.is_file():
        raise UserError(f"{folder}: not a model bundle (no bundle.json)")
    try:
        meta = json.loads(meta_file.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{meta_file}: damaged bundle file, not valid JSON ({exc}); "
                        f"export the bundle again") from None
    if not isinstance(meta, dict) or meta.get("format") not in READS:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise UserError(f"{meta_file}: bundle format {found!r}, expected one of "
                        f"{', '.join(map(str, READS))} (written by another version of au-harness)")

    def bad(field: str, expected: str) -> UserError:
        return UserError(f"{meta_file}: damaged bundle, field {field!r}: expected {expected}")

    schema = meta.get("schema")
    if not (isinstance(schema, dict) and isinstance(schema.get("aus"), list) and schema["aus"]
            and all(isinstance(a, str) for a in schema["aus"]) and isinstance(schema.get("name"), str)
            and isinstance(schema.get("flip_pairs"), list)):
        raise bad("schema", "name, a list of AU names and flip_pairs")
    size = meta.get("input_size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 16:
        raise bad("input_size", "an integer >= 16")
    thresholds = meta.get("thresholds")
    if not (isinstance(thresholds, list) and len(thresholds) == len(schema["aus"])
            and all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in thresholds)):
        raise bad("thresholds", f"{len(schema['aus'])} numbers, one per AU")
    for key in ("aligner", "ensembler", "smoother"):
        if key == "smoother" and key not in meta:  # written before smoothers existed
            continue
        if not (isinstance(meta.get(key), dict) and isinstance(meta[key].get("name"), str)):
            raise bad(key, "a component table with a name")
    views = meta.get("views")
    if not isinstance(views, dict) or not views:
        raise bad("views", "at least one view")
    for view, spec in views.items():
        if not (isinstance(spec, dict) and isinstance(spec.get("weights"), str)
                and isinstance(spec.get("backbone"), dict) and isinstance(spec["backbone"].get("name"), str)):
            raise bad(f"views.{view}", "a backbone table and a weights path")
        norm = spec.get("normalization", {"mean": [0.5] * 3, "std": [0.5] * 3} if meta["format"] == 1 else None)
        if not (isinstance(norm, dict) and all(
                isinstance(norm.get(k), list) and len(norm[k]) == 3
                and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in norm[k])
                for k in ("mean", "std")) and all(x > 0 for x in norm["std"])):
            raise bad(f"views.{view}.normalization", "mean and std, 3 numbers each (std > 0)")
        weights = folder / spec["weights"]
        if not weights.is_file():
            raise UserError(f"{folder}: damaged bundle, weights of view {view!r} missing ({weights})")
    return meta


def list_images(source: Path) -> list[Path]:
    """A folder (its image files, sorted) or a text file listing one image path per line
    (a relative path is read from the list file's folder)."""
    return _list_files(Path(source), IMAGE_SUFFIXES, "image", "images")


def list_inputs(source: Path) -> list[Path]:
    """As :func:`list_images`, images and videos (``auh predict``)."""
    return _list_files(Path(source), IMAGE_SUFFIXES | VIDEO_SUFFIXES, "image or video",
                       "images or videos")


def _list_files(source: Path, suffixes: frozenset[str], what: str, whats: str) -> list[Path]:
    endings = ", ".join(sorted(suffixes))
    if source.is_dir():
        paths = sorted(p for p in source.iterdir() if p.suffix.lower() in suffixes)
        if not paths:
            raise UserError(f"{source}: no {what} files ({endings})")
        return paths
    if source.is_file() and source.suffix.lower() in suffixes:
        return [source]
    if source.exists() and not source.is_dir():
        data = check_input_file(source, "list file").read_bytes()
        try:
            if b"\x00" in data:
                raise UnicodeDecodeError("utf-8", data, data.index(b"\x00"), data.index(b"\x00") + 1, "NUL")
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise UserError(f"{source}: not an {what} ({endings}) nor a text "
                            f"file listing {whats} (it holds binary data)") from None
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        if not lines:
            raise UserError(f"{source}: the list of {whats} is empty")
        paths = [(source.parent / ln) if not Path(ln).is_absolute() else Path(ln) for ln in lines]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise UserError(f"{source}: {len(missing)} listed {whats} do not exist (first: {missing[0]})")
        return paths
    raise UserError(f"{source}: no such folder, image or list file")
