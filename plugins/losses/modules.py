"""Multi-label losses: ``bce``, ``wbce`` and ``selective`` (the paper's selective learning).

Every loss is a ``torch.nn.Module`` with ``forward(logits[N,C], labels[N,C]) -> scalar``
where labels are 1 / 0 / 999. An element labelled 999 has weight 0, and the
weighted sum of per-element binary cross-entropies is divided by the number
of *known* elements of the batch (not by ``N`` or ``N*C``): a batch full of
unknowns does not shrink the loss of the few labels it has. All three are
the paper's eq. (1), ``-w_i [y log s + (1-y) log(1-s)]``, with different
weights ``w``. Each satisfies :class:`harness.protocols.Loss`; those that
declare ``"fit"`` learn their statistics from the training labels into
``*_`` attributes (the pipeline calls ``fit`` once before training).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from harness.schema import POSITIVE, UNKNOWN

# Slack for comparing P with r*K: r comes from a float rate, so r*K may miss an
# integer by rounding error (0.1 * 30 = 3.0000000000000004); a count cannot.
_EPS = 1e-9


def masked_bce(logits: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor | None = None,
               pos_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Weighted binary cross-entropy over the known elements, divided by their number.

    ``weight[N,C]`` multiplies each element (999 elements get 0 regardless);
    ``pos_weight[C]`` multiplies the positive term as in
    ``F.binary_cross_entropy_with_logits``. Zero known elements give a zero
    loss that still has a gradient (so a training step never breaks).
    """
    _check(logits, labels)
    known = labels != UNKNOWN
    target = (labels == POSITIVE).to(logits.dtype)
    per_element = F.binary_cross_entropy_with_logits(logits, target, reduction="none",
                                                     pos_weight=pos_weight)
    w = known.to(logits.dtype) if weight is None else weight * known
    return (per_element * w).sum() / known.sum().clamp(min=1)


def positive_rates(labels: np.ndarray | torch.Tensor) -> np.ndarray:
    """Per-AU positive rate over the known labels (NaN for an AU with none known)."""
    labels = np.asarray(labels)
    known = (labels != UNKNOWN).sum(axis=0)
    positives = (labels == POSITIVE).sum(axis=0)
    return np.divide(positives, known, out=np.full(labels.shape[1], np.nan), where=known > 0)


class BCELoss(torch.nn.Module):
    """Binary cross-entropy with 999 masked out, normalized by the known labels."""

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return masked_bce(logits, labels)


class WeightedBCELoss(torch.nn.Module):
    """BCE with a per-AU weight on positives (``pos_weight``), 999 masked.

    ``pos_weight`` is a list, one weight per AU; when omitted, :meth:`fit`
    learns ``pos_weight_`` from the training labels, ``negatives / positives``
    per AU (1 for an AU without positives or negatives), so each AU's
    positives and negatives carry equal total weight.
    """

    capabilities = frozenset({"fit"})

    def __init__(self, pos_weight: Sequence[float] | None = None) -> None:
        super().__init__()
        self.pos_weight = pos_weight
        given = torch.tensor([], dtype=torch.float32) if pos_weight is None else _floats(pos_weight, "pos_weight")
        self.register_buffer("pos_weight_", given)  # the weights in use: given, or learned by fit

    def fit(self, labels: np.ndarray | torch.Tensor) -> "WeightedBCELoss":
        if self.pos_weight is None:
            labels = np.asarray(labels)
            pos = (labels == POSITIVE).sum(axis=0)
            neg = (labels == 0).sum(axis=0)
            ratio = np.divide(neg, pos, out=np.ones(len(pos)), where=(pos > 0) & (neg > 0))
            self.pos_weight_ = torch.tensor(ratio, dtype=torch.float32)
        return self

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.pos_weight_.numel() == 0:
            raise RuntimeError("wbce: call fit(train_labels) first or give pos_weight")
        _check_width(self.pos_weight_, logits, "pos_weight")
        return masked_bce(logits, labels, pos_weight=self.pos_weight_.to(logits))


class SelectiveLoss(torch.nn.Module):
    """Selective learning (Hand, Castillo & Chellappa, AAAI 2018), batch-wise, per AU.

    In a batch, AU ``i`` has ``K`` known labels, ``P`` positives, ``Q = K - P``
    negatives, and a target positive rate ``r``:

    * ``P < rK`` (positives under-represented): a random set of surplus
      negatives is ignored (weight 0) so that ``ceil((1 - r) K)`` negatives
      remain, and each positive is weighted ``rK / P``;
    * ``P > rK``: the mirror image: surplus positives are ignored so that
      ``ceil(rK)`` remain, and each negative is weighted ``(1 - r) K / Q``;
    * ``P == rK``: all weights 1. A class absent from the batch (``P = 0`` or
      ``Q = 0``) has nothing to up-weight, so that AU keeps weights 1 (dropping
      the other class would only throw data away).

    ``max_weight`` (optional) clamps the up-weights. ``target`` is ``"train"``
    (default: each AU's positive rate over the training labels, set by
    :meth:`fit`, into ``rates_``), ``"balanced"`` (0.5 for every AU) or a list
    of rates. The random choice of ignored elements draws from ``generator``,
    which the engine seeds every epoch from the run's seed (the ``"random"``
    capability), so a run and its resume are reproducible. Everything is
    vectorized over the batch and the AUs.
    """

    capabilities = frozenset({"fit", "random"})

    def __init__(self, target: str | Sequence[float] = "train", max_weight: float | None = None) -> None:
        super().__init__()
        if isinstance(target, str) and target not in ("train", "balanced"):
            raise ValueError(f"target must be 'train', 'balanced' or a list of rates, got {target!r}")
        if max_weight is not None and max_weight < 1:
            raise ValueError(f"max_weight must be >= 1, got {max_weight}")
        self.target = target
        self.max_weight = max_weight
        rates = torch.tensor([], dtype=torch.float64)
        if not isinstance(target, str):
            rates = _floats(target, "target", torch.float64)  # float32 would make r*K overshoot whole numbers
            if ((rates < 0) | (rates > 1)).any():
                raise ValueError(f"target rates must lie in [0, 1], got {list(target)}")
        self.register_buffer("rates_", rates)  # the target rates in use: given, or learned by fit
        self.generator = torch.Generator().manual_seed(0)

    def fit(self, labels: np.ndarray | torch.Tensor) -> "SelectiveLoss":
        if self.target == "train":
            self.rates_ = torch.from_numpy(positive_rates(labels))
        return self

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return masked_bce(logits, labels, weight=self.weights(labels).to(logits))

    def weights(self, labels: torch.Tensor) -> torch.Tensor:
        """The selective-learning weights ``[N,C]`` for one batch (0 for 999 and ignored elements)."""
        rate = self._rates_for(labels.shape[1]).to(labels.device)
        known = labels != UNKNOWN
        pos = labels == POSITIVE
        neg = known & ~pos
        k = known.sum(0).double()
        p = pos.sum(0).double()
        q = k - p
        rk = rate * k  # NaN rate (AU never known in training): no comparison holds, weights 1
        too_few_pos = (p < rk - _EPS) & (p > 0)
        too_many_pos = (p > rk + _EPS) & (q > 0)
        # under-represented positives: keep ceil((1-r)K) negatives, up-weight positives
        pos_w = torch.where(too_few_pos, rk / p.clamp(min=1), 1.0)
        keep_neg = torch.where(too_few_pos, torch.ceil((k - rk) - _EPS), q)
        # mirror: keep ceil(rK) positives, up-weight negatives
        neg_w = torch.where(too_many_pos, (k - rk) / q.clamp(min=1), 1.0)
        keep_pos = torch.where(too_many_pos, torch.ceil(rk - _EPS), p)
        if self.max_weight is not None:
            pos_w, neg_w = pos_w.clamp(max=self.max_weight), neg_w.clamp(max=self.max_weight)
        kept = (_random_subset(pos, keep_pos, self.generator)
                | _random_subset(neg, keep_neg, self.generator))
        w = torch.where(pos, pos_w, neg_w) * kept
        return w.float()

    def _rates_for(self, n_aus: int) -> torch.Tensor:
        if self.target == "balanced":
            return torch.full((n_aus,), 0.5, dtype=torch.float64)
        if self.rates_.numel() == 0:
            raise RuntimeError("selective: target='train' needs fit(train_labels) before training")
        _check_width(self.rates_, torch.empty(0, n_aus), "target rates")
        return self.rates_


def _random_subset(members: torch.Tensor, keep: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Per column, a uniformly random subset of ``keep[c]`` of the ``members[:, c]`` (bool ``[N,C]``).

    Each member gets a random key; a member is kept when fewer than ``keep``
    members of its column have a smaller key (its rank is below ``keep``).
    """
    keys = torch.rand(members.shape, generator=generator).to(members.device)
    keys = keys.masked_fill(~members, math.inf)
    rank = torch.empty_like(keys, dtype=torch.long)
    order = keys.argsort(dim=0)
    rank.scatter_(0, order, torch.arange(len(keys), device=keys.device).unsqueeze(1).expand_as(order))
    return members & (rank < keep.unsqueeze(0))


def _floats(values: Sequence[float], name: str, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    try:
        return torch.tensor([float(v) for v in values], dtype=dtype)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a list of numbers, got {values!r}") from None


def _check(logits: torch.Tensor, labels: torch.Tensor) -> None:
    if logits.shape != labels.shape or logits.ndim != 2:
        raise ValueError(f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} "
                         "must both be [N, C]")


def _check_width(values: torch.Tensor, logits: torch.Tensor, name: str) -> None:
    if values.numel() != logits.shape[1]:
        raise ValueError(f"{name} has {values.numel()} entries for {logits.shape[1]} AUs")
