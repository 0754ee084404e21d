"""Losses: masked BCE, weighted BCE and selective learning on hand-worked batches."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from harness import create
from harness.errors import UserError

X = 999


def bce(logit: float, y: int) -> float:
    """-[y log s + (1 - y) log(1 - s)] written out, independent of torch's implementation."""
    s = 1 / (1 + math.exp(-logit))
    return -(math.log(s) if y == 1 else math.log(1 - s))


def batch(columns: list[list[int]], logits: list[list[float]] | None = None):
    labels = torch.tensor(columns).T.contiguous()
    if logits is None:
        z = torch.linspace(-2, 2, labels.numel()).reshape(labels.shape)
    else:
        z = torch.tensor(logits).T.contiguous()
    return z.clone().requires_grad_(True), labels


def hand_bce(z: torch.Tensor, labels: torch.Tensor, weights=None) -> float:
    total, known = 0.0, 0
    for i in range(labels.shape[0]):
        for j in range(labels.shape[1]):
            if labels[i, j] != X:
                w = 1.0 if weights is None else weights[i][j]
                total += w * bce(float(z[i, j]), int(labels[i, j]))
                known += 1
    return total / known


def test_bce_masks_unknown_and_divides_by_known_count():
    z, labels = batch([[1, 0, X, 0], [X, X, 1, 0]])
    loss = create("loss", "bce")(z, labels)
    assert loss.item() == pytest.approx(hand_bce(z.detach(), labels), rel=1e-6)
    loss.backward()
    assert (z.grad[labels == X] == 0).all()
    all_known = torch.tensor([[1, 0], [0, 1]])
    z2 = torch.tensor([[0.3, -1.0], [2.0, 0.5]])
    ref = torch.nn.BCEWithLogitsLoss()(z2, all_known.float())  # mean over N*C when nothing is unknown
    assert create("loss", "bce")(z2, all_known).item() == pytest.approx(ref.item())


def test_bce_all_unknown_is_zero_with_a_gradient():
    z = torch.zeros(2, 3, requires_grad=True)
    loss = create("loss", "bce")(z, torch.full((2, 3), X))
    loss.backward()
    assert loss.item() == 0.0 and z.grad is not None


def test_wbce_given_and_fitted_pos_weight():
    z, labels = batch([[1, 0, 0, X]])
    loss = create("loss", "wbce", pos_weight=[2.5])(z, labels)
    w = [[2.5], [1], [1], [1]]
    assert loss.item() == pytest.approx(hand_bce(z.detach(), labels, w), rel=1e-6)
    # training column: 1 positive, 3 negatives, one unknown -> pos_weight 3
    fitted = create("loss", "wbce").fit(np.array([[1], [0], [0], [0], [X]]))
    assert fitted.pos_weight_.tolist() == [3.0] and fitted.pos_weight is None
    assert fitted(z, labels).item() == pytest.approx(hand_bce(z.detach(), labels, [[3], [1], [1], [1]]), rel=1e-6)


def test_selective_batch_at_target_is_plain_masked_bce():
    # AU1: 2 of 8 positive, target 0.25; AU2: 3 of 6 known positive, target 0.5
    z, labels = batch([[1, 1, 0, 0, 0, 0, 0, 0], [1, 0, 1, 0, 1, 0, X, X]])
    loss = create("loss", "selective", target=[0.25, 0.5])
    assert loss.weights(labels).tolist() == (labels != X).float().tolist()
    assert loss(z, labels).item() == pytest.approx(create("loss", "bce")(z, labels).item(), rel=1e-7)


def test_selective_under_represented_positives():
    # K=6, P=1, target 0.5: rK = 3 > 1 -> keep ceil(3) = 3 of the 5 negatives,
    # positive weight 3 / 1 = 3; every negative has the same logit, so which 3
    # are kept does not change the loss: (3 * l(+) + 3 * l(-)) / 6
    labels = torch.tensor([[1], [0], [0], [0], [0], [0]])
    z = torch.tensor([[0.4], [-0.7], [-0.7], [-0.7], [-0.7], [-0.7]], requires_grad=True)
    loss = create("loss", "selective", target="balanced")
    w = loss.weights(labels)[:, 0]
    assert w[0].item() == pytest.approx(3.0)
    assert sorted(w[1:].tolist()) == [0, 0, 1, 1, 1]
    expected = (3 * bce(0.4, 1) + 3 * bce(-0.7, 0)) / 6
    assert loss(z, labels).item() == pytest.approx(expected, rel=1e-6)


def test_selective_non_integer_target_counts():
    # K=10, P=1, r=0.3: rK = 3 (0.3 * 10 is 3.0000000000000004 in floats):
    # keep ceil(7) = 7 of 9 negatives, positive weight 3
    labels = torch.tensor([[1] + [0] * 9]).T
    w = create("loss", "selective", target=[0.3]).weights(labels)[:, 0]
    assert w[0].item() == pytest.approx(3.0) and int((w[1:] == 1).sum()) == 7
    # K=6, P=1, r=0.25: rK = 1.5 -> keep ceil(4.5) = 5 negatives (all), positive weight 1.5
    labels = torch.tensor([[1, 0, 0, 0, 0, 0]]).T
    w = create("loss", "selective", target=[0.25]).weights(labels)[:, 0]
    assert w.tolist() == pytest.approx([1.5, 1, 1, 1, 1, 1])


def test_selective_mirror_case_over_represented_positives():
    # K=8, P=6, Q=2, r=0.25: rK = 2 < 6 -> keep ceil(2) = 2 positives,
    # each negative weighted (1 - r) K / Q = 6 / 2 = 3
    labels = torch.tensor([[1, 1, 1, 1, 1, 1, 0, 0]]).T
    z = torch.tensor([[1.1] * 6 + [0.2] * 2]).T
    loss = create("loss", "selective", target=[0.25])
    w = loss.weights(labels)[:, 0]
    assert sorted(w[:6].tolist()) == [0, 0, 0, 0, 1, 1]
    assert w[6:].tolist() == pytest.approx([3.0, 3.0])
    assert loss(z, labels).item() == pytest.approx((2 * bce(1.1, 1) + 6 * bce(0.2, 0)) / 8, rel=1e-6)


def test_selective_max_weight_clamps():
    labels = torch.tensor([[1, 0, 0, 0, 0, 0]]).T  # positive weight 3 without a cap
    w = create("loss", "selective", target="balanced", max_weight=2).weights(labels)[:, 0]
    assert w[0].item() == pytest.approx(2.0) and sorted(w[1:].tolist()) == [0, 0, 1, 1, 1]


def test_selective_absent_class_and_unknowns():
    # AU1 has no positive, AU2 no negative (one unknown): nothing to weight -> 1 (0 for 999)
    labels = torch.tensor([[0, 0, 0, 0], [1, 1, X, 1]]).T
    w = create("loss", "selective", target="balanced").weights(labels)
    assert w.tolist() == [[1, 1], [1, 1], [1, 0], [1, 1]]


def test_selective_fits_training_rates_and_normalizes_by_known_labels():
    train = np.array([[1, 1], [0, 1], [0, 0], [0, X], [X, 0]])  # rates 1/4 and 2/4
    loss = create("loss", "selective").fit(train)
    assert loss.rates_.tolist() == [0.25, 0.5]
    # equal logits on AU2's positives: which of them are ignored does not change the loss
    z, labels = batch([[1, 0, 0, 0, X], [1, 1, 1, 1, 0]],
                      [[0.5, -1.0, 0.2, -0.3, 9.0], [0.8, 0.8, 0.8, 0.8, -0.6]])
    # AU1: K=4, P=1, rK=1: at target. AU2: K=5, P=4 > rK=2.5 -> keep ceil(2.5)=3 positives,
    # negative weight 2.5 / 1. Normalized by the 9 known labels.
    w = loss.weights(labels)
    assert w[:, 0].tolist() == [1, 1, 1, 1, 0]
    assert int((w[:4, 1] == 1).sum()) == 3 and w[4, 1].item() == pytest.approx(2.5)
    assert loss(z, labels).item() == pytest.approx(hand_bce(z.detach(), labels, w.tolist()), rel=1e-6)


def test_selective_random_choice_is_seeded_and_uniform():
    labels = torch.tensor([[1, 0, 0, 0, 0, 0]]).T
    a = create("loss", "selective", target="balanced")
    b = create("loss", "selective", target="balanced")
    a.generator.manual_seed(5)  # what the engine does every epoch (the "random" capability)
    b.generator.manual_seed(5)
    assert torch.equal(a.weights(labels), b.weights(labels))
    ignored = torch.zeros(6)
    for _ in range(500):
        ignored += a.weights(labels)[:, 0] == 0
    assert ignored[0] == 0  # the up-weighted positive is never ignored
    assert torch.allclose(ignored[1:] / 500, torch.full((5,), 0.4), atol=0.08)  # 2 of 5 each time


def test_selective_vectorized_batch_matches_per_column_hand_rule():
    rng = np.random.default_rng(0)
    labels = torch.from_numpy(np.where(rng.random((256, 23)) < 0.1, X, rng.random((256, 23)) < 0.2).astype(np.int64))
    rates = rng.uniform(0.05, 0.6, 23)
    w = create("loss", "selective", target=rates.tolist()).weights(labels)
    for c in range(23):
        col, wc = labels[:, c], w[:, c]
        k, p = int((col != X).sum()), int((col == 1).sum())
        rk = rates[c] * k
        assert (wc[col == X] == 0).all()
        if p < rk:
            assert int((wc[col == 0] > 0).sum()) == math.ceil((1 - rates[c]) * k - 1e-9)
            assert torch.allclose(wc[col == 1], torch.tensor(rk / p, dtype=torch.float32))
        elif p > rk:
            assert int((wc[col == 1] > 0).sum()) == math.ceil(rk - 1e-9)
            assert torch.allclose(wc[col == 0], torch.tensor((1 - rates[c]) * k / (k - p), dtype=torch.float32))


def test_selective_gradient_flows_and_errors_are_clear():
    z, labels = batch([[1, 0, 0, 0], [0, 1, 1, 1]])
    loss = create("loss", "selective", target="balanced")(z, labels)
    loss.backward()
    assert torch.isfinite(z.grad).all()
    with pytest.raises(RuntimeError, match="fit"):
        create("loss", "selective")(z, labels)
    with pytest.raises(UserError, match="target"):
        create("loss", "selective", target="skewed")
    with pytest.raises(ValueError, match="2 AUs"):
        create("loss", "selective", target=[0.5])(z, labels)


def test_selective_list_target_keeps_exactly_ceil_rk_at_whole_numbers():
    # r = 0.2 of K = 10 known is exactly 2 positives; float32 rates made it 3.
    loss = create("loss", "selective", target=[0.2])
    labels = torch.tensor([[1]] * 5 + [[0]] * 5)
    kept_pos = int((loss.weights(labels)[:5] > 0).sum())
    assert kept_pos == 2
