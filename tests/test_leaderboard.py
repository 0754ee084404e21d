"""Organizer side: challenge files, `auh check/score/leaderboard`, the ledger, ranking, rendering."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import harness
from harness import hookimpl
from harness.cli import main
from harness.errors import UserError
from harness.labels import read_labels, read_submission
from harness.metrics import bootstrap_ci, challenge_score
from harness.registry import Provider
from harness.schema import ENC2020
from leaderboard import ledger
from leaderboard.challenge import load_challenge, public_mask
from leaderboard.ledger import Entry
from leaderboard.ranking import Board, add_significance, build_rows
from leaderboard.render import csv_text, html_page, markdown

EXAMPLES = Path(__file__).resolve().parents[1] / "submissions" / "examples"
TEAMS = ("alpha", "beta", "gamma")
FAST = ["--resamples", "40"]



def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def experiment_runs(name: str) -> list[Entry]:
    return ledger.entries(name)


# ---------------------------------------------------------------- challenge
def test_challenge_file(demo):
    ch = load_challenge(demo / "challenge.toml")
    phase = ch.phase(None)
    assert (ch.name, phase.name, phase.cap, phase.public_fraction) == ("enc2020-demo", "test", 3, 0.5)
    assert phase.truth == demo / "truth.txt" and ch.schema is ENC2020
    assert ch.experiment(phase) == "enc2020-demo/test"


@pytest.mark.parametrize("text, message", [
    ('name = "x"\n', "phases: expected at least one"),
    ('name = "x"\n[phases.test]\ncap = 2\n', "phases.test: missing field 'truth'"),
    ('name = "x"\n[phases.test]\ntruth = "t"\ncap = 0\n', "phases.test.cap: expected a positive integer"),
    ('name = "x"\n[phases.test]\ntruth = "t"\npublic_fraction = 1.5\n', "public_fraction: expected a number in (0, 1]"),
    ('name = "x"\ntie_break = ["speed"]\n[phases.t]\ntruth = "t"\n', "tie_break: unknown key 'speed'"),
    ('name = "x"\ncolour = 1\n[phases.t]\ntruth = "t"\n', "unknown field 'colour'"),
    ('name = "a/b"\n[phases.t]\ntruth = "t"\n', "without '/'"),
    ('name = "x"\nschema = "disfa9"\n[phases.t]\ntruth = "t"\n', "unknown AU schema 'disfa9'"),
    ('name = [\n', "not valid TOML"),
])
def test_bad_challenge_files(tmp_path, text, message):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(UserError, match=None) as err:
        load_challenge(path)
    assert message in str(err.value)


def test_public_split_is_deterministic_and_sized():
    names = [f"img_{i}.jpg" for i in range(20000)]
    mask = public_mask(names, 0.3, "salt")
    assert abs(mask.mean() - 0.3) < 0.02
    # a row's side depends on its name only, not on order or on other rows
    np.testing.assert_array_equal(public_mask(names[::-1], 0.3, "salt"), mask[::-1])
    np.testing.assert_array_equal(public_mask(names[:100], 0.3, "salt"), mask[:100])
    assert (public_mask(names, 0.3, "other") != mask).any()
    assert public_mask(names, 1.0).all()


# -------------------------------------------------------------------- check
def test_check_ok_and_logs_nothing(demo, capsys):
    code, out, _ = run(capsys, "check", "--challenge", str(demo / "challenge.toml"),
                       "--submission", str(demo / "alpha.csv"))
    assert code == 0 and "valid submission" in out and "400 images x 23 AUs" in out
    assert not (demo.parent / "mlflow.db").exists()


def test_check_bad_submission_exit_2(demo, capsys):
    bad = demo / "bad.csv"
    bad.write_text((demo / "alpha.csv").read_text().replace(",1,", ",2,", 1))
    code, out, err = run(capsys, "check", "--truth", str(demo / "truth.txt"), "--submission", str(bad))
    assert code == 2 and out == ""
    assert err.startswith("auh: error: ") and "value '2', expected 0 or 1" in err
    assert err.count("\n") == 1


def test_truth_and_challenge_are_exclusive_for_score(demo, capsys):
    code, _, err = run(capsys, "score", "--truth", str(demo / "truth.txt"), "--challenge",
                       str(demo / "challenge.toml"), "--submission", str(demo / "alpha.csv"))
    assert code == 2 and "not both" in err


# -------------------------------------------------------------------- score
def test_score_json_is_the_contract(demo, capsys):
    code, out, _ = run(capsys, "score", "--truth", str(demo / "truth.txt"), "--submission",
                       str(demo / "alpha.csv"), "--team", "alpha", "--json", *FAST, "--seed", "5")
    assert code == 0
    score = json.loads(out)
    assert list(score) == ["final", "accuracy", "f1", "n_images", "ci95", "per_au"]
    names, truth = read_labels(demo / "truth.txt")
    pred = read_submission(demo / "alpha.csv", names)
    expected = challenge_score(pred, truth, ENC2020.aus)
    assert score["final"] == expected["final"]  # exact: never rounded
    assert score["per_au"] == expected["per_au"]
    assert score["ci95"] == bootstrap_ci(pred, truth, 40, 5)
    [entry] = experiment_runs("scoring/test")
    assert entry.team == "alpha" and entry.metrics["final"] == score["final"]
    assert entry.metrics["au/AU12/f1"] == score["per_au"]["AU12"]["f1"]
    assert entry.metrics["ci95_lo"] == score["ci95"][0]


def test_score_text_and_ledger_tags(demo, capsys):
    from harness.fileio import sha256_file

    code, out, _ = run(capsys, "score", "--challenge", str(demo / "challenge.toml"), "--team",
                       "beta", "--submission", str(demo / "beta.csv"), *FAST)
    assert code == 0
    assert out.startswith("final ") and "95% CI [" in out and "\nAU12 " in out
    assert "public " in out and "private " in out and "recorded: run " in out
    [entry] = experiment_runs("enc2020-demo/test")
    assert entry.submission_sha256 == sha256_file(demo / "beta.csv")
    assert entry.truth_sha256 == sha256_file(demo / "truth.txt")
    assert entry.submission_name == "beta.csv" and entry.previous_run == ""
    assert {"public/final", "private/final", "public/au/AU1/f1", "final"} <= set(entry.metrics)
    # artifacts beside the database, never under ./mlruns
    assert (demo.parent / "mlartifacts").is_dir() and not (demo.parent / "mlruns").exists()
    with ledger.submission_copy(entry) as copy:
        assert copy.read_bytes() == (demo / "beta.csv").read_bytes()


def test_cap_rescoring_and_refusals(demo, capsys):
    toml = demo / "challenge.toml"
    toml.write_text(toml.read_text().replace("cap = 3", "cap = 2"))
    bad = demo / "bad.csv"
    bad.write_text("image,AU1\n")

    def score(path: Path) -> int:
        return run(capsys, "score", "--challenge", str(toml), "--team", "t", "--submission",
                   str(path), "--resamples", "0")[0]

    assert score(demo / "alpha.csv") == 0
    assert score(bad) == 2  # invalid: does not count against the cap
    assert score(demo / "beta.csv") == 0
    assert score(demo / "alpha.csv") == 0  # re-scoring a file already counted: allowed
    code, _, err = run(capsys, "score", "--challenge", str(toml), "--team", "t", "--submission",
                       str(demo / "gamma.csv"), "--resamples", "0")
    assert code == 2 and "has used its 2 submissions" in err
    assert run(capsys, "score", "--challenge", str(toml), "--team", "u", "--submission",
               str(demo / "gamma.csv"), "--resamples", "0")[0] == 0  # another team's cap
    runs = experiment_runs("enc2020-demo/test")
    assert [r.submission_name for r in runs] == ["alpha.csv", "beta.csv", "alpha.csv", "gamma.csv"]
    assert runs[2].previous_run == runs[0].run_id  # re-scoring links to the old run


def test_team_names_never_become_paths(demo, capsys):
    team = "../../escaped <b>"
    assert run(capsys, "score", "--truth", str(demo / "truth.txt"), "--team", team,
               "--submission", str(demo / "alpha.csv"), "--resamples", "0")[0] == 0
    root = demo.parent
    assert not any("escaped" in str(p) for p in root.parent.rglob("*escaped*"))
    [entry] = experiment_runs("scoring/test")
    assert entry.team == team
    out = root / "boards" / "b.html"
    out.parent.mkdir()
    assert run(capsys, "leaderboard", "--out", str(out), *FAST)[0] == 0
    assert out.is_file() and "../../escaped &lt;b&gt;" in out.read_text()


def test_scored_hook_is_called(demo, capsys):
    calls = []

    class Recorder:
        @hookimpl
        def auh_scored(self, score, context):
            calls.append((score, context))

    recorder = Recorder()
    registry = harness.get_registry()
    registry.register(recorder, Provider("test-recorder"))
    try:
        code, out, _ = run(capsys, "score", "--truth", str(demo / "truth.txt"), "--team", "alpha",
                           "--submission", str(demo / "alpha.csv"), "--json", *FAST)
    finally:
        registry.pm.unregister(recorder)
    assert code == 0
    [(score, context)] = calls
    assert score == json.loads(out)
    assert context["team"] == "alpha" and context["phase"] == "test"
    assert context["run_id"] == experiment_runs("scoring/test")[0].run_id


def test_ledger_pages_through_all_runs(demo, capsys):
    for team in ("a", "b", "c", "d", "e"):
        run(capsys, "score", "--truth", str(demo / "truth.txt"), "--team", team,
            "--submission", str(demo / "alpha.csv"), "--resamples", "0")
    assert [e.team for e in ledger.entries("scoring/test", page_size=2)] == list("abcde")


# -------------------------------------------------------------- leaderboard
def test_leaderboard_end_to_end(demo, capsys):
    toml = str(demo / "challenge.toml")
    for team in TEAMS:
        assert run(capsys, "score", "--challenge", toml, "--team", team, "--submission",
                   str(demo / f"{team}.csv"), *FAST)[0] == 0
    # expected order, computed independently from the files
    names, truth = read_labels(demo / "truth.txt")
    ch = load_challenge(toml)
    for view, flag in (("public", []), ("private", ["--private"])):
        mask = ch.public_mask(ch.phase("test"), names)
        rows = mask if view == "public" else ~mask
        finals = {t: challenge_score(read_submission(demo / f"{t}.csv", names)[rows], truth[rows],
                                     ENC2020.aus)["final"] for t in TEAMS}
        expected = sorted(TEAMS, key=lambda t: -finals[t])
        code, out, _ = run(capsys, "leaderboard", "--challenge", toml, "--format", "csv", *flag, *FAST)
        assert code == 0
        lines = out.splitlines()
        header = lines[0].split(",")
        got = [dict(zip(header, line.split(","))) for line in lines[1:]]
        assert [g["team"] for g in got] == expected and [g["rank"] for g in got] == ["1", "2", "3"]
        assert [float(g["final"]) for g in got] == [finals[t] for t in expected]
        assert got[1]["p_better_than_next"] == "1.0"  # alpha or beta vs gamma: clearly better
    code, out, _ = run(capsys, "leaderboard", "--challenge", toml, *FAST)
    assert code == 0 and "| rank | team | final |" in out and "(significant)" in out


def test_board_reads_the_recorded_predictions_as_the_submissions_say(demo, capsys, monkeypatch):
    """The board takes each team's predictions from the bit-packed copy recorded at scoring
    time; they are the submission's rows in truth order, and a ledger without them (runs
    recorded before they were kept) gives the same board from the submission files."""
    from mlflow import MlflowClient

    from plugins.tracking import store

    toml = str(demo / "challenge.toml")
    for team in TEAMS:
        assert run(capsys, "score", "--challenge", toml, "--team", team, "--submission",
                   str(demo / f"{team}.csv"), *FAST)[0] == 0
    names, truth = read_labels(demo / "truth.txt")
    entries = experiment_runs(load_challenge(toml).experiment(load_challenge(toml).phase("test")))
    sha = entries[0].truth_sha256
    for e in entries:
        np.testing.assert_array_equal(ledger.recorded_predictions(e, sha, truth.shape),
                                      read_submission(demo / f"{e.team}.csv", names))
        assert ledger.recorded_predictions(e, "another truth", truth.shape) is None
    boards = {}
    with monkeypatch.context() as m:  # the submission files are not read
        m.setattr(ledger, "submission_copy", None)
        for flag in ([], ["--private"]):
            boards[tuple(flag)] = run(capsys, "leaderboard", "--challenge", toml, "--format", "csv",
                                      *flag, *FAST)[1]
    stored = next(Path("mlartifacts").rglob(f"{entries[0].run_id}/**/{ledger.PREDICTIONS_ARTIFACT}"))
    stored.write_bytes(stored.read_bytes()[:100])  # damaged: the board would read the submission
    assert ledger.recorded_predictions(entries[0], sha, truth.shape) is None
    client = MlflowClient(tracking_uri=store.resolve_tracking_uri(None))
    for e in entries:
        client.delete_tag(e.run_id, ledger.PREDICTIONS_TAG)
    for flag, board in boards.items():
        assert run(capsys, "leaderboard", "--challenge", toml, "--format", "csv", *flag, *FAST)[1] == board
    assert "1.0" in boards[()]  # the gaps were tested


def test_leaderboard_without_private_rows(demo, capsys):
    run(capsys, "score", "--truth", str(demo / "truth.txt"), "--submission",
        str(demo / "alpha.csv"), "--resamples", "0")
    code, _, err = run(capsys, "leaderboard", "--private")
    assert code == 2 and "has no private rows" in err


def test_leaderboard_without_a_ledger_creates_none(in_tmp, capsys):
    code, out, err = run(capsys, "leaderboard")
    assert code == 2 and out == "" and err.startswith("auh: error: no ledger at ")
    assert list(in_tmp.iterdir()) == []


def test_empty_leaderboard(demo, capsys):
    assert run(capsys, "score", "--truth", str(demo / "truth.txt"), "--team", "t",
               "--submission", str(demo / "alpha.csv"), "--resamples", "0")[0] == 0
    code, out, _ = run(capsys, "leaderboard", "--phase", "other")
    assert code == 0 and "no scored submissions yet" in out


# ------------------------------------------------------------------ ranking
def entry(team: str, sha: str, t: int, final: float, f1: float = 0.5, acc: float = 0.9) -> Entry:
    return Entry(run_id=f"{team}-{sha}-{t}", team=team, submission_sha256=sha, truth_sha256="T",
                 truth_path="", submission_name=f"{sha}.csv", start_time=t, previous_run="",
                 metrics={"final": final, "f1": f1, "accuracy": acc, "au/A/f1": f1})


def test_ranking_best_last_rescoring_and_ties():
    entries = [entry("x", "1", 1, 0.70), entry("x", "2", 2, 0.60),
               entry("y", "3", 3, 0.65), entry("y", "3", 9, 0.66),  # re-scored: newer run wins
               entry("z", "4", 4, 0.70, f1=0.4), entry("w", "5", 5, 0.70, f1=0.4)]
    rows = build_rows(entries, ["A"], "", "best")
    assert [(r.rank, r.team) for r in rows] == [(1, "x"), (2, "z"), (3, "w"), (4, "y")]
    assert rows[0].tie == "tied on final with z; ordered by f1"
    assert rows[2].tie == "tied on final with z; ordered by time"
    assert rows[3].final == 0.66 and rows[3].submissions == 1 and rows[0].submissions == 2
    last = build_rows(entries, ["A"], "", "last")
    assert {r.team: r.final for r in last}["x"] == 0.60
    # tie-break on final only: equal finals share a rank
    shared = build_rows(entries, ["A"], "", "best", tie_break=("final",))
    assert [r.rank for r in shared] == [1, 1, 1, 4]


def test_significance_of_gaps():
    rng = np.random.default_rng(0)
    truth = (rng.random((300, 3)) < 0.4).astype(int)
    perfect, noisy = truth.copy(), truth ^ (rng.random(truth.shape) < 0.3)
    rows = build_rows([entry("p", "1", 1, 0.9), entry("n", "2", 2, 0.5), entry("m", "3", 3, 0.4)],
                      ["A"], "", "best")
    preds = {"p": perfect, "n": noisy, "m": None}
    add_significance(rows, lambda e: preds[e.team], truth, resamples=50)
    assert rows[0].gap.p_a_better == 1.0 and rows[0].significant
    assert rows[1].gap is None and rows[2].gap is None


# ---------------------------------------------------------------- rendering
EVIL = "<img src=x onerror=alert(1)>"


def evil_board() -> Board:
    rows = build_rows([entry(EVIL, "1", 1, 0.7), entry("=cmd|' /C calc'!A0", "2", 2, 0.6),
                       entry("a|b", "3", 3, 0.5)], ["A"], "", "best")
    return Board(f"demo {EVIL}", "all", "best", ("A",), rows)


def test_markdown_escapes():
    md = markdown(evil_board())
    assert EVIL not in md and "&lt;img src=x onerror=alert(1)&gt;" in md
    assert "a\\|b" in md


def test_csv_neutralises_formulas():
    text = csv_text(evil_board())
    assert "\n2,'=cmd" in text and EVIL in text  # CSV is data: text stays as it is


def test_html_escapes_everything():
    page = html_page(evil_board())
    assert EVIL not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "http://" not in page and "https://" not in page  # self-contained
    assert "script-src 'sha256-" in page and 'src="data:image/png;base64,' in page
