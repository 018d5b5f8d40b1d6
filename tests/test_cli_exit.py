"""How the `mlpack` process ends: the interpreter's last garbage collection skips what the modules hold."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# what gc.freeze() left frozen when the process ends (atexit handlers run after main returns)
PROBE = """
import atexit, gc, sys
atexit.register(lambda: print("FROZEN", gc.get_freeze_count(), file=sys.stderr))
from mlpack.cli import main
args = sys.argv[1:]
sys.argv = ["mlpack", *args]
main(None if {entry} else args)
"""


def frozen(entry: bool, args: list[str], home: Path) -> tuple[int, subprocess.CompletedProcess]:
    env = {**os.environ, "MLPACK_HOME": str(home)}
    res = subprocess.run([sys.executable, "-c", PROBE.format(entry=entry), *args], capture_output=True, text=True, env=env)
    line = [x for x in res.stderr.splitlines() if x.startswith("FROZEN ")]
    assert line, res.stderr
    return int(line[-1].split()[1]), res


@pytest.mark.parametrize("args, code", [(["models", "list"], 0), (["models", "get", "nope:1"], 3)], ids=["ok", "error"])
def test_the_process_command_freezes_what_is_left_for_a_quick_exit(args: list[str], code: int, home: Path) -> None:
    count, res = frozen(True, args, home)
    assert res.returncode == code, res.stderr
    assert count > 1000  # every object the imports made: the last collection at exit skips them


def test_main_called_with_arguments_leaves_the_collector_alone(home: Path) -> None:
    count, res = frozen(False, ["models", "list"], home)  # in-process callers (tests, embedding) keep collecting
    assert res.returncode == 0, res.stderr
    assert count == 0
