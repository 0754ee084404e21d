"""What every component kind provides: the one statement of the contracts.

A plugin registers factories (see :mod:`harness.hookspecs`); what a factory
returns must satisfy its kind's protocol below. ``C`` is the number of AUs,
``N`` the number of rows; labels are int arrays of 1 (present), 0 (absent)
and 999 (unknown). ``harness.testing.check_component(kind, name)`` checks a
component against its protocol (``auh plugins --check NAME`` runs it).

**What the harness passes.** Every factory takes the recipe table's
parameters as keywords; some kinds also get keywords from the harness
(:data:`PASSED`): an aligner is built with ``size``, a backbone with
``num_classes`` and ``input_size``. A factory that cannot take them is refused
when its plugin registers, naming the plugin. A family (a name ending in
``:*``, e.g. ``timm:*``) gets the member name as its first positional argument.

**Optional capabilities are declared, never guessed.** A component that
does more than its protocol's required methods says so in a class attribute
``capabilities`` (a set of names from :data:`CAPABILITIES`); the harness
reads nothing else (:func:`capabilities`).

**Fitting** (the scikit-learn convention, for every kind that learns from
data: thresholders always, ensemblers and losses that declare ``"fit"``):
``fit(...)`` returns ``self``; the constructor's parameters are never
changed by ``fit``; what is learned lives in attributes whose names end in
``_`` (``thresholds_``, ``weights_``, ``rates_``). A model bundle saves
exactly those attributes of its ensembler (and the thresholder's
``thresholds_``), as JSON numbers or lists, and sets them back on load.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, Sequence, runtime_checkable

import numpy as np

if TYPE_CHECKING:  # the protocols name these types; importing them costs torch and PIL
    import torch
    from PIL import Image

    from harness.data import AlignedFace, AUDataset
    from harness.tooloutput import ToolOutput

# Keywords the harness itself passes to a kind's factory, beside the recipe's parameters.
PASSED: dict[str, tuple[str, ...]] = {
    "aligner": ("size",),
    "backbone": ("num_classes", "input_size"),
}

# The optional capabilities a component of each kind may declare, and what each promises.
CAPABILITIES: dict[str, dict[str, str]] = {
    "aligner": {"landmarks": "align(images, landmarks=...) uses the dataset's ground-truth "
                             "landmarks [N, 5, 2] (image pixels); the crop cache passes them",
                "all_faces": "align_all(images) -> [[AlignedFace, ...], ...]: every face of each "
                             "image, the one align returns first (auh predict reports them all)"},
    "loss": {"fit": "fit(train_labels) -> self, called once before training",
             "random": "draws its random choices from the attribute generator (torch.Generator), "
                       "which the engine seeds for every epoch from the run's seed"},
    "ensembler": {"fit": "fit(probs_list, labels, thresholder) -> self on validation predictions"},
}

# Input normalization of a backbone: per-channel (mean, std) applied to [0, 1] RGB.
Normalization = tuple[tuple[float, float, float], tuple[float, float, float]]
IR_NORMALIZATION: Normalization = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))  # [0, 1] -> [-1, 1]


def capabilities(component: Any) -> frozenset[str]:
    """The capabilities ``component`` declares (its ``capabilities`` attribute; none if absent)."""
    return frozenset(getattr(component, "capabilities", ()))


def fitted_state(component: Any) -> dict[str, Any]:
    """What ``fit`` learned: the attributes ending in ``_`` (not ``_private``), as plain
    JSON values (arrays as nested lists)."""
    state = {}
    for key, value in vars(component).items():
        if key.endswith("_") and not key.startswith("_"):
            state[key] = np.asarray(value).tolist() if isinstance(value, (np.ndarray, tuple)) else value
    return state


def set_fitted_state(component: Any, state: dict[str, Any]) -> Any:
    """Put a :func:`fitted_state` back on a freshly built component (lists become arrays)."""
    for key, value in state.items():
        setattr(component, key, np.asarray(value) if isinstance(value, list) else value)
    return component


@runtime_checkable
class Aligner(Protocol):
    """Maps a batch of images to square face crops, one per image, in order.

    Built as ``factory(size=S, **params)``: ``S`` is the crop side in pixels.
    The instance must pickle (the crop cache sends it to worker processes).

    Attributes
    ----------
    cache_key : str
        Identifies the aligner's configuration and implementation version;
        crops cached under one key are reused for it, so change the key
        whenever the crops would change.
    capabilities : set of str, optional
        ``"landmarks"`` when :meth:`align` takes ``landmarks``; ``"all_faces"``
        with ``align_all(images)``: a list of faces per image (at least one),
        the face :meth:`align` returns first, then the others it found.
    """

    cache_key: str

    def align(self, images: Sequence[Image.Image]) -> list[AlignedFace]:
        """Align ``images``.

        Parameters
        ----------
        images : list of PIL.Image.Image
            Any mode and size (converted to RGB by the aligner).
        landmarks : ndarray of shape (N, 5, 2), float, optional
            Only with the ``"landmarks"`` capability: ground-truth points per
            image (left eye, right eye, nose, left and right mouth corners),
            image pixel coordinates; a row of NaN means unknown.

        Returns
        -------
        list of harness.data.AlignedFace, length N
            ``image``: RGB ``S x S``; ``landmarks``: float32 ``(5, 2)`` in crop
            coordinates; ``found``: False where no face was found, and then
            the crop is a fallback (a labelled image is never dropped). The
            crops depend only on each image, not on the batch it came in.
            Optional, for reports (``None`` where unknown): ``box`` (4,) and
            ``source_landmarks`` (5, 2), where the face is in the image
            (pixels), and ``score``, a detector's confidence.
        """
        ...


@runtime_checkable
class Backbone(Protocol):
    """A ``torch.nn.Module`` mapping images to AU logits.

    Built as ``factory(num_classes=C, input_size=S, **params)``. Local weights
    (``init = "path"``) and pretraining are the harness's business: weights
    whose shapes match are loaded by name, a classifier of another size is
    left fresh.

    Attributes
    ----------
    normalization : tuple (mean, std), each 3 floats
        The input normalization the network expects, per RGB channel, applied
        to ``[0, 1]`` pixels: ``x = (rgb - mean) / std``. The IR nets use
        ``(0.5, 0.5)`` (inputs in ``[-1, 1]``); a timm model its own
        ``pretrained_cfg`` mean and std. Recorded in the bundle and honoured
        at prediction.
    """

    normalization: Normalization

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of a batch.

        Parameters
        ----------
        x : Tensor of shape (B, 3, S, S), float32, normalized as ``normalization`` says

        Returns
        -------
        Tensor of shape (B, C), float
            Logits; in ``eval()`` mode row ``b`` depends only on ``x[b]``.
        """
        ...


@runtime_checkable
class Sampler(Protocol):
    """Chooses the rows of one training epoch."""

    def sample(self, labels: np.ndarray, seed: int) -> np.ndarray:
        """The epoch's row order.

        Parameters
        ----------
        labels : ndarray of shape (N, C), int, values 1 / 0 / 999
            999 counts as not present.
        seed : int

        Returns
        -------
        ndarray of shape (M,), int64
            Row indices in ``[0, N)``, in training order (originals plus any
            clones, already shuffled). The same ``(labels, seed)`` gives the
            same array.
        """
        ...


@runtime_checkable
class Loss(Protocol):
    """A ``torch.nn.Module`` scoring logits against labels with unknowns.

    Capabilities: ``"fit"`` (``fit(labels) -> self``: learns from the
    training labels, ``labels`` an int ndarray ``(N, C)``, state in ``*_``
    attributes) and ``"random"`` (random choices drawn from ``self.generator``,
    a ``torch.Generator`` the engine seeds every epoch; such a loss takes no
    seed parameter of its own).
    """

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The batch's loss.

        Parameters
        ----------
        logits : Tensor of shape (N, C), float
            Raw scores, before any sigmoid.
        labels : Tensor of shape (N, C), float, values 1 / 0 / 999

        Returns
        -------
        Tensor of shape (), float
            Finite; elements labelled 999 have zero weight (no gradient reaches them).
        """
        ...


@runtime_checkable
class Ensembler(Protocol):
    """Combines the views' predictions into one probability matrix.

    Capability ``"fit"``: ``fit(probs_list, labels, thresholder) -> self`` on
    validation predictions only, where ``thresholder`` is the recipe's
    (unfitted) thresholder, for an ensembler that scores candidate
    combinations the way the pipeline will threshold them; what it learns
    lives in ``*_`` attributes, which the bundle saves.
    """

    def combine(self, probs_list: Sequence[np.ndarray],
                logits: Sequence[np.ndarray] | None = None) -> np.ndarray:
        """One probability per row and AU.

        Parameters
        ----------
        probs_list : list of ndarray of shape (N, C), float64, in [0, 1]
            One per view, in recipe order.
        logits : list of ndarray of shape (N, C), float, optional
            The same views' logits, for ensemblers that average them.

        Returns
        -------
        ndarray of shape (N, C), float64, in [0, 1]
            Row ``n`` depends only on row ``n`` of the inputs.
        """
        ...


@runtime_checkable
class Thresholder(Protocol):
    """Learns one threshold per AU on validation predictions (never test rows).

    Attributes
    ----------
    thresholds_ : ndarray of shape (C,), float64
        Set by :meth:`fit`; a score ``>=`` its AU's threshold predicts 1.
    """

    def fit(self, probs: np.ndarray, labels: np.ndarray) -> Thresholder:
        """Learn ``thresholds_``; rows labelled 999 are left out of their AU's fit.

        Parameters
        ----------
        probs : ndarray of shape (N, C), float64
        labels : ndarray of shape (N, C), int, values 1 / 0 / 999

        Returns
        -------
        self
        """
        ...

    def predict(self, probs: np.ndarray) -> np.ndarray:
        """``(probs >= thresholds_)`` as an int64 ndarray of shape (N, C)."""
        ...


@runtime_checkable
class SmootherStream(Protocol):
    """One video's frames, pushed in order in batches of any size."""

    def push(self, probs: np.ndarray) -> np.ndarray:
        """Take the next frames' probabilities ``[B, C]`` float64 and return, in frame order,
        the smoothed rows ``[K, C]`` float64 that are final now (``K`` may be 0); a row is
        returned once, for the oldest frame not yet returned."""
        ...

    def close(self) -> np.ndarray:
        """The video ended: the remaining smoothed rows ``[R, C]``, so that every frame pushed
        has exactly one row."""
        ...


@runtime_checkable
class Smoother(Protocol):
    """Smooths per-frame probabilities over time, within one video.

    The smoothed values must not depend on how the frames were cut into
    pushes (``auh predict`` streams a video in batches, ``auh run`` pushes a
    video whole), a stream never sees two videos, and probabilities in
    [0, 1] stay in [0, 1]. Nothing is fitted: the recipe's parameters are
    the whole state. Thresholds are fitted on smoothed validation predictions.
    """

    def stream(self) -> SmootherStream:
        """A fresh stream for one video."""
        ...


class Dataset(Protocol):
    """What a dataset factory returns: a :class:`harness.data.AUDataset`.

    ``factory(**params) -> AUDataset``: image paths, labels ``(N, C)`` int in
    the dataset's own AU schema, optional landmarks ``(N, 5, 2)``, fixed
    splits and folds, and named companion sets
    (:class:`harness.data.LabelledImages`) that a view's ``pretrain`` names.
    """

    def __call__(self, **params: Any) -> AUDataset: ...


@runtime_checkable
class Reader(Protocol):
    """Reads another tool's AU output."""

    def read(self, path: str) -> ToolOutput:
        """Parse what the tool wrote (a file or a folder).

        Returns
        -------
        harness.tooloutput.ToolOutput
            Columns are AU names (``"AU12"``). A reader factory may take ``aus``,
            the benchmark's AU names, and keep only those (the scorer passes them;
            it maps any reader's AUs onto the benchmark's). A missing or malformed input raises
            :class:`harness.errors.UserError` naming the file, the line and
            what was expected.
        """
        ...


class BenchmarkFactory(Protocol):
    """What a benchmark factory returns: a :class:`harness.benchmark.Benchmark`.

    ``factory() -> Benchmark``: the AUs, flip pairs and label coding (its
    ``schema``), the name of a registered metric, the unit of evaluation
    (``"image"`` or ``"frame"``), the truth and submission layouts, the default
    protocol. The same object every call (a declaration, not a state).
    """

    def __call__(self) -> Any: ...


class MetricFactory(Protocol):
    """What a metric factory returns: a :class:`harness.metrics.Metric`.

    ``final(accuracy, f1)`` and ``per_au(acc, f1)`` take float64 arrays of any
    matching shape (the last axis AUs for ``per_au``; the leading axes
    bootstrap resamples and submissions), return arrays of that shape, NaN
    where an input is NaN, and depend on nothing else.
    """

    def __call__(self) -> Any: ...


PROTOCOLS: dict[str, Any] = {"aligner": Aligner, "backbone": Backbone, "sampler": Sampler,
                             "loss": Loss, "ensembler": Ensembler, "thresholder": Thresholder,
                             "smoother": Smoother, "dataset": Dataset, "reader": Reader,
                             "benchmark": BenchmarkFactory, "metric": MetricFactory}
