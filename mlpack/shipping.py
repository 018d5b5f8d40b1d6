"""Shipping a service to machines that do not share the client's store or files.

``pack`` puts what a run needs in one tar archive: a bundle (the files its ``bundle.yaml``
records, without ``env/``), or for a ``module.py:svc`` target the project's files (chosen as
``mlpack build`` would) and the stored models the service uses. Only entries the client may
load go in: an untrusted bundle, or an untrusted model whose loading unpickles, is refused
here as it would be locally. Each entry's provenance travels beside the archive (never in
it) and is written into the receiving store as it was on the client.

``unpack_and_load`` runs on the receiving side: it extracts the archive safely into a
private ``MLPACK_HOME`` and imports the service from there.
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .exceptions import MlpackError, Untrusted
from .provenance import Provenance, read_provenance, write_provenance

# a project folder beyond this is most likely data: say how to leave it out
MAX_PROJECT_BYTES = 256 << 20
_SKIP_DIRS = ("env/",)


@dataclass(frozen=True)
class Shipment:
    """The archive and what the receiver needs to know about it."""

    key: str  # "<tag or service>-<sha256 prefix>": one plugin, one cache entry per content
    kind: str  # "bundle" or "project"
    spec: str  # the service to import: the bundle's directory, or module.py:svc
    data: bytes
    provenance: dict[str, dict[str, Any]] = field(default_factory=dict)  # entry dir (in the archive) -> provenance


def pack(loaded: Any, spec: str, skip: tuple[str, ...] = ()) -> Shipment:
    """The shipment for a loaded service (``mlpack.target.LoadedService``) named by ``spec``.

    ``skip``: files of the project not to send (the run's own input files).
    """
    buf = io.BytesIO()
    provenance: dict[str, dict[str, Any]] = {}
    with tarfile.open(fileobj=buf, mode="w") as tar:
        if loaded.bundle_path is not None:
            kind, label = "bundle", _add_bundle(tar, Path(loaded.bundle_path), provenance)
            target = "bundle"
        else:
            kind, label = "project", loaded.service.name
            _add_project(tar, Path(loaded.source_dir), {str(Path(p).resolve()) for p in skip})
            for model in loaded.service.models:
                _add_model(tar, model, provenance)
            target = spec
    data = buf.getvalue()
    key = f"mlpack-{label.replace(':', '-')}-{hashlib.sha256(data).hexdigest()[:16]}"
    return Shipment(key, kind, target, data, provenance)


def _add(tar: tarfile.TarFile, path: Path, arcname: str) -> None:
    tar.add(path, arcname=arcname, recursive=False)


def _add_bundle(tar: tarfile.TarFile, path: Path, provenance: dict[str, dict[str, Any]]) -> str:
    from .bundles import MANIFEST, read_info

    info = read_info(path)
    prov = read_provenance(path)
    if not prov.trusted:
        raise Untrusted(f"bundle {info.tag} is not trusted to run its code; check it, then `mlpack bundles trust {info.tag}`")
    _add(tar, path / MANIFEST, f"bundle/{MANIFEST}")
    for rel in sorted(info.files):
        if not rel.startswith(_SKIP_DIRS):
            _add(tar, path / rel, f"bundle/{rel}")
    provenance["bundle"] = prov.to_dict()
    return str(info.tag)


def _needs_trust(model: Any) -> bool:
    from .models import CUSTOM_OBJECTS

    # XGBoost's native files load without unpickling anything
    return model.info.module != "mlpack.xgboost" or CUSTOM_OBJECTS in model.info.files


def _add_model(tar: tarfile.TarFile, model: Any, provenance: dict[str, dict[str, Any]]) -> None:
    from .models import MANIFEST

    prov = read_provenance(model.path)
    if not prov.trusted and _needs_trust(model):
        raise Untrusted(
            f"model {model.tag} is not trusted to load its pickles; check it, then `mlpack models trust {model.tag}`"
        )
    model.verify()
    base = f"home/models/{model.tag.name}/{model.tag.version}"
    _add(tar, model.path / MANIFEST, f"{base}/{MANIFEST}")
    for rel in sorted(model.info.files):
        _add(tar, model.path / rel, f"{base}/{rel}")
    provenance[base] = prov.to_dict()
    latest = model.path.parent / "latest"
    version = latest.read_text().strip() if latest.is_file() else ""
    data = f"{version if version else model.tag.version}\n".encode()
    member = tarfile.TarInfo(f"home/models/{model.tag.name}/latest")
    member.size = len(data)
    if f"home/models/{model.tag.name}/latest" not in tar.getnames():
        tar.addfile(member, io.BytesIO(data))


def _add_project(tar: tarfile.TarFile, source: Path, skip: set[str]) -> None:
    from .build import BUILD_FILES, read_build_config, select_files

    include, exclude = ["*"], []
    for name in BUILD_FILES:
        if (source / name).is_file():
            config = read_build_config(source / name)
            include, exclude = config.include, config.exclude
            break
    total = 0
    for rel in select_files(source, include, exclude):
        path = source / rel
        if str(path.resolve()) in skip:
            continue  # the run's own input files
        total += path.stat().st_size
        if total > MAX_PROJECT_BYTES:
            raise MlpackError(
                f"the project folder {source} holds over {MAX_PROJECT_BYTES >> 20} MiB to send to the workers; "
                "leave data out with `exclude:` in mlpackfile.yaml, or build a bundle and run that"
            )
        _add(tar, path, f"src/{rel}")


# ---------------------------------------------------------------- receiving side


def unpack_and_load(shipment: Shipment, root: Path) -> Any:
    """Extract ``shipment`` under ``root`` and import its service (a ``LoadedService``).

    The process's ``MLPACK_HOME`` becomes ``root/home``, so that the service's
    ``mlpack.sklearn.get(...)`` finds the shipped models and nothing else.
    """
    from .archive import Limits, extract_all
    from .target import load_service

    root.mkdir(parents=True, exist_ok=True)
    archive = root / "shipment.tar"
    archive.write_bytes(shipment.data)
    extract_all(archive, root, Limits())
    archive.unlink()
    home = root / "home"
    home.mkdir(exist_ok=True)
    for rel, prov in shipment.provenance.items():
        write_provenance(root / rel, Provenance(**prov))
    os.environ["MLPACK_HOME"] = str(home)
    os.environ.pop("MLPACK_MODELS_DIR", None)
    if shipment.kind == "bundle":
        from .bundles import read_info

        _forget(read_info(root / "bundle").service)
        return load_service(str(root / "bundle"), root)
    _forget(shipment.spec)
    return load_service(shipment.spec, root / "src")


def _forget(spec: str) -> None:
    """Drop an earlier shipment's module of the same name, so that this one is imported afresh."""
    module = spec.partition(":")[0].removesuffix(".py").replace("/", ".").split(".")[0]
    for name in [m for m in sys.modules if m == module or m.startswith(module + ".")]:
        del sys.modules[name]
