"""YAML reading and writing with the C loader when available (listing reads many manifests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class YAMLSyntaxError(ValueError):
    """Unparsable YAML, as a ValueError so that callers handle it with other bad values."""


def load_yaml(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        data = loads_yaml(f)
    if not isinstance(data, dict):
        raise ValueError(f"{path} does not hold a mapping")
    return data


def loads_yaml(text: Any) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        raise YAMLSyntaxError(" ".join(str(exc).split())) from exc


def dumps_yaml(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False)


def dump_yaml(data: Any, path: Path) -> None:
    """Write YAML and fsync it, so a rename after this publishes complete content."""
    import os

    with open(path, "w", encoding="utf-8") as f:
        f.write(dumps_yaml(data))
        f.flush()
        os.fsync(f.fileno())
