"""Client side of the team hub: ``hub login|logout|list``, ``models|bundles push|pull``, ``push|pull``."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import typer

from .apps import new_app
from .output import emit, human_size, info_line, local_time, parse_labels, table

HUB_OPT = typer.Option(None, "--hub", help="Hub URL. [default: $MLPACK_HUB_URL, else `mlpack hub login`]")
TOKEN_OPT = typer.Option(None, "--token", help="Hub token. [default: $MLPACK_HUB_TOKEN, else `mlpack hub login`]")

cli = new_app()  # `mlpack push|pull`; the hub and entry groups add the other commands here


def _home() -> Path:
    from ..settings import default_home

    return default_home()


def _client(url: Optional[str], token: Optional[str]) -> Any:
    from ..hub.client import HubClient
    from ..hub.client_config import HubSettings

    return HubClient(HubSettings.resolve(url, token, home=_home()))


@contextlib.contextmanager
def _progress_factory() -> Iterator[Any]:
    """Rich progress bars on stderr when it is a terminal; nothing otherwise."""
    from ..hub.transfer import no_progress

    if not sys.stderr.isatty():
        yield no_progress
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    bars = Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
        console=Console(stderr=True), transient=False,
    )

    @contextlib.contextmanager
    def one(description: str, total: int) -> Iterator[Any]:
        if total <= 0:
            yield lambda _n: None
            return
        task = bars.add_task(description, total=total)
        yield lambda n: bars.advance(task, n)

    with bars:
        yield one


def _report(moved: list[Any], verb: str) -> None:
    for m in moved:
        if m.status == "done":
            where = "already on the hub" if verb == "pushed" else "copied locally"
            info_line(f"{verb} {m.noun} {m.tag}: {m.blobs} blob(s) transferred ({human_size(m.bytes)}), {m.reused} {where}")
        elif m.status == "identical":
            info_line(f"{m.noun} {m.tag} is already on the hub (identical); nothing sent")
        else:
            info_line(f"{m.noun} {m.tag} is already in the local store; nothing pulled")


def _push(kind: str, tag: str, url: Optional[str], token: Optional[str]) -> None:
    from ..hub.transfer import push

    with _client(url, token) as client, _progress_factory() as progress:
        moved = push(client, kind, tag, progress=progress)
    _report(moved, "pushed")
    sys.stdout.write(f"{moved[-1].tag}\n")


def _pull(kind: str, tag: str, url: Optional[str], token: Optional[str]) -> None:
    from ..hub.transfer import pull

    with _client(url, token) as client, _progress_factory() as progress:
        moved = pull(client, kind, tag, progress=progress)
        trusted = client.settings.trusted
    _report(moved, "pulled")
    if not trusted and any(m.status == "done" for m in moved):
        info_line(f"pulled entries are untrusted; `mlpack hub login {client.url} --token T --trust` trusts this hub")
    sys.stdout.write(f"{moved[-1].tag}\n")


def add_transfer_commands(kind: str, sub: typer.Typer) -> None:
    """``mlpack models|bundles push|pull``."""
    noun = kind[:-1]

    def push_cmd(tag: str = typer.Argument(..., help=f"{noun} tag"), hub: Optional[str] = HUB_OPT,
                 token: Optional[str] = TOKEN_OPT) -> None:
        _push(kind, tag, hub, token)

    def pull_cmd(tag: str = typer.Argument(..., help=f"{noun} tag (name means name:latest)"),
                 hub: Optional[str] = HUB_OPT, token: Optional[str] = TOKEN_OPT) -> None:
        _pull(kind, tag, hub, token)

    extra = " (its models go first)" if kind == "bundles" else ""
    push_cmd.__doc__ = f"Push a {noun} to the team hub{extra}; only files the hub lacks are sent."
    pull_cmd.__doc__ = f"Pull a {noun} from the team hub into the local store" + (
        " (with any of its models the store lacks)." if kind == "bundles" else "."
    )
    sub.command("push")(push_cmd)
    sub.command("pull")(pull_cmd)


@cli.command("push")
def push_bundle(tag: str = typer.Argument(..., help="bundle tag"), hub: Optional[str] = HUB_OPT,
                token: Optional[str] = TOKEN_OPT) -> None:
    """Push a bundle and its models to the team hub (same as `mlpack bundles push`)."""
    _push("bundles", tag, hub, token)


@cli.command("pull")
def pull_bundle(tag: str = typer.Argument(..., help="bundle tag"), hub: Optional[str] = HUB_OPT,
                token: Optional[str] = TOKEN_OPT) -> None:
    """Pull a bundle and its models from the team hub (same as `mlpack bundles pull`)."""
    _pull("bundles", tag, hub, token)


def login(
    url: str = typer.Argument(..., help="Hub URL, e.g. http://127.0.0.1:3100"),
    token: str = typer.Option(..., "--token", help="A token from `mlpack hub token create`."),
    trust: bool = typer.Option(False, "--trust", help="Trust entries pulled from this hub to run their code."),
) -> None:
    """Check the token against the hub and save it in $MLPACK_HOME/hub.yaml (mode 0600)."""
    from ..hub.client import HubClient
    from ..hub.client_config import HubSettings, normalize_url, save_login

    settings = HubSettings(url=normalize_url(url), token=token, trusted=trust)
    with HubClient(settings) as client:
        me = client.whoami()
    path = save_login(_home(), settings.url, token, trust)
    rights = "read-only" if me.get("read_only") else "read-write"
    trusted = "; pulled entries are trusted" if trust else ""
    info_line(f"logged in to {settings.url} as {me.get('name')} ({rights}{trusted}); saved in {path}")


def logout() -> None:
    """Forget the saved hub login."""
    from ..hub.client_config import forget_login

    info_line("logged out" if forget_login(_home()) else "not logged in; nothing to do")


def list_hub(
    kind: str = typer.Argument("models", help="models or bundles"),
    query: Optional[str] = typer.Option(None, "-q", "--query", help="Name substring."),
    label: list[str] = typer.Option(None, "--label", help="Filter by label key=value (repeatable)."),
    sort: str = typer.Option("created", "--sort", help="created or size."),
    order: str = typer.Option("desc", "--order", help="desc or asc."),
    limit: int = typer.Option(100, "--limit", min=1, max=1000, help="At most this many."),
    offset: int = typer.Option(0, "--offset", min=0, help="Skip this many."),
    output: str = typer.Option("table", "-o", "--output", help="table or json."),
    hub: Optional[str] = HUB_OPT,
    token: Optional[str] = TOKEN_OPT,
) -> None:
    """List the models or bundles the hub holds, newest first."""
    if kind not in ("models", "bundles"):
        raise typer.BadParameter(f"{kind!r} is not models or bundles", param_hint="KIND")
    if output not in ("table", "json"):
        raise typer.BadParameter(f"{output!r} is not one of table, json", param_hint="-o/--output")
    with _client(hub, token) as client:
        page = client.list(kind, q=query, labels=parse_labels(label), sort=sort, order=order, limit=limit, offset=offset)
    items = page.get("items", [])
    if output == "json":
        emit(page, "json")
        return
    rows = [
        (
            str(i.get("tag") or f"{i.get('name')}:{i.get('version')}"),
            human_size(int(i.get("size") or 0)),
            ", ".join(f"{k}={v}" for k, v in (i.get("labels") or {}).items()),
            local_time(str(i.get("creation_time") or "")),
            str(i.get("pushed_by") or ""),
        )
        for i in items
    ]
    table(("Tag", "Size", "Labels", "Creation Time", "Pushed By"), rows)
    total = page.get("total", len(items))
    if total > offset + len(items):
        info_line(f"showing {len(items)} of {total}; use --offset {offset + len(items)} for more")


def add_client_commands(hub: typer.Typer) -> None:
    """``mlpack hub login|logout|list``: the client's half of the ``hub`` group."""
    hub.command("login")(login)
    hub.command("logout")(logout)
    hub.command("list")(list_hub)
