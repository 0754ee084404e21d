"""Multi-label stratified splits: cross-validation folds and train/val/test.

:func:`iterative_stratification` is the algorithm of Sechidis, Tsoumakas and
Vlahavas, "On the stratification of multi-label data" (ECML PKDD 2011): the
rarest label is distributed first, each of its rows going to the fold that
still wants the most of that label. It keeps every label's positive rate
close to equal across folds, which a random split does not for rare AUs.
Labels are coded 1 / 0 / 999; only 1 counts as positive.

Where rows belong to people (frames of BP4D, DISFA, Aff-Wild2), folds are
subject-exclusive instead: a :class:`FoldManifest` (a standard partition,
shipped as a JSON file of subject lists per fold; its sha256 is recorded in
every run) or a seeded :func:`subject_folds`, and a round's validation
subjects are held out of its training subjects (:func:`subject_holdout`).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from harness.errors import UserError
from harness.schema import POSITIVE

SPLIT_NAMES: tuple[str, str, str] = ("train", "val", "test")


def iterative_stratification(labels: np.ndarray, n_folds: int = 5, seed: int = 0,
                             proportions: Sequence[float] | None = None) -> np.ndarray:
    """Assign every row of ``labels[N, C]`` to one of ``n_folds`` folds.

    ``proportions`` (default: equal) gives each fold's share of the rows.
    Returns ``fold[N]`` (int64, values ``0 .. n_folds-1``). Deterministic for
    a given ``(labels, n_folds, seed, proportions)``.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be [N, C], got shape {labels.shape}")
    if proportions is None:
        proportions = np.full(n_folds, 1.0 / n_folds)
    ratio = np.asarray(proportions, dtype=np.float64)
    if len(ratio) != n_folds or (ratio < 0).any() or ratio.sum() <= 0:
        raise ValueError(f"need {n_folds} non-negative proportions, got {list(proportions)}")
    ratio = ratio / ratio.sum()
    rng = np.random.default_rng(seed)
    positive = labels == POSITIVE
    n = len(labels)

    # Desired remaining rows per fold, and desired remaining positives per (label, fold).
    want_rows = ratio * n
    want = positive.sum(0)[:, None] * ratio[None, :]
    fold = np.full(n, -1, dtype=np.int64)
    remaining = positive.sum(0).astype(np.int64)
    # Rows carrying each label, visited in a seeded random order.
    row_order = rng.permutation(n)
    members = [row_order[positive[row_order, c]] for c in range(labels.shape[1])]
    row_labels = [np.flatnonzero(r) for r in positive]

    while (remaining > 0).any():
        # The label with the fewest positives left to place goes next (ties: lowest column).
        rarest = int(np.argmin(np.where(remaining > 0, remaining, np.iinfo(np.int64).max)))
        for row in members[rarest]:
            if fold[row] >= 0:
                continue
            f = _pick_fold(want[rarest], want_rows, rng)
            fold[row] = f
            cols = row_labels[row]
            want[cols, f] -= 1
            want_rows[f] -= 1
            remaining[cols] -= 1

    # Rows with no positive label fill each fold up to its desired size.
    rest = np.flatnonzero(fold < 0)
    if len(rest):
        rest = rest[rng.permutation(len(rest))]
        fold[rest] = _fill(want_rows, len(rest), ratio)
    return fold


def _pick_fold(want_label: np.ndarray, want_rows: np.ndarray, rng: np.random.Generator) -> int:
    # Most wanted for this label; ties by most wanted rows; remaining ties at random.
    best = np.flatnonzero(want_label == want_label.max())
    if len(best) > 1:
        best = best[want_rows[best] == want_rows[best].max()]
    return int(best[0] if len(best) == 1 else rng.choice(best))


def _fill(want_rows: np.ndarray, count: int, ratio: np.ndarray) -> np.ndarray:
    """Fold ids for ``count`` rows, shared in proportion to each fold's remaining want
    (largest-remainder rounding), so every fold ends close to its share."""
    need = np.maximum(want_rows, 0)
    target = (need if need.sum() > 0 else ratio) * count / (need.sum() if need.sum() > 0 else 1.0)
    quota = np.floor(target).astype(np.int64)
    quota[np.argsort(quota - target, kind="stable")[: count - quota.sum()]] += 1
    return np.repeat(np.arange(len(quota)), quota)


def train_val_test_split(labels: np.ndarray, fractions: Sequence[float] = (0.7, 0.1, 0.2),
                         seed: int = 0) -> dict[str, np.ndarray]:
    """Stratified ``{"train", "val", "test"}`` row indices (sorted) with the given fractions."""
    if len(fractions) != 3:
        raise ValueError(f"fractions must be (train, val, test), got {list(fractions)}")
    part = iterative_stratification(labels, 3, seed=seed, proportions=fractions)
    return {name: np.flatnonzero(part == i) for i, name in enumerate(SPLIT_NAMES)}


# ------------------------------------------------- subject-exclusive protocols
VAL_SUBJECT_SHARE = 0.2  # of a round's training subjects, held out to fit thresholds and select


@dataclass(frozen=True)
class FoldManifest:
    """A standard partition: the subjects of each fold, from a JSON file
    ``{"folds": [[subject, ...], ...], "source": "..."}``; ``sha256`` is the file's."""

    path: str
    folds: tuple[tuple[str, ...], ...]
    sha256: str
    source: str = ""

    def describe(self) -> dict[str, str]:
        """What a run records of it (state.json, result.json, MLflow tags)."""
        return {"manifest": self.path, "manifest_sha256": self.sha256}


def read_manifest(path: str | Path, where: str = "fold manifest") -> FoldManifest:
    """Read and check a fold manifest: at least 2 folds, each a non-empty list of
    subject names, no subject in two folds."""
    path = Path(path)
    try:
        data = path.read_bytes()
        manifest = json.loads(data.decode("utf-8"))
    except OSError as exc:
        raise UserError(f"{where}: cannot read {str(path)!r} ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"{where}: {str(path)!r} is not JSON ({exc})") from None
    folds = manifest.get("folds") if isinstance(manifest, dict) else None
    if not isinstance(folds, list) or len(folds) < 2 or not all(
            isinstance(f, list) and f and all(isinstance(s, str) and s for s in f) for f in folds):
        raise UserError(f"{where}: {str(path)!r}: expected {{\"folds\": [[subject, ...], ...]}} "
                        f"with at least 2 non-empty folds of subject names")
    seen: dict[str, int] = {}
    for k, fold in enumerate(folds):
        for subject in fold:
            if subject in seen:
                raise UserError(f"{where}: {str(path)!r}: subject {subject!r} is in fold {seen[subject]} "
                                f"and fold {k}; a subject belongs to one fold")
            seen[subject] = k
    return FoldManifest(str(path), tuple(tuple(f) for f in folds), hashlib.sha256(data).hexdigest(),
                        str(manifest.get("source", "")))


def manifest_folds(subjects: Sequence[str], manifest: FoldManifest, where: str = "fold manifest") -> np.ndarray:
    """Each row's fold under ``manifest`` (``subjects``: each row's subject). A subject the
    manifest does not list, or a fold left with no row, is an error."""
    index = {s: k for k, fold in enumerate(manifest.folds) for s in fold}
    missing = sorted({s for s in subjects if s not in index})
    if missing:
        raise UserError(f"{where}: subjects {', '.join(missing[:5])} are in no fold of {manifest.path}")
    folds = np.array([index[s] for s in subjects], dtype=np.int64)
    empty = [k for k in range(len(manifest.folds)) if not (folds == k).any()]
    if empty:
        raise UserError(f"{where}: fold {empty[0]} of {manifest.path} has no row in the data "
                        f"(none of its subjects {', '.join(manifest.folds[empty[0]][:5])}, ...)")
    return folds


def subject_folds(subjects: Sequence[str] | np.ndarray, n_folds: int, seed: int = 0) -> np.ndarray:
    """A seeded subject-exclusive partition: subjects shuffled, then dealt in that order, each
    to the fold with the fewest rows so far (folds stay close in size). ``fold[N]``."""
    subjects = np.asarray(subjects)
    names, inverse, counts = np.unique(subjects, return_inverse=True, return_counts=True)
    if len(names) < n_folds:
        raise UserError(f"{len(names)} subjects cannot fill {n_folds} subject-exclusive folds")
    order = np.random.default_rng(seed).permutation(len(names))
    size = np.zeros(n_folds, dtype=np.int64)
    of_subject = np.empty(len(names), dtype=np.int64)
    for s in order:
        f = int(np.argmin(size))
        of_subject[s] = f
        size[f] += counts[s]
    return of_subject[inverse]


def subject_holdout(rows: np.ndarray, subjects: np.ndarray, seed: int = 0,
                    share: float = VAL_SUBJECT_SHARE) -> tuple[np.ndarray, np.ndarray]:
    """``(train, val)`` of ``rows``: a seeded ``share`` of their subjects (at least one, and
    one left to train) goes to validation, whole."""
    rows = np.asarray(rows)
    names = np.unique(subjects[rows])
    if len(names) < 2:
        raise UserError(f"{len(names)} training subject(s): need 2 or more to hold one out for validation")
    n_val = min(len(names) - 1, max(1, int(round(share * len(names)))))
    held = np.random.default_rng(seed).permutation(names)[:n_val]
    val = np.isin(subjects[rows], held)
    return rows[~val], rows[val]
