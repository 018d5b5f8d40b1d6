"""The CLI's quick commands must not pay for the ML and web stacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ["numpy", "pandas", "sklearn", "xgboost", "starlette", "uvicorn", "pydantic", "scipy", "pyarrow"]

PROBE = f"""
import json, sys
from mlpack.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
sys.stdout.flush()
print("\\nMODULES=" + json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))
"""


@pytest.mark.parametrize("args", [["--help"], ["models", "list"], ["models", "list", "-o", "json"], ["bundles", "list"]])
def test_quick_commands_import_no_heavy_modules(args: list[str], home: Path, iris_svc) -> None:
    import mlpack

    mlpack.sklearn.save_model("iris_clf", iris_svc)
    env = {**os.environ, "MLPACK_HOME": str(home)}
    out = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, env=env, check=True).stdout
    loaded = json.loads(out.rsplit("MODULES=", 1)[1])
    assert loaded == []


def test_import_mlpack_is_light() -> None:
    code = f"import json, sys, mlpack; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []
