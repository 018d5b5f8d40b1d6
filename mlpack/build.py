"""``mlpack build``: turn a project (mlpackfile.yaml + service + stored models) into a bundle."""

from __future__ import annotations

import os
import platform
import shutil
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from . import __version__
from .bundles import MANIFEST, Bundle, BundleInfo, bundle_store
from .dockerfile import DockerOptions, render_dockerfile, render_entrypoint
from .exceptions import BuildError, ConfigError
from .provenance import FILENAME as PROVENANCE
from .provenance import Provenance
from .requirements import installed_version, lock, pin
from .settings import Settings
from .store import hash_tree
from .tag import validate_part
from .wheel import mlpack_requirement
from .yamlio import dump_yaml, dumps_yaml, load_yaml

BUILD_FILES = ("mlpackfile.yaml", "bentofile.yaml")
ALWAYS_EXCLUDED = [".git/", ".venv/", "__pycache__/", "*.pyc", ".mlpack/", ".ipynb_checkpoints/"]
IGNORE_FILES = (".mlpackignore", ".bentoignore")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PythonOptions(_Strict):
    packages: list[str] = Field(default_factory=list)
    requirements_txt: str | None = None
    lock_packages: bool = True


class BuildConfig(_Strict):
    """The schema of ``mlpackfile.yaml`` (and of BentoML's ``bentofile.yaml``)."""

    service: str
    name: str | None = None
    description: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    include: list[str] = Field(default_factory=lambda: ["*"])
    exclude: list[str] = Field(default_factory=list)
    models: list[str] = Field(default_factory=list)
    python: PythonOptions = Field(default_factory=PythonOptions)
    docker: dict[str, Any] = Field(default_factory=dict)


def find_build_file(context: Path) -> Path:
    for name in BUILD_FILES:
        if (context / name).is_file():
            return context / name
    raise ConfigError(f"no mlpackfile.yaml in {context}; write one (service: \"service.py:svc\") or pass -f FILE")


def read_build_config(path: Path) -> BuildConfig:
    try:
        return BuildConfig.model_validate(load_yaml(path))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    except ValueError as exc:
        if isinstance(exc, ValidationError):
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ConfigError(f"{path.name}: {where}: {first['msg']}") from exc
        raise ConfigError(f"{path.name} is not valid YAML: {exc}") from exc


def select_files(context: Path, include: list[str], exclude: list[str]) -> list[str]:
    """Relative POSIX paths of the files to bundle, with gitignore semantics for both lists.

    Symbolic links are followed only while they stay inside ``context``: a selected file or
    directory whose real path is outside is a BuildError naming it, so a build never copies
    ``/etc/passwd`` or ``../secrets`` into a bundle (or an image).
    """
    import pathspec

    ignore_lines = []
    for name in IGNORE_FILES:
        if (context / name).is_file():
            ignore_lines += (context / name).read_text(encoding="utf-8").splitlines()
    included = pathspec.GitIgnoreSpec.from_lines(include or ["*"])
    excluded = pathspec.GitIgnoreSpec.from_lines([*ALWAYS_EXCLUDED, *exclude, *ignore_lines])
    real_context = context.resolve()
    # real paths of the directories above each walked one: a link back up is a cycle, not walked
    above: dict[str, frozenset[Path]] = {str(context): frozenset({real_context})}
    chosen = []
    for root, dirs, files in os.walk(context, followlinks=True):
        rel_root = Path(root).relative_to(context).as_posix()
        prefix = "" if rel_root == "." else rel_root + "/"
        kept = []
        for d in sorted(dirs):
            if excluded.match_file(prefix + d + "/"):
                continue
            real = (Path(root) / d).resolve()
            if not real.is_relative_to(real_context):
                raise BuildError(_outside(prefix + d + "/", real))
            if real not in above[root]:
                above[os.path.join(root, d)] = above[root] | {real}
                kept.append(d)
        dirs[:] = kept
        for name in sorted(files):
            rel = prefix + name
            path = Path(root) / name
            if path.is_symlink() and not path.exists():
                continue
            if included.match_file(rel) and not excluded.match_file(rel):
                real = path.resolve()
                if not real.is_relative_to(real_context):
                    raise BuildError(_outside(rel, real))
                chosen.append(rel)
    return chosen


def _outside(rel: str, real: Path) -> str:
    return (
        f"{rel} is a link to {real}, outside the build context; a bundle holds project files only: "
        f"add {rel!r} to exclude: in mlpackfile.yaml (or to .mlpackignore), or copy the file into the project"
    )


def service_file(service: str) -> tuple[str, ...]:
    """The files (relative to the context) that can hold the module of ``service.py:svc``."""
    module = service.partition(":")[0]
    if module.endswith(".py"):
        return (module.replace(os.sep, "/"),)
    rel = module.replace(".", "/")
    return (f"{rel}.py", f"{rel}/__init__.py")


def _requirements(config: BuildConfig, context: Path, models: list[Any]) -> list[str]:
    wanted = list(config.python.packages)
    if config.python.requirements_txt:
        req_file = context / config.python.requirements_txt
        try:
            lines = req_file.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise BuildError(f"python.requirements_txt: cannot read {req_file}: {exc.strerror}") from exc
        wanted += [ln.split("#", 1)[0].strip() for ln in lines if ln.split("#", 1)[0].strip() and not ln.startswith("-")]
    for model in models:
        wanted += list(model.info.context.get("framework_versions", {}))
    pinned = [pin(r) for r in wanted]
    if config.python.lock_packages:
        pinned = lock([*pinned, "mlpack"])  # mlpack's own dependencies get pinned too
    # mlpack itself is added by the caller (from an index or as a bundled wheel)
    return sorted({p for p in pinned if not p.lower().startswith(("mlpack==", "mlpack ", "mlpack["))}, key=str.lower)


INSTALL_SH = """#!/usr/bin/env bash
# Installs the bundle's Python requirements; run from anywhere (the image runs it as root).
set -euo pipefail
cd "$(dirname "$0")"
# everything from ./wheels when it is all there (offline), else wheels first, then the index
if ! python -m pip install --no-index --find-links ./wheels -r requirements.txt 2>/dev/null; then
  python -m pip install --find-links ./wheels -r requirements.txt
fi
"""


def _readme(info: dict[str, Any]) -> str:
    apis = "\n".join(f"- `POST {a['route']}`: {a['input']['type']} -> {a['output']['type']}" for a in info["apis"])
    models = "\n".join(f"- `{m['tag']}` ({m['module']})" for m in info["models"]) or "- none"
    tag = f"{info['name']}:{info['version']}"
    return (
        f"# {info['name']}\n\n{info['description'] or 'A service bundle built by mlpack.'}\n\n"
        f"## APIs\n\n{apis}\n\n## Models\n\n{models}\n\n## Use\n\n"
        f"```sh\nmlpack serve {tag}\nmlpack run {tag} <api> --input-file data.csv\n"
        f"mlpack containerize {tag}\n```\n"
    )


def build_bundle(
    context: str | Path = ".",
    *,
    build_file: str | Path | None = None,
    config: BuildConfig | None = None,
    version: str | None = None,
    labels: Mapping[str, str] | None = None,
    settings: Settings | None = None,
    wheels: bool | None = None,
) -> Bundle:
    """Build a bundle from ``context`` and commit it to the store atomically.

    ``wheels`` (default: the mlpackfile's ``docker.wheels``) vendors every wheel the image needs
    into ``env/python/wheels/``, so the bundle's image builds with no package index.
    """
    from .models import DATA_SUFFIXES
    from .models import get as get_model
    from .target import import_service

    context = Path(context).resolve()
    if not context.is_dir():
        raise BuildError(f"build context {context} is not a directory")
    if config is None:
        path = Path(build_file) if build_file else find_build_file(context)
        config = read_build_config(path if path.is_absolute() else Path.cwd() / path)
    settings = settings or Settings.from_env()
    svc = import_service(config.service, context)
    name = validate_part(config.name or svc.name, "bundle name")
    if version is not None:
        version = validate_part(version, "version")
    models = {str(m.tag): m for m in svc.models}
    for tag in config.models:
        model = get_model(tag, settings)
        models.setdefault(str(model.tag), model)
    docker = DockerOptions.from_config(
        {"python_version": f"{platform.python_version_tuple()[0]}.{platform.python_version_tuple()[1]}", **config.docker}
    )
    sources = select_files(context, config.include, config.exclude)
    if not set(service_file(config.service)) & set(sources):
        raise BuildError(
            f"the bundle would not contain the service module {service_file(config.service)[0]}: "
            "include: and exclude: in mlpackfile.yaml (or .mlpackignore) leave it out; include it"
        )
    for model in models.values():
        for rel in model.info.files:
            if not rel.endswith(DATA_SUFFIXES):  # a trusted bundle lets its models' pickles load
                model.require_trusted(f"bundling {rel}")
    python_version = _python_version(docker.python_version)
    store = bundle_store(settings)
    with store.stage() as staged:
        for rel in sources:
            dest = staged / "src" / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(context / rel, dest)
        for model in models.values():
            model.verify()
            dest = staged / "models" / model.tag.name / str(model.tag.version)
            # the bundle's own provenance decides for its models
            shutil.copytree(model.path, dest, ignore=_skip_provenance(model.path))
            (dest.parent / "latest").write_text(f"{model.tag.version}\n")
        env_python = staged / "env" / "python"
        (env_python / "wheels").mkdir(parents=True)
        requirements = _requirements(config, context, list(models.values()))
        requirements.append(mlpack_requirement(env_python / "wheels"))
        (env_python / "requirements.txt").write_text("\n".join(requirements) + "\n")
        vendored = docker.wheels if wheels is None else wheels
        if vendored:
            from .wheelhouse import Target, fill_wheelhouse

            target = Target(docker.python_version)
            fill_wheelhouse(env_python / "requirements.txt", env_python / "wheels", target, cache=settings.wheel_cache)
        (env_python / "version.txt").write_text(f"{python_version}\n")
        (env_python / "install.sh").write_text(INSTALL_SH)
        (env_python / "install.sh").chmod(0o755)
        env_docker = staged / "env" / "docker"
        env_docker.mkdir(parents=True)
        (env_docker / "Dockerfile").write_text(render_dockerfile(docker))
        (env_docker / "entrypoint.sh").write_text(render_entrypoint())
        (env_docker / "entrypoint.sh").chmod(0o755)
        (staged / "apis").mkdir()
        from .protocols import document  # what a default `mlpack serve` of the bundle serves, protocols included

        (staged / "apis" / "openapi.yaml").write_text(dumps_yaml(document(svc)))
        base: dict[str, Any] = {
            "service": config.service,
            "name": name,
            "description": config.description,
            "mlpack_version": __version__,
            "labels": {**config.labels, **dict(labels or {})},
            "models": [
                {"tag": str(m.tag), "module": m.info.module, "creation_time": m.info.creation_time} for m in models.values()
            ],
            "apis": [api.to_spec() for api in svc.apis.values()],
            "python": {"version": python_version, "requirements": requirements},
            "docker": {
                "base_image": docker.base_image,
                "python_version": docker.python_version,
                "system_packages": list(docker.system_packages),
                "env": dict(docker.env),
                "setup_script": docker.setup_script,
                "wheels": vendored,
            },
        }

        def write_manifest(path: Path, chosen: str) -> None:
            info = {**base, "version": chosen, "creation_time": _now()}
            (path / "README.md").write_text(_readme(info))
            files = hash_tree(path, skip=frozenset({MANIFEST, PROVENANCE}))
            try:
                dump_yaml(BundleInfo.from_dict({**info, "files": files}).to_dict(), path / MANIFEST)
            except ValueError as exc:
                raise BuildError(f"{exc}: the bundle has {len(files)} files; exclude what the service does not need") from exc

        tag = store.commit(staged, name, write_manifest, version=version, provenance=Provenance.new("built"))
    path = store.path(tag)
    from .bundles import read_info

    return Bundle(path, read_info(path))


def _skip_provenance(top: Path) -> Any:
    """A copytree ``ignore`` leaving out the entry's own ``provenance.yaml`` (store metadata)."""
    return lambda d, names: [PROVENANCE] if d == str(top) else []


def _python_version(image_minor: str) -> str:
    """The bundle's Python, as in ``env/python/version.txt`` and ``bundle.yaml``'s ``python.version``.

    The full version of this interpreter (``3.11.7``) when the image's ``major.minor`` (its base
    image tag, ``docker.python_version``) is this one's, else that ``major.minor``.
    """
    here = platform.python_version()
    return here if here.startswith(f"{image_minor}.") else image_minor


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


__all__ = ["BuildConfig", "build_bundle", "installed_version", "read_build_config", "select_files"]
