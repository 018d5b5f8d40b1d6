"""Memory of `mlpack serve --workers 2` for a large model: the workers share it (load, then fork).

Run: .venv/bin/python benchmarks/serve_memory.py [--rows 200000] [--trees 50] [--no-fail]

Trains a RandomForestClassifier on random labels (its trees grow to every sample: a few hundred
MB with the defaults), saves it into a temporary MLPACK_HOME and serves it with
``mlpack serve service.py:svc`` on 127.0.0.1 and a free port, first with one worker, then with
two. After the server is ready, every worker answers a few predictions (so that serving has
touched the model), then the script reads ``/proc/PID/smaps_rollup`` of every process of the
server: RSS counts a shared page in full in each process, PSS divides it among the processes
that share it, so the sum of PSS is what the server costs the machine.

Baseline: one worker's RSS, measured in the same run. Without sharing, two workers (and a
supervisor that holds the model) would cost about twice that or more. Target: the total PSS of
the two-worker server (supervisor and both workers) is at most 1.4x the one-worker RSS. Prints
PASS or MISS, exits 1 on a miss (``--no-fail`` to always exit 0).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from serve import free_port, post  # noqa: E402  (the serve benchmark's helpers)

TARGET_RATIO = 1.4
FEATURES = 16

SERVICE_PY = """\
import numpy as np

import mlpack
from mlpack.io import NumpyNdarray

runner = mlpack.sklearn.get("big_forest:latest").to_runner()
svc = mlpack.Service("big_forest", runners=[runner])


@svc.api(input=NumpyNdarray(), output=NumpyNdarray())
async def classify(arr: np.ndarray) -> np.ndarray:
    return await runner.predict.async_run(arr)
"""


def prepare(workdir: Path, rows: int, trees: int) -> float:
    """Train and save the forest; its size on disk in MB."""
    import numpy as np
    from sklearn.ensemble import RandomForestClassifier

    sys.path.insert(0, str(ROOT))
    import mlpack

    rng = np.random.default_rng(0)
    X, y = rng.random((rows, FEATURES)), rng.integers(0, 2, rows)  # random labels: trees grow to every sample
    forest = RandomForestClassifier(n_estimators=trees, n_jobs=-1, random_state=0).fit(X, y)
    forest.n_jobs = None  # predict in the calling thread
    model = mlpack.sklearn.save_model("big_forest", forest, signatures={"predict": {"batchable": True}})
    (workdir / "service.py").write_text(SERVICE_PY)
    return sum(f.stat().st_size for f in model.path.rglob("*") if f.is_file()) / 1e6


def memory_mb(pid: int) -> tuple[float, float]:
    """(RSS, PSS) of a process in MB, from /proc/PID/smaps_rollup."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, _, rest = line.partition(":")
        fields[key] = int(rest.split()[0])
    return fields["Rss"] / 1024, fields["Pss"] / 1024


def session_pids(sid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getsid(int(entry)) == sid:
                    pids.append(int(entry))
            except OSError:
                pass
    return sorted(pids)


def measure(workdir: Path, workers: int, timeout: float = 600) -> dict[int, tuple[float, float]]:
    """Serve with ``workers`` workers; (RSS, PSS) of each of the server's processes, supervisor first."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/classify"
    log = workdir / f"serve-{workers}.log"
    cmd = [sys.executable, "-m", "mlpack", "serve", "service.py:svc", "--host", "127.0.0.1", "--port", str(port)]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*cmd, "--workers", str(workers)], cwd=workdir, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not ready after {timeout:g} s:\n{log.read_text(errors='replace')}")
            time.sleep(0.2)
        body = json.dumps([[0.5] * FEATURES] * 8).encode()
        for _ in range(20 * workers):  # new connections: every worker answers some
            assert post(url, body, timeout=60)[0] == 200
        time.sleep(0.5)
        pids = [proc.pid] + [pid for pid in session_pids(proc.pid) if pid != proc.pid]
        return {pid: memory_mb(pid) for pid in pids}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000, help="training rows (the forest grows with them)")
    parser.add_argument("--trees", type=int, default=50)
    parser.add_argument("--no-fail", action="store_true", help="exit 0 even if the target is missed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlpack-mem-") as tmp:
        workdir = Path(tmp)
        os.environ["MLPACK_HOME"] = str(workdir / "home")
        os.environ["PYTHONPATH"] = str(ROOT)
        size = prepare(workdir, args.rows, args.trees)
        print(f"model: RandomForestClassifier, {args.trees} trees on {args.rows} rows, {size:.0f} MB on disk")
        one = measure(workdir, 1)
        two = measure(workdir, 2)
    (rss1, pss1), = one.values()
    print(f"1 worker : RSS {rss1:7.0f} MB  PSS {pss1:7.0f} MB")
    for i, (pid, (rss, pss)) in enumerate(two.items()):
        role = "supervisor" if i == 0 else f"worker {i - 1}"
        print(f"2 workers, {role:10s} [{pid}]: RSS {rss:7.0f} MB  PSS {pss:7.0f} MB")
    total_pss = sum(pss for _, pss in two.values())
    total_rss = sum(rss for rss, _ in two.values())
    ratio = total_pss / rss1
    print(f"2 workers, total      : PSS {total_pss:7.0f} MB (RSS summed {total_rss:.0f} MB)")
    verdict = "PASS" if ratio <= TARGET_RATIO else "MISS"
    print(f"total PSS of 2 workers / RSS of 1 worker: {ratio:.2f}x (target <= {TARGET_RATIO}x): {verdict}")
    return 0 if verdict == "PASS" or args.no_fail else 1


if __name__ == "__main__":
    sys.exit(main())
