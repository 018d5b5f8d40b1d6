"""``mlpack models ...`` and ``mlpack bundles ...``: one command set over two kinds of entry (and push/pull)."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import typer

from .apps import new_app
from .hub_client_commands import add_transfer_commands
from .output import emit, human_size, info_line, local_time, parse_labels, table, write_stdout


def _api(kind: str) -> SimpleNamespace:
    if kind == "models":
        from .. import models as m

        return SimpleNamespace(
            get=m.get, list=m.list, delete=m.delete, export=m.export_model, imp=m.import_model, trust=m.trust
        )
    from .. import bundles as b

    return SimpleNamespace(
        get=b.get, list=b.list, delete=b.delete, export=b.export_bundle, imp=b.import_bundle, trust=b.trust
    )


def _summary(kind: str, entry: Any) -> dict[str, Any]:
    info = entry.info
    row = {"tag": str(entry.tag), "name": info.name, "version": info.version}
    if kind == "models":
        row["module"] = info.module
    else:
        row["service"] = info.service
        row["models"] = [m["tag"] for m in info.models]
    row.update(size=entry.size, creation_time=info.creation_time, labels=info.labels)
    return row


def make_entry_app(kind: str) -> typer.Typer:
    noun = kind[:-1]
    what_loads = "its pickled files" if kind == "models" else "its code and its models' pickled files"
    sub = new_app()

    @sub.command("list")
    def list_(
        name: str = typer.Argument(None, help=f"Only {kind} with this name."),
        output: str = typer.Option("table", "-o", "--output", help="table, json or yaml."),
        label: list[str] = typer.Option(None, "--label", help="Filter by label key=value (repeatable)."),
    ) -> None:
        """List {kind}, newest first."""
        _check_format(output, ("table", "json", "yaml"))
        labels = parse_labels(label)
        entries = _api(kind).list(name, labels=labels)
        if not entries:
            info_line(_nothing_listed(kind, name, labels))
        if output != "table":
            emit([_summary(kind, e) for e in entries], output)
            return
        if kind == "models":
            rows = [(str(e.tag), e.info.module, human_size(e.size), local_time(e.info.creation_time)) for e in entries]
            table(("Tag", "Module", "Size", "Creation Time"), rows)
        else:
            rows = [
                (str(e.tag), human_size(e.size), ", ".join(m["tag"] for m in e.info.models), local_time(e.info.creation_time))
                for e in entries
            ]
            table(("Tag", "Size", "Models", "Creation Time"), rows)

    list_.__doc__ = f"List {kind}, newest first."

    @sub.command("get")
    def get(
        tag: str = typer.Argument(..., help=f"{noun} tag: name[:version], version may be a unique prefix."),
        output: str = typer.Option("yaml", "-o", "--output", help="yaml, json or path."),
    ) -> None:
        _check_format(output, ("yaml", "json", "path"))
        entry = _api(kind).get(tag)
        if output == "path":
            write_stdout(f"{entry.path}\n")
        else:
            emit(entry.to_dict(), output)

    get.__doc__ = f"Show one {noun}."

    @sub.command("delete")
    def delete(
        tags: list[str] = typer.Argument(..., help=f"{noun} tags to delete."),
        yes: bool = typer.Option(False, "-y", "--yes", help="Do not ask for confirmation."),
        force: bool = typer.Option(False, "--force", help="Delete even if a bundle uses the model."),
    ) -> None:
        api = _api(kind)
        entries = [api.get(t) for t in tags]  # resolve all first: a typo deletes nothing
        if not yes:
            from ..exceptions import BadInput

            if not sys.stdin.isatty():
                raise BadInput(f"not deleting {len(entries)} {kind} without confirmation; pass -y")
            names = ", ".join(str(e.tag) for e in entries)
            if not typer.confirm(f"Delete {names}?", err=True):
                raise typer.Exit(1)
        for entry in entries:
            if kind == "models":
                api.delete(entry.tag, force=force)
            else:
                api.delete(entry.tag)
            info_line(f"deleted {noun} {entry.tag}")

    delete.__doc__ = f"Delete {kind} from the store."

    @sub.command("export")
    def export(
        tag: str = typer.Argument(..., help=f"{noun} tag: name[:version]."),
        path: str = typer.Argument(
            None, help="Archive file to write, or a directory (existing, or ending in /) to write it into. [default: .]"
        ),
    ) -> None:
        written = _api(kind).export(tag, path)
        write_stdout(f"{written}\n")

    export.__doc__ = f"Export a {noun} as a .ml{noun} archive (tar.gz)."

    @sub.command("import")
    def import_(
        path: Path = typer.Argument(..., help="An archive made by export."),
        trust: bool = typer.Option(False, "--trust", help=f"Trust the archive's source: {what_loads} may load."),
    ) -> None:
        entry = _api(kind).imp(path, trust=trust)
        note = "" if trust else f" (untrusted: `mlpack {kind} trust {entry.tag}` to use it)"
        info_line(f"imported {noun} {entry.tag}{note}")
        write_stdout(f"{entry.tag}\n")

    import_.__doc__ = f"Import a {noun} archive into the store (untrusted unless --trust)."

    @sub.command("trust")
    def trust_(tag: str = typer.Argument(..., help=f"{noun} tag: name[:version].")) -> None:
        entry = _api(kind).trust(tag)
        info_line(f"trusted {noun} {entry.tag}")
        sys.stdout.write(f"{entry.tag}\n")

    trust_.__doc__ = (
        f"Trust a {noun} (e.g. an imported one): its pickled files may load."
        if kind == "models"
        else "Trust a bundle (e.g. an imported one): its src/ may run and its models' pickles may load."
    )
    return sub


def _group(kind: str) -> typer.Typer:
    sub = make_entry_app(kind)
    add_transfer_commands(kind, sub)
    return sub


cli = new_app()  # `mlpack` lists these from its COMMANDS table
cli.add_typer(_group("models"), name="models", help="Manage models in the local store.")
cli.add_typer(_group("bundles"), name="bundles", help="Manage built bundles in the local store.")


def _nothing_listed(kind: str, name: str | None, labels: dict[str, str]) -> str:
    """Why ``list`` shows nothing, on stderr: where it looked, and how to add something."""
    from ..settings import Settings

    home = Settings.from_env().home
    what = (
        kind
        + (f" named {name}" if name else "")
        + (" with " + ", ".join(f"{k}={v}" for k, v in labels.items()) if labels else "")
    )
    where = f"the store {home}" + ("" if home.exists() else " (it does not exist yet; is MLPACK_HOME right?)")
    how = (
        "save one with mlpack.sklearn.save_model(name, model) or `mlpack models import FILE`"
        if kind == "models"
        else "build one with `mlpack build` or `mlpack bundles import FILE`"
    )
    return f"no {what} in {where}; {how}"


def _check_format(value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(allowed)}", param_hint="-o/--output")
