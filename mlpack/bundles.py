"""Built bundles in the store: ``bundle.yaml``, the ``Bundle`` handle, and ``mlpack.bundles.*``."""

from __future__ import annotations

import builtins
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .catalog import Catalog, Entry, InfoMixin
from .exceptions import IntegrityError
from .provenance import Provenance
from .settings import Settings
from .store import Store, verify_files
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

    def check_runnable(self) -> None:
        """Before its code runs: the bundle is trusted, and ``src/`` and ``models/`` hold exactly
        what ``bundle.yaml`` records. Every ``src/`` file and each model's ``model.yaml`` and
        ``latest`` are hashed here; model payloads are hashed against their (checked)
        ``model.yaml`` when they load, so large models are not read twice.
        """
        self.require_trusted("running its src/")
        recorded = self.info.files
        present: set[str] = set()
        links: builtins.list[str] = []
        for top in ("src", "models"):
            for root, dirs, files in os.walk(self.path / top):
                rel_root = Path(root).relative_to(self.path).as_posix()
                links += [f"{rel_root}/{n}" for n in dirs if os.path.islink(os.path.join(root, n))]
                present.update(f"{rel_root}/{n}" for n in files)
        unrecorded = sorted(links + [rel for rel in present if rel not in recorded])
        if unrecorded:
            shown = ", ".join(unrecorded[:5]) + (f" and {len(unrecorded) - 5} more" if len(unrecorded) > 5 else "")
            raise IntegrityError(
                f"bundle {self.tag} holds files its bundle.yaml does not record: {shown}; "
                "they were added after the build: remove them, or build or import the bundle again"
            )
        checked = {
            rel: digest
            for rel, digest in recorded.items()
            if rel.startswith("src/") or (rel.startswith("models/") and rel.rsplit("/", 1)[-1] in ("model.yaml", "latest"))
        }
        missing = sorted(rel for rel in recorded if rel.startswith(("src/", "models/")) and rel not in present)
        if missing:
            raise IntegrityError(f"bundle {self.tag} is missing {', '.join(missing[:5])}; build or import it again")
        verify_files(self.path, checked, f"bundle {self.tag}")


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


def import_bundle(
    path: str | Path, settings: Settings | None = None, *, trust: bool = False, provenance: Provenance | None = None
) -> Bundle:
    """Import an archive made by ``export_bundle``; untrusted (its code will not run) unless ``trust``."""
    return CATALOG.import_(path, settings, trust=trust, provenance=provenance)


def trust(tag: Tag | str, settings: Settings | None = None) -> Bundle:
    """Trust a stored bundle: its ``src/`` may run and its bundled models' pickles may load."""
    return CATALOG.trust(tag, settings)


CATALOG: Catalog[Bundle] = Catalog(
    kind="bundles", manifest=MANIFEST, noun="bundle", suffix=".mlbundle", info_cls=BundleInfo, entry_cls=Bundle
)
