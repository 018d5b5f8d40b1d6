"""Top-level commands: serve, build, run, containerize. Heavy modules load inside each command."""

from __future__ import annotations

from typing import Optional

import typer

from . import app


@app.command()
def serve(
    target: str = typer.Argument(
        None, help="Bundle tag, bundle directory, or module.py:svc (default: service of ./mlpackfile.yaml)."
    ),
    host: Optional[str] = typer.Option(None, "--host", help="Address to bind [default: 127.0.0.1; env MLPACK_HOST]."),
    port: Optional[int] = typer.Option(None, "--port", "-p", help="Port [default: 3000; env MLPACK_PORT]."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Worker processes [default: 1]."),
    production: bool = typer.Option(False, "--production", help="One worker per CPU unless --workers is given."),
    reload: bool = typer.Option(False, "--reload", help="Restart when source files change (development)."),
    config: Optional[str] = typer.Option(None, "--config", help="YAML config file [env MLPACK_CONFIG]."),
    working_dir: Optional[str] = typer.Option(None, "--working-dir", help="Where module.py targets are found."),
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
