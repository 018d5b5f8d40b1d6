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


# ------------------------------------------------------------------ start-up: what each quick command loads

ALL_MODULES_PROBE = """
import json, sys
from mlpack.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
sys.stdout.flush()
print("\\nMODULES=" + json.dumps(sorted(sys.modules)))
"""

COMMAND_MODULES = {
    f"mlpack.cli.{name}"
    for name in ("commands", "bundle_commands", "deploy_commands", "entries", "hub_commands", "hub_client_commands")
}
# typer's rich help and error renderer, and what only it needs
RICH_HELP = {"typer.rich_utils", "rich.markdown", "rich.syntax", "rich.traceback", "rich.pretty", "markdown_it", "pygments"}
# what the store needs to save, import and export, never to list from a fresh index
STORE_WRITING = {"yaml", "mlpack.archive", "tarfile", "hashlib", "secrets", "tempfile"}
# looked up at start-up by some console scripts: the version comes from mlpack.__version__
METADATA = {"importlib.metadata", "pkg_resources"}
LISTING = {"mlpack.cli.entries", "mlpack.cli.hub_client_commands"}  # the `models` group: entries, push, pull

START_UP = [
    # (arguments, modules it must not load beyond HEAVY)
    (["--help"], COMMAND_MODULES | RICH_HELP | STORE_WRITING | METADATA | {"rich", "mlpack.store", "mlpack.models"}),
    ([], COMMAND_MODULES | RICH_HELP | STORE_WRITING | METADATA | {"rich", "mlpack.store", "mlpack.models"}),
    (["models", "--help"], (COMMAND_MODULES - LISTING) | RICH_HELP | STORE_WRITING | {"rich", "mlpack.models"}),
    (["models", "list"], (COMMAND_MODULES - LISTING) | RICH_HELP | STORE_WRITING | METADATA | {"rich"}),
    (["models", "list", "-o", "json"], (COMMAND_MODULES - LISTING) | RICH_HELP | STORE_WRITING | METADATA | {"rich"}),
    (["models", "lst"], (COMMAND_MODULES - LISTING) | RICH_HELP | STORE_WRITING | {"rich", "mlpack.models"}),
]


@pytest.mark.parametrize("args, forbidden", START_UP, ids=lambda a: " ".join(a) if isinstance(a, list) else "")
def test_quick_commands_load_only_what_they_use(args: list[str], forbidden: set[str], home: Path, iris_svc) -> None:
    import mlpack

    mlpack.sklearn.save_model("iris_clf", iris_svc)
    env = {**os.environ, "MLPACK_HOME": str(home)}
    subprocess.run([sys.executable, "-m", "mlpack", "models", "list"], env=env, capture_output=True, check=True)  # the index
    res = subprocess.run([sys.executable, "-c", ALL_MODULES_PROBE, *args], capture_output=True, text=True, env=env)
    out, _, modules = res.stdout.rpartition("\nMODULES=")
    loaded = set(json.loads(modules))
    assert sorted(m for m in loaded if m in forbidden or m.split(".")[0] in forbidden) == [], res.stderr
    if args[:2] == ["models", "list"]:
        assert "iris_clf:" in out, (out, res.stderr)  # it listed the model, from the index alone
        assert "mlpack.models" in loaded
    elif args == ["models", "lst"]:
        assert "No such command 'lst'" in res.stderr and "Did you mean 'list'?" in res.stderr
    else:  # help, on stdout for --help, on stderr (a usage error) when bare
        assert "Commands:" in out + res.stderr, (out, res.stderr)


def test_root_help_lists_every_command_with_its_own_summary() -> None:
    """`mlpack --help` shows COMMANDS without importing a module: each entry must be the command's own."""
    import importlib

    import typer

    from mlpack.cli import COMMANDS, app
    from mlpack.cli.apps import summary

    root = typer.main.get_command(app)
    for name, (_, text) in COMMANDS.items():
        command = root.get_command(None, name)
        assert command is not None and summary(command) == text, (name, command and summary(command))
    for module in {m for m, _ in COMMANDS.values()}:  # and no command of a module is left out
        defined = typer.main.get_group(importlib.import_module(f"mlpack.cli.{module}").cli).commands
        assert {n for n, (m, _) in COMMANDS.items() if m == module} == set(defined), module
    out = subprocess.run([sys.executable, "-m", "mlpack", "--help"], capture_output=True, text=True, check=True).stdout
    listing = " ".join(out.partition("\nCommands:\n")[2].split())
    assert listing == " ".join(f"{name} {text}" for name, (_, text) in COMMANDS.items())
