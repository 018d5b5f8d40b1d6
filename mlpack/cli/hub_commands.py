"""The ``mlpack hub`` group: the server's ``serve`` and ``token create|list|revoke``, and the client's commands."""

from __future__ import annotations

from typing import Any, Optional

import typer

from .apps import new_app
from .hub_client_commands import add_client_commands
from .output import emit, table

cli = new_app()
hub_app = new_app()
cli.add_typer(hub_app, name="hub", help="Run a team hub, or log in to one and list what it holds.")
add_client_commands(hub_app)
token_app = new_app()
hub_app.add_typer(token_app, name="token", help="Create, list and revoke the hub's API tokens.")

DATA_OPT = typer.Option(None, "--data", help="Hub data directory. [default: $MLPACK_HOME/hub; env MLPACK_HUB_DATA]")
DB_OPT = typer.Option(None, "--db", help="Metadata database URL, e.g. postgresql://.... [default: SQLite under --data]")


def _config(**flags: Any) -> Any:
    from ..exceptions import MissingDependency
    from ..hub.server.config import HubConfig

    try:
        import sqlalchemy  # noqa: F401
    except ImportError:
        raise MissingDependency("the hub server needs SQLAlchemy and boto3: pip install 'mlpack[hub]'") from None

    return HubConfig.from_env(**flags)


def _tokens(data: Optional[str], db: Optional[str]) -> Any:
    from ..hub.server.repository import Hub

    config = _config(data_dir=data, db_url=db)
    hub = Hub(config, storage=_NoStorage()).open()
    return hub.tokens


class _NoStorage:
    """Token commands touch only the database; never open (or create) blob storage for them."""

    description = "none"


@hub_app.command("serve")
def serve(
    host: Optional[str] = typer.Option(None, "--host", help="Address to bind. [default: 127.0.0.1]"),
    port: Optional[int] = typer.Option(None, "--port", "-p", help="Port. [default: 3100]"),
    data: Optional[str] = DATA_OPT,
    storage: Optional[str] = typer.Option(
        None, "--storage", help="Where files go: s3://bucket/prefix. [default: files under --data; env MLPACK_HUB_STORAGE]"
    ),
    s3_endpoint_url: Optional[str] = typer.Option(
        None, "--s3-endpoint-url", help="S3 endpoint for MinIO or Ceph (env MLPACK_HUB_S3_ENDPOINT_URL)."
    ),
    db: Optional[str] = DB_OPT,
    gc_grace: Optional[float] = typer.Option(
        None, "--gc-grace", help="Seconds an unreferenced blob is kept before collection. [default: 3600]"
    ),
    no_access_log: bool = typer.Option(False, "--no-access-log", help="Do not log every request."),
) -> None:
    """Serve a hub of models and bundles (REST API, web UI, /metrics)."""
    from ..hub.server.app import serve as run_hub

    config = _config(
        host=host,
        port=port,
        data_dir=data,
        storage_url=storage,
        s3_endpoint_url=s3_endpoint_url,
        db_url=db,
        gc_grace_seconds=gc_grace,
        access_log=False if no_access_log else None,
    )
    run_hub(config)


@token_app.command("create")
def token_create(
    name: str = typer.Argument(..., help="Who or what the token is for (a name like alice or ci)."),
    read_only: bool = typer.Option(False, "--read-only", help="The token may read and pull, not push or delete."),
    data: Optional[str] = DATA_OPT,
    db: Optional[str] = DB_OPT,
) -> None:
    """Create a token and print it once (last line of stdout); only its hash is kept."""
    from .output import info_line

    token = _tokens(data, db).create(name, read_only=read_only)
    info_line(f"created {'read-only ' if read_only else ''}token {name!r}; it is shown only now:")
    typer.echo(token)


@token_app.command("list")
def token_list(
    data: Optional[str] = DATA_OPT,
    db: Optional[str] = DB_OPT,
    output: str = typer.Option("table", "-o", "--output", help="table, json or yaml."),
) -> None:
    """List tokens (names and rights; never the tokens themselves)."""
    rows = [t.to_dict() for t in _tokens(data, db).list()]
    if output == "table":
        table(
            ["Name", "Rights", "Created", "Last Used"],
            [
                [r["name"], "read-only" if r["read_only"] else "read-write", r["created_at"], r["last_used_at"] or "never"]
                for r in rows
            ],
        )
    else:
        emit(rows, output)


@token_app.command("revoke")
def token_revoke(
    name: str = typer.Argument(..., help="The token's name."),
    data: Optional[str] = DATA_OPT,
    db: Optional[str] = DB_OPT,
) -> None:
    """Revoke a token: calls with it get 401 from now on."""
    from .output import info_line

    _tokens(data, db).revoke(name)
    info_line(f"revoked token {name!r}")
