"""`mlpack run` over a 1,000,000-row CSV against a plain pandas + scikit-learn script.

Run: .venv/bin/python benchmarks/run_offline.py [--rows 1000000] [--runs 3] [--batch-size N]
     .venv/bin/python benchmarks/run_offline.py --engine dask --workers 2 --rows 2000000

Both sides run in fresh subprocesses and use the same stored iris SVC:
(a) `mlpack run service.py:svc predict --input-file big.csv --output-file out.csv`;
(b) `pd.read_csv` + `clf.predict` + `DataFrame.to_csv` of the model loaded with joblib from the store.
Prints the median wall time, CPU time (user + sys: steadier than wall time on a busy
machine) and peak RSS of each, and the ratios mlpack/plain.
Targets: time <= 1.3x plain, peak RSS below plain's.
With ``--engine dask --workers N``, (a) runs on a LocalCluster of N worker processes that it
starts itself (startup included in its time). Target: time <= 0.65x plain (on 2 cores); the
peak RSS shown is the largest single process of the tree, not the sum.
``--running-cluster`` also measures (c) `mlpack run ... --engine dask --scheduler ADDR` against a
`dask scheduler` and N `dask worker` processes (empty stores: the service is shipped) started
before the runs and warmed up by one unmeasured run: what a run costs when the cluster's
start-up is paid once. Its CPU time adds what the cluster's processes used during the run.
Every run's output is compared with the plain script's.
mlpack's own modules are byte-compiled first, as ``pip install`` does (the libraries both sides
import come compiled): an editable install under PYTHONDONTWRITEBYTECODE=1, as on the build VM,
would compile ~50 of them from source in every process of every run (0.1 s on the Dask run's
critical path). ``--no-compile`` measures without.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]

SERVICE = """\
import mlpack
from mlpack.io import NumpyNdarray

runner = mlpack.sklearn.get("iris_clf:latest").to_runner()
svc = mlpack.Service("iris_classifier", runners=[runner])


@svc.api(input=NumpyNdarray(), output=NumpyNdarray())
def predict(arr):
    return runner.predict.run(arr)
"""

PLAIN = """\
import sys

import joblib
import pandas as pd

model_file, src, dest = sys.argv[1:]
clf = joblib.load(model_file)
X = pd.read_csv(src)
pd.DataFrame({"result": clf.predict(X.to_numpy())}).to_csv(dest, index=False)
"""

# Runs one command and reports its wall time and the CPU time and peak RSS of its process tree.
# It is the tree's subreaper, so that it also waits for processes that outlive their parent
# (the multiprocessing fork server a local Dask cluster's workers fork from, and so its workers):
# getrusage counts only the descendants that were waited for.
MEASURE = """\
import ctypes, json, os, resource, subprocess, sys, time
PR_SET_CHILD_SUBREAPER = 36
ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
t = time.perf_counter()
rc = subprocess.call(sys.argv[1:])
seconds = time.perf_counter() - t
while True:
    try:
        os.wait()
    except ChildProcessError:
        break
usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # ru_maxrss is in KiB on Linux
print(json.dumps({"rc": rc, "seconds": seconds, "cpu": usage.ru_utime + usage.ru_stime, "rss_mb": usage.ru_maxrss / 1024}))
"""


def make_data(path: Path, rows: int) -> None:
    """``rows`` iris rows sampled with replacement, with small noise, 2 decimals, with a header."""
    import numpy as np
    import pandas as pd
    from sklearn import datasets

    X, _ = datasets.load_iris(return_X_y=True)
    rng = np.random.default_rng(0)
    data = X[rng.integers(0, len(X), rows)] + rng.normal(0, 0.05, (rows, X.shape[1]))
    pd.DataFrame(data.clip(0.1).round(2), columns=COLUMNS).to_csv(path, index=False)


def save_model(home: Path) -> Path:
    from sklearn import datasets, svm

    import mlpack
    from mlpack.settings import Settings

    X, y = datasets.load_iris(return_X_y=True)
    clf = svm.SVC(gamma="scale").fit(X, y)
    signatures = {"predict": {"batchable": True, "batch_dim": 0}}
    model = mlpack.sklearn.save_model("iris_clf", clf, signatures=signatures, settings=Settings(home=home))
    return model.path / "saved_model.joblib"


def compile_mlpack() -> None:
    """Byte-compile mlpack's modules into their ``__pycache__`` (no-op for those up to date)."""
    import compileall

    import mlpack

    if not compileall.compile_dir(Path(mlpack.__file__).parent, quiet=1):
        raise SystemExit("could not byte-compile mlpack's modules")
    print(f"mlpack's modules byte-compiled in {Path(mlpack.__file__).parent}")


def measure(cmd: list[str], env: dict[str, str], cwd: Path) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", MEASURE, *cmd], env=env, cwd=cwd, capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if result["rc"] != 0:
        raise SystemExit(f"{' '.join(cmd)} failed with exit code {result['rc']}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=None, help="passed to mlpack run")
    parser.add_argument("--engine", choices=("local", "dask"), default="local", help="passed to mlpack run")
    parser.add_argument("--workers", type=int, default=2, help="LocalCluster size with --engine dask")
    parser.add_argument(
        "--running-cluster", action="store_true", help="--engine dask: also measure runs against a running cluster"
    )
    parser.add_argument("--no-compile", action="store_true", help="do not byte-compile mlpack's modules first")
    args = parser.parse_args()
    dask = args.engine == "dask"
    if not args.no_compile:
        compile_mlpack()

    with tempfile.TemporaryDirectory(prefix="mlpack-bench-") as tmp:
        root = Path(tmp)
        home, project = root / "home", root / "project"
        project.mkdir()
        (project / "service.py").write_text(SERVICE)
        (project / "plain.py").write_text(PLAIN)
        model_file = save_model(home)
        big = root / "big.csv"
        t = time.perf_counter()
        make_data(big, args.rows)
        print(f"{args.rows:,} rows, {big.stat().st_size / 2**20:.1f} MiB of CSV in {time.perf_counter() - t:.1f} s")

        env = {**os.environ, "MLPACK_HOME": str(home), "NO_COLOR": "1"}
        out_mlpack, out_plain = root / "out-mlpack.csv", root / "out-plain.csv"
        mlpack_cmd = [sys.executable, "-m", "mlpack", "run", "service.py:svc", "predict",
                      "--input-file", str(big), "--output-file", str(out_mlpack)]  # fmt: skip
        if args.batch_size:
            mlpack_cmd += ["--batch-size", str(args.batch_size)]
        commands = {"mlpack": mlpack_cmd + (["--engine", "dask", "--workers", str(args.workers)] if dask else [])}
        commands["plain"] = [sys.executable, "plain.py", str(model_file), str(big), str(out_plain)]
        with contextlib.ExitStack() as stack:
            cluster = None
            if dask and args.running_cluster:
                cluster = stack.enter_context(running_cluster(root, args.workers))
                commands["running"] = mlpack_cmd + ["--engine", "dask", "--scheduler", cluster.address]
                measure(commands["running"], env, project)  # the workers import the service's libraries once
            results = run_all(commands, env, project, args.runs, out_mlpack, out_plain, cluster)
        report(results, args, dask)


def run_all(commands, env, project, runs, out_mlpack, out_plain, cluster) -> dict[str, list[dict[str, float]]]:  # noqa: ANN001
    results: dict[str, list[dict[str, float]]] = {name: [] for name in commands}
    for i in range(runs):  # interleaved, so that drift in machine load hits all alike
        for name, cmd in commands.items():
            before = cluster.cpu() if cluster and name == "running" else 0.0
            result = measure(cmd, env, project)
            if cluster and name == "running":
                result["cpu"] += cluster.cpu() - before
            results[name].append(result)
            if name != "plain" and out_mlpack.exists():
                out_mlpack.rename(out_mlpack.with_suffix(f".{name}"))
        for name in commands:
            if name != "plain" and out_mlpack.with_suffix(f".{name}").read_bytes() != out_plain.read_bytes():
                raise SystemExit(f"run {i + 1}: the outputs of {name} and plain differ")
        line = ", ".join(
            f"{k} {v[-1]['seconds']:.2f} s ({v[-1]['cpu']:.2f} s CPU) {v[-1]['rss_mb']:.0f} MB" for k, v in results.items()
        )
        print(f"run {i + 1}: {line}")
    return results


def report(results: dict[str, list[dict[str, float]]], args: argparse.Namespace, dask: bool) -> None:
    metrics = ("seconds", "cpu", "rss_mb")
    med = {k: {m: statistics.median(r[m] for r in v) for m in metrics} for k, v in results.items()}
    engine = f"--engine dask --workers {args.workers}" if dask else "--engine local"
    print(f"\nmedian of {args.runs} runs, {args.rows:,} rows, mlpack {engine} (outputs identical)")
    if "running" in med:
        print(f"running: mlpack --engine dask --scheduler, a running cluster of {args.workers} workers")
    print(f"{'':8}{'seconds':>10}{'CPU s':>10}{'peak MB':>10}")
    for name, m in med.items():
        print(f"{name:8}{m['seconds']:>10.2f}{m['cpu']:>10.2f}{m['rss_mb']:>10.0f}")
    for name in [n for n in med if n != "plain"]:
        time_ratio, cpu_ratio, rss_ratio = (med[name][m] / med["plain"][m] for m in metrics)
        print(f"{name + '/plain':14}{time_ratio:>5.2f}x time {cpu_ratio:>5.2f}x CPU {rss_ratio:>5.2f}x peak RSS")
    time_ratio, rss_ratio = med["mlpack"]["seconds"] / med["plain"]["seconds"], med["mlpack"]["rss_mb"] / med["plain"]["rss_mb"]
    targets = "mlpack time <= 0.65x" if dask else "time <= 1.3x, RSS < 1.0x"
    ok = time_ratio <= 0.65 if dask else time_ratio <= 1.3 and rss_ratio < 1.0
    print(f"targets ({targets}): {'met' if ok else 'MISSED'}; load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


class Cluster:
    def __init__(self, address: str, procs: list[subprocess.Popen]) -> None:
        self.address, self.procs = address, procs

    def cpu(self) -> float:
        """CPU seconds used so far by the cluster's processes and their children (the worker processes)."""
        import psutil

        total = 0.0
        for proc in self.procs:
            try:
                tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            for p in tree:
                with contextlib.suppress(psutil.NoSuchProcess):
                    t = p.cpu_times()
                    total += t.user + t.system
        return total


@contextlib.contextmanager
def running_cluster(root: Path, workers: int):  # noqa: ANN201
    """`dask scheduler` and `dask worker --nworkers N` on 127.0.0.1, with an empty store of their own."""
    dask = str(Path(sys.executable).parent / "dask")
    sched_file, home = root / "scheduler.json", root / "worker-home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLPACK_", "DASK_"))} | {"MLPACK_HOME": str(home)}
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env, "cwd": root}
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                               "--scheduler-file", str(sched_file)], **quiet)]  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (sched_file.is_file() and sched_file.stat().st_size):
            if time.monotonic() > deadline:
                raise SystemExit("dask scheduler did not start")
            time.sleep(0.1)
        address = json.loads(sched_file.read_text())["address"]
        procs.append(subprocess.Popen([dask, "worker", address, "--nworkers", str(workers), "--nthreads", "1",
                                       "--host", "127.0.0.1", "--no-dashboard"], **quiet))  # fmt: skip
        from distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(workers, timeout=120)
        yield Cluster(address, procs)
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    main()
