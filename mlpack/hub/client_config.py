"""Which hub the client talks to: ``$MLPACK_HOME/hub.yaml`` written by ``mlpack hub login``.

Resolution is flag > ``MLPACK_HUB_URL`` / ``MLPACK_HUB_TOKEN`` env > hub.yaml, frozen once
resolved. ``trust`` (``login --trust``) applies only to the URL it was given for, so pointing
``MLPACK_HUB_URL`` at another hub never inherits it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ..exceptions import ConfigError
from ..fsutil import write_atomic
from ..settings import default_home

FILENAME = "hub.yaml"


def config_path(home: Path | None = None) -> Path:
    return (home or default_home()) / FILENAME


def normalize_url(url: str) -> str:
    """``http(s)://host[:port][/prefix]`` without a trailing slash; anything else is an error."""
    url = (url or "").strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"hub URL {url!r} is not an http(s) URL; e.g. mlpack hub login http://127.0.0.1:3100 --token T")
    if parts.query or parts.fragment:
        raise ConfigError(f"hub URL {url!r} must not carry a query or fragment")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


@dataclass(frozen=True)
class HubSettings:
    """The hub URL, the bearer token, and whether entries pulled from it are trusted."""

    url: str
    token: str
    trusted: bool = False

    @classmethod
    def resolve(
        cls,
        url: str | None = None,
        token: str | None = None,
        *,
        home: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> HubSettings:
        env = os.environ if env is None else env
        saved = read_saved(home or default_home(env))
        chosen_url = url or env.get("MLPACK_HUB_URL") or saved.get("url")
        chosen_token = token or env.get("MLPACK_HUB_TOKEN") or saved.get("token")
        if not chosen_url:
            raise ConfigError("no hub configured: run `mlpack hub login URL --token TOKEN` or set MLPACK_HUB_URL")
        chosen_url = normalize_url(chosen_url)
        if not chosen_token:
            raise ConfigError(f"no token for hub {chosen_url}: run `mlpack hub login {chosen_url} --token TOKEN`")
        trusted = saved.get("trust") is True and saved.get("url") == chosen_url
        return cls(url=chosen_url, token=str(chosen_token), trusted=trusted)


def read_saved(home: Path) -> dict[str, object]:
    """The saved login, or ``{}``; a damaged file is an error naming the fix."""
    from ..yamlio import load_yaml

    path = config_path(home)
    try:
        data = load_yaml(path)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}; run `mlpack hub login` again or delete it") from exc
    return data


def save_login(home: Path, url: str, token: str, trust: bool) -> Path:
    """Write hub.yaml atomically with mode 0600 (it holds a secret)."""

    from ..yamlio import dumps_yaml

    home.mkdir(parents=True, exist_ok=True)
    path = config_path(home)
    text = dumps_yaml({"url": normalize_url(url), "token": token, "trust": bool(trust)})
    write_atomic(path, text, mode=0o600)  # it holds a token
    return path


def forget_login(home: Path) -> bool:
    """Remove hub.yaml; False when there was none."""
    try:
        config_path(home).unlink()
    except FileNotFoundError:
        return False
    return True
