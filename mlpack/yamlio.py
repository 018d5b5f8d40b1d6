"""YAML reading and writing with the C loader when available (listing reads many manifests).

Reading refuses aliases and is bounded in size: a 2 KB "billion laughs" document expands to
gigabytes once something walks it (a listing index, ``models get -o json``), so a document that
reuses a node is an error, not a value. Anchors alone are harmless and allowed.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

# manifests, configs and provenance are small; a file past this is refused unread
MAX_BYTES = 4 << 20


class YAMLSyntaxError(ValueError):
    """Unparsable YAML, as a ValueError so that callers handle it with other bad values."""


@functools.cache
def _classes() -> tuple[Any, Any, Any]:
    """The safe loader, the alias-refusing loader and the dumper, made on first use.

    PyYAML is imported here, not with the module: the store's listing index is JSON, so
    ``mlpack models list`` parses no YAML once the index is fresh and needs none of it.
    """
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class NoAliasLoader(base):  # type: ignore[misc, valid-type]
        """A safe loader (C parser when available) that refuses aliases.

        The composer, C or Python, hands an alias over as the very node it refers to, so a
        node constructed twice is an alias; recursive aliases are caught the same way.
        """

        def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
            if node in self.constructed_objects or node in self.recursive_objects:
                raise yaml.constructor.ConstructorError(
                    None, None, "YAML aliases (*name) are not allowed here; write the value out", node.start_mark
                )
            return super().construct_object(node, deep)

    return base, NoAliasLoader, getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def load_yaml(path: Path, max_bytes: int = MAX_BYTES) -> dict[str, Any]:
    """A YAML mapping from ``path``; ValueError when too large, unparsable, aliased or not a mapping."""
    with open(path, "rb") as f:
        raw = f.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise ValueError(f"{path} is larger than {max_bytes} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path} is not UTF-8 text: {exc}") from exc
    data = loads_yaml(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path} does not hold a mapping")
    return data


def loads_yaml(text: Any) -> Any:
    # an alias is always written `*name`: text without a `*` takes the plain C loader, unchecked
    import yaml

    base, no_alias, _ = _classes()
    loader = base if isinstance(text, str) and "*" not in text else no_alias
    try:
        return yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        raise YAMLSyntaxError(" ".join(str(exc).split())) from exc


def dumps_yaml(data: Any) -> str:
    import yaml

    return yaml.dump(data, Dumper=_classes()[2], sort_keys=False, allow_unicode=True, default_flow_style=False)


def dump_yaml(data: Any, path: Path) -> None:
    """Write YAML and fsync it, so a rename after this publishes complete content.

    ValueError, writing nothing, when the text would be too large for ``load_yaml`` to read back.
    """
    import os

    text = dumps_yaml(data)
    if len(text.encode("utf-8")) > MAX_BYTES:
        raise ValueError(f"{path.name} would be larger than {MAX_BYTES} bytes")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
