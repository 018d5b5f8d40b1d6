"""The ``mlpack`` command: a thin layer that turns library calls into output and exit codes.

Each command imports what it needs inside its function, so ``mlpack --help`` and
``mlpack models list`` never load numpy, pandas, sklearn or the web stack.
"""

from __future__ import annotations

import os
import sys
import traceback
import warnings

import typer

from .. import __version__
from ..exceptions import MlpackError
from .apps import new_app
from .entries import make_entry_app
from .output import error_line

app = new_app("Save, serve, run and containerize ML models.", name="mlpack")
app.add_typer(make_entry_app("models"), name="models", help="Manage models in the local store.")
app.add_typer(make_entry_app("bundles"), name="bundles", help="Manage built bundles in the local store.")


def sub_app(name: str, help_text: str) -> typer.Typer:
    """The sub-app ``name`` of ``mlpack`` (``hub``: server and client commands share it), made once."""
    for info in app.registered_groups:
        if info.name == name and info.typer_instance is not None:
            return info.typer_instance
    sub = new_app()
    app.add_typer(sub, name=name, help=help_text)
    return sub


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


def _register_commands() -> None:
    # imported for their side effect of adding commands to ``app``; each keeps heavy imports lazy
    from . import bundle_commands, commands, deploy_commands, hub_client_commands, hub_commands  # noqa: F401


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    sys.stderr.write(f"warning: {message}\n")


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("MLPACK_DEBUG", "") not in ("", "0", "false")
    warnings.showwarning = _show_warning
    _register_commands()
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


_HINT = " (run with --debug for the traceback)"


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
