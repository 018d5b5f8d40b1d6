"""`mlpack run --engine dask` against a real scheduler and worker processes on 127.0.0.1.

The workers run in their own folders with an empty MLPACK_HOME, so that they can only use the
service and models the client ships; every output is compared with a local run's.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mlpack
from mlpack.provenance import Provenance, write_provenance

pytestmark = pytest.mark.slow

COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
DASK = str(Path(sys.executable).parent / "dask")
ROOT = Path(__file__).resolve().parent.parent

SERVICE = """
import gc
import os
import sys

# one line per import of this module, per process: its pid, its parent's, whether sklearn was
# imported before, whether the garbage collector runs, whether objects were frozen before,
# whether a dashboard's monitors run (GIL contention, a worker's metrics route)
MONITORS = ("gilknocker", "distributed.http.worker.prometheus")  # gilknocker: when installed
with open(os.environ["IMPORT_LOG"], "a") as log:
    state = f"{int('sklearn' in sys.modules)} {int(gc.isenabled())} {int(gc.get_freeze_count() > 0)}"
    state += f" {int(any(m in sys.modules for m in MONITORS))}"
    log.write(f"{os.getpid()} {os.getppid()} {state}\\n")

import mlpack
from mlpack.io import NumpyNdarray, PandasDataFrame

runner = mlpack.sklearn.get("iris_clf:latest").to_runner()
svc = mlpack.Service("iris_classifier", runners=[runner])
COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


@svc.api(input=NumpyNdarray(dtype="float64"), output=NumpyNdarray())
def predict(arr):
    return runner.predict.run(arr)


@svc.api(input=PandasDataFrame(columns=COLUMNS), output=PandasDataFrame())
def predict_df(df):
    return df.assign(species=runner.predict.run(df.to_numpy()))[["species"]]
"""


def imports(log: Path) -> list[tuple[int, int, bool]]:
    """(pid, parent pid, sklearn imported already) of each import of the service module."""
    return [(int(a), int(b), c == "1") for a, b, c, *_ in (line.split() for line in log.read_text().splitlines())]


def collector(log: Path) -> list[tuple[bool, bool]]:
    """(garbage collector enabled, objects frozen) in each process that imported the service module."""
    return [(a == "1", b == "1") for *_, a, b, _ in (line.split() for line in log.read_text().splitlines())]


def monitored(log: Path) -> list[bool]:
    """Whether a dashboard's monitors ran in each process that imported the service module."""
    return [line.split()[-1] == "1" for line in log.read_text().splitlines()]


def _wait_for_file(path: Path, procs: list[subprocess.Popen], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not (path.is_file() and path.stat().st_size):
        if any(p.poll() is not None for p in procs) or time.monotonic() > deadline:
            raise RuntimeError(f"dask did not start: {path} missing")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A `dask scheduler` and two `dask worker` processes, each worker in its own folder and store."""
    root = tmp_path_factory.mktemp("dask-cluster")
    sched_file = root / "scheduler.json"
    log, inflight = root / "imports.log", root / "inflight.log"
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("MLPACK_", "DASK_"))}
    base_env |= {"IMPORT_LOG": str(log), "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    procs = [
        subprocess.Popen(
            [DASK, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file", str(sched_file),
             "--preload", str(Path(__file__).with_name("dask_inflight.py"))],
            cwd=root, env={**base_env, "INFLIGHT_LOG": str(inflight)}, stdout=subprocess.DEVNULL,
            stderr=open(root / "scheduler.log", "w"), start_new_session=True,  # noqa: SIM115
        )
    ]  # fmt: skip
    homes = []
    try:
        _wait_for_file(sched_file, procs)
        address = json.loads(sched_file.read_text())["address"]
        for i in range(2):
            cwd, home = root / f"worker{i}", root / f"worker{i}-home"
            cwd.mkdir()
            home.mkdir()
            homes.append(home)
            procs.append(
                subprocess.Popen(
                    [DASK, "worker", address, "--nthreads", "1", "--nworkers", "1", "--host", "127.0.0.1",
                     "--no-dashboard", "--name", f"w{i}", "--local-directory", str(cwd)],
                    cwd=cwd, env={**base_env, "MLPACK_HOME": str(home)}, stdout=subprocess.DEVNULL,
                    stderr=open(root / f"worker{i}.log", "w"), start_new_session=True,  # noqa: SIM115
                )
            )  # fmt: skip
        from distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=90)
        yield {"address": address, "homes": homes, "log": log, "inflight": inflight}
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.fixture
def project(tmp_path: Path, home: Path, iris, iris_svc, cluster, monkeypatch) -> Path:
    """The iris model in the client's store, a service.py, and 3000 rows as CSV and Parquet."""
    mlpack.sklearn.save_model("iris_clf", iris_svc, signatures={"predict": {"batchable": True, "batch_dim": 0}})
    path = tmp_path / "project"
    path.mkdir()
    (path / "service.py").write_text(SERVICE)
    X, _ = iris
    rng = np.random.default_rng(0)
    data = (X[rng.integers(0, len(X), 3000)] + rng.normal(0, 0.05, (3000, 4))).round(2)
    df = pd.DataFrame(data, columns=COLUMNS)
    df.to_csv(tmp_path / "rows.csv", index=False)
    df.to_parquet(tmp_path / "rows.parquet", index=False, row_group_size=400)
    cluster["log"].write_text("")
    return path


def run(cli, project: Path, *args: str, cluster: dict | None = None, env: dict | None = None):
    """`mlpack run` in the project, against the test cluster when given."""
    extra = ["--engine", "dask", "--scheduler", cluster["address"]] if cluster else []
    return cli("run", *args, *extra, cwd=project, env={"IMPORT_LOG": str(project.parent / "client.log"), **(env or {})})


def ok(res) -> None:
    assert res.returncode == 0, res.stderr


def test_csv_output_is_byte_identical_to_a_local_run_and_loads_once_per_worker(cli, project, cluster) -> None:
    src = project.parent / "rows.csv"
    ok(run(cli, project, "service.py:svc", "predict", "--input-file", str(src), "--output-file", "local.csv"))
    res = run(cli, project, "service.py:svc", "predict", "--input-file", str(src), "--output-file", "dask.csv",
              "--partition-size", "4000", cluster=cluster)  # fmt: skip
    ok(res)
    local, dask = (project / "local.csv").read_bytes(), (project / "dask.csv").read_bytes()
    assert dask == local and local.count(b"\n") == 3001
    # ~15 partitions on 2 workers: each worker process imported the service once, from its shipment
    pids = [pid for pid, _, _ in imports(cluster["log"])]
    assert 1 <= len(pids) <= 2 and len(set(pids)) == len(pids)
    assert all(monitored(cluster["log"]))  # `dask worker`s as configured: our settings are for our own cluster
    assert all(not any(h.iterdir()) for h in cluster["homes"])  # the workers' own stores stayed empty
    # json output: the same document too
    ok(run(cli, project, "service.py:svc", "predict_df", "--input-file", str(src), "-o", "json", "--output-file", "l.json"))
    ok(run(cli, project, "service.py:svc", "predict_df", "--input-file", str(src), "-o", "json", "--output-file", "d.json",
           "--partition-size", "9000", cluster=cluster))  # fmt: skip
    assert (project / "d.json").read_bytes() == (project / "l.json").read_bytes()


def test_each_worker_thread_has_its_next_partition_waiting(cli, project, cluster) -> None:
    """Two partitions per worker thread at a time: one running, the next queued on the worker
    (none idle for a round trip through the client between two), and never more."""
    src = project.parent / "rows.csv"
    cluster["inflight"].write_text("")
    ok(run(cli, project, "service.py:svc", "predict", "--input-file", str(src), "--output-file", "dask.csv",
           "--partition-size", "4000", cluster=cluster))  # fmt: skip
    counts = [int(n) for n in cluster["inflight"].read_text().split()]  # processing, after each change
    # 2 single-threaded workers, ~15 partitions: never more than 2 per worker; and more than one
    # per worker at some moment (3 means one of them had its next one queued). All 4 at once
    # needs no result to be on its way back to the client just then: timing, not the rule.
    assert 3 <= max(counts) <= 4 and counts[-1] == 0, counts


def test_parquet_and_folder_outputs_match_a_local_run(cli, project, cluster) -> None:
    src = project.parent / "rows.parquet"
    ok(run(cli, project, "service.py:svc", "predict_df", "--input-file", str(src), "--output-file", "local.parquet"))
    ok(run(cli, project, "service.py:svc", "predict_df", "--input-file", str(src), "--output-file", "dask.parquet",
           "--partition-size", "1", cluster=cluster))  # fmt: skip
    local = pd.read_parquet(project / "local.parquet")
    assert len(local) == 3000
    pd.testing.assert_frame_equal(pd.read_parquet(project / "dask.parquet"), local)
    # a folder of Parquet parts, one per row group here, in order; the scheduler from the environment
    ok(run(cli, project, "service.py:svc", "predict_df", "--input-file", str(src), "--output-dir", "pq-parts",
           "--partition-size", "1", "--engine", "dask", env={"MLPACK_DASK_SCHEDULER": cluster["address"]}))  # fmt: skip
    parts = sorted((project / "pq-parts").iterdir())
    assert [p.name for p in parts] == [f"part-{i:05d}.parquet" for i in range(8)]
    pd.testing.assert_frame_equal(pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True), local)


def readme_commands() -> list[list[str]]:
    """The `mlpack run` commands of the README's "Scaling out / Dask" section."""
    text = (ROOT / "README.md").read_text()
    section = text.split("### Dask", 1)[1].split("\n## ", 1)[0]
    return [shlex.split(line) for line in section.splitlines() if line.startswith("mlpack run")]


def test_the_readme_commands_on_a_bundle(cli, project, cluster, tmp_path) -> None:
    """A built bundle over a folder of CSV files: a local cluster to one file, the test cluster to parts."""
    commands = readme_commands()
    assert len(commands) == 2
    (project / "mlpackfile.yaml").write_text('service: "service.py:svc"\n')
    ok(cli("build", cwd=project, env={"IMPORT_LOG": str(tmp_path / "build.log")}))
    rows = (project.parent / "rows.csv").read_text().splitlines(keepends=True)
    data = project / "data"
    data.mkdir()
    (data / "a.csv").write_text("".join(rows[:1201]))
    (data / "b.csv").write_text(rows[0] + "".join(rows[1201:]))
    ok(run(cli, project, "iris_classifier:latest", "predict", "--input-file", str(project.parent / "rows.csv"),
           "--output-file", "local.csv"))  # fmt: skip
    local = (project / "local.csv").read_text()
    log = tmp_path / "local-cluster.log"
    first = [*commands[0][1:], "--partition-size", "6000"]
    ok(cli(*first, cwd=project, env={"IMPORT_LOG": str(log)}))
    assert (project / "predictions.csv").read_text() == local
    (client, *workers) = imports(log)
    assert client[1] == os.getpid() and len(workers) == 2  # the client, then two worker processes, once each
    assert len({client[0], *(pid for pid, _, _ in workers)}) == 3
    # the workers forked from one server (a child of the client) that had imported sklearn for them
    assert workers[0][1] == workers[1][1] not in (client[0], os.getpid())
    assert all(preloaded for _, _, preloaded in workers) and not client[2]
    # the server imported them without the collector and froze them: each worker collects its own objects
    assert collector(log) == [(True, False), (True, True), (True, True)]
    assert monitored(log) == [False, False, False]  # no dashboard: nothing collects data for one
    second = [a.replace("tcp://127.0.0.1:8786", cluster["address"]) for a in commands[1][1:]]
    ok(cli(*second, "--partition-size", "5000", cwd=project, env={"IMPORT_LOG": str(log)}))
    texts = [p.read_text() for p in sorted((project / "predictions").iterdir())]
    assert len(texts) > 2 and all(t.startswith("result\n") for t in texts)  # each part a whole CSV document
    assert "result\n" + "".join(t.removeprefix("result\n") for t in texts) == local


def test_a_bad_row_stops_the_run_with_the_local_message(cli, project, cluster) -> None:
    lines = (project.parent / "rows.csv").read_text().splitlines(keepends=True)
    lines[2500] = "5.1,3.5,abc,0.2\n"  # line 2501 of the file, row 2500, in a late partition
    bad = project.parent / "bad.csv"
    bad.write_text("".join(lines))
    local = run(cli, project, "service.py:svc", "predict", "--input-file", str(bad), "--output-file", "l.csv")
    dask = run(cli, project, "service.py:svc", "predict", "--input-file", str(bad), "--output-file", "d.csv",
               "--partition-size", "3000", cluster=cluster)  # fmt: skip
    assert local.returncode == dask.returncode != 0
    message = dask.stderr.strip().splitlines()[-1]
    assert message == local.stderr.strip().splitlines()[-1], dask.stderr
    assert "row 2500 (line 2501 of" in message and "bad.csv), column 'petal_length': 'abc'" in message
    assert not (project / "d.csv").exists() and not [p for p in project.iterdir() if p.name.startswith(".d.csv")]
    # a frame API: the model's input contract refuses the partition's text column, naming a row
    # in the file's numbers (the column is read as text from 'abc' on, so its first value is named)
    dask = run(cli, project, "service.py:svc", "predict_df", "--input-file", str(bad), "--output-file", "d.csv",
               "--partition-size", "3000", cluster=cluster)  # fmt: skip
    m = re.search(r"column 2 of row (\d+) is not a number", dask.stderr)
    assert dask.returncode != 0 and m and 1 < int(m[1]) <= 2500, dask.stderr
    assert not (project / "d.csv").exists()


def test_an_untrusted_model_is_not_shipped(cli, project, cluster) -> None:
    model = mlpack.sklearn.get("iris_clf:latest")
    write_provenance(model.path, Provenance.new("imported", source="elsewhere.mlmodel"))
    res = run(cli, project, "service.py:svc", "predict", "--input-file", str(project.parent / "rows.csv"), cluster=cluster)
    assert res.returncode != 0
    assert f"mlpack models trust {model.tag}" in res.stderr
    assert cluster["log"].read_text() == ""  # no worker imported the service


def test_usage_errors(cli, project, tmp_path) -> None:
    res = run(cli, project, "service.py:svc", "predict", "--input", "[[1,2,3,4]]", "--workers", "2")
    assert res.returncode != 0 and "need --engine dask" in res.stderr
    res = run(cli, project, "service.py:svc", "predict", "--input-file", str(tmp_path / "none*.csv"), "--engine", "dask")
    assert res.returncode != 0 and "no input files" in res.stderr
    res = run(cli, project, "service.py:svc", "predict", "--input-file", str(project.parent / "rows.csv"),
              "--engine", "dask", "--workers", "2", "--scheduler", "tcp://127.0.0.1:9")  # fmt: skip
    assert res.returncode != 0 and "--workers starts a local cluster; it cannot be combined" in res.stderr
    res = run(cli, project, "service.py:svc", "predict", "--input-file", str(project.parent / "rows.csv"),
              "--engine", "dask", "--scheduler", "tcp://127.0.0.1:9",
              env={"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"})  # fmt: skip
    assert res.returncode != 0 and "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in res.stderr


def test_a_progress_bar_on_a_terminal_only(project, cluster, home) -> None:
    """stderr a terminal: rich's progress and a summary line; the results on stdout stay clean."""
    import pty

    src = str(project.parent / "rows.csv")
    args = [sys.executable, "-m", "mlpack", "run", "service.py:svc", "predict", "--input-file", src, "-o", "csv",
            "--engine", "dask", "--scheduler", cluster["address"], "--partition-size", "8000"]  # fmt: skip
    env = {**os.environ, "MLPACK_HOME": str(home), "IMPORT_LOG": str(project.parent / "client.log")}
    leader, follower = pty.openpty()
    chunks: list[bytes] = []

    def drain() -> None:  # read while it runs: a full terminal buffer would block the writer
        while True:
            try:
                data = os.read(leader, 65536)
            except OSError:  # the terminal closed
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        proc = subprocess.run(args, cwd=project, env=env, stdout=subprocess.PIPE, stderr=follower, timeout=120)
    finally:
        os.close(follower)
        reader.join(timeout=10)
        os.close(leader)
    shown = b"".join(chunks)
    assert proc.returncode == 0, shown
    assert b"rows" in shown and b"3,000 rows in" in shown and b"partitions" in shown
    assert proc.stdout.startswith(b"result\n") and proc.stdout.count(b"\n") == 3001 and b"\x1b" not in proc.stdout
