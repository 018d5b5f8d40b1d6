"""Shared fixtures: an isolated store per test and a real CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh MLPACK_HOME for the test, for both the library and the CLI subprocesses."""
    path = tmp_path / "mlpack-home"
    monkeypatch.setenv("MLPACK_HOME", str(path))
    return path


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(home: Path) -> Iterator:
    """Run ``mlpack ...`` in a subprocess against the test's store."""

    def run(
        *args: str, input: str | None = None, cwd: Path | None = None, env: dict | None = None, timeout: float = 120
    ) -> Result:
        full_env = {**os.environ, "MLPACK_HOME": str(home), "NO_COLOR": "1", **(env or {})}
        proc = subprocess.run(
            [sys.executable, "-m", "mlpack", *args],
            input=input,
            capture_output=True,
            text=True,
            cwd=cwd or ROOT,
            env=full_env,
            timeout=timeout,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    yield run


@pytest.fixture(scope="session")
def iris():
    from sklearn import datasets

    data = datasets.load_iris()
    return data.data, data.target


@pytest.fixture(scope="session")
def iris_svc(iris):
    from sklearn import svm

    X, y = iris
    return svm.SVC(gamma="scale").fit(X, y)
