"""How long the quick CLI commands take, against bare Python start-up measured in the same run.

Run: .venv/bin/python benchmarks/cli_latency.py [--runs 41] [--scale] [--no-fail]

Each repetition runs ``python -c pass``, ``mlpack --help`` and ``mlpack models list`` (a store
of 5 models, index fresh) back to back, so that the three see the same machine load; the
figures are medians over the repetitions: wall time, and CPU time (user + system) of the
child, which a busy machine disturbs less. Targets: ``--help`` and ``models list`` each within
5x of ``python -c pass`` (median wall time). ``--scale`` also lists 300 and 1000 models
(target: 300 models within 12x). Prints PASS or MISS for each target and exits 1 on a miss
(``--no-fail`` to always exit 0).

The baseline is the venv's own ``python -c pass``. With an editable install (``make install``)
its ``site`` start-up also runs the editable finder (pathlib, re, urllib...): about half of its
time. A regular (wheel) install's ``python -c pass`` measured 11-12 ms CPU against 22-27 ms here,
so its ratios are about twice these. For information the script also prints the ratios against
``python -S -c pass`` (no site at all), a lower bound of any install's start-up.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_QUICK = 5.0  # --help and models list (a few models) vs python -c pass
TARGET_300 = 12.0  # models list with 300 models


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


def run_once(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one run of ``cmd`` (which must succeed)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def measure(commands: dict[str, tuple[list[str], dict[str, str]]], runs: int) -> dict[str, tuple[float, float]]:
    """Median (wall, cpu) of each command, the commands interleaved within each repetition."""
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for cmd, env in commands.values():  # warm the page cache and the store's index
        run_once(cmd, env)
    for _ in range(runs):
        for name, (cmd, env) in commands.items():
            samples[name].append(run_once(cmd, env))
    return {
        name: (statistics.median(w for w, _ in s), statistics.median(c for _, c in s)) for name, s in samples.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=41, help="repetitions (medians over them)")
    parser.add_argument("--scale", action="store_true", help="also list 300 and 1000 models")
    parser.add_argument("--no-fail", action="store_true", help="exit 0 even when a target is missed")
    args = parser.parse_args()
    script = Path(sys.executable).with_name("mlpack")  # the console script users run
    mlpack_cmd = [str(script)] if script.exists() else [sys.executable, "-m", "mlpack"]
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "few"
        populate(home, 5)
        env = {**os.environ, "MLPACK_HOME": str(home)}
        commands = {
            "python -c pass": ([sys.executable, "-c", "pass"], env),
            "python -S -c pass": ([sys.executable, "-S", "-c", "pass"], env),
            "mlpack --help": ([*mlpack_cmd, "--help"], env),
            "mlpack models list (5 models)": ([*mlpack_cmd, "models", "list"], env),
            "mlpack models list -o json (5 models)": ([*mlpack_cmd, "models", "list", "-o", "json"], env),
        }
        if args.scale:
            for count in (300, 1000):
                big = Path(tmp) / str(count)
                populate(big, count)
                commands[f"mlpack models list ({count} models)"] = (
                    [*mlpack_cmd, "models", "list"],
                    {**os.environ, "MLPACK_HOME": str(big)},
                )
        results = measure(commands, args.runs)
    base_wall, base_cpu = results["python -c pass"]
    print(f"{args.runs} repetitions, medians          wall          cpu")
    for name, (wall, cpu) in results.items():
        print(f"{name:38} {wall * 1000:6.1f} ms {wall / base_wall:4.1f}x  {cpu * 1000:6.1f} ms {cpu / base_cpu:4.1f}x")
    targets = [("mlpack --help", TARGET_QUICK), ("mlpack models list (5 models)", TARGET_QUICK)]
    if args.scale:
        targets.append(("mlpack models list (300 models)", TARGET_300))
    for name, target in targets:
        ratio = results[name][0] / base_wall
        passed = ratio <= target
        ok = ok and passed
        print(f"{'PASS' if passed else 'MISS'}: {name} {ratio:.1f}x `python -c pass` wall time (target <= {target:g}x)")
    no_site = results["python -S -c pass"][0]
    print("for information, against `python -S -c pass`: " + ", ".join(f"{n} {results[n][0] / no_site:.1f}x" for n, _ in targets))
    return 0 if ok or args.no_fail else 1


if __name__ == "__main__":
    sys.exit(main())
