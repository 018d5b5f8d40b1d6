"""Top-level commands (build, serve, run, containerize) registered on the app."""

from __future__ import annotations
