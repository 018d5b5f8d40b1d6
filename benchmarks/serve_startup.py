"""How long `mlpack serve TAG` takes to answer /readyz, against serving the same project from source.

Run: .venv/bin/python benchmarks/serve_startup.py [--runs 7] [--src-files 200]
Serving a stored bundle checks it first (trusted; src/ and models/ exactly as bundle.yaml
records, src/ hashed); serving ``service.py:svc`` from the project does not. Prints the median
time to the first 200 from /readyz for both and their ratio, plus the check alone in-process.
Target: the check alone under 5% of the bundle's start-up (the two start-ups differ for other
reasons too, and are noisy on a shared machine).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

SERVICE = """
import mlpack
from mlpack.io import NumpyNdarray

runner = mlpack.sklearn.get("iris_clf:latest").to_runner()
svc = mlpack.Service("iris_classifier", runners=[runner])

@svc.api(input=NumpyNdarray(), output=NumpyNdarray())
def predict(arr):
    return runner.predict.run(arr)
"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_to_ready(target: str, env: dict[str, str], cwd: Path) -> float:
    port = _port()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlpack", "serve", target, "--port", str(port)],
        env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = t0 + 60
        while time.perf_counter() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"serve {target} exited with {proc.returncode}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    return time.perf_counter() - t0
            except httpx.HTTPError:
                pass
            time.sleep(0.01)
        raise SystemExit(f"serve {target} not ready within 60 s")
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--src-files", type=int, default=200, help="extra small modules in the project")
    args = parser.parse_args()
    from sklearn import datasets, svm

    import mlpack
    from mlpack.build import build_bundle
    from mlpack.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        project = Path(tmp) / "project"
        (project / "lib").mkdir(parents=True)
        (project / "service.py").write_text(SERVICE)
        for i in range(args.src_files):
            (project / "lib" / f"mod{i}.py").write_text(f"VALUE = {i}\n" * 50)
        (project / "mlpackfile.yaml").write_text("service: service.py:svc\npython:\n  lock_packages: false\n")
        settings = Settings(home=home)
        X, y = datasets.load_iris(return_X_y=True)
        mlpack.sklearn.save_model("iris_clf", svm.SVC().fit(X, y), settings=settings)
        env = {**os.environ, "MLPACK_HOME": str(home)}
        os.environ["MLPACK_HOME"] = str(home)
        bundle = build_bundle(project, settings=settings)
        check = getattr(bundle, "check_runnable", None)
        checked = 0.0
        if check is not None:
            times = []
            for _ in range(args.runs):
                t0 = time.perf_counter()
                check()
                times.append(time.perf_counter() - t0)
            checked = statistics.median(times)
            print(f"bundle check alone ({len(bundle.info.files)} files)   {checked * 1000:7.1f} ms")
        source = statistics.median(start_to_ready("service.py:svc", env, project) for _ in range(args.runs))
        stored = statistics.median(start_to_ready(str(bundle.tag), env, Path(tmp)) for _ in range(args.runs))
        print(f"serve service.py:svc (source)      {source * 1000:7.1f} ms   1.00x")
        print(f"serve {bundle.tag.name}:<version> (bundle) {stored * 1000:7.1f} ms   {stored / source:4.2f}x")
        print(f"check / bundle start-up             {checked / stored:7.1%}   (target: under 5%)")


if __name__ == "__main__":
    main()
