"""Benchmarks as plugins: ABAW, BP4D and DISFA scored like their papers score them
(scikit-learn's f1_score as the oracle), the ABAW layouts read with every ENC rule,
metrics that never count a masked row, and --benchmark through the organizer commands."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import f1_score

from harness.cli import main
from harness.metrics import bootstrap_finals, challenge_score
from plugins.metrics import ENC2020 as ENC_METRIC
from plugins.metrics import MEAN_F1

ABAW_AUS = [f"AU{n}" for n in (1, 2, 4, 6, 7, 10, 12, 15, 23, 24, 25, 26)]
BP4D_AUS = [f"AU{n}" for n in (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24)]
DISFA_AUS = [f"AU{n}" for n in (1, 2, 4, 6, 9, 12, 25, 26)]
ABAW_VIDEOS = {"10-60-1280x720": 40, "video7": 25, "118-30-640x480_left": 31}


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def oracle_mean_f1(truth: np.ndarray, pred: np.ndarray, present: set[int], absent: set[int]) -> float:
    """Mean over AUs of scikit-learn's F1 on the rows whose code is present or absent."""
    scores = []
    for j in range(truth.shape[1]):
        keep = np.isin(truth[:, j], list(present | absent))
        scores.append(f1_score(np.isin(truth[keep, j], list(present)).astype(int), pred[keep, j],
                               zero_division=0))
    return float(np.mean(scores))


def score_json(capsys, tmp: Path, *argv: str) -> dict:
    code, out, err = run(capsys, "score", *argv, "--json", "--resamples", "20",
                         "--tracking-uri", f"sqlite:///{tmp / 'ledger.db'}")
    assert code == 0, err
    return json.loads(out)


# ------------------------------------------------------------------- ABAW
def abaw_files(root: Path, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """truth/VIDEO.txt with -1s, sub/VIDEO.txt and predictions.txt of the same 0/1."""
    rng = np.random.default_rng(seed)
    (root / "truth").mkdir(parents=True)
    (root / "sub").mkdir()
    truths, preds, rows = [], [], []
    header = ",".join(ABAW_AUS)
    for video, n in ABAW_VIDEOS.items():
        truth = rng.choice([0, 1, -1], size=(n, 12), p=[0.55, 0.3, 0.15])
        truth[:, 3] = np.where(truth[:, 3] == 1, 0, truth[:, 3])  # an AU with no positive
        pred = rng.integers(0, 2, (n, 12))
        for folder, values in (("truth", truth), ("sub", pred)):
            lines = [",".join(map(str, r)) for r in values]
            (root / folder / f"{video}.txt").write_text("\n".join([header, *lines]) + "\n")
        rows += [f"{video}/{k:05d}.jpg," + ",".join(map(str, r)) for k, r in enumerate(pred, start=1)]
        truths.append(truth)
        preds.append(pred)
    (root / "predictions.txt").write_text("\n".join([f"image_location,{header}", *rows]) + "\n")
    return np.concatenate(truths), np.concatenate(preds)


@pytest.mark.parametrize("layout", ["sub", "predictions.txt"])
def test_abaw_score_equals_sklearn_mean_f1(capsys, in_tmp, layout):
    truth, pred = abaw_files(in_tmp)
    card = score_json(capsys, in_tmp, "--benchmark", "abaw_au", "--truth", str(in_tmp / "truth"),
                      "--submission", str(in_tmp / layout))
    want = oracle_mean_f1(truth, pred, {1}, {0})
    assert abs(card["final"] - want) < 1e-12 and abs(card["f1"] - want) < 1e-12
    assert card["metric"] == "mean_f1" and card["headline"] == "mean F1" and card["benchmark"] == "abaw_au"
    assert card["n_images"] == sum(ABAW_VIDEOS.values())
    assert card["per_au"]["AU1"]["n"] == int((truth[:, 0] != -1).sum())
    lo, hi = card["ci95"]
    assert lo <= card["final"] <= hi


def test_abaw_scorecard_names_the_metric(capsys, in_tmp):
    abaw_files(in_tmp)
    code, out, err = run(capsys, "score", "--benchmark", "abaw_au", "--truth", str(in_tmp / "truth"),
                         "--submission", str(in_tmp / "sub"), "--resamples", "0",
                         "--tracking-uri", f"sqlite:///{in_tmp / 'ledger.db'}")
    assert code == 0, err
    assert "final = mean F1" in out


@pytest.mark.parametrize("layout", ["sub", "predictions.txt"])
def test_abaw_missing_frame_is_refused_naming_the_video(capsys, in_tmp, layout):
    abaw_files(in_tmp)
    path = in_tmp / layout / "video7.txt" if layout == "sub" else in_tmp / layout
    lines = path.read_text().splitlines(keepends=True)
    victim = 9 if layout == "sub" else next(i for i, ln in enumerate(lines) if ln.startswith("video7/00009"))
    path.write_text("".join(lines[:victim] + lines[victim + 1:]))
    code, out, err = run(capsys, "check", "--benchmark", "abaw_au", "--truth", str(in_tmp / "truth"),
                         "--submission", str(in_tmp / layout))
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "video7" in err


@pytest.mark.parametrize("edit, where", [
    (lambda ls: ls[:3] + ["0,1,0,1,0,1,0,1,0,1,0,2\n"] + ls[4:], "video7.txt: line 4, column AU26: value '2'"),
    (lambda ls: ls[:3] + ["0,1,0,1,0,1,0,1,0,1,0,-1\n"] + ls[4:], "line 4, column AU26: value '-1'"),
    (lambda ls: ["AU1,AU2\n"] + ls[1:], "video7.txt: line 1: header"),
    (lambda ls: ls[:5] + ["\n"] + ls[5:], "video7.txt: line 6: blank line"),
    (lambda ls: ls[:5] + ["0,1\x00\n"] + ls[6:], "video7.txt: line 6: a NUL byte"),
    (lambda ls: ls + ["0,0,0,0,0,0,0,0,0,0,0,0\n"], "video7.txt: 26 frame rows, expected 25"),
])
def test_abaw_video_files_keep_every_enc_rule(capsys, in_tmp, edit, where):
    abaw_files(in_tmp)
    path = in_tmp / "sub" / "video7.txt"
    path.write_text("".join(edit(path.read_text().splitlines(keepends=True))))
    code, _, err = run(capsys, "check", "--benchmark", "abaw_au", "--truth", str(in_tmp / "truth"),
                       "--submission", str(in_tmp / "sub"))
    assert code == 2 and err.count("\n") == 1
    assert where in err


def test_abaw_predictions_header_must_be_exact(capsys, in_tmp):
    abaw_files(in_tmp)
    path = in_tmp / "predictions.txt"
    text = path.read_text().replace("image_location,AU1,AU2", "image_location,AU2,AU1", 1)
    path.write_text(text)
    code, _, err = run(capsys, "check", "--benchmark", "abaw_au", "--truth", str(in_tmp / "truth"),
                       "--submission", str(path))
    assert code == 2 and "line 1: header" in err and "expected exactly" in err


def test_abaw_extra_video_is_refused(capsys, in_tmp):
    abaw_files(in_tmp)
    (in_tmp / "sub" / "stranger.txt").write_text(",".join(ABAW_AUS) + "\n" + "0," * 11 + "0\n")
    code, _, err = run(capsys, "check", "--benchmark", "abaw_au", "--truth", str(in_tmp / "truth"),
                       "--submission", str(in_tmp / "sub"))
    assert code == 2 and "stranger.txt: video 'stranger' is not in the truth" in err


def test_abaw_convert_round_trip_and_blind(capsys, in_tmp):
    """A submission written per video reads back as the same predictions; blind writes -1 files."""
    truth, pred = abaw_files(in_tmp)
    (in_tmp / "challenge.toml").write_text('name = "abaw"\nbenchmark = "abaw_au"\n[phases.val]\ntruth = "truth"\n')
    code, out, err = run(capsys, "blind", "--challenge", str(in_tmp / "challenge.toml"), str(in_tmp / "blind"))
    assert code == 0, err
    blind = (in_tmp / "blind" / "blind_truth" / "video7.txt").read_text().splitlines()
    assert blind[0] == ",".join(ABAW_AUS) and len(blind) == 26 and set(blind[1:]) == {",".join(["-1"] * 12)}
    template = (in_tmp / "blind" / "submission_template.txt").read_text().splitlines()
    assert template[0] == "image_location," + ",".join(ABAW_AUS) and template[1].startswith("10-60-1280x720/00001.jpg,0,")
    code, _, err = run(capsys, "check", "--challenge", str(in_tmp / "challenge.toml"), "--submission",
                       str(in_tmp / "blind" / "submission_template.txt"))
    assert code == 0, err


# ------------------------------------------------------------ BP4D, DISFA
@pytest.mark.parametrize("benchmark, aus, codes, present, absent", [
    ("bp4d", BP4D_AUS, [0, 1, 9], {1}, {0}),
    ("disfa", DISFA_AUS, [0, 1, 2, 3, 4, 5], {2, 3, 4, 5}, {0, 1}),
])
def test_image_benchmarks_equal_sklearn_mean_f1(capsys, in_tmp, benchmark, aus, codes, present, absent):
    rng = np.random.default_rng(5)
    n = 300
    truth = rng.choice(codes, size=(n, len(aus)))
    pred = rng.integers(0, 2, (n, len(aus)))
    names = [f"S{i % 7:03d}/frame_{i:04d}.jpg" for i in range(n)]
    for file, values in (("truth.csv", truth), ("sub.csv", pred)):
        rows = [f"{name}," + ",".join(map(str, r)) for name, r in zip(names, values)]
        (in_tmp / file).write_text("\n".join(["image," + ",".join(aus), *rows]) + "\n")
    card = score_json(capsys, in_tmp, "--benchmark", benchmark, "--truth", str(in_tmp / "truth.csv"),
                      "--submission", str(in_tmp / "sub.csv"))
    assert abs(card["final"] - oracle_mean_f1(truth, pred, present, absent)) < 1e-12
    assert card["metric"] == "mean_f1" and card["benchmark"] == benchmark


def test_image_benchmark_refuses_another_benchmarks_codes(capsys, in_tmp):
    (in_tmp / "truth.csv").write_text("image," + ",".join(BP4D_AUS) + "\na.jpg," + "999," * 11 + "0\n")
    (in_tmp / "sub.csv").write_text("image," + ",".join(BP4D_AUS) + "\na.jpg," + "0," * 11 + "0\n")
    code, _, err = run(capsys, "check", "--benchmark", "bp4d", "--truth", str(in_tmp / "truth.csv"),
                       "--submission", str(in_tmp / "sub.csv"))
    assert code == 2 and "column AU1: value '999', expected 0 or 1 or 9" in err


def test_unknown_benchmark_is_one_line(capsys, in_tmp):
    code, _, err = run(capsys, "check", "--benchmark", "bp4dd", "--truth", "t.csv", "--submission", "s.csv")
    assert code == 2 and "unknown benchmark 'bp4dd'" in err and "did you mean 'bp4d'" in err


def test_runs_of_two_benchmarks_never_share_a_board(capsys, in_tmp):
    abaw_files(in_tmp)
    db = f"sqlite:///{in_tmp / 'ledger.db'}"
    assert run(capsys, "score", "--benchmark", "abaw_au", "--truth", str(in_tmp / "truth"), "--submission",
               str(in_tmp / "sub"), "--team", "a", "--resamples", "0", "--tracking-uri", db)[0] == 0
    code, out, _ = run(capsys, "leaderboard", "--tracking-uri", db, "--format", "csv")
    assert code == 0 and "\na," not in out  # the default (enc2020) board holds no ABAW run
    code, out, err = run(capsys, "leaderboard", "--benchmark", "abaw_au", "--tracking-uri", db,
                         "--format", "csv", "--resamples", "0")
    assert code == 0 and "\n1,a," in out, (out, err)


# ---------------------------------------------------------------- metrics
@pytest.mark.parametrize("metric", [ENC_METRIC, MEAN_F1])
def test_a_masked_row_never_counts_in_any_average(metric):
    """Changing the predictions of rows whose truth is unknown moves no score: not an
    AU's, not a mean, not final, not a bootstrap resample."""
    rng = np.random.default_rng(3)
    truth = rng.choice([0, 1, 999], size=(200, 6), p=[0.5, 0.3, 0.2])
    truth[:, 5] = 999  # an AU with no known row: undefined, out of every mean
    pred = rng.integers(0, 2, truth.shape)
    flipped = np.where(truth == 999, 1 - pred, pred)
    aus = [f"AU{k}" for k in range(6)]
    a, b = challenge_score(pred, truth, aus, metric), challenge_score(flipped, truth, aus, metric)
    assert a == b and a["undefined_aus"] == ["AU5"]
    np.testing.assert_array_equal(bootstrap_finals([pred], truth, 30, 1, metric),
                                  bootstrap_finals([flipped], truth, 30, 1, metric))
    known = truth[:, :5] != 999
    f1s = [f1_score(truth[known[:, j], j], pred[known[:, j], j], zero_division=0) for j in range(5)]
    accs = [np.mean(truth[known[:, j], j] == pred[known[:, j], j]) for j in range(5)]
    want = np.mean(f1s) if metric is MEAN_F1 else (np.mean(f1s) + np.mean(accs)) / 2
    assert abs(a["final"] - want) < 1e-12


def test_video_bootstrap_resamples_whole_videos():
    """With groups, a resample's rows come in whole videos: two videos whose frames are
    all right or all wrong give resamples of F1 1, 0 or in between by video counts only."""
    truth = np.ones((10, 1), dtype=int)
    pred = np.array([[1]] * 4 + [[0]] * 6)
    groups = np.array([0] * 4 + [1] * 6)
    finals = bootstrap_finals([pred], truth, 200, 0, MEAN_F1, groups)[:, 0]
    # drawing video 0 twice: F1 1; video 1 twice: F1 0; one of each: 2*4 / (2*4 + 6) = 8/14
    assert set(np.round(finals, 12)) <= {1.0, 0.0, round(8 / 14, 12)}
    assert len(set(np.round(finals, 12))) == 3


# ------------------------------------------------------------ other tools
def test_a_tools_aus_map_onto_the_benchmarks(capsys, in_tmp):
    """py-feat writes AU7, AU14 and AU23, which ENC-2020 lacks and BP4D scores: under bp4d they
    are covered and scored; under the default benchmark they are not read at all."""
    import harness

    feat = ["01", "02", "04", "05", "06", "07", "09", "10", "12", "14", "15", "17", "23", "24", "43"]
    rng = np.random.default_rng(2)
    n = 40
    probs = rng.random((n, len(feat))).round(6)
    names = [f"img{i:03d}.jpg" for i in range(n)]
    head = ",FaceRectX,FaceRectY,FaceRectWidth,FaceRectHeight,FaceScore," + ",".join(f"AU{a}" for a in feat)
    rows = [f"{i},10,12,40,50,0.99," + ",".join(f"{p:.6f}" for p in probs[i]) + f",/data/{names[i]}"
            for i in range(n)]
    (in_tmp / "fex.csv").write_text("\n".join([head + ",input", *rows]) + "\n")
    truth = rng.choice([0, 1, 9], size=(n, len(BP4D_AUS)))
    (in_tmp / "truth.csv").write_text("\n".join(["image," + ",".join(BP4D_AUS), *(
        f"{name}," + ",".join(map(str, r)) for name, r in zip(names, truth))]) + "\n")

    assert "AU14" not in harness.create("reader", "pyfeat").read(in_tmp / "fex.csv").covered
    card = score_json(capsys, in_tmp, "--benchmark", "bp4d", "--truth", str(in_tmp / "truth.csv"),
                      "--from", "pyfeat", "--submission", str(in_tmp / "fex.csv"))
    assert card["coverage"]["covered"] == ["AU1", "AU2", "AU4", "AU6", "AU7", "AU10", "AU12", "AU14",
                                           "AU15", "AU17", "AU23", "AU24"]
    j = BP4D_AUS.index("AU14")
    keep = truth[:, j] != 9
    want = f1_score(truth[keep, j], (probs[keep, feat.index("14")] >= 0.5).astype(int), zero_division=0)
    assert abs(card["per_au"]["AU14"]["f1"] - want) < 1e-12


def test_a_run_thresholds_for_its_benchmarks_metric():
    """The pipeline gives the search thresholder the dataset's benchmark metric; a metric
    the recipe names itself wins, and a thresholder without the parameter gets none."""
    from harness import recipe as recipes
    from harness.pipeline import make_thresholder

    assert make_thresholder(recipes.load(None, ["thresholder.name=search"]), MEAN_F1).metric == "mean_f1"
    assert make_thresholder(recipes.load(None, ["thresholder.name=search"]), ENC_METRIC).metric == "enc2020"
    named = recipes.load(None, ["thresholder.name=search", "thresholder.metric=enc2020"])
    assert make_thresholder(named, MEAN_F1).metric == "enc2020"
    assert not hasattr(make_thresholder(recipes.load(None, ["thresholder.name=fixed"]), MEAN_F1), "metric")


def test_compare_verdicts_are_on_the_benchmarks_final():
    """A paired verdict with the mean_f1 metric judges each seed's final = mean F1."""
    from harness.verdict import paired_verdict

    rng = np.random.default_rng(8)
    truths = [rng.choice([0, 1, 999], size=(120, 4), p=[0.5, 0.4, 0.1]) for _ in range(3)]
    preds_a = [rng.integers(0, 2, t.shape) for t in truths]
    preds_b = [np.where(rng.random(t.shape) < 0.7, t == 1, 1 - (t == 1)).astype(int) for t in truths]
    v = paired_verdict(range(3), preds_a, preds_b, truths, ["AU1", "AU2", "AU4", "AU6"], resamples=50,
                       metric=MEAN_F1)
    for arm, preds in (("a", preds_a), ("b", preds_b)):
        want = [oracle_mean_f1(np.where(t == 999, -1, t), p, {1}, {0}) for t, p in zip(truths, preds)]
        np.testing.assert_allclose(getattr(v.metrics["final"], arm), want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("content, message", [
    (b"image_location,AU1\x00\n", "line 1: a NUL byte"),
    (b"", "the file is empty"),
    (b"image_location,AU1,AU2\nv/00001.jpg,0,1\n", "line 1: header"),
])
def test_abaw_predictions_file_refusals(capsys, in_tmp, content, message):
    abaw_files(in_tmp)
    (in_tmp / "predictions.txt").write_bytes(content)
    code, out, err = run(capsys, "check", "--benchmark", "abaw_au", "--truth", str(in_tmp / "truth"),
                         "--submission", str(in_tmp / "predictions.txt"))
    assert code == 2 and out == "" and err.count("\n") == 1 and message in err


def test_weighted_ensemble_picks_weights_by_the_benchmarks_final():
    """Fitted weights maximize mean F1 (scikit-learn, brute force over the grid) under mean_f1,
    and the pipeline hands the ensembler its dataset's metric."""
    from harness import recipe as recipes
    from harness.pipeline import build_for_metric
    from plugins.ensemblers import Weighted, simplex_grid
    from plugins.thresholders import SearchThresholder

    rng = np.random.default_rng(4)
    labels = rng.choice([0, 1, 999], size=(150, 3), p=[0.6, 0.3, 0.1])
    views = [np.clip((labels == 1) * s + rng.random(labels.shape), 0, 1) for s in (0.2, 0.5, 0.1)]
    fitted = Weighted(fit_weights=True, grid_step=0.25, metric="mean_f1").fit(
        views, labels, SearchThresholder(metric="mean_f1"))

    def mean_f1(w):
        probs = np.tensordot(w, np.stack(views), axes=1)
        pred = SearchThresholder(metric="mean_f1").fit(probs, labels).predict(probs)
        return oracle_mean_f1(np.where(labels == 999, -1, labels), pred, {1}, {0})

    grid = simplex_grid(3, 4)
    scores = [mean_f1(w) for w in grid]
    np.testing.assert_array_equal(fitted.weights_, grid[int(np.argmax(scores))])
    spec = recipes.load(None, ["ensembler.name=weighted"]).ensembler
    assert build_for_metric("ensembler", spec, MEAN_F1).metric == "mean_f1"


def test_abaw_public_and_private_rows_are_whole_videos(capsys, in_tmp):
    from leaderboard.challenge import public_mask

    abaw_files(in_tmp)
    (in_tmp / "c.toml").write_text('name = "abaw"\nbenchmark = "abaw_au"\nsplit_salt = "q"\n'
                                   '[phases.val]\ntruth = "truth"\npublic_fraction = 0.5\n')
    code, out, err = run(capsys, "score", "--challenge", str(in_tmp / "c.toml"), "--submission",
                         str(in_tmp / "sub"), "--resamples", "0", "--tracking-uri", f"sqlite:///{in_tmp / 'l.db'}")
    assert code == 0, err
    videos = sorted(ABAW_VIDEOS)
    public = public_mask(videos, 0.5, "q/val")
    want = sum(ABAW_VIDEOS[v] for v, p in zip(videos, public) if p)
    assert f"public    " in out and f"({want:,} rows)" in out
    assert f"({sum(ABAW_VIDEOS.values()) - want:,} rows)" in out
