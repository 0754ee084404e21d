"""A real MLflow tracking server on 127.0.0.1: training runs and the ledger over HTTP.

The server (SQLite backend store, proxied artifact store, one worker, job
execution off) starts in about 15 s, so the whole module is marked slow.
It is stopped by its process group in a ``finally``, whatever happens.
"""
from __future__ import annotations

import contextlib
import csv
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

pytest.importorskip("mlflow")
requests = pytest.importorskip("requests")

from harness.metrics import challenge_score  # noqa: E402
from harness.schema import ENC2020  # noqa: E402
from plugins import tracking  # noqa: E402
from harness.errors import UserError  # noqa: E402
from support import fake_run, make_recipe, make_result  # noqa: E402

pytestmark = pytest.mark.slow
START_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``http://127.0.0.1:PORT`` of a fresh server, its data folder as ``.root``. Its
    backend store is a real PostgreSQL database where one can be started here
    (Debian's ``postgresql`` package, which ``make test`` installs), else a SQLite
    file; ``.backend`` says which and ``.why_not_postgresql`` why not."""
    root = tmp_path_factory.mktemp("server")
    with contextlib.ExitStack() as stack:
        postgres_uri, why_not = stack.enter_context(postgresql_database())
        port = free_port()
        log = stack.enter_context(open(root / "server.log", "wb"))
        command = [str(Path(sys.executable).with_name("mlflow")), "server",
                   "--backend-store-uri", postgres_uri or f"sqlite:///{root / 's.db'}",
                   "--artifacts-destination", str(root / "art"),
                   "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        env.pop("MLFLOW_TRACKING_URI", None)
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root,
                                start_new_session=True)  # its own process group: workers die with it
        stack.callback(stop, proc)
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proc, root / "server.log")
        yield types.SimpleNamespace(url=url, root=root, backend="postgresql" if postgres_uri else "sqlite",
                                    why_not_postgresql=why_not)


@contextlib.contextmanager
def postgresql_database() -> Iterator[tuple[str | None, str]]:
    """A PostgreSQL server of its own on 127.0.0.1 with a database ``mlflow``:
    ``(its SQLAlchemy URI, "")``, or ``(None, why not)`` where the package, the
    driver or the server is not there. Stops the server it started."""
    try:
        import psycopg
    except ImportError:
        yield None, "psycopg (the PostgreSQL driver) is not installed"
        return
    bindir = postgres_bindir()
    if bindir is None:
        yield None, "PostgreSQL is not installed (Debian's postgresql package; `make test` installs it)"
        return
    folder = Path(tempfile.mkdtemp(prefix="auh-postgres-"))
    as_user = postgres_user(folder)
    if as_user is None:
        shutil.rmtree(folder)
        yield None, "running as root and there is no `postgres` user to run PostgreSQL as"
        return
    ctl = [*as_user, str(bindir / "pg_ctl"), "-D", str(folder / "data")]
    port = free_port()
    try:
        why_not = start_postgres(bindir, as_user, ctl, folder, port)
        if why_not:
            yield None, why_not
            return
        # autocommit: CREATE DATABASE cannot run inside a transaction
        with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres",
                             autocommit=True) as conn:
            conn.execute("CREATE DATABASE mlflow")
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/mlflow", ""
    finally:
        subprocess.run([*ctl, "-m", "immediate", "-w", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


def start_postgres(bindir: Path, as_user: list[str], ctl: list[str], folder: Path, port: int) -> str:
    """initdb and start; "" on success, else why it failed."""
    steps = [[*as_user, str(bindir / "initdb"), "-D", str(folder / "data"), "-A", "trust",
              "-U", "postgres", "-E", "UTF8", "--no-sync"],
             [*ctl, "-o", f"-p {port} -k {folder} -c listen_addresses=127.0.0.1",
              "-l", str(folder / "server.log"), "-w", "-t", str(START_TIMEOUT_S), "start"]]
    for command in steps:
        done = subprocess.run(command, capture_output=True, text=True, timeout=START_TIMEOUT_S + 30)
        if done.returncode != 0:
            return f"PostgreSQL could not be started: {(done.stderr or done.stdout).strip()[-500:]}"
    return ""


def postgres_bindir() -> Path | None:
    """Where initdb and pg_ctl are: on PATH, or Debian's /usr/lib/postgresql/<version>/bin."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
                      key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    return versions[-1].parent if versions else None


def postgres_user(folder: Path) -> list[str] | None:
    """The command prefix that runs PostgreSQL's tools: as the ``postgres`` user when
    this is root (PostgreSQL refuses to run as root; None: there is no such user),
    as this user otherwise."""
    if os.geteuid() != 0:
        return []
    try:
        account = pwd.getpwnam("postgres")
    except KeyError:
        return None
    os.chown(folder, account.pw_uid, account.pw_gid)
    return ["runuser", "-u", "postgres", "--"]


def wait_healthy(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"mlflow server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(url + "/health", timeout=2).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    pytest.fail(f"mlflow server not healthy after {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def auh(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "AUH_QUIET": "1", "HF_HUB_OFFLINE": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_training_run_tracked_over_http(server, tmp_path):
    recipe = make_recipe(experiment="over-http", tracking_uri=server.url)
    run = fake_run(recipe, tmp_path / "runs" / "http")
    tracking.auh_run_start(run=run)
    stage = "fold/0/face/finetune"
    tracking.auh_stage_start(run=run, stage=stage)
    for epoch in (1, 2):
        tracking.auh_epoch_end(run=run, stage=stage, epoch=epoch, metrics={"loss": 1.0 / epoch})
    tracking.auh_stage_end(run=run, stage=stage, metrics={}, artifacts={})
    result = make_result(tmp_path)
    tracking.auh_run_end(run=run, result=result)

    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlartifacts").exists()
    from mlflow import MlflowClient

    client = MlflowClient(server.url)  # a fresh client: read back what the server holds
    experiment = client.get_experiment_by_name("over-http")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert set(runs) == {"http", "fold/0", "fold/0/face", stage}
    parent = runs["http"]
    assert parent.data.metrics["final"] == pytest.approx(result["scores"]["final"])
    assert parent.data.params["run.tracking_uri"] == server.url
    history = client.get_metric_history(runs[stage].info.run_id, "loss")
    assert sorted((m.step, m.value) for m in history) == [(1, 1.0), (2, 0.5)]
    # artifacts went through the server into its artifact root
    stored = {p.name for p in (server.root / "art").rglob("*") if p.is_file()}
    assert {"recipe.toml", "pr_curves.png", "val_predictions.npz"} <= stored


TINY_RUN = """
[run]
name = "tiny-http"
seed = 1

[dataset]
name = "synth"
n = 120
size = 64
identities = 8
per_identity = 4
per_expression = 4

[aligner]
name = "center"

[evaluation]
mode = "split"
bootstrap = 20

[train]
epochs = 1
batch_size = 16
input_size = 32
workers = 0

[views.face]
pretrain = "none"
backbone = "timm:resnet10t"
"""


def test_auh_run_over_http(server, tmp_path):
    (tmp_path / "tiny.toml").write_text(TINY_RUN)
    done = auh("run", "tiny.toml", "--tracking-uri", server.url, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"MLflow: open {server.url}" in done.stdout
    assert not (tmp_path / "mlflow.db").exists()
    result = json.loads((tmp_path / "runs" / "tiny-http" / "result.json").read_text())
    state = json.loads((tmp_path / "runs" / "tiny-http" / "state.json").read_text())

    from mlflow import MlflowClient

    client = MlflowClient(server.url)
    parent = client.get_run(state["mlflow"]["parent_run_id"])
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["final"] == pytest.approx(result["scores"]["final"])
    names = {r.info.run_name for r in client.search_runs([parent.info.experiment_id])}
    assert {"tiny-http", "split/face/finetune", "split/ensemble"} <= names
    assert {"plots", "recipe.toml"} <= {f.path for f in client.list_artifacts(parent.info.run_id)}
    # the bundle is the run's logged model, and `auh predict` takes it by URI through the server
    logged = client.search_logged_models(experiment_ids=[parent.info.experiment_id])
    assert [(m.name, m.source_run_id) for m in logged] == [("model", parent.info.run_id)]
    from PIL import Image

    (tmp_path / "img").mkdir()
    for i in range(2):
        Image.new("RGB", (48, 48), (40 + 90 * i, 90, 120)).save(tmp_path / "img" / f"{i}.png")
    done = auh("predict", f"runs:/{parent.info.run_id}/model", "img", "--out", "p.csv",
               "--tracking-uri", server.url, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("wrote 2 rows for 2 images to p.csv")


def write_labels_csv(path: Path, names: list[str], labels: np.ndarray) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image", *ENC2020.aus])
        writer.writerows([name, *map(int, row)] for name, row in zip(names, labels))


def test_score_and_leaderboard_over_http(server, tmp_path):
    rng = np.random.default_rng(1)
    names = [f"img{i:03d}.jpg" for i in range(40)]
    truth = rng.integers(0, 2, (len(names), len(ENC2020.aus)))
    truth[rng.random(truth.shape) < 0.1] = 999
    good = np.where(truth == 999, 0, truth)
    good[:4] = 1 - good[:4]  # a few mistakes, so the scores are not degenerate
    write_labels_csv(tmp_path / "truth.csv", names, truth)
    write_labels_csv(tmp_path / "good.csv", names, good)
    write_labels_csv(tmp_path / "zeros.csv", names, np.zeros_like(truth))

    scores = {}
    for team, sub in (("alpha", "good.csv"), ("beta", "zeros.csv")):
        done = auh("score", "--truth", "truth.csv", "--submission", sub, "--team", team, "--json",
                   "--resamples", "50", "--tracking-uri", server.url, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        scores[team] = json.loads(done.stdout)
        pred = good if team == "alpha" else np.zeros_like(good)
        expected = challenge_score(pred, truth, list(ENC2020.aus))
        assert scores[team]["final"] == pytest.approx(expected["final"])
    assert not (tmp_path / "mlflow.db").exists()  # the ledger is on the server

    board = auh("leaderboard", "--truth", "truth.csv", "--format", "csv", "--resamples", "50",
                "--tracking-uri", server.url, cwd=tmp_path)
    assert board.returncode == 0, board.stderr
    rows = list(csv.DictReader(board.stdout.splitlines()))
    assert [r["team"] for r in rows] == ["alpha", "beta"]
    assert float(rows[0]["final"]) == pytest.approx(scores["alpha"]["final"], abs=1e-4)


def test_unreachable_server_is_one_line_error(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    run = fake_run(make_recipe(tracking_uri=url), tmp_path / "runs" / "x")
    with pytest.raises(UserError, match="does not answer"):
        tracking.auh_run_start(run=run)


def test_sixteen_concurrent_scorers_all_land_on_postgresql(server, tmp_path):
    """16 `auh score` processes at once against a PostgreSQL-backed server: every one
    exits 0 and the ledger holds 16 finished runs, one per team, each with its score."""
    if server.backend != "postgresql":
        pytest.skip(f"no PostgreSQL here: {server.why_not_postgresql}")
    rng = np.random.default_rng(7)
    names = [f"img{i:03d}.jpg" for i in range(30)]
    truth = rng.integers(0, 2, (len(names), len(ENC2020.aus)))
    write_labels_csv(tmp_path / "truth.csv", names, truth)
    expected = {}
    for k in range(16):
        pred = np.where(rng.random(truth.shape) < 0.1 + k / 40, 1 - truth, truth)
        write_labels_csv(tmp_path / f"team{k}.csv", names, pred)
        expected[f"team{k}"] = challenge_score(pred, truth, list(ENC2020.aus))["final"]
    env = {**os.environ, "AUH_QUIET": "1", "HF_HUB_OFFLINE": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    procs = [subprocess.Popen([sys.executable, "-m", "harness", "score", "--truth", "truth.csv",
                               "--submission", f"{team}.csv", "--team", team, "--phase", "concurrent",
                               "--resamples", "0", "--tracking-uri", server.url],
                              cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for team in expected]
    outcomes = [(p.wait(timeout=600), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    assert [code for code, _ in outcomes] == [0] * 16, [err for _, err in outcomes]

    from mlflow import MlflowClient

    client = MlflowClient(server.url)
    experiments = [e for e in client.search_experiments() if "concurrent" in e.name]
    runs = client.search_runs([e.experiment_id for e in experiments], max_results=1000)
    landed = {r.data.tags["team"]: r for r in runs if r.info.status == "FINISHED"}
    assert sorted(landed) == sorted(expected) and len(runs) == 16
    for team, run in landed.items():
        assert run.data.metrics["final"] == pytest.approx(expected[team])
