"""How long `mlpack models list` takes with 1, 300 and 1000 models, against bare Python start-up.

Run: .venv/bin/python benchmarks/cli_latency.py [--runs 9]
Prints the median wall time of each command and its ratio to `python -c pass` measured in
the same run. Target: 300 models within 12x of bare start-up.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def populate(home: Path, count: int) -> None:
    """Save one real model, then clone it into ``count`` entries with their own manifests."""
    from sklearn import datasets, svm

    import mlpack
    from mlpack.models import MANIFEST
    from mlpack.settings import Settings
    from mlpack.tag import new_version
    from mlpack.yamlio import dump_yaml, load_yaml

    X, y = datasets.load_iris(return_X_y=True)
    seed = mlpack.sklearn.save_model("seed", svm.SVC().fit(X, y), settings=Settings(home=home))
    template = load_yaml(seed.path / MANIFEST)
    for i in range(count - 1):
        name = f"model-{i % 30:02d}"
        version = new_version(time.time_ns() + i * 1000)
        dest = home / "models" / name / version
        shutil.copytree(seed.path, dest)
        dump_yaml({**template, "name": name, "version": version}, dest / MANIFEST)
        (home / "models" / name / "latest").write_text(version + "\n")


def median_seconds(cmd: list[str], env: dict[str, str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    mlpack_cmd = [sys.executable, "-m", "mlpack"]
    script = Path(sys.executable).with_name("mlpack")
    if script.exists():
        mlpack_cmd = [str(script)]
    env = dict(os.environ)
    baseline = median_seconds([sys.executable, "-c", "pass"], env, args.runs)
    print(f"python -c pass                      {baseline * 1000:7.1f} ms   1.0x")
    help_t = median_seconds([*mlpack_cmd, "--help"], env, args.runs)
    print(f"mlpack --help                       {help_t * 1000:7.1f} ms  {help_t / baseline:4.1f}x")
    for count in (1, 300, 1000):
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp)
            populate(home, count)
            env = {**os.environ, "MLPACK_HOME": str(home)}
            for fmt in ("table", "json"):
                t = median_seconds([*mlpack_cmd, "models", "list", "-o", fmt], env, args.runs)
                print(f"mlpack models list -o {fmt:5} ({count:4} models) {t * 1000:7.1f} ms  {t / baseline:4.1f}x")
    print("target: 300 models within 12x of `python -c pass`")


if __name__ == "__main__":
    main()
