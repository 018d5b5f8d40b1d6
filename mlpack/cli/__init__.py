"""The ``mlpack`` command: a thin layer that turns library calls into output and exit codes.

Commands load lazily at two depths: a command's module is imported only when that command
runs (``COMMANDS`` below), and each command imports what it needs inside its function, so
``mlpack --help`` and ``mlpack models list`` never load numpy, pandas, sklearn or the web stack.
"""

from __future__ import annotations

import os
import sys
import traceback
import warnings

import typer

from .. import __version__
from ..exceptions import MlpackError
from .apps import LazyGroup, new_app
from .output import error_line

# What `mlpack --help` lists, in this order: the module whose ``cli`` app defines each command
# (imported only when the command runs or shows its own help) and the command's one-line help
# (tests/test_imports.py checks that it is the command's own).
COMMANDS: dict[str, tuple[str, str]] = {
    "build": ("bundle_commands", "Build a bundle from a project and its stored models."),
    "containerize": (
        "bundle_commands",
        "Build a container image from a bundle (the bundle directory is the build context).",
    ),
    "serve": ("commands", "Serve a service over HTTP."),
    "run": ("commands", "Run an API offline over --input text or an --input-file, without a server."),
    "push": ("hub_client_commands", "Push a bundle and its models to the team hub (same as `mlpack bundles push`)."),
    "pull": ("hub_client_commands", "Pull a bundle and its models from the team hub (same as `mlpack bundles pull`)."),
    "models": ("entries", "Manage models in the local store."),
    "bundles": ("entries", "Manage built bundles in the local store."),
    "deploy": ("deploy_commands", "Write deployment manifests for a bundle."),
    "hub": ("hub_commands", "Run a team hub, or log in to one and list what it holds."),
}


class _Root(LazyGroup):
    table = COMMANDS
    package = __name__


app = new_app("Save, serve, run and containerize ML models.", name="mlpack", cls=_Root)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mlpack {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks of errors.", envvar="MLPACK_DEBUG"),
) -> None:
    """mlpack: a small, fast ML lifecycle toolkit."""


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    sys.stderr.write(f"warning: {message}\n")


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("MLPACK_DEBUG", "") not in ("", "0", "false")
    warnings.showwarning = _show_warning
    try:
        try:
            app(args=args, prog_name="mlpack")
        except SystemExit:  # how click ends every command, successful or not
            _flush_stdout()
            raise
        _flush_stdout()
    except MlpackError as exc:
        _fail(debug, str(exc), exc.exit_code)
    except KeyboardInterrupt:
        error_line("interrupted")
        sys.exit(130)
    except OSError as exc:  # a file system error no command turned into a message
        from ..fsutil import is_disk_full, os_error

        _fail(debug, f"{os_error(exc, 'write' if is_disk_full(exc) else 'access')}{_HINT}", 1)
    except Exception as exc:  # a bug, ours or in the user's code: still one line without --debug
        _fail(debug, f"unexpected {type(exc).__name__}: {exc}{_HINT}", 1)
    finally:
        if argv is None:  # the process's command: what is left lives until the process ends
            _before_exit()


_HINT = " (run with --debug for the traceback)"


def _before_exit() -> None:
    """Keep the interpreter's last garbage collection from walking every object of the modules.

    It takes 0.1-0.3 s at exit after pandas and distributed were imported (a tenth of a
    short ``mlpack run``) and frees nothing the process's end would not. Frozen objects are
    skipped by it; atexit handlers and the modules' teardown still run as always.
    """
    import gc

    gc.freeze()


def _flush_stdout() -> None:
    """Flush results now, so that a full disk behind stdout is an error line, not a crash at exit."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:  # `mlpack ... | head`: the reader is gone, nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except OSError as exc:
        from ..fsutil import os_error

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the same bytes must not fail again at exit
        raise os_error(exc, "write to", "stdout") from exc


def _fail(debug: bool, message: str, code: int) -> None:
    if debug:
        traceback.print_exc()
        message = message.removesuffix(_HINT)
    error_line(message)
    sys.exit(code)
