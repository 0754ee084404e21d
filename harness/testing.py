"""The conformance kit: does a component keep its kind's contract (:mod:`harness.protocols`)?

As scikit-learn's ``check_estimator``::

    from harness.testing import check_component
    check_component("thresholder", "search")          # a registered name
    check_component("aligner", MyAligner)             # or a factory
    check_component("dataset", "synth", n=20, size=32)  # parameters for the factory

Each kind's checks run in turn (shapes, dtypes, 999 handling, determinism
under a seed, the fit convention and the round trip of fitted state through
a bundle, batch-size independence where it applies). The first that fails
raises :class:`ComponentCheckError`, one line: which component, which check,
what was found. ``auh plugins --check [NAME]`` runs it from the shell.
"""
from __future__ import annotations

import inspect
import json
import pickle
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from harness.errors import UserError
from harness.protocols import CAPABILITIES, capabilities, fitted_state, set_fitted_state
from harness.schema import UNKNOWN

N_AUS = 5
SIZE = 32  # crop side / input size the checks build aligners and backbones with


class ComponentCheckError(AssertionError):
    """A component broke its kind's contract; the message is one line."""


def check_component(kind: str, name_or_factory: str | Callable[..., Any], **params: Any) -> list[str]:
    """Run every check of ``kind`` on a registered component or a factory.

    ``params`` go to the factory beside what the harness passes (an
    aligner's ``size``, a backbone's ``num_classes`` and ``input_size``).
    Returns the names of the checks passed; raises
    :class:`ComponentCheckError` at the first failure.
    """
    if kind not in CHECKS:
        from harness.registry import unknown_message

        raise UserError(unknown_message("component kind", kind, CHECKS))
    label, build = _builder(kind, name_or_factory, params)
    passed: list[str] = []
    for check in CHECKS[kind]:
        what = check.__name__.removeprefix("_").replace("_", " ")
        try:
            check(build)
        except ComponentCheckError as exc:
            raise ComponentCheckError(f"{kind} {label}: {what}: {exc}") from None
        except UserError:
            raise
        except Exception as exc:  # the component raised where the contract says it works
            raise ComponentCheckError(f"{kind} {label}: {what}: raised "
                                      f"{type(exc).__name__}: {' '.join(str(exc).split())}") from exc
        passed.append(what)
    return passed


def _builder(kind: str, name_or_factory: Any, params: dict[str, Any]) -> tuple[str, Callable[..., Any]]:
    """A label for messages and ``build(**passed)`` -> a fresh component."""
    if isinstance(name_or_factory, str):
        import harness

        component, lead = harness.get_registry().get(kind, name_or_factory)
        factory, label = component.factory, repr(name_or_factory)
    else:
        factory, lead = name_or_factory, ()
        label = getattr(factory, "__qualname__", repr(factory))

    def build(**passed: Any) -> Any:
        return factory(*lead, **{**passed, **params})

    build.factory = factory  # type: ignore[attr-defined]
    return label, build


def _fail(message: str) -> None:
    raise ComponentCheckError(message)


def _expect(condition: Any, message: str) -> None:
    if not condition:
        _fail(message)


# ------------------------------------------------------------------ shared parts
def _labels(n: int = 40, seed: int = 0) -> np.ndarray:
    """Labels ``[n, N_AUS]`` with every value: 1, 0 and 999 in each column."""
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, N_AUS)) < 0.3).astype(np.int64)
    labels[rng.random((n, N_AUS)) < 0.15] = UNKNOWN
    labels[0], labels[1], labels[2] = 1, 0, UNKNOWN
    return labels


def _probs(n: int = 40, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).random((n, N_AUS))


def _declared(component: Any, kind: str) -> frozenset[str]:
    found = capabilities(component)
    unknown = found - set(CAPABILITIES.get(kind, {}))
    _expect(not unknown, f"declares unknown capabilities {sorted(unknown)}; a {kind} may declare "
                         f"{sorted(CAPABILITIES.get(kind, {})) or 'none'}")
    return found


def _fit_capability(component: Any, kind: str) -> bool:
    declared = "fit" in _declared(component, kind)
    has = callable(getattr(component, "fit", None))
    _expect(declared == has, "has fit() but does not declare the 'fit' capability" if has
            else "declares 'fit' but has no fit()")
    return declared


def _constructor_values(component: Any, factory: Any) -> dict[str, Any]:
    """The constructor parameters kept as same-named attributes (what fit must not change)."""
    try:
        names = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return {}
    out = {}
    for name in names:
        if name in vars(component):
            value = vars(component)[name]
            out[name] = value.copy() if isinstance(value, np.ndarray) else value
    return out


def _same_values(before: dict[str, Any], component: Any) -> None:
    for name, value in before.items():
        now = vars(component)[name]
        same = np.array_equal(now, value) if isinstance(value, np.ndarray) else now is value or now == value
        _expect(same, f"fit changed the constructor parameter {name!r} ({value!r} -> {now!r}); "
                      f"learned state goes in attributes ending in '_'")


def _fitted_round_trip(component: Any, build: Callable[..., Any]) -> Any:
    """A fresh component given ``component``'s ``*_`` state through JSON, as a bundle does."""
    state = fitted_state(component)
    _expect(state, "fit learned nothing in attributes ending in '_'")
    try:
        text = json.dumps(state)
    except TypeError as exc:
        _fail(f"fitted state is not JSON numbers and lists ({exc})")
    return set_fitted_state(build(), json.loads(text))


# ---------------------------------------------------------------------- aligner
def _images() -> list[Any]:
    from PIL import Image

    rng = np.random.default_rng(0)
    shapes = [(48, 40), (64, 64), (50, 70)]
    images = [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in shapes]
    images.append(images[1].convert("L"))  # not RGB: the aligner converts
    return images


# Eyes, nose, mouth corners as fractions of the image side: where a face would be.
_FACE_POINTS = np.array([[0.34, 0.46], [0.66, 0.46], [0.5, 0.64], [0.37, 0.82], [0.63, 0.82]])


def _landmarks(images: list[Any]) -> np.ndarray:
    points = np.stack([_FACE_POINTS * min(img.size) for img in images])
    points[-1] = np.nan  # unknown: a fallback crop
    return points


def _align(aligner: Any, images: list[Any], rows: slice = slice(None)) -> list[Any]:
    """``aligner`` on ``images[rows]`` (with their landmarks, where it takes them)."""
    if "landmarks" in capabilities(aligner):
        return aligner.align(images[rows], landmarks=_landmarks(images)[rows])
    return aligner.align(images[rows])


def _crops(faces: list[Any]) -> list[np.ndarray]:
    return [np.asarray(face.image) for face in faces]


def _aligner_builds_with_size(build: Callable[..., Any]) -> None:
    aligner = build(size=SIZE)
    _declared(aligner, "aligner")
    key = getattr(aligner, "cache_key", None)
    _expect(isinstance(key, str) and key, f"cache_key must be a non-empty string, got {key!r}")
    _expect(build(size=SIZE + 8).cache_key != key, "cache_key does not change with size")


def _aligner_outputs(build: Callable[..., Any]) -> None:
    from harness.data import AlignedFace

    images = _images()
    faces = _align(build(size=SIZE), images)
    _expect(isinstance(faces, list) and len(faces) == len(images),
            f"align gave {type(faces).__name__} of {len(faces)} for {len(images)} images")
    for i, face in enumerate(faces):
        _expect(isinstance(face, AlignedFace), f"image {i}: got {type(face).__name__}, not AlignedFace")
        _expect(face.image.mode == "RGB" and face.image.size == (SIZE, SIZE),
                f"image {i}: crop {face.image.mode} {face.image.size}, expected RGB ({SIZE}, {SIZE})")
        lm = np.asarray(face.landmarks)
        _expect(lm.shape == (5, 2) and lm.dtype == np.float32,
                f"image {i}: landmarks {lm.dtype} {lm.shape}, expected float32 (5, 2)")
        _expect(isinstance(face.found, (bool, np.bool_)), f"image {i}: found is {type(face.found).__name__}")
    if "landmarks" in capabilities(build(size=SIZE)):
        _expect(not faces[-1].found, "an image whose landmarks are unknown (NaN) was marked found")


def _aligner_all_faces(build: Callable[..., Any]) -> None:
    aligner = build(size=SIZE)
    if "all_faces" not in capabilities(aligner):
        return
    images = _images()
    every = aligner.align_all(images)
    _expect(len(every) == len(images) and all(len(faces) >= 1 for faces in every),
            "align_all must give at least one face (a fallback crop) per image")
    _expect(all(np.array_equal(a, b) for a, b in zip(_crops([faces[0] for faces in every]),
                                                      _crops(aligner.align(images)))),
            "align_all's first face is not the one align returns")


def _aligner_batch_independence(build: Callable[..., Any]) -> None:
    aligner, images = build(size=SIZE), _images()
    together = _crops(_align(aligner, images))
    apart = [c for i in range(len(images)) for c in _crops(_align(aligner, images, slice(i, i + 1)))]
    _expect(all(np.array_equal(a, b) for a, b in zip(together, apart)),
            "an image's crop depends on the other images of its batch")
    _expect(all(np.array_equal(a, b) for a, b in zip(together, _crops(_align(aligner, images)))),
            "aligning the same images twice gave different crops")


def _aligner_pickles(build: Callable[..., Any]) -> None:
    aligner, images = build(size=SIZE), _images()
    copy = pickle.loads(pickle.dumps(aligner))  # the crop cache's worker processes get a copy
    _expect(all(np.array_equal(a, b) for a, b in zip(_crops(_align(aligner, images)),
                                                      _crops(_align(copy, images)))),
            "a pickled copy aligns differently")


# --------------------------------------------------------------------- backbone
def _backbone_input(batch: int = 4) -> Any:
    import torch

    return torch.from_numpy(np.random.default_rng(0).standard_normal((batch, 3, SIZE, SIZE),
                                                                     dtype=np.float32))


def _seeded(build: Callable[..., Any], seed: int) -> Any:
    import torch

    torch.manual_seed(seed)
    return build(num_classes=N_AUS, input_size=SIZE).eval()


def _backbone_outputs(build: Callable[..., Any]) -> None:
    import torch

    model = _seeded(build, 0)
    _expect(isinstance(model, torch.nn.Module), f"factory gave {type(model).__name__}, not a torch.nn.Module")
    norm = getattr(model, "normalization", None)
    try:
        mean, std = (tuple(float(x) for x in v) for v in norm)
        ok = len(mean) == len(std) == 3 and min(std) > 0
    except (TypeError, ValueError):
        ok = False
    _expect(ok, f"normalization must be (mean, std), 3 numbers each, std > 0; got {norm!r}")
    with torch.no_grad():
        out = model(_backbone_input())
    _expect(tuple(out.shape) == (4, N_AUS) and out.is_floating_point() and torch.isfinite(out).all(),
            f"logits {out.dtype} {tuple(out.shape)}, expected finite float (4, {N_AUS})")


def _backbone_batch_independence(build: Callable[..., Any]) -> None:
    import torch

    model, x = _seeded(build, 0), _backbone_input()
    with torch.no_grad():
        whole, first = model(x), model(x[:1])
    _expect(torch.allclose(whole[:1], first, atol=1e-4, rtol=1e-4),
            "in eval mode an image's logits depend on its batch")


def _backbone_deterministic_under_a_seed(build: Callable[..., Any]) -> None:
    import torch

    x = _backbone_input()
    with torch.no_grad():
        a, b = _seeded(build, 3)(x), _seeded(build, 3)(x)
    _expect(torch.equal(a, b), "two builds under the same torch seed differ")


def _backbone_bundle_round_trip(build: Callable[..., Any]) -> None:
    import torch

    from harness.training import load_exact
    from harness.weights import save_weights

    model, x = _seeded(build, 0), _backbone_input()
    with tempfile.TemporaryDirectory() as tmp:
        weights = save_weights(model, Path(tmp) / "view.safetensors")
        again = _seeded(build, 1)
        load_exact(again, weights)
    with torch.no_grad():
        _expect(torch.equal(model(x), again.eval()(x)), "weights saved and loaded give other logits")


# ---------------------------------------------------------------------- sampler
def _sampler_rows(build: Callable[..., Any]) -> None:
    sampler, labels = build(), _labels()
    _declared(sampler, "sampler")
    rows = sampler.sample(labels, 0)
    _expect(isinstance(rows, np.ndarray) and rows.ndim == 1 and rows.dtype == np.int64,
            f"sample gave {type(rows).__name__} {getattr(rows, 'dtype', '')} "
            f"{getattr(rows, 'shape', '')}, expected a 1-D int64 ndarray")
    _expect(len(rows) and rows.min() >= 0 and rows.max() < len(labels),
            f"row indices outside [0, {len(labels)})")


def _sampler_deterministic_under_a_seed(build: Callable[..., Any]) -> None:
    labels = _labels()
    _expect(np.array_equal(build().sample(labels, 7), build().sample(labels, 7)),
            "the same labels and seed gave different epochs")


def _sampler_999_is_not_present(build: Callable[..., Any]) -> None:
    labels = _labels()
    before = labels.copy()
    rows = build().sample(labels, 5)
    _expect(np.array_equal(labels, before), "sample changed its labels argument")
    _expect(np.array_equal(rows, build().sample(np.where(labels == UNKNOWN, 0, labels), 5)),
            "999 is treated differently from 0 (an unknown label is not present)")


# ------------------------------------------------------------------------- loss
def _loss_inputs(n: int = 16) -> tuple[Any, Any]:
    import torch

    labels = torch.from_numpy(_labels(n).astype(np.float32))
    logits = torch.from_numpy(np.random.default_rng(2).standard_normal((n, N_AUS), dtype=np.float32))
    return logits.requires_grad_(True), labels


def _ready_loss(build: Callable[..., Any]) -> Any:
    loss = build()
    if "fit" in capabilities(loss):
        loss.fit(_labels(60, seed=3))
    if "random" in capabilities(loss):
        loss.generator.manual_seed(11)
    return loss


def _loss_capabilities(build: Callable[..., Any]) -> None:
    import torch

    loss = build()
    _expect(isinstance(loss, torch.nn.Module), f"factory gave {type(loss).__name__}, not a torch.nn.Module")
    if _fit_capability(loss, "loss"):
        before = _constructor_values(loss, build.factory)
        _expect(loss.fit(_labels(60, seed=3)) is loss, "fit must return self")
        _same_values(before, loss)
    if "random" in capabilities(loss):
        _expect(isinstance(getattr(loss, "generator", None), torch.Generator),
                "declares 'random' but has no torch.Generator attribute 'generator'")
        _expect("seed" not in inspect.signature(build.factory).parameters,
                "declares 'random' yet takes a seed: the engine seeds its generator every epoch")


def _loss_value_and_999(build: Callable[..., Any]) -> None:
    import torch

    logits, labels = _loss_inputs()
    value = _ready_loss(build)(logits, labels)
    _expect(isinstance(value, torch.Tensor) and value.ndim == 0 and torch.isfinite(value),
            f"loss is {value!r}, expected a finite scalar tensor")
    value.backward()
    unknown = labels == UNKNOWN
    _expect(logits.grad is not None and bool((logits.grad[unknown] == 0).all()),
            "elements labelled 999 get a gradient")
    _expect(bool((logits.grad[~unknown] != 0).any()), "no known element gets a gradient")


def _loss_deterministic_under_a_seed(build: Callable[..., Any]) -> None:
    logits, labels = _loss_inputs()
    a, b = (float(_ready_loss(build)(logits, labels).detach()) for _ in range(2))
    _expect(a == b, f"the same inputs and seed gave {a} and {b}")


# -------------------------------------------------------------------- ensembler
def _views(n: int = 40) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(4)
    logits = [rng.standard_normal((n, N_AUS)) * 2 for _ in range(2)]
    return [1 / (1 + np.exp(-z)) for z in logits], logits


def _ready_ensembler(build: Callable[..., Any]) -> Any:
    ensembler = build()
    if "fit" in capabilities(ensembler):
        import harness

        probs, _ = _views()
        ensembler.fit(probs, _labels(), harness.create("thresholder", "search"))
    return ensembler


def _ensembler_combines(build: Callable[..., Any]) -> None:
    probs, logits = _views()
    before = [p.copy() for p in probs]
    out = _ready_ensembler(build).combine(probs, logits=logits)
    _expect(isinstance(out, np.ndarray) and out.shape == probs[0].shape and out.dtype == np.float64,
            f"combine gave {type(out).__name__} {getattr(out, 'dtype', '')} {getattr(out, 'shape', '')}, "
            f"expected float64 {probs[0].shape}")
    _expect(((out >= 0) & (out <= 1)).all(), "combined probabilities leave [0, 1]")
    _expect(all(np.array_equal(a, b) for a, b in zip(before, probs)), "combine changed its inputs")
    _expect(np.array_equal(out, _ready_ensembler(build).combine(probs, logits=logits)),
            "combining the same views twice gave different results")


def _ensembler_row_independence(build: Callable[..., Any]) -> None:
    probs, logits = _views()
    ensembler = _ready_ensembler(build)
    whole = ensembler.combine(probs, logits=logits)
    part = ensembler.combine([p[:7] for p in probs], logits=[z[:7] for z in logits])
    _expect(np.allclose(whole[:7], part, rtol=0, atol=1e-12), "a row's result depends on the other rows")


def _ensembler_fit_convention(build: Callable[..., Any]) -> None:
    import harness

    ensembler = build()
    if not _fit_capability(ensembler, "ensembler"):
        return
    probs, logits = _views()
    before = _constructor_values(ensembler, build.factory)
    _expect(ensembler.fit(probs, _labels(), harness.create("thresholder", "search")) is ensembler,
            "fit must return self")
    _same_values(before, ensembler)
    if fitted_state(ensembler):  # a fit that may learn nothing (weighted without fit_weights)
        again = _fitted_round_trip(ensembler, build)
        _expect(np.array_equal(ensembler.combine(probs, logits=logits), again.combine(probs, logits=logits)),
                "the fitted state saved in a bundle and loaded back combines differently")


# ------------------------------------------------------------------ thresholder
def _thresholder_fit_convention(build: Callable[..., Any]) -> None:
    thresholder, probs, labels = build(), _probs(), _labels()
    _declared(thresholder, "thresholder")
    before = _constructor_values(thresholder, build.factory)
    inputs = probs.copy(), labels.copy()
    _expect(thresholder.fit(probs, labels) is thresholder, "fit must return self")
    _same_values(before, thresholder)
    _expect(np.array_equal(probs, inputs[0]) and np.array_equal(labels, inputs[1]), "fit changed its inputs")
    t = getattr(thresholder, "thresholds_", None)
    _expect(isinstance(t, np.ndarray) and t.shape == (N_AUS,) and t.dtype == np.float64,
            f"thresholds_ is {type(t).__name__} {getattr(t, 'dtype', '')} {getattr(t, 'shape', '')}, "
            f"expected float64 ({N_AUS},)")


def _thresholder_predicts_at_or_above(build: Callable[..., Any]) -> None:
    thresholder, probs = build().fit(_probs(), _labels()), _probs(seed=9)
    pred = thresholder.predict(probs)
    _expect(isinstance(pred, np.ndarray) and pred.dtype == np.int64
            and np.array_equal(pred, (probs >= thresholder.thresholds_).astype(np.int64)),
            "predict is not (probs >= thresholds_) as int64")


def _thresholder_ignores_999_rows(build: Callable[..., Any]) -> None:
    probs, labels = _probs(), _labels()
    moved = np.where(labels == UNKNOWN, 1 - probs, probs)  # other scores on the unknown rows only
    _expect(np.array_equal(build().fit(probs, labels).thresholds_, build().fit(moved, labels).thresholds_),
            "the scores of rows labelled 999 change the thresholds")


def _thresholder_deterministic(build: Callable[..., Any]) -> None:
    probs, labels = _probs(), _labels()
    _expect(np.array_equal(build().fit(probs, labels).thresholds_, build().fit(probs, labels).thresholds_),
            "fitting the same predictions twice gave different thresholds")


def _thresholder_bundle_round_trip(build: Callable[..., Any]) -> None:
    thresholder, probs = build().fit(_probs(), _labels()), _probs(seed=9)
    saved = np.asarray(json.loads(json.dumps([float(t) for t in thresholder.thresholds_])), dtype=float)
    _expect(np.array_equal((probs >= saved).astype(np.int64), thresholder.predict(probs)),
            "thresholds saved in a bundle as JSON numbers predict differently")


# --------------------------------------------------------------------- smoother
def _pushed(stream: Any, probs: np.ndarray, cuts: list[int]) -> np.ndarray:
    """Every row a stream returns for ``probs`` pushed in pieces cut at ``cuts``."""
    out = []
    for piece in np.split(probs, cuts):
        got = stream.push(piece.copy())
        _expect(isinstance(got, np.ndarray) and got.ndim == 2 and got.shape[1] == N_AUS
                and got.dtype == np.float64, f"push returned {type(got).__name__} "
                f"{getattr(got, 'dtype', '')} {getattr(got, 'shape', '')}, expected float64 [K, {N_AUS}]")
        out.append(got)
    rest = np.asarray(stream.close(), dtype=np.float64).reshape(-1, N_AUS)
    return np.concatenate([*out, rest])


def _smoother_one_row_per_frame(build: Callable[..., Any]) -> None:
    probs = _probs()
    smoothed = _pushed(build().stream(), probs, [])
    _expect(smoothed.shape == probs.shape, f"{len(smoothed)} rows for {len(probs)} frames, expected one per frame")
    _expect(np.all((smoothed >= 0) & (smoothed <= 1)), "probabilities in [0, 1] left [0, 1]")
    _expect(np.array_equal(smoothed, _pushed(build().stream(), probs, [])), "smoothing the same frames twice differed")


def _smoother_batch_independence(build: Callable[..., Any]) -> None:
    probs = _probs()
    whole = _pushed(build().stream(), probs, [])
    for cuts in ([1, 2, 3, 4, 5, 6, 7], [13, 14, 33], list(range(1, len(probs)))):
        _expect(np.allclose(_pushed(build().stream(), probs, cuts), whole, rtol=0, atol=1e-12),
                f"pushing the frames in pieces (cut at {cuts[:4]}...) gave other values than all at once")


def _smoother_videos_independent(build: Callable[..., Any]) -> None:
    smoother, a, b = build(), _probs(seed=2), _probs(seed=3)
    alone = _pushed(smoother.stream(), b, [])
    first, second = smoother.stream(), smoother.stream()
    first.push(a)
    _expect(np.allclose(_pushed(second, b, []), alone, rtol=0, atol=1e-12),
            "a stream's values depend on another video's stream")


# ---------------------------------------------------------------------- dataset
def _dataset_contents(build: Callable[..., Any]) -> None:
    from harness.data import AUDataset, LabelledImages

    ds = build()
    _expect(isinstance(ds, AUDataset), f"factory gave {type(ds).__name__}, not harness.data.AUDataset")
    n = len(ds)
    _expect(n > 0 and np.issubdtype(ds.labels.dtype, np.integer), f"labels {ds.labels.dtype}, expected int")
    _expect(set(np.unique(ds.labels)) <= {0, 1, UNKNOWN}, "labels hold values other than 1 / 0 / 999")
    _expect(all(Path(p).is_file() for p in ds.images), "an image path is not a file")
    _expect(ds.landmarks is None or np.shape(ds.landmarks) == (n, 5, 2),
            f"landmarks {np.shape(ds.landmarks)}, expected ({n}, 5, 2)")
    seen: set[int] = set()
    for split, rows in ds.splits.items():
        _expect(rows.min(initial=0) >= 0 and rows.max(initial=0) < n, f"split {split!r} has rows outside [0, {n})")
        _expect(not seen & set(rows.tolist()), f"split {split!r} overlaps another split")
        seen |= set(rows.tolist())
    _expect(ds.folds is None or np.shape(ds.folds) == (n,), f"folds {np.shape(ds.folds)}, expected ({n},)")
    for task, companion in ds.companions.items():
        _expect(isinstance(companion, LabelledImages) and companion.task == task,
                f"companion {task!r} is not a LabelledImages of task {task!r}")
        _expect(companion.targets.min(initial=0) >= 0 and companion.targets.max(initial=0) < len(companion.classes),
                f"companion {task!r} has targets outside its {len(companion.classes)} classes")


# ----------------------------------------------------------------------- reader
def _reader_refuses_bad_input_in_one_line(build: Callable[..., Any]) -> None:
    reader = build()
    _expect(callable(getattr(reader, "read", None)), "has no read(path)")
    with tempfile.TemporaryDirectory() as tmp:
        garbage = Path(tmp) / "garbage.csv"
        garbage.write_bytes(b"\x00\xff not a tool's output \x00\n")
        for path in (Path(tmp) / "missing.csv", garbage):
            try:
                reader.read(str(path))
            except UserError as exc:
                _expect("\n" not in str(exc), f"the error for {path.name} is more than one line")
            else:
                _fail(f"read({path.name!r}) did not raise harness.errors.UserError")


# -------------------------------------------------------------------- benchmark
def _benchmark_declaration(build: Callable[..., Any]) -> None:
    import harness
    from harness.benchmark import Benchmark

    bench = build()
    _expect(isinstance(bench, Benchmark), f"factory gave {type(bench).__name__}, not harness.benchmark.Benchmark")
    _expect(build() == bench, "two calls of the factory gave different benchmarks")
    _expect(Benchmark.from_dict(json.loads(json.dumps(bench.to_dict()))) == bench,
            "to_dict() does not survive JSON and from_dict()")
    known = harness.get_registry().available("metric")
    _expect(bench.metric in known, f"metric {bench.metric!r} is not registered (metrics: {', '.join(known)})")


def _benchmark_coding_round_trip(build: Callable[..., Any]) -> None:
    coding = build().coding
    codes = np.array(coding.accepted)
    memory = coding.to_memory(codes)
    _expect(set(np.unique(memory)) <= {0, 1, UNKNOWN}, "codes read into values other than 1 / 0 / 999")
    _expect(np.array_equal(coding.to_memory(coding.to_file(memory)), memory),
            "writing and reading back changes a label")


# ----------------------------------------------------------------------- metric
def _metric_vectorized_and_nan(build: Callable[..., Any]) -> None:
    from harness.metrics import Metric

    metric = build()
    _expect(isinstance(metric, Metric), f"factory gave {type(metric).__name__}, not harness.metrics.Metric")
    rng = np.random.default_rng(0)
    acc, f1 = rng.random((4, 3, N_AUS)), rng.random((4, 3, N_AUS))
    acc[0, 0, 0] = f1[0, 0, 0] = np.nan
    for part in (metric.final, metric.per_au):
        out = np.asarray(part(acc, f1))
        _expect(out.shape == acc.shape, f"{part.__name__} gave shape {out.shape} for inputs {acc.shape}")
        _expect(np.isnan(out[0, 0, 0]) and np.isfinite(out.flat[1:]).all(),
                f"{part.__name__}: NaN where an AU is undefined, finite elsewhere, expected")
        _expect(np.array_equal(out[1], np.asarray(part(acc[1], f1[1]))),
                f"{part.__name__}: an element depends on other elements")


CHECKS: dict[str, tuple[Callable[[Callable[..., Any]], None], ...]] = {
    "aligner": (_aligner_builds_with_size, _aligner_outputs, _aligner_all_faces, _aligner_batch_independence,
                _aligner_pickles),
    "backbone": (_backbone_outputs, _backbone_batch_independence, _backbone_deterministic_under_a_seed,
                 _backbone_bundle_round_trip),
    "sampler": (_sampler_rows, _sampler_deterministic_under_a_seed, _sampler_999_is_not_present),
    "loss": (_loss_capabilities, _loss_value_and_999, _loss_deterministic_under_a_seed),
    "ensembler": (_ensembler_fit_convention, _ensembler_combines, _ensembler_row_independence),
    "thresholder": (_thresholder_fit_convention, _thresholder_predicts_at_or_above,
                    _thresholder_ignores_999_rows, _thresholder_deterministic, _thresholder_bundle_round_trip),
    "smoother": (_smoother_one_row_per_frame, _smoother_batch_independence, _smoother_videos_independent),
    "dataset": (_dataset_contents,),
    "reader": (_reader_refuses_bad_input_in_one_line,),
    "benchmark": (_benchmark_declaration, _benchmark_coding_round_trip),
    "metric": (_metric_vectorized_and_nan,),
}
