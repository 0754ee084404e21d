"""What a run returns: :class:`RunResult` (the whole run) and :class:`FoldResult` (one round).

Both are frozen: a lifecycle hook (``auh_run_end``) gets the result itself
and can read everything but change nothing, so what a plugin does cannot
alter a score. A score is the JSON object of
:func:`harness.metrics.challenge_score`: ``final``, ``accuracy``, ``f1``,
``n_images``, ``per_au`` (``{AU: {"accuracy", "f1", "n"}}``) and, with a
bootstrap, ``ci95``; it is shown read-only.

**The reports rule** (stated here only): what a lifecycle plugin learns about
a run (the tracking plugin: its tracking URI, experiment and run ids, the
model URI and the command that opens the UI) it reports in
``run.state["reports"][<plugin purpose>]`` (``run`` is the
:class:`harness.pipeline.RunView` its hooks get; the key is :data:`REPORTS`):
kept in the run's ``state.json`` and handed back as :attr:`RunResult.reports`
once the hooks have run. The tracking plugin reports ``reports["tracking"]``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np

REPORTS = "reports"  # the key of run.state where lifecycle plugins report (the rule: module docstring)


def read_only(value: Any) -> Any:
    """A deep read-only view: mappings as ``MappingProxyType``, lists as tuples,
    arrays not writeable (copies, so the caller's stay as they were)."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: read_only(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(read_only(v) for v in value)
    if isinstance(value, np.ndarray):
        frozen = value.copy()
        frozen.flags.writeable = False
        return frozen
    return value


def plain(value: Any) -> Any:
    """:func:`read_only`'s inverse, for JSON: dicts, lists, arrays as nested lists."""
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


class _ReadOnly:
    """Frozen fields, stored as deep read-only views."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, read_only(getattr(self, f.name)))


@dataclass(frozen=True, eq=False)
class FoldResult(_ReadOnly):
    """One evaluation round: the fixed split, or one cross-validation fold.

    Attributes
    ----------
    name : str
        ``"split"`` or ``"fold/<k>"`` (the stage path prefix of its runs).
    score : mapping
        The challenge score of the round's test rows (ensemble, thresholded).
    view_final : mapping of str to float
        Each view alone on the same test rows, thresholded the same way.
    thresholds : ndarray of shape (C,), float64
        Fitted on the round's validation rows.
    test_rows, val_rows : ndarray of int64
        Dataset rows the round tested on and validated on.
    test_pred : ndarray of shape (len(test_rows), C), int64
        The ensemble's 0/1 test predictions.
    val_probs : ndarray of shape (len(val_rows), C), float64
        The ensemble's validation probabilities (what the thresholds were fitted on).
    ensembler : object
        The fitted ensembler (its ``*_`` state goes into the bundle).
    normalization : mapping of str to ndarray of shape (2, 3)
        Each view's backbone input mean and std.
    """

    name: str
    score: Mapping[str, Any]
    view_final: Mapping[str, float]
    thresholds: np.ndarray
    test_rows: np.ndarray
    val_rows: np.ndarray
    test_pred: np.ndarray
    val_probs: np.ndarray
    ensembler: Any
    normalization: Mapping[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class RunResult(_ReadOnly):
    """What ``auh run`` (:func:`harness.pipeline.run`) gives back.

    Attributes
    ----------
    scores : mapping
        The challenge score of the pooled test rows of every round (with a
        k-fold evaluation, the out-of-fold predictions of all folds).
    folds : tuple of FoldResult
        One per round, in order.
    cv : mapping
        ``mean`` and ``std`` of the rounds' ``final``, ``n_folds``.
    view_final : mapping of str to float
        Each view alone, the mean over rounds of its ``final``.
    baselines : mapping of str to score
        Trivial predictors on the same test rows: ``all_zeros``, ``prior``.
    faces : mapping
        ``n`` images aligned, ``not_found`` of them without a face (center crop).
    bundle : str
        The model bundle folder (the first round's models).
    out_dir : str
        The run folder.
    aus : tuple of str
        The AU columns, in order.
    reports : mapping
        What lifecycle plugins reported (the reports rule: the module docstring).
    protocol : mapping
        How the rounds were drawn: ``benchmark`` and ``metric`` (what ``final`` is),
        ``mode``, and where there are, ``folds``, ``repeats``, the fold ``manifest``
        and its ``manifest_sha256``.

    The headline numbers are attributes too (``final``, ``accuracy`` (also
    ``acc``), ``f1``, ``per_au``, ``ci95``), and ``result["scores"]``-style
    access gives the fields in their JSON form (what ``result.json`` holds;
    ``result["val"]``: the first round's validation ``probs``, ``labels``,
    ``aus`` and ``thresholds``).
    """

    scores: Mapping[str, Any]
    folds: tuple[FoldResult, ...]
    cv: Mapping[str, Any]
    view_final: Mapping[str, float]
    baselines: Mapping[str, Mapping[str, Any]]
    faces: Mapping[str, int]
    bundle: str
    out_dir: str
    aus: tuple[str, ...]
    val_labels: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((0, 0), np.int64))
    reports: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    protocol: Mapping[str, Any] = field(default_factory=dict)

    @property
    def final(self) -> float:
        return self.scores["final"]

    @property
    def accuracy(self) -> float:
        return self.scores["accuracy"]

    acc = accuracy

    @property
    def f1(self) -> float:
        return self.scores["f1"]

    @property
    def per_au(self) -> Mapping[str, Mapping[str, Any]]:
        return self.scores["per_au"]

    @property
    def ci95(self) -> tuple[float, float] | None:
        return self.scores.get("ci95")

    def to_json(self) -> dict[str, Any]:
        """The result as plain JSON values (``result.json``; the reports are in ``state.json``)."""
        return {"scores": plain(self.scores), "folds": [plain(f.score) for f in self.folds],
                "cv": plain(self.cv), "view_final": plain(self.view_final),
                "baselines": plain(self.baselines), "faces": plain(self.faces), "bundle": self.bundle,
                "out_dir": self.out_dir, "protocol": plain(self.protocol)}

    def validation(self) -> dict[str, Any]:
        """The first round's validation predictions: ``probs``, ``labels``, ``aus``, ``thresholds``."""
        first = self.folds[0]
        return {"probs": first.val_probs, "labels": self.val_labels, "aus": list(self.aus),
                "thresholds": first.thresholds}

    def __getitem__(self, key: str) -> Any:
        if key == "val":
            return self.validation()
        if key == "reports":
            return plain(self.reports)
        return self.to_json()[key]

    def __contains__(self, key: object) -> bool:
        return key in ("val", "reports") or key in self.to_json()

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def with_reports(self, reports: Mapping[str, Any]) -> RunResult:
        """The same result with what the lifecycle plugins reported."""
        return dataclasses.replace(self, reports=reports)
