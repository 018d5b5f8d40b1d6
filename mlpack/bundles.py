"""Built bundles in the store: ``bundle.yaml``, the ``Bundle`` handle, and ``mlpack.bundles.*``."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .catalog import Catalog, Entry, InfoMixin
from .settings import Settings
from .store import Store
from .tag import Tag

MANIFEST = "bundle.yaml"


def bundle_store(settings: Settings | None = None) -> Store:
    return CATALOG.store(settings)


@dataclass(frozen=True)
class BundleInfo(InfoMixin):
    """The contents of ``bundle.yaml``."""

    service: str
    name: str
    version: str
    creation_time: str
    mlpack_version: str = ""
    description: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    models: list[dict[str, Any]] = field(default_factory=list)
    apis: list[dict[str, Any]] = field(default_factory=list)
    python: dict[str, Any] = field(default_factory=dict)
    docker: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)


def read_info(path: Path) -> BundleInfo:
    return CATALOG.read_info(path)


class Bundle(Entry):
    """A built bundle directory: ``src/``, ``models/``, ``env/``, ``apis/`` and ``bundle.yaml``."""

    noun = "bundle"
    info: BundleInfo

    @classmethod
    def from_path(cls, path: str | Path) -> Bundle:
        path = Path(path).resolve()
        return cls(path, read_info(path))


def get(tag: Tag | str, settings: Settings | None = None) -> Bundle:
    return CATALOG.get(tag, settings)


def list(  # noqa: A001 - mirrors mlpack.models.list
    name: str | None = None, labels: Mapping[str, str] | None = None, settings: Settings | None = None
) -> builtins.list[Bundle]:
    return CATALOG.list(name, labels, settings)


def delete(tag: Tag | str, settings: Settings | None = None) -> Tag:
    bundle = get(tag, settings)
    CATALOG.delete(bundle.tag, settings)
    return bundle.tag


def export_bundle(tag: Tag | str, path: str | Path | None = None, settings: Settings | None = None) -> Path:
    """Write ``<name>-<version>.mlbundle`` (a tar.gz); ``path`` may be a directory or a file."""
    return CATALOG.export(get(tag, settings), path, settings)


def import_bundle(path: str | Path, settings: Settings | None = None) -> Bundle:
    return CATALOG.import_(path, settings)


CATALOG: Catalog[Bundle] = Catalog(
    kind="bundles", manifest=MANIFEST, noun="bundle", suffix=".mlbundle", info_cls=BundleInfo, entry_cls=Bundle
)
