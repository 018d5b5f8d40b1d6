"""Jinja2 templates of the web UI, autoescaped, with the few filters the pages need."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

TEMPLATES = Path(__file__).parent / "templates"


def human_size(n: Any) -> str:
    try:
        size = float(n)
    except (TypeError, ValueError):
        return ""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def when(value: Any) -> str:
    """An ISO 8601 time (or epoch seconds) as ``YYYY-MM-DD HH:MM UTC``."""
    if value in (None, ""):
        return ""
    try:
        if isinstance(value, (int, float)):
            moment = datetime.fromtimestamp(value, timezone.utc)
        else:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=timezone.utc)
    except (ValueError, OverflowError, OSError):
        return str(value)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def as_yaml(value: Any) -> str:
    from ...yamlio import dumps_yaml

    return dumps_yaml(value).rstrip()


def spec(value: Any) -> str:
    """An IO descriptor spec as ``Type(key=value, ...)``."""
    if not isinstance(value, dict):
        return str(value or "")
    args = ", ".join(f"{k}={v}" for k, v in value.items() if k != "type")
    return f"{value.get('type', '?')}({args})" if args else str(value.get("type", "?"))


def tag_path(tag: Any) -> str:
    name, _, version = str(tag).partition(":")
    return f"{name}/{version or 'latest'}"


class Renderer:
    """``render(template, **context)`` -> HTML; templates are read once per process."""

    def __init__(self) -> None:
        import jinja2

        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(TEMPLATES)),
            autoescape=True,
            undefined=jinja2.ChainableUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters.update(size=human_size, when=when, yaml=as_yaml, spec=spec, tag_path=tag_path)

    def __call__(self, template: str, **context: Any) -> str:
        return self.env.get_template(template).render(**context)
