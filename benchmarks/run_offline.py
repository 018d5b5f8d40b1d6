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
"""

from __future__ import annotations

import argparse
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
    args = parser.parse_args()
    dask = args.engine == "dask"

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
        if dask:
            mlpack_cmd += ["--engine", "dask", "--workers", str(args.workers)]
        plain_cmd = [sys.executable, "plain.py", str(model_file), str(big), str(out_plain)]
        results: dict[str, list[dict[str, float]]] = {"mlpack": [], "plain": []}
        for i in range(args.runs):  # interleaved, so that drift in machine load hits both alike
            results["mlpack"].append(measure(mlpack_cmd, env, project))
            results["plain"].append(measure(plain_cmd, env, project))
            print(
                f"run {i + 1}: "
                + ", ".join(
                    f"{k} {v[-1]['seconds']:.2f} s ({v[-1]['cpu']:.2f} s CPU) {v[-1]['rss_mb']:.0f} MB"
                    for k, v in results.items()
                )
            )

        if out_mlpack.read_bytes() != out_plain.read_bytes():
            raise SystemExit("the outputs differ")
        metrics = ("seconds", "cpu", "rss_mb")
        med = {k: {m: statistics.median(r[m] for r in v) for m in metrics} for k, v in results.items()}
        engine = f"--engine dask --workers {args.workers}" if dask else "--engine local"
        print(f"\nmedian of {args.runs} runs, {args.rows:,} rows, mlpack {engine} (outputs identical)")
        print(f"{'':8}{'seconds':>10}{'CPU s':>10}{'peak MB':>10}")
        for name, m in med.items():
            print(f"{name:8}{m['seconds']:>10.2f}{m['cpu']:>10.2f}{m['rss_mb']:>10.0f}")
        time_ratio, cpu_ratio, rss_ratio = (med["mlpack"][m] / med["plain"][m] for m in metrics)
        targets = "time <= 0.65x" if dask else "time <= 1.3x, RSS < 1.0x"
        print(f"{'ratio':8}{time_ratio:>9.2f}x{cpu_ratio:>9.2f}x{rss_ratio:>9.2f}x   (targets: {targets})")
        ok = time_ratio <= 0.65 if dask else time_ratio <= 1.3 and rss_ratio < 1.0
        print("targets met" if ok else "targets MISSED")


if __name__ == "__main__":
    main()
