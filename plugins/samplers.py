"""Epoch samplers: ``uniform``, ``weighted`` and ``mlros`` (the paper's balancing).

Every sampler maps a label matrix ``labels[N,C]`` (1 / 0 / 999) and a seed to
the row indices of one training epoch (``np.int64``), already in training
order; the same ``(labels, seed)`` always gives the same epoch. A label
counts as present only where it is 1 (999 is "unknown", never present).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from harness import hookimpl
from harness.schema import POSITIVE

_CHUNK_TURNS = 16384  # ML-ROS clones simulated per vectorized step (bounds memory and wasted work)


def _present(labels: np.ndarray) -> np.ndarray:
    """``[N,C]`` bool: where a label is 1. Checks the shape once for every sampler."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be a 2-D array [N, C], got shape {labels.shape}")
    return labels == POSITIVE


class UniformSampler:
    """Every image once per epoch, in a seeded random order."""

    def sample(self, labels: np.ndarray, seed: int) -> np.ndarray:
        n = _present(labels).shape[0]
        return np.random.default_rng(seed).permutation(n).astype(np.int64)


class WeightedSampler:
    """Inverse label frequency: ``N`` draws with replacement, image ``j`` with probability ~ ``w_j``.

    ``w_j = max over the labels l present in image j of N / count(l)`` (inverse
    label frequency; the rarest AU an image carries sets its weight). Images
    with no label present form one more pseudo-label ("no AU"), so they are
    weighted by the inverse frequency of label-free images. This is what
    ``torch.utils.data.WeightedRandomSampler(w, N, replacement=True)`` samples,
    with a numpy generator so the epoch is reproducible from ``seed``.
    """

    def weights(self, labels: np.ndarray) -> np.ndarray:
        """Per-image weights ``[N]`` (unnormalized)."""
        present = _present(labels)
        present = np.column_stack([present, ~present.any(axis=1)])  # + the "no AU" pseudo-label
        counts = present.sum(axis=0)
        inverse = np.divide(len(present), counts, out=np.zeros(len(counts)), where=counts > 0)
        return np.where(present, inverse, 0.0).max(axis=1)

    def sample(self, labels: np.ndarray, seed: int) -> np.ndarray:
        w = self.weights(labels)
        if len(w) == 0:
            return np.zeros(0, dtype=np.int64)
        rng = np.random.default_rng(seed)
        return rng.choice(len(w), size=len(w), replace=True, p=w / w.sum()).astype(np.int64)


@dataclass(frozen=True)
class MLROSPlan:
    """What ML-ROS decided for one label matrix and seed (for tests, reports and benchmarks).

    ``counts``/``irlbl``/``mean_ir`` describe the original labels; ``minority`` are
    the labels with ``IRLbl > MeanIR`` in column order; ``clones`` the cloned
    original rows in cloning order, ``clone_label[k]`` the minority label whose
    bag clone ``k`` came from; ``final_counts`` the label counts after cloning;
    ``dropped`` the minority labels in the order they stopped being minority.
    """

    counts: np.ndarray
    irlbl: np.ndarray
    mean_ir: float
    minority: np.ndarray
    budget: int
    clones: np.ndarray
    clone_label: np.ndarray
    final_counts: np.ndarray
    dropped: tuple[int, ...]


def imbalance_ratios(counts: np.ndarray) -> tuple[np.ndarray, float]:
    """``IRLbl(l) = max count / count(l)`` (0 where ``count(l) = 0``) and ``MeanIR`` = their mean."""
    counts = np.asarray(counts, dtype=np.float64)
    irlbl = np.divide(counts.max(initial=0.0), counts, out=np.zeros_like(counts), where=counts > 0)
    return irlbl, float(irlbl.mean()) if len(irlbl) else 0.0


class LabelDraws:
    """One random stream per label: clone ``k`` of label ``l`` uses the ``k``-th double of stream ``l``.

    Tying each draw to (label, clone number) rather than to the global clone
    order makes the vectorized simulation and a clone-by-clone reference give
    identical clones from the same seed. ``random()`` consumes one 64-bit word
    per double, so drawing in chunks equals drawing one at a time.
    """

    def __init__(self, seed_sequence: np.random.SeedSequence, n_labels: int) -> None:
        self._rngs = [np.random.default_rng(s) for s in seed_sequence.spawn(n_labels)]
        self._buf = [np.zeros(0) for _ in range(n_labels)]

    def get(self, label: int, k: np.ndarray) -> np.ndarray:
        """The doubles number ``k`` (an array) of label ``label``'s stream."""
        need = int(k.max(initial=-1)) + 1
        have = len(self._buf[label])
        if need > have:
            grow = max(need - have, have, 1024)
            self._buf[label] = np.concatenate([self._buf[label], self._rngs[label].random(grow)])
        return self._buf[label][k]


class MLROSSampler:
    """ML-ROS (Charte et al., Neurocomputing 2015): clone images of minority labels.

    ``count(l)`` = images where label ``l`` is 1; ``IRLbl(l) = max count / count(l)``;
    ``MeanIR`` = mean IRLbl, fixed from the start. Minority labels have
    ``IRLbl > MeanIR``; each has a bag of the original images carrying it. With
    a budget of ``ceil(N * percent / 100)`` clones, visit the minority labels
    round-robin (column order): clone a random image of the label's bag and add
    its labels to the counts. A label leaves the rotation as soon as its IRLbl
    (against the current counts) is ``<= MeanIR``: every active label is checked
    after every clone, so a label that stops being minority through a
    co-occurring clone gets no further clone. Stop when the budget is spent or
    no minority label is left. The epoch is a seeded shuffle of originals + clones.
    """

    def __init__(self, percent: float = 25) -> None:
        if percent < 0:
            raise ValueError(f"percent must be >= 0, got {percent}")
        self.percent = percent

    def sample(self, labels: np.ndarray, seed: int) -> np.ndarray:
        plan = self.plan(labels, seed)
        rows = np.concatenate([np.arange(len(np.asarray(labels)), dtype=np.int64), plan.clones])
        shuffle_rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
        return shuffle_rng.permutation(rows)

    def plan(self, labels: np.ndarray, seed: int) -> MLROSPlan:
        """Run ML-ROS and return every decision it made (see :class:`MLROSPlan`)."""
        present = _present(labels)
        n, n_labels = present.shape
        counts = present.sum(axis=0).astype(np.int64)
        irlbl, mean_ir = imbalance_ratios(counts)
        minority = np.flatnonzero(irlbl > mean_ir)
        budget = math.ceil(n * self.percent / 100)
        bags = {int(l): np.flatnonzero(present[:, l]) for l in minority}
        draws = LabelDraws(np.random.SeedSequence([seed, 0]), n_labels)
        state = _RoundRobin(present, counts.copy(), mean_ir, list(map(int, minority)))
        while state.active and state.n_clones < budget:
            state.advance(bags, draws, budget - state.n_clones)
        clones = np.concatenate(state.clones_rows) if state.clones_rows else np.zeros(0, np.int64)
        clone_label = (np.concatenate(state.clones_labels) if state.clones_labels
                       else np.zeros(0, np.int64))
        return MLROSPlan(counts, irlbl, mean_ir, minority, budget, clones.astype(np.int64),
                         clone_label.astype(np.int64), state.counts, tuple(state.dropped))


class _RoundRobin:
    """The mutable state of the ML-ROS rotation, advanced many clones at a time.

    One :meth:`advance` simulates the next turns of the rotation as a block:
    the label counts after each turn are a cumulative sum of the cloned rows'
    label vectors, so the first turn after which some active label is no longer
    minority is found without a Python loop over clones. Turns up to and
    including that one are kept, the rest discarded (their draws were not
    consumed), the label(s) dropped, and the rotation resumes after it.
    """

    def __init__(self, present: np.ndarray, counts: np.ndarray, mean_ir: float,
                 active: list[int]) -> None:
        self.present, self.counts, self.mean_ir, self.active = present, counts, mean_ir, active
        self.position = 0  # index into ``active`` of the label whose turn is next
        self.n_cloned = np.zeros(present.shape[1], dtype=np.int64)  # clones per label so far
        self.n_clones = 0
        self.clones_rows: list[np.ndarray] = []
        self.clones_labels: list[np.ndarray] = []
        self.dropped: list[int] = []

    def advance(self, bags: dict[int, np.ndarray], draws: LabelDraws, budget_left: int) -> None:
        k = len(self.active)
        n_turns = min(budget_left, _CHUNK_TURNS)
        turn = np.arange(n_turns)
        turn_label = np.asarray(self.active)[(self.position + turn) % k]
        rows = np.empty(n_turns, dtype=np.int64)
        for label in self.active:
            mine = turn_label == label
            # occurrence number of this label within the block = its clone number offset
            clone_no = self.n_cloned[label] + np.arange(int(mine.sum()))
            bag = bags[label]
            rows[mine] = bag[(draws.get(label, clone_no) * len(bag)).astype(np.int64)]
        after = self.counts + np.cumsum(self.present[rows], axis=0, dtype=np.int64)  # [T, C]
        active_counts = after[:, self.active].astype(np.float64)
        still_minority = after.max(axis=1, keepdims=True) / active_counts > self.mean_ir
        ended = ~still_minority.all(axis=1)
        stop = int(np.argmax(ended)) if ended.any() else n_turns - 1
        self._keep(rows[:stop + 1], turn_label[:stop + 1], after[stop].copy())
        if ended.any():
            gone = [label for label, ok in zip(self.active, still_minority[stop]) if not ok]
            next_label = self.active[(self.position + stop + 1) % k]
            self.active = [label for label in self.active if label not in gone]
            self.dropped.extend(gone)
            self.position = self._resume_index(next_label)
        else:
            self.position = (self.position + n_turns) % k

    def _keep(self, rows: np.ndarray, labels: np.ndarray, counts: np.ndarray) -> None:
        self.clones_rows.append(rows)
        self.clones_labels.append(labels)
        self.n_cloned += np.bincount(labels, minlength=len(self.n_cloned))
        self.n_clones += len(rows)
        self.counts = counts

    def _resume_index(self, next_label: int) -> int:
        """Where the rotation continues once labels were dropped: at the first
        still-active label at or after ``next_label`` in the old rotation order."""
        if not self.active:
            return 0
        # labels keep their relative (column) order, so the next active label
        # is the first one whose column is >= next_label, wrapping around.
        later = [i for i, label in enumerate(self.active) if label >= next_label]
        return later[0] if later else 0


@hookimpl
def auh_samplers() -> dict[str, type]:
    return {"uniform": UniformSampler, "weighted": WeightedSampler, "mlros": MLROSSampler}
