"""Samplers: ML-ROS on hand-worked label matrices, the weighted sampler's frequencies,
and ML-ROS on the real ENC-2020 labels against a clone-by-clone reference."""
from __future__ import annotations

import math

import numpy as np
import pytest

from harness import create
from plugins.samplers import LabelDraws, MLROSSampler, WeightedSampler

X = 999


def rows(*groups: tuple[int, list[int]]) -> np.ndarray:
    """Build a label matrix from (repeat, row) pairs."""
    return np.array([row for times, row in groups for _ in range(times)])


# Toy 1 (columns A B C D), N = 10:
#   counts A=6 B=1 C=2 D=1 (the 999 row counts for nothing)
#   IRLbl  A=1 B=6 C=3 D=6, MeanIR = 16/4 = 4 -> minority B, D (C: 3 <= 4)
#   budget at 25%: ceil(2.5) = 3
#   B's turn: clone row 4 (A,B) -> A=7, B=2: IRLbl B = 3.5 <= 4, drop B; D = 7/1 = 7 stays
#   D's turn: clone row 8 -> D=2: IRLbl D = 3.5, drop D; no minority left: 2 clones < budget.
TOY1 = rows((4, [1, 0, 0, 0]), (1, [1, 1, 0, 0]), (1, [1, 0, 0, 0]), (2, [0, 0, 1, 0]),
            (1, [0, 0, 0, 1]), (1, [X, X, 0, 0]))


def test_mlros_toy1_statistics_and_clones():
    plan = MLROSSampler(percent=25).plan(TOY1, seed=3)
    assert plan.counts.tolist() == [6, 1, 2, 1]
    assert plan.irlbl.tolist() == [1.0, 6.0, 3.0, 6.0]
    assert plan.mean_ir == 4.0
    assert plan.minority.tolist() == [1, 3]
    assert plan.budget == 3
    assert plan.clones.tolist() == [4, 8]          # the only row of each bag
    assert plan.clone_label.tolist() == [1, 3]
    assert plan.final_counts.tolist() == [7, 2, 2, 2]
    assert plan.dropped == (1, 3)


def test_mlros_budget_cuts_the_rotation():
    plan = MLROSSampler(percent=10).plan(TOY1, seed=0)  # budget ceil(1.0) = 1
    assert plan.budget == 1
    assert plan.clones.tolist() == [4]
    assert plan.dropped == (1,)  # B was dropped, D was still minority when the budget ran out


# Toy 2 (columns A B C D), N = 25: A and D together on 20 rows, B alone on 2, C alone on 3.
#   counts 20 2 3 20; IRLbl 1 10 20/3 1; MeanIR = (1 + 10 + 20/3 + 1)/4 = 14/3
#   B stays minority while 20/B > 14/3, i.e. B <= 4: needs 3 clones (B = 5)
#   C stays minority while C <= 4: needs 2 clones (C = 5)
#   rotation B C B C(C drops) B(B drops): 5 clones, labels B C B C B.
TOY2 = rows((20, [1, 0, 0, 1]), (2, [0, 1, 0, 0]), (3, [0, 0, 1, 0]))


@pytest.mark.parametrize("seed", range(5))
def test_mlros_toy2_round_robin_until_no_minority(seed):
    plan = MLROSSampler(percent=25).plan(TOY2, seed)  # budget ceil(6.25) = 7
    assert plan.mean_ir == pytest.approx(14 / 3)
    assert plan.minority.tolist() == [1, 2]
    assert plan.budget == 7
    assert plan.clone_label.tolist() == [1, 2, 1, 2, 1]
    assert set(plan.clones[plan.clone_label == 1]) <= {20, 21}
    assert set(plan.clones[plan.clone_label == 2]) <= {22, 23, 24}
    assert plan.final_counts.tolist() == [20, 5, 5, 20]
    assert plan.dropped == (2, 1)


def test_mlros_toy2_budget_limited_counts_differ_by_at_most_one():
    plan = MLROSSampler(percent=12).plan(TOY2, seed=0)  # budget ceil(3.0) = 3
    assert plan.clone_label.tolist() == [1, 2, 1]
    assert plan.dropped == ()


# Toy 3 (columns A B C), N = 23: A on 20 rows, then rows (B,C), (B), (C).
#   counts 20 2 2, IRLbl 1 10 10, MeanIR 7; B (or C) stays minority while count <= 2.
#   B's turn: if the clone is the (B,C) row, both reach 3 and both drop: 1 clone.
#   Otherwise B drops alone and C's turn clones once more: 2 clones.
TOY3 = rows((20, [1, 0, 0]), (1, [0, 1, 1]), (1, [0, 1, 0]), (1, [0, 0, 1]))


def test_mlros_drops_a_label_made_non_minority_by_a_co_occurring_clone():
    seen = set()
    for seed in range(20):
        plan = MLROSSampler(percent=50).plan(TOY3, seed)
        first = int(plan.clones[0])
        seen.add(first)
        if first == 20:
            assert plan.clones.tolist() == [20] and sorted(plan.dropped) == [1, 2]
        else:
            assert first == 21 and len(plan.clones) == 2 and plan.clone_label.tolist() == [1, 2]
            assert plan.clones[1] in (20, 22)
    assert seen == {20, 21}  # both branches were exercised


def test_mlros_sample_is_a_seeded_shuffle_of_originals_and_clones():
    sampler = create("sampler", "mlros")
    epoch = sampler.sample(TOY2, seed=7)
    plan = sampler.plan(TOY2, seed=7)
    assert epoch.dtype == np.int64
    assert sorted(epoch.tolist()) == sorted(list(range(25)) + plan.clones.tolist())
    assert np.array_equal(epoch, sampler.sample(TOY2, seed=7))
    assert not np.array_equal(epoch, sampler.sample(TOY2, seed=8))


def test_mlros_nothing_to_do():
    labels = np.array([[1, 1], [0, 0], [X, X]])  # equal counts: no minority
    assert sorted(MLROSSampler().sample(labels, 0).tolist()) == [0, 1, 2]
    assert len(MLROSSampler().plan(np.full((4, 3), X), 0).clones) == 0
    assert len(MLROSSampler(percent=0).plan(TOY2, 0).clones) == 0


def reference_mlros(labels: np.ndarray, percent: float, seed: int) -> tuple[list[int], list[int]]:
    """ML-ROS clone by clone, written from the spec; the same per-label draws as the plugin."""
    present = labels == 1
    n, c = present.shape
    counts = present.sum(axis=0).astype(float)
    irl = [counts.max() / counts[l] if counts[l] else 0.0 for l in range(c)]
    mean_ir = sum(irl) / c
    active = [l for l in range(c) if irl[l] > mean_ir]
    bags = {l: np.flatnonzero(present[:, l]) for l in active}
    draws = LabelDraws(np.random.SeedSequence([seed, 0]), c)
    made = dict.fromkeys(active, 0)
    clones, clone_labels = [], []
    turn = active[0] if active else None
    while active and len(clones) < math.ceil(n * percent / 100):
        u = draws.get(turn, np.array([made[turn]]))[0]
        row = int(bags[turn][int(u * len(bags[turn]))])
        made[turn] += 1
        clones.append(row)
        clone_labels.append(turn)
        counts += present[row]
        active = [l for l in active if counts.max() / counts[l] > mean_ir]
        later = [l for l in active if l > turn]
        turn = later[0] if later else (active[0] if active else None)
    return clones, clone_labels


@pytest.mark.parametrize("seed", range(4))
def test_mlros_matches_clone_by_clone_reference_on_random_labels(seed):
    rng = np.random.default_rng(seed)
    labels = (rng.random((400, 9)) < rng.uniform(0.01, 0.5, 9)).astype(int)
    labels[rng.random(labels.shape) < 0.1] = X
    plan = MLROSSampler(percent=30).plan(labels, seed)
    check_plan_invariants(labels, plan)
    clones, clone_labels = reference_mlros(labels, 30, seed)
    assert plan.clones.tolist() == clones
    assert plan.clone_label.tolist() == clone_labels


def check_plan_invariants(labels: np.ndarray, plan) -> None:
    present = labels == 1
    assert len(plan.clones) <= plan.budget
    for label in np.unique(plan.clone_label):  # clones come from that label's minority bag
        assert label in plan.minority
        assert present[plan.clones[plan.clone_label == label], label].all()
    assert np.array_equal(plan.final_counts, plan.counts + present[plan.clones].sum(axis=0))
    still_active = [l for l in plan.minority if l not in plan.dropped]
    per_label = [np.count_nonzero(plan.clone_label == l) for l in still_active]
    if per_label:
        assert max(per_label) - min(per_label) <= 1
    if len(plan.clones) < plan.budget:  # stopped early: no minority label was left
        assert not still_active
        assert sorted(plan.dropped) == sorted(plan.minority.tolist())
        # the last label dropped was no longer minority against the final counts
        assert plan.final_counts.max() / plan.final_counts[plan.dropped[-1]] <= plan.mean_ir


def load_enc_labels(path) -> np.ndarray:
    return np.loadtxt(path, usecols=range(1, 24), dtype=np.int64)


def test_mlros_on_real_enc2020_labels(enc_labels_path):
    labels = load_enc_labels(enc_labels_path)
    present = labels == 1
    counts = present.sum(axis=0)
    irl = counts.max() / counts
    plan = MLROSSampler().plan(labels, seed=0)
    assert plan.counts.tolist() == counts.tolist()
    assert np.allclose(plan.irlbl, irl) and plan.mean_ir == pytest.approx(irl.mean())
    assert plan.minority.tolist() == np.flatnonzero(irl > irl.mean()).tolist()
    assert plan.budget == math.ceil(len(labels) * 0.25)
    check_plan_invariants(labels, plan)
    clones, clone_labels = reference_mlros(labels, 25, 0)
    assert plan.clones.tolist() == clones and plan.clone_label.tolist() == clone_labels


# Weighted: rows A, A, (A,B), none; counts A=3 B=1 none=1, N=4
#   weights 4/3, 4/3, max(4/3, 4) = 4, 4 -> probabilities 1/8, 1/8, 3/8, 3/8
def test_weighted_sampler_weights_and_frequencies():
    toy = np.array([[1, 0], [1, X], [1, 1], [0, 0]])
    sampler = create("sampler", "weighted")
    assert np.allclose(sampler.weights(toy), [4 / 3, 4 / 3, 4, 4])
    tiled = np.tile(toy, (25_000, 1))  # same weights per row type, epoch of 100,000 draws
    epoch = sampler.sample(tiled, seed=0)
    assert len(epoch) == len(tiled) and epoch.dtype == np.int64
    freq = np.bincount(epoch % 4, minlength=4) / len(epoch)
    assert np.allclose(freq, [1 / 8, 1 / 8, 3 / 8, 3 / 8], atol=0.005)
    assert np.array_equal(epoch, sampler.sample(tiled, seed=0))


def test_uniform_sampler_is_a_seeded_permutation():
    sampler = create("sampler", "uniform")
    epoch = sampler.sample(TOY2, seed=1)
    assert sorted(epoch.tolist()) == list(range(25)) and epoch.dtype == np.int64
    assert np.array_equal(epoch, sampler.sample(TOY2, seed=1))


def test_bad_parameters_are_user_errors():
    from harness.errors import UserError

    with pytest.raises(UserError, match="percent"):
        create("sampler", "mlros", percent=-5)
    with pytest.raises(ValueError, match="2-D"):
        MLROSSampler().sample(np.zeros(5), 0)
