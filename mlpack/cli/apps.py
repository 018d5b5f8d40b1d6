"""Typer apps for ``mlpack``'s commands, made to start fast.

Typer formats help with rich when rich is installed; importing its help renderer (rich's
markdown, syntax and traceback modules) costs more than the rest of ``mlpack --help`` together.
Every app here uses click's plain help instead. Tables and progress bars still use rich: they
import it inside the commands that show them.

The root group is lazy (click's lazy-loading group pattern): it lists its commands from a
table of names, modules and one-line helps, and imports a command's module and turns its
functions into click commands only when that command runs or shows its own help.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Any

import typer
from typer.core import TyperGroup

# click wraps help at min(terminal width, this); rich used the whole terminal
HELP_OPTIONS = {"help_option_names": ["-h", "--help"], "max_content_width": 120}


def summary(command: Any) -> str:
    """A command's one-line help for a listing: its short help, else its help's first paragraph.

    Unlike click's, never cut: click ends it at the first word ending in "." ("e.g.") or at
    the terminal's width; the help formatter wraps the text instead.
    """
    if command.short_help:
        return " ".join(command.short_help.split())
    return " ".join((command.help or "").split("\n\n")[0].split())


class Group(TyperGroup):
    """A group whose command listing shows each command's whole first paragraph, wrapped."""

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, summary(command)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def new_app(help: str | None = None, **options: Any) -> typer.Typer:
    """A Typer app for a group of commands: plain help, ``-h``, no completion, usage when bare."""
    settings: dict[str, Any] = {
        **({} if help is None else {"help": help}),
        "cls": Group,
        "no_args_is_help": True,
        "add_completion": False,
        "pretty_exceptions_enable": False,
        "rich_markup_mode": None,
        "context_settings": HELP_OPTIONS,
        **options,
    }
    return typer.Typer(**settings)


class _Loaded(Mapping[str, Any]):
    """A lazy group's commands by name: a module is imported on the first look-up of one of its own."""

    def __init__(self, table: Mapping[str, tuple[str, str]], package: str) -> None:
        self._table = table
        self._package = package
        self._groups: dict[str, Any] = {}  # module name -> the click group of its ``cli`` app

    def __getitem__(self, name: str) -> Any:
        module_name = self._table[name][0]
        if module_name not in self._groups:
            module = importlib.import_module(f".{module_name}", self._package)
            self._groups[module_name] = typer.main.get_group(module.cli)
        return self._groups[module_name].commands[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)


class LazyGroup(Group):
    """A group whose commands are listed from ``table`` and loaded from their module on first use.

    ``table`` maps each command's name to the module (in ``package``) whose ``cli`` app defines
    it and to its one-line help, which the listing shows without importing anything.
    """

    table: Mapping[str, tuple[str, str]] = {}
    package = ""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = _Loaded(self.table, self.package)  # type: ignore[assignment]

    def list_commands(self, ctx: Any) -> list[str]:
        return list(self.table)

    def get_command(self, ctx: Any, name: str) -> Any:
        return self.commands[name] if name in self.table else None

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, help_text) for name, (_, help_text) in self.table.items()])
