"""`make demo` runs scripts/demo.sh; it must keep working end to end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_demo_script_runs_end_to_end(home: Path) -> None:
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "MLPACK_HOME": str(home), "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    proc = subprocess.run(["bash", "scripts/demo.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "150 predictions" in out
    assert "[0,2]" in out
    assert out.rstrip().endswith("demo finished")
