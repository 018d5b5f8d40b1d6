"""Many processes saving at once, and saves killed at any moment, leave the store consistent."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mlpack import models

SAVER = textwrap.dedent(
    """
    import os, sys, time
    from sklearn.dummy import DummyClassifier
    import mlpack

    clf = DummyClassifier().fit([[0], [1]], [0, 1])
    go = sys.argv[1]
    while not os.path.exists(go):   # all savers released at the same moment
        time.sleep(0.001)
    m = mlpack.sklearn.save_model("same", clf, custom_objects={"pid": os.getpid()})
    print(m.tag.version)
    """
)

SLOW_SAVER = textwrap.dedent(
    """
    import os, sys, time
    from sklearn.dummy import DummyClassifier
    import mlpack

    class Slow:
        # pickled while the model is being written: tells the test, then stalls
        def __reduce__(self):
            open(sys.argv[1], "w").close()
            time.sleep(float(sys.argv[2]))
            return (dict, ())

    clf = DummyClassifier().fit([[0], [1]], [0, 1])
    mlpack.sklearn.save_model("victim", clf, custom_objects={"slow": Slow(), "blob": os.urandom(1 << 20)})
    """
)


def _spawn(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _assert_consistent(home: Path) -> list:
    """Every visible model loads and verifies; latest points at a complete version."""
    found = models.list()
    for model in found:
        model.verify()
    for name_dir in (home / "models").glob("*"):
        latest = name_dir / "latest"
        if latest.exists():
            assert (name_dir / latest.read_text().strip() / "model.yaml").is_file()
    return found


def test_eight_processes_save_the_same_name_at_once(home: Path, tmp_path: Path) -> None:
    go = tmp_path / "go"
    procs = [_spawn(SAVER, str(go)) for _ in range(8)]
    time.sleep(1.5)  # let every interpreter import sklearn and wait at the line
    go.touch()
    versions = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        versions.append(out.strip())
    assert len(set(versions)) == 8
    found = _assert_consistent(home)
    assert sorted(m.tag.version for m in found) == sorted(versions)
    newest = max(found, key=lambda m: m.info.creation_time)
    assert models.get("same:latest").tag == newest.tag == max(m.tag for m in found)
    assert len({m.custom_objects["pid"] for m in found}) == 8


def test_save_killed_mid_write_leaves_no_visible_model(home: Path, tmp_path: Path, iris_svc) -> None:
    import mlpack

    keep = mlpack.sklearn.save_model("victim", iris_svc)
    ready = tmp_path / "ready"
    proc = _spawn(SLOW_SAVER, str(ready), "60")
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    found = _assert_consistent(home)
    assert [m.tag for m in found] == [keep.tag]
    assert models.get("victim:latest").tag == keep.tag
    assert any((home / ".tmp").iterdir())  # the partial write stayed in staging, out of sight
    again = mlpack.sklearn.save_model("victim", iris_svc)  # the store still takes saves
    assert models.get("victim").tag == again.tag


@pytest.mark.slow
def test_saves_killed_at_random_moments(home: Path, tmp_path: Path) -> None:
    rng = random.Random(1234)
    go = tmp_path / "go"
    go.touch()
    survivors = 0
    for _ in range(12):
        proc = _spawn(SAVER, str(go))
        time.sleep(rng.uniform(0.3, 1.2))  # somewhere in interpreter start-up, import, or save
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        survivors += proc.returncode == 0
        _assert_consistent(home)
    found = _assert_consistent(home)
    assert len(found) >= survivors
