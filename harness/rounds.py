"""The evaluation rounds of a run: the fixed split, or K folds of one or more partitions.

A round is a :class:`Split` (row indices to train, validate and test on). Rows of
people (a dataset with ``subjects``) are split subject-exclusively; repeated
partitions (``evaluation.repeats``) reshuffle the subjects, seeded.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from harness.data import AUDataset
from harness.errors import UserError
from harness.progress import note
from harness.recipe import Recipe
from harness.splits import iterative_stratification, subject_folds, subject_holdout
from harness.training import derive_seed


@dataclass
class Split:
    """Row indices of one evaluation round (the fixed split, or one CV fold of one partition)."""

    name: str
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    partition: int = 0  # which subject partition (evaluation.repeats), 0: the dataset's own


def evaluation_splits(dataset: AUDataset, recipe: Recipe) -> list[Split]:
    """The fixed train/val/test split, or K folds of each of ``evaluation.repeats`` partitions.

    Without subjects, fold k tests and fold k+1 validates. With subjects (frames of people),
    folds are subject-exclusive: fold k tests, and a seeded share of the other folds'
    subjects validates (:func:`harness.splits.subject_holdout`). Partition 0 is the
    dataset's own folds (a shipped manifest); partition r > 0 reshuffles the subjects
    (or rows) into K folds, seeded by ``(run.seed, r)``: every arm of a study at a seed
    gets the same partitions.
    """
    evaluation = recipe.evaluation
    if evaluation.mode == "split":
        missing = {"train", "val", "test"} - set(dataset.splits)
        if missing:
            raise UserError(f"dataset {dataset.name!r} has no {'/'.join(sorted(missing))} split; "
                            f"use evaluation.mode = \"kfold\"")
        return [Split("split", dataset.splits["train"], dataset.splits["val"], dataset.splits["test"])]
    if dataset.partition.get("problem"):
        raise UserError(f"dataset {dataset.name!r} cannot be cross-validated: {dataset.partition['problem']}")
    k, repeats = evaluation.folds, evaluation.repeats
    rounds = []
    for r in range(repeats):
        folds = _partition(dataset, k, recipe.run.seed, r)
        prefix = f"repeat/{r}/" if repeats > 1 else ""
        rounds += [_round(dataset, folds, f, k, f"{prefix}fold/{f}", derive_seed(recipe.run.seed, "val", r, f), r)
                   for f in range(k)]
    return rounds


def _partition(dataset: AUDataset, k: int, seed: int, repeat: int) -> np.ndarray:
    """Each row's fold in partition ``repeat`` (see :func:`evaluation_splits`)."""
    own = dataset.folds
    if repeat == 0 and own is not None and len(np.unique(own)) == k:
        return own
    if repeat == 0 and own is not None and dataset.partition:
        note(f"auh: dataset {dataset.name!r} has {len(np.unique(own))} folds, evaluation.folds is {k}: "
             f"drawing {k} folds (seed {seed}) instead")
    shuffle = seed if repeat == 0 else derive_seed(seed, "partition", repeat)
    if dataset.subjects is not None:
        return _in_folds(lambda: subject_folds(dataset.subjects, k, shuffle))
    return iterative_stratification(dataset.labels, k, shuffle)


def _round(dataset: AUDataset, folds: np.ndarray, f: int, k: int, name: str, seed: int, repeat: int) -> Split:
    rows = np.arange(len(dataset))
    if dataset.subjects is None:
        return Split(name, rows[(folds != f) & (folds != (f + 1) % k)], rows[folds == (f + 1) % k],
                     rows[folds == f], repeat)
    train, val = _in_folds(lambda: subject_holdout(rows[folds != f], dataset.subjects, seed))
    return Split(name, train, val, rows[folds == f], repeat)


def _in_folds(draw: Callable[[], Any]) -> Any:
    """``draw()``, a refusal naming the recipe field it comes from."""
    try:
        return draw()
    except UserError as exc:
        raise UserError(f"recipe field evaluation.folds: {exc}") from None
