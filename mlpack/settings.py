"""Process-wide settings, resolved once and passed around explicitly (never mutated)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path


def default_home(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    home = env.get("MLPACK_HOME")
    return Path(home).expanduser() if home else Path.home() / ".mlpack"


@dataclass(frozen=True)
class Settings:
    """Where the store lives and how mlpack behaves. CLI flag > ``MLPACK_*`` env > defaults."""

    home: Path
    debug: bool = False
    # where models are looked up; a served bundle points this at its own models/ directory
    models_dir: Path | None = None

    @property
    def models_root(self) -> Path:
        return self.models_dir or self.home / "models"

    @property
    def wheel_cache(self) -> Path:
        """Wheels downloaded for images, kept between builds and containerizes."""
        return self.home / ".cache" / "wheels"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        env = os.environ if env is None else env
        models_dir = env.get("MLPACK_MODELS_DIR")
        settings = cls(
            home=default_home(env),
            debug=env.get("MLPACK_DEBUG", "") not in ("", "0", "false"),
            models_dir=Path(models_dir) if models_dir else None,
        )
        given = {k: v for k, v in overrides.items() if v is not None}
        return replace(settings, **given) if given else settings
