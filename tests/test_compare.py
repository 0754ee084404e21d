"""`auh compare` and `auh ablate --seeds`: the paired verdict's statistics against
independent computations, and the study machinery end to end on tiny recipes."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import accuracy_score, f1_score

import harness
from conftest import tiny_recipe
from harness import comparison, metrics
from harness.cli import main
from harness.errors import UserError
from harness.verdict import HELPED, HURT, NO_EVIDENCE, paired_verdict, seeds_needed

TINY = tiny_recipe()

AUS23 = [f"AU{i}" for i in range(23)]
FAST = ["--set", "train.epochs=1", "--set", "pretrain.epochs=0", "--set", "evaluation.bootstrap=0"]


# ------------------------------------------------------------- statistics
def test_hand_worked_two_seed_example():
    # One AU, four images per seed.
    # seed 0: truth 1 1 0 0; A 1 0 0 0 -> acc 3/4, F1 2/3, final 17/24; B perfect -> final 1
    # seed 1: truth 1 0 0 0; A 0 0 0 0 -> acc 3/4, F1 0, final 3/8; B 1 1 0 0 -> acc 3/4, F1 2/3, final 17/24
    truths = [np.array([[1], [1], [0], [0]]), np.array([[1], [0], [0], [0]])]
    preds_a = [np.array([[1], [0], [0], [0]]), np.array([[0], [0], [0], [0]])]
    preds_b = [np.array([[1], [1], [0], [0]]), np.array([[1], [1], [0], [0]])]
    v = paired_verdict([0, 1], preds_a, preds_b, truths, ["AU1"], resamples=200)
    final = v.metrics["final"]
    assert final.a == pytest.approx((17 / 24, 3 / 8))
    assert final.b == pytest.approx((1.0, 17 / 24))
    d = np.array([1 - 17 / 24, 17 / 24 - 3 / 8])  # 7/24, 8/24
    assert final.mean_diff == pytest.approx(7.5 / 24)
    assert final.sd_diff == pytest.approx((1 / 24) / math.sqrt(2))
    half = 12.706204736174698 * ((1 / 24) / math.sqrt(2)) / math.sqrt(2)  # t(0.975, 1), from tables
    assert final.t_interval == pytest.approx((7.5 / 24 - half, 7.5 / 24 + half))
    # accuracy and F1 separately, with scikit-learn as the oracle
    for m, fn in (("accuracy", accuracy_score), ("f1", lambda t, p: f1_score(t, p, zero_division=0))):
        got = v.metrics[m]
        assert got.a == pytest.approx(tuple(fn(t[:, 0], p[:, 0]) for t, p in zip(truths, preds_a)))
        assert got.b == pytest.approx(tuple(fn(t[:, 0], p[:, 0]) for t, p in zip(truths, preds_b)))
    assert v.per_au[0].f1_diff == pytest.approx(np.mean([1 - 2 / 3, 2 / 3 - 0]))
    assert v.per_au[0].accuracy_diff == pytest.approx(np.mean([1 - 0.75, 0.0]))
    # B is at least as good as A on every resample of seed 0's images
    assert v.metrics["final"].p_b_better > 0.5
    assert d.mean() == pytest.approx(final.mean_diff)


def _arms(rng, n_seeds, flip_a, flip_b, spread=0.0, n_images=300):
    """Per seed: truth with 999s and two arms that flip the truth at their rates
    (drawn per arm-seed around the given rate when ``spread`` > 0: training noise)."""
    truths, pa, pb = [], [], []
    for _ in range(n_seeds):
        t = (rng.random((n_images, 23)) < 0.3).astype(np.int64)
        t[rng.random(t.shape) < 0.1] = 999
        for out, flip in ((pa, flip_a), (pb, flip_b)):
            p = flip + spread * rng.standard_normal()
            out.append(np.where(rng.random(t.shape) < p, 1 - (t == 1), t == 1).astype(np.int64))
        truths.append(t)
    return truths, pa, pb


def test_b_better_by_construction_is_helped_and_the_reverse_hurt():
    truths, pa, pb = _arms(np.random.default_rng(1), 5, flip_a=0.30, flip_b=0.20, spread=0.01)
    v = paired_verdict(range(5), pa, pb, truths, AUS23, resamples=400)
    for m in ("final", "accuracy", "f1"):
        assert v.metrics[m].verdict == HELPED, m
        assert v.metrics[m].p_b_better >= 0.75
    back = paired_verdict(range(5), pb, pa, truths, AUS23, resamples=400)
    assert back.verdict == HURT and back.metrics["final"].p_b_better <= 0.25
    assert back.metrics["final"].mean_diff == pytest.approx(-v.metrics["final"].mean_diff)


@pytest.mark.parametrize("spread", [0.0, 0.03])
def test_a_a_comparison_is_no_evidence_nearly_always(spread):
    rng = np.random.default_rng(spread > 0)
    verdicts = []
    for _ in range(40):
        truths, pa, pb = _arms(rng, 5, 0.25, 0.25, spread=spread, n_images=200)
        verdicts.append(paired_verdict(range(5), pa, pb, truths, AUS23, resamples=200,
                                       seed=len(verdicts)).verdict)
    assert verdicts.count(NO_EVIDENCE) >= 36, verdicts


def test_identical_arms_are_no_evidence_with_no_finite_seed_count():
    truths, pa, _ = _arms(np.random.default_rng(2), 3, 0.2, 0.2)
    v = paired_verdict(range(3), pa, pa, truths, AUS23, resamples=100)
    m = v.metrics["final"]
    assert m.verdict == NO_EVIDENCE and m.mean_diff == 0 and m.seeds_needed is None
    assert m.bootstrap_interval == (0.0, 0.0) and m.p_b_better == 0.0


@pytest.mark.parametrize("mean,sd", [(0.01, 0.02), (0.05, 0.01), (-0.003, 0.01), (0.2, 0.5)])
def test_seeds_needed_is_the_brute_force_minimum(mean, sd):
    n = 2
    while stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n) >= abs(mean):
        n += 1
    assert seeds_needed(mean, sd) == n


def test_no_evidence_asks_for_more_seeds_than_were_run():
    truths, pa, pb = _arms(np.random.default_rng(4), 3, 0.25, 0.245, spread=0.02)
    m = paired_verdict(range(3), pa, pb, truths, AUS23, resamples=200).metrics["final"]
    assert m.verdict == NO_EVIDENCE
    assert m.seeds_needed is None or m.seeds_needed > 3


def test_verdict_is_deterministic_and_json_ready():
    truths, pa, pb = _arms(np.random.default_rng(5), 2, 0.3, 0.2)
    one = paired_verdict([7, 8], pa, pb, truths, AUS23, resamples=100)
    two = paired_verdict([7, 8], pa, pb, truths, AUS23, resamples=100)
    assert one == two
    data = json.loads(json.dumps(one.to_dict()))
    assert data["seeds"] == [7, 8] and data["metrics"]["final"]["verdict"] == one.verdict
    assert "B helped" in one.render() or "no evidence" in one.render()


def test_bootstrap_scores_per_au_match_brute_force():
    rng = np.random.default_rng(3)
    truth = (rng.random((40, 3)) < 0.4).astype(np.int64)
    truth[rng.random(truth.shape) < 0.2] = 999
    pred = (rng.random((40, 3)) < 0.5).astype(np.int64)
    acc, f1 = metrics.bootstrap_scores([pred], truth, n_resamples=20, seed=11)
    idx = np.random.default_rng(11).integers(0, 40, size=(20, 40))  # the documented draws: one chunk
    for b in range(20):
        t, p = truth[idx[b]], pred[idx[b]]
        for j in range(3):
            known = t[:, j] != 999
            if not known.any():
                assert np.isnan(acc[b, 0, j])
                continue
            assert acc[b, 0, j] == pytest.approx(accuracy_score(t[known, j], p[known, j]))
            assert f1[b, 0, j] == pytest.approx(f1_score(t[known, j], p[known, j], zero_division=0))
    np.testing.assert_array_equal(metrics.bootstrap_finals([pred], truth, 20, 11),
                                  metrics.summarize(acc, f1)[0])


def test_rows_are_paired_by_image_name(tmp_path):
    rng = np.random.default_rng(6)
    names = [f"img{i}.png" for i in range(50)]
    truth = (rng.random((50, 2)) < 0.5).astype(np.int64)
    pa, pb = (rng.random((2, 50, 2)) < 0.5).astype(np.int64)
    a = comparison.Outcome(tmp_path / "a", names, pa, truth, ["AU1", "AU2"])
    order = rng.permutation(50)
    b = comparison.Outcome(tmp_path / "b", [names[i] for i in order], pb[order], truth[order], ["AU1", "AU2"])
    np.testing.assert_array_equal(comparison.paired_rows(a, b, 0), pb)
    other = comparison.Outcome(tmp_path / "b", names[:-1] + ["elsewhere.png"], pb, truth, ["AU1", "AU2"])
    with pytest.raises(UserError, match="different images"):
        comparison.paired_rows(a, other, 0)
    relabelled = comparison.Outcome(tmp_path / "b", names, pb, 1 - truth, ["AU1", "AU2"])
    with pytest.raises(UserError, match="different labels"):
        comparison.paired_rows(a, relabelled, 0)


# -------------------------------------------------------------- end to end
@pytest.fixture
def tiny(in_tmp: Path) -> Path:
    path = in_tmp / "tiny.toml"
    path.write_text(TINY)
    return path


def _study(tiny: Path, *vs: str) -> comparison.Study:
    return comparison.plan_compare(tiny, vs=list(vs), overrides=FAST[1::2], seeds=2)[0]


def test_compare_runs_both_arms_and_matches_each_run(tiny, capsys, in_tmp):
    assert main(["compare", str(tiny), "--vs", "loss.name=bce", "--seeds", "2", *FAST,
                 "--resamples", "100", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    study = _study(tiny, "loss.name=bce")
    assert data["seeds"] == [3, 4] and data["b_name"] == "A with loss.name=bce"
    for arm in ("A", "B"):
        for k, seed in enumerate((3, 4)):
            folder = study.finished(arm, seed)
            assert folder == Path("runs", "arms", f"{comparison.arm_id(study.arms[arm])}-seed-{seed}")
            recipe = harness.recipe.read_toml(folder / "recipe.toml")
            assert recipe["run"]["seed"] == seed
            assert recipe["loss"]["name"] == ("bce" if arm == "B" else "selective")
            result = json.loads((folder / "result.json").read_text())
            assert data["metrics"]["final"][arm.lower()][k] == pytest.approx(result["scores"]["final"])
    assert json.loads((study.root / "verdict.json").read_text())["B vs A"] == data
    assert data["metrics"]["final"]["verdict"] in (HELPED, HURT, NO_EVIDENCE)


class Interrupted(Exception):
    pass


def test_interrupted_compare_resumes_and_extends_reusing_finished_arm_seeds(tiny, monkeypatch):
    from harness import pipeline

    real_run = pipeline.run
    calls: list[str] = []
    interrupted: list[str] = []

    study = comparison.plan_compare(tiny, vs=["sampler.name=uniform"], overrides=FAST[1::2], seeds=3)[0]
    label_of = {study.recipe(arm, s).run.name: f"{arm}/seed-{s}" for arm in "AB" for s in (3, 4, 5)}

    def counting_run(recipe, resume=False):
        name = label_of[recipe.run.name]
        calls.append(name)
        if name == "B/seed-4" and not interrupted:
            interrupted.append(name)
            raise Interrupted  # the job is killed during the fourth arm-seed
        return real_run(recipe, resume=resume)

    monkeypatch.setattr(pipeline, "run", counting_run)
    kwargs = dict(vs=["sampler.name=uniform"], overrides=FAST[1::2], resamples=50)
    with pytest.raises(Interrupted):
        harness.compare(tiny, seeds=2, **kwargs)
    assert calls == ["A/seed-3", "B/seed-3", "A/seed-4", "B/seed-4"]
    calls.clear()
    verdict = harness.compare(tiny, seeds=2, **kwargs)
    assert calls == ["B/seed-4"]  # the finished three are reused
    calls.clear()
    extended = harness.compare(tiny, seeds=3, **kwargs)
    assert calls == ["A/seed-5", "B/seed-5"]
    assert extended.seeds == (3, 4, 5)
    assert extended.metrics["final"].a[:2] == verdict.metrics["final"].a
    calls.clear()
    again = harness.compare(tiny, seeds=3, collect=True, **kwargs)
    assert calls == [] and again == extended


def test_unpaired_arms_are_refused_at_the_first_seed(tiny, monkeypatch):
    from harness import pipeline

    real_run = pipeline.run
    ran: list[int] = []
    monkeypatch.setattr(pipeline, "run", lambda recipe, resume=False: (ran.append(recipe.run.seed),
                                                                        real_run(recipe, resume=resume))[1])
    with pytest.raises(UserError, match="seed 3: the arms were tested on different images"):
        harness.compare(tiny, vs=["dataset.n=150"], overrides=FAST[1::2], seeds=3, resamples=50)
    assert ran == [3, 3]  # seeds 4 and 5 never ran


def test_plan_then_jobs_elsewhere_then_collect(tiny, capsys):
    args = ["compare", str(tiny), "--vs", "loss.name=bce", "--seeds", "2", *FAST, "--resamples", "50"]
    assert main(args + ["--collect"]) == 2
    assert "not finished" in capsys.readouterr().err
    assert main(args + ["--plan"]) == 0
    commands = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("auh ")]
    assert len(commands) == 4 and all(c[-1] == "--resume" for c in commands)
    for cmd in commands:  # what a job array would run, each on its own
        assert main(cmd[1:]) == 0
    capsys.readouterr()
    assert main(args + ["--collect", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["seeds"] == [3, 4]


@pytest.mark.slow
def test_jobs_run_arm_seeds_in_child_processes(tiny, capsys):
    args = ["compare", str(tiny), "--vs", "loss.name=bce", "--seeds", "2", *FAST, "--resamples", "50"]
    assert main(args + ["--jobs", "2", "--json"]) == 0
    parallel = json.loads(capsys.readouterr().out)
    study = _study(tiny, "loss.name=bce")
    for k, seed in enumerate((3, 4)):  # each child's own result is what the verdict holds
        assert study.recipe_file("A", seed).with_suffix(".log").is_file()
        result = json.loads((study.finished("B", seed) / "result.json").read_text())
        assert parallel["metrics"]["final"]["b"][k] == pytest.approx(result["scores"]["final"])


def test_cores_are_split_between_jobs(monkeypatch):
    monkeypatch.setattr(comparison.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4}, raising=False)
    assert comparison.core_groups(2) == [{0, 2, 4}, {1, 3}]
    assert comparison.core_groups(5) == [{0}, {1}, {2}, {3}, {4}]
    assert comparison.core_groups(7)[5:] == [{0}, {1}]  # more jobs than cores: shared round-robin


def test_comparison_is_logged_to_mlflow(tiny, in_tmp):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{in_tmp / 'track.db'}"
    verdict = harness.compare(tiny, vs=["loss.name=bce"], overrides=FAST[1::2] + [f"run.tracking_uri={uri}"],
                              seeds=2, resamples=50)
    client = MlflowClient(uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()],
                              "tags.`auh.kind` = 'comparison'")
    assert len(runs) == 1
    parent = runs[0]
    assert parent.data.tags["compare.B_vs_A.verdict"] == verdict.verdict
    assert parent.data.metrics["final/mean_diff"] == pytest.approx(verdict.metrics["final"].mean_diff)
    children = [parent.data.tags[f"compare.{arm}.seed-{s}"] for arm in "AB" for s in (3, 4)]
    for child in children:
        assert client.get_run(child).data.tags["mlflow.parentRunId"] == parent.info.run_id
    files = {f.path for f in client.list_artifacts(parent.info.run_id, "plots")}
    assert files == {"plots/B_vs_A_paired_finals.png", "plots/B_vs_A_per_au.png"}


@pytest.mark.parametrize("extra,message", [
    (["--seeds", "1"], "--seeds"),
    (["--vs", "loss.nme=bce"], "unknown parameter 'nme'"),
    (["--vs", "loss.name=selective"], "same recipe"),
    ([], "recipe B, or --vs"),
    (["--jobs", "0", "--vs", "loss.name=bce"], "--jobs"),
    (["--vs", "loss.name=bce", "--plan", "--collect"], "give one"),
])
def test_bad_compare_arguments_are_refused_writing_nothing(tiny, capsys, extra, message):
    before = sorted(p.name for p in tiny.parent.iterdir())
    assert main(["compare", str(tiny), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tiny.parent.iterdir()) == before


@pytest.mark.slow
def test_ablate_with_seeds_gives_verdicts_for_every_step(tiny, capsys, monkeypatch):
    out = tiny.parent / "ablation.md"
    assert main(["ablate", str(tiny), "--seeds", "2", *FAST, "--resamples", "50", "--out", str(out)]) == 0
    table = out.read_text()
    lines = [line for line in table.splitlines() if line.startswith("| ")]
    assert lines[0].startswith("| method | Acc | F1 | Avg | vs row above | vs first row |")
    rows = lines[1:]
    assert len(rows) == 5 and rows[0].startswith("| F_face |")
    assert all(" +- " in r for r in rows)
    assert rows[0].endswith("|  |  |") and rows[1].count("P=") == 1 and rows[4].count("P=") == 2
    verdicts = json.loads(next(tiny.parent.glob("runs/ablate-tiny-*/verdict.json")).read_text())
    assert len(verdicts) == 7  # rows 1..4 vs the row above, rows 2..4 vs the first
    # the balancing step again, as a compare: both arms are rows the ablation ran
    from harness import pipeline

    monkeypatch.setattr(pipeline, "run", lambda *a, **k: pytest.fail("an arm-seed ran again"))
    verdict = harness.compare(tiny, vs=["sampler=uniform", "loss=bce"], overrides=FAST[1::2], seeds=2,
                              resamples=50)
    step = json.loads(next(tiny.parent.glob("runs/ablate-tiny-*/verdict.json")).read_text())
    balancing = step["Align + F_face + F_emotion + balancing vs Align + F_face + F_emotion"]
    assert verdict.metrics["final"].a == tuple(balancing["metrics"]["final"]["b"])
    assert verdict.metrics["final"].b == tuple(balancing["metrics"]["final"]["a"])


# ------------------------------------------------------- a failed child run
EXPLODING = str(Path(__file__).parent / "testplugins" / "exploding_backbone.py")
EXPLODE = [arg for view in ("face", "emotion") for item in (f"views.{view}.backbone.name=exploding",
                                                             f"views.{view}.pretrain=none") for arg in ("--set", item)]


def _failed_child_line(err: str) -> re.Match:
    """The one line a failed child run gets; its log holds the child's own error."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    found = re.fullmatch(r"auh: error: arm-seed (\w+)/seed-(\d+) failed in its child process \(exit 1\): "
                         r"run folder (\S+), log (\S+?)( \(\d+ more arm-seed\(s\) failed too\))?", lines[0])
    assert found, lines[0]
    assert "internal error" not in err and "Traceback" not in err
    log = Path(found.group(4))
    assert log.is_file() and "exploding backbone: forward pass refused on purpose" in log.read_text()
    assert log.name == f"{Path(found.group(3)).name}.log"  # the log beside the arm-seed's recipe
    return found


@pytest.mark.slow
def test_compare_jobs_a_failed_child_run_is_one_line_exit_1(tiny, capsys):
    code = main(["--plugin", EXPLODING, "compare", str(tiny), "--vs", "loss.name=bce", "--seeds", "2",
                 "--jobs", "2", *FAST, *EXPLODE, "--resamples", "50"])
    assert code == 1
    found = _failed_child_line(capsys.readouterr().err)
    assert found.group(1) in ("A", "B") and found.group(5) == " (3 more arm-seed(s) failed too)"
    assert not list(tiny.parent.glob("runs/compare-*/verdict.json"))  # no verdict from failed runs


@pytest.mark.slow
def test_ablate_seeds_jobs_a_failed_child_run_is_one_line_exit_1(tiny, capsys):
    code = main(["--plugin", EXPLODING, "ablate", str(tiny), "--seeds", "2", "--jobs", "2", *FAST, *EXPLODE,
                 "--resamples", "50", "--out", str(tiny.parent / "ablation.md")])
    assert code == 1
    found = _failed_child_line(capsys.readouterr().err)
    assert found.group(1).startswith("row") and found.group(5) == " (9 more arm-seed(s) failed too)"
    assert not (tiny.parent / "ablation.md").exists()


def test_a_failed_child_run_is_raised_as_child_run_failed(tiny, monkeypatch):
    """The Python API raises the one exception type (exit status 1 at the command line)."""
    from harness.errors import ChildRunFailed

    monkeypatch.setattr(comparison, "run_children", lambda study, todo, jobs: [(todo[1], 3)])
    with pytest.raises(ChildRunFailed, match=r"arm-seed B/seed-3 failed in its child process \(exit 3\): "
                                             r"run folder .*seed-3, log .*seed-3\.log$") as caught:
        harness.compare(tiny, vs=["loss.name=bce"], overrides=FAST[1::2], seeds=2, jobs=2, resamples=50)
    assert caught.value.exit_code == 1 and isinstance(caught.value, UserError)


def test_ablate_python_api_runs_each_row_and_writes_its_table(tiny, monkeypatch):
    """harness.ablate beside harness.compare: each row (a resolved Recipe) run once, in order;
    the table's numbers are the runs' own (here stand-ins with hand-set scores)."""
    import types

    from harness import pipeline
    from harness.recipe import Recipe

    ran: list[Recipe] = []

    def fake_run(recipe: Recipe, resume: bool = False) -> types.SimpleNamespace:
        ran.append(recipe)
        k = len(ran)
        return types.SimpleNamespace(scores={"accuracy": 0.5 + k / 100, "f1": 0.25 + k / 100, "final": k / 10})

    monkeypatch.setattr(pipeline, "run", fake_run)
    result = harness.ablate(tiny, overrides=["train.epochs=1"], out=tiny.parent / "table.md")
    assert [r.run.name for r in ran] == [f"tiny-ablate-{s}" for s in (
        "f_face", "f_emotion", "f_face+f_emotion", "align+f_face+f_emotion", "align+f_face+f_emotion+balancing")]
    assert all(isinstance(r, Recipe) and r.train.epochs == 1 for r in ran)
    assert [list(r.views) for r in ran] == [["face"], ["emotion"]] + [["face", "emotion"]] * 3
    assert [r.aligner.name for r in ran] == ["none"] * 3 + ["center"] * 2
    assert [(r.sampler.name, r.loss.name) for r in ran] == [("uniform", "bce")] * 4 + [("mlros", "selective")]
    assert result.rows[0] == "F_face" and list(result.results) == list(result.rows)
    assert result.path.read_text() == result.table + "\n"
    assert "| Align + F_face + F_emotion + balancing | 0.550 | 0.300 | 0.500 |" in result.table
