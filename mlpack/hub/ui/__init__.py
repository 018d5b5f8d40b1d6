"""The hub's web UI: ``routes(hub)`` gives the Starlette routes the hub server mounts."""

from __future__ import annotations

from typing import Any


def routes(hub: Any) -> list[Any]:
    """Routes for ``/``, ``/login``, ``/logout``, ``/models...`` and ``/bundles...`` over ``hub``."""
    from .pages import ui_routes  # starlette and jinja2 load only when a server starts

    return ui_routes(hub)
