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
    # bounds on one archive import: total bytes unpacked and number of members
    import_max_bytes: int = 20 << 30
    import_max_members: int = 100_000

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
            import_max_bytes=_positive_int(env, "MLPACK_IMPORT_MAX_BYTES", cls.import_max_bytes),
            import_max_members=_positive_int(env, "MLPACK_IMPORT_MAX_MEMBERS", cls.import_max_members),
        )
        given = {k: v for k, v in overrides.items() if v is not None}
        return replace(settings, **given) if given else settings


def _positive_int(env: Mapping[str, str], key: str, default: int) -> int:
    raw = env.get(key, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        from .exceptions import ConfigError

        raise ConfigError(f"{key}={raw!r} is not a positive whole number")
    return value
