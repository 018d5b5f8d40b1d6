"""Servers of the iris and credit-risk examples for the protocol tests (trained in a temp store)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .server import ROOT, Server, running_server

EXAMPLES = ROOT / "examples"
CREDIT_SAMPLE = {"seniority": 3, "home": "owner", "time": 36, "age": 26, "marital": "single", "records": "no",
                 "job": "freelance", "expenses": 35, "income": 0.0, "assets": 60000.0, "debt": 3000.0,
                 "amount": 800, "price": 1000}  # fmt: skip


@contextmanager
def example_server(name: str, base: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[Server]:
    """``examples/<name>`` copied under ``base``, its train.py run in a fresh store, then served."""
    project, home = base / name, base / "mlpack-home"
    shutil.copytree(EXAMPLES / name, project, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    run_env = {**os.environ, "MLPACK_HOME": str(home), "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "train.py"], cwd=project, env=run_env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    with running_server("service.py:svc", home=home, cwd=project, args=args, env=env) as srv:
        yield srv


FRAME_PROJECT = ROOT / "tests" / "fixtures" / "frame_project"
_SAVE_IRIS = """
from sklearn import datasets, svm
import mlpack
X, y = datasets.load_iris(return_X_y=True)
clf = svm.SVC(gamma="scale").fit(X, y)
mlpack.sklearn.save_model("iris_clf", clf, signatures={"predict": {"batchable": True, "batch_dim": 0}})
"""


@contextmanager
def frame_server(base: Path) -> Iterator[Server]:
    """tests/fixtures/frame_project (PandasDataFrame APIs) over an iris SVC saved in a fresh store."""
    home = base / "mlpack-home"
    run_env = {**os.environ, "MLPACK_HOME": str(home), "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-c", _SAVE_IRIS], env=run_env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    with running_server("service.py:svc", home=home, cwd=FRAME_PROJECT) as srv:
        yield srv


SHAPES_PROJECT = ROOT / "tests" / "fixtures" / "protocols_project"


@contextmanager
def shapes_server(base: Path) -> Iterator[Server]:
    """tests/fixtures/protocols_project: Text, typed NumpyNdarray, plain JSON and a failing API."""
    with running_server("service.py:svc", home=base / "mlpack-home", cwd=SHAPES_PROJECT) as srv:
        yield srv
