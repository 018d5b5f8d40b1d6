"""Top-level commands: serve, build, run, containerize. Heavy modules load inside each command."""

from __future__ import annotations

import contextlib
from typing import Optional

import typer

from .apps import new_app

cli = new_app()  # `mlpack` lists these from its COMMANDS table


@cli.command()
def serve(
    target: str = typer.Argument(
        None, help="Bundle tag, bundle directory, or module.py:svc. [default: the service of ./mlpackfile.yaml]"
    ),
    host: Optional[str] = typer.Option(None, "--host", help="Address to bind (env MLPACK_HOST). [default: 127.0.0.1]"),
    port: Optional[int] = typer.Option(
        None, "--port", "-p", min=0, max=65535, help="TCP port, 0 to pick a free one (env MLPACK_PORT). [default: 3000]"
    ),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Worker processes (env MLPACK_WORKERS). [default: 1]"),
    production: bool = typer.Option(False, "--production", help="One worker per CPU unless --workers is given."),
    reload: bool = typer.Option(False, "--reload", help="Restart when source files change (development)."),
    config: Optional[str] = typer.Option(None, "--config", help="YAML config file (env MLPACK_CONFIG)."),
    working_dir: Optional[str] = typer.Option(None, "--working-dir", help="Where module.py targets are found. [default: .]"),
    auth_token_file: Optional[str] = typer.Option(
        None,
        "--auth-token-file",
        help="Require Authorization: Bearer TOKEN on API routes; FILE has one token a line (env MLPACK_AUTH_TOKEN_FILE).",
    ),
) -> None:
    """Serve a service over HTTP."""
    from ..config import resolve_serve_options
    from ..serve import serve as run_server

    target = target or _default_target(working_dir)
    options = resolve_serve_options(
        target,
        host=host,
        port=port,
        workers=workers,
        production=production,
        reload=reload,
        config=config,
        working_dir=working_dir,
        auth_token_file=auth_token_file,
    )
    run_server(options)


def _default_target(working_dir: str | None) -> str:
    from pathlib import Path

    from ..exceptions import ConfigError

    base = Path(working_dir or ".")
    for name in ("mlpackfile.yaml", "bentofile.yaml"):
        path = base / name
        if path.is_file():
            from ..yamlio import load_yaml

            service = load_yaml(path).get("service")
            if service:
                return str(service)
            raise ConfigError(f"{path} has no 'service' entry (e.g. service: \"service.py:svc\")")
    raise ConfigError("no target given and no mlpackfile.yaml here; pass a bundle tag or module.py:svc")


@cli.command()
def run(
    args: list[str] = typer.Argument(
        ...,
        metavar="[TARGET] API",
        show_default=False,
        help=(
            "Bundle tag, bundle directory or module.py:svc, then the API name. With only the API, "
            "the target is the service of ./mlpackfile.yaml."
        ),
    ),
    input_text: Optional[str] = typer.Option(None, "--input", help="One input as text (JSON unless --format)."),
    input_file: Optional[str] = typer.Option(None, "--input-file", help="A csv, json, jsonl or parquet file of rows."),
    output_file: Optional[str] = typer.Option(
        None, "--output-file", help="Write results here: .json, .jsonl, .csv, .txt or .parquet. [default: stdout]"
    ),
    fmt: Optional[str] = typer.Option(
        None, "--format", help="Input format: csv, json, jsonl or parquet. [default: from the extension]"
    ),
    output: Optional[str] = typer.Option(
        None, "-o", "--output", help="json, jsonl, csv or table. [default: from --output-file, else json]"
    ),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="Rows per chunk. [default: 50000]"),
    working_dir: Optional[str] = typer.Option(
        None, "--working-dir", help="Where module.py targets and mlpackfile.yaml are found."
    ),
    engine: str = typer.Option("local", "--engine", help="local (this process) or dask (partitions on Dask workers)."),
    scheduler: Optional[str] = typer.Option(
        None, "--scheduler", help="Dask scheduler tcp://HOST:PORT (env MLPACK_DASK_SCHEDULER). [default: a local cluster]"
    ),
    dask_workers: Optional[int] = typer.Option(
        None, "--workers", min=1, help="Worker processes of the local Dask cluster. [default: one per CPU]"
    ),
    output_dir: Optional[str] = typer.Option(None, "--output-dir", help="Dask: write one part file per partition here."),
    partition_size: Optional[int] = typer.Option(
        None, "--partition-size", min=1, help="Dask: bytes of input per partition. [default: shrinking shares of the input]"
    ),
) -> None:
    """Run an API offline over --input text or an --input-file, without a server."""
    import sys

    from ..exceptions import BadInput
    from ..offline import DEFAULT_BATCH_SIZE, run_file, run_text
    from ..target import load_service

    if len(args) > 2:
        raise BadInput(f"expected [TARGET] API, got {len(args)} arguments: {' '.join(args)}")
    target, api_name = (args[0], args[1]) if len(args) == 2 else (None, args[0])
    if (input_text is None) == (input_file is None):
        raise BadInput("give either --input TEXT or --input-file PATH")
    if engine not in ("local", "dask"):
        raise BadInput(f"unknown engine {engine!r}; use local or dask")
    if engine == "local" and (scheduler or dask_workers or output_dir or partition_size):
        raise BadInput("--scheduler, --workers, --output-dir and --partition-size need --engine dask")
    if engine == "dask" and input_file is None:
        raise BadInput("--engine dask reads --input-file (a file, a glob or a folder), not --input")
    if input_file is not None and engine == "local":
        _check_input_file(input_file)  # before the models load: a typo fails at once
    spec = target or _default_target(working_dir)
    results = sys.stdout  # results only; whatever the service prints goes to stderr
    out = output_file if output_file is not None else results
    try:
        with contextlib.redirect_stdout(sys.stderr):
            loaded = load_service(spec, working_dir)
            if engine == "dask":
                dask_options = (scheduler, dask_workers, partition_size, output_dir)
                _run_on_dask(loaded, spec, api_name, input_file, output_file, fmt, output, batch_size, *dask_options, results)
            elif input_text is not None:
                run_text(loaded.service, api_name, input_text, out, fmt=fmt, out_fmt=output)
            else:
                show = sys.stderr.isatty()
                with _progress(show) as advance:
                    stats = run_file(
                        loaded.service,
                        api_name,
                        input_file,
                        out,
                        fmt=fmt,
                        out_fmt=output,
                        batch_size=batch_size or DEFAULT_BATCH_SIZE,
                        progress=advance,
                    )
                if show:
                    from .output import info_line

                    rate = stats.rows / stats.seconds if stats.seconds else 0
                    dest = f" -> {output_file}" if output_file else ""
                    info_line(f"{stats.rows:,} rows in {stats.seconds:.2f} s ({rate:,.0f} rows/s){dest}")
        _flush(results)
    except BrokenPipeError:  # `mlpack run ... | head`: the reader is gone; not an error of ours
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(0) from None


def _run_on_dask(
    loaded, spec, api_name, input_file, output_file, fmt, output, batch_size, scheduler, workers, partition_size, output_dir,
    results,
) -> None:  # noqa: ANN001 - the options of `run`, as given
    """``mlpack run --engine dask``: partitions of the input on Dask workers (``mlpack.dask_engine``)."""
    import sys

    from ..dask_engine import DaskOptions, run_dask
    from ..offline import DEFAULT_BATCH_SIZE

    out = output_file if output_file is not None else (None if output_dir is not None else results)
    show = sys.stderr.isatty()
    with _progress(show) as advance:
        stats = run_dask(
            loaded,
            spec,
            api_name,
            input_file,
            out,
            output_dir=output_dir,
            fmt=fmt,
            out_fmt=output,
            batch_size=batch_size or DEFAULT_BATCH_SIZE,
            options=DaskOptions(scheduler, workers, partition_size),
            progress=advance,
        )
    if show:
        from .output import info_line

        parts = "partition" if stats.chunks == 1 else "partitions"
        info_line(f"{stats.rows:,} rows in {stats.chunks:,} {parts}, {stats.seconds:.2f} s")



def _check_input_file(path: str) -> None:
    from pathlib import Path

    from ..exceptions import BadInput

    p = Path(path)
    if p.is_dir():
        raise BadInput(f"--input-file {path} is a directory, not a file")
    if not p.exists():
        raise BadInput(f"--input-file {path}: no such file")


def _flush(stream) -> None:  # noqa: ANN001
    """Flush the results now: a full disk behind stdout must fail here, not at interpreter exit."""
    try:
        stream.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:
        from ..fsutil import os_error

        raise os_error(exc, "write the results to", getattr(stream, "name", "stdout")) from exc


def _progress(show: bool):  # noqa: ANN202 - a context manager yielding a callback or None
    """A rich spinner with rows done and rows/s on stderr, when it is a terminal."""

    if not show:
        return contextlib.nullcontext(None)
    from rich.console import Console
    from rich.progress import Progress, ProgressColumn, SpinnerColumn, TextColumn, TimeElapsedColumn
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task) -> Text:  # noqa: ANN001
            speed = task.finished_speed or task.speed
            return Text(f"{speed:,.0f} rows/s" if speed else "", style="progress.data.speed")

    @contextlib.contextmanager
    def bar():  # noqa: ANN202
        columns = (SpinnerColumn(), TextColumn("{task.completed:,.0f} rows"), Rate(), TimeElapsedColumn())
        with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
            task = progress.add_task("run", total=None)
            yield lambda n: progress.advance(task, n)

    return bar()
