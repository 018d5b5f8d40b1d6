"""Typer apps for ``mlpack``'s command groups, with help that needs no rich.

Typer formats help with rich when rich is installed; importing its help renderer (rich's
markdown, syntax and traceback modules) costs more than the rest of ``mlpack --help`` together.
Every app here uses click's plain help instead. Tables and progress bars still use rich: they
import it inside the commands that show them.
"""

from __future__ import annotations

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
