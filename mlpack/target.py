"""Resolve what to serve or run: ``module.py:svc`` in a project, a bundle directory, or a bundle tag."""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .exceptions import ImportServiceError, MlpackError


@dataclass(frozen=True)
class LoadedService:
    service: Any  # mlpack.Service
    source_dir: Path
    bundle_path: Path | None = None


def is_module_target(target: str, working_dir: Path) -> bool:
    module = target.split(":", 1)[0]
    if module.endswith(".py"):
        return True
    rel = module.replace(".", os.sep)
    return (working_dir / f"{rel}.py").is_file() or (working_dir / rel / "__init__.py").is_file()


def resolve_bundle_path(target: str, working_dir: Path) -> Path | None:
    """The bundle directory a target names, or None when it is a ``module:svc`` target."""
    candidate = Path(target)
    if not candidate.is_absolute():
        candidate = working_dir / candidate
    if (candidate / "bundle.yaml").is_file():
        return candidate.resolve()
    if is_module_target(target, working_dir):
        return None
    check_bundle_path(target, candidate)
    from . import bundles
    from .exceptions import InvalidTag, NotFound

    try:
        return bundles.get(target).path
    except (InvalidTag, NotFound) as exc:
        raise ImportServiceError(
            f"cannot find {target!r}: not a bundle tag, a bundle directory, or module.py:svc in {working_dir} ({exc})"
        ) from exc


def check_bundle_path(target: str, candidate: Path) -> None:
    """A target written as a path (``/x``, ``./x``, ``~/x``, ``x/y``) that is not a bundle is an error
    saying so, rather than an invalid tag name."""
    if not (candidate.exists() or "/" in target or os.sep in target or target.startswith((".", "~"))):
        return  # a tag, looked up in the store
    if not candidate.exists():
        raise ImportServiceError(f"{target}: no such file or directory")
    if candidate.is_dir():
        raise ImportServiceError(f"{target} is a directory but not a bundle: it has no bundle.yaml")
    raise ImportServiceError(f"{target} is a file, not a bundle directory; a service module is given as module.py:svc")


def load_service(target: str, working_dir: str | Path | None = None) -> LoadedService:
    """Import the service a target names; a bundle's models are used instead of the store's."""
    working_dir = Path(working_dir or os.getcwd()).resolve()
    bundle = resolve_bundle_path(target, working_dir)
    if bundle is not None:
        spec = prepare_bundle(bundle)
        os.environ["MLPACK_MODELS_DIR"] = str(bundle / "models")  # inherited by worker processes
        svc = import_service(spec, bundle / "src")
        return LoadedService(svc, bundle / "src", bundle)
    return LoadedService(import_service(target, working_dir), working_dir)


def prepare_bundle(path: Path) -> str:
    """Check a bundle before its code runs (trusted, exactly as built); its service spec.

    Python then writes no ``__pycache__`` into the bundle (here and in worker processes), so
    the bundle keeps holding exactly what ``bundle.yaml`` records.
    """
    from .bundles import Bundle

    bundle = Bundle.from_path(path)
    bundle.check_runnable()
    sys.dont_write_bytecode = True
    os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
    return bundle.info.service


def _import_module(spec: str, source_dir: Path) -> tuple[Any, str, str]:
    """``(module, module part, attribute)`` of ``module[.py][:attr]``, imported from ``source_dir``."""
    module_part, _, attr = spec.partition(":")
    module_name = module_part[:-3] if module_part.endswith(".py") else module_part
    module_name = module_name.replace("/", ".").replace(os.sep, ".")
    if str(source_dir) not in sys.path:
        sys.path.insert(0, str(source_dir))
    try:
        module = importlib.import_module(module_name)
    except MlpackError:
        raise
    except ModuleNotFoundError as exc:
        if exc.name == module_name.split(".")[0]:
            raise ImportServiceError(f"no module {module_name!r} in {source_dir}; give module.py:svc") from exc
        raise ImportServiceError(f"importing {module_name} failed: {exc}") from exc
    except Exception as exc:
        raise ImportServiceError(f"importing {module_name} failed: {type(exc).__name__}: {exc}") from exc
    return module, module_part, attr


def import_attribute(spec: str, source_dir: Path) -> Any:
    """The object ``module.py:attr`` names, imported from ``source_dir``."""
    module, _, attr = _import_module(spec, source_dir)
    if not attr or not hasattr(module, attr):
        raise ImportServiceError(f"module {module.__name__} has no attribute {attr!r}")
    return getattr(module, attr)


def _is_service_class(value: Any) -> bool:
    # a 0.x BentoService subclass (duck-typed: this module must not import the legacy layer)
    return isinstance(value, type) and callable(getattr(value, "to_service", None))


def import_service(spec: str, source_dir: Path) -> Any:
    """Import ``module[.py][:attr]`` from ``source_dir`` and return the Service in it.

    ``attr`` may also be a 0.x ``BentoService`` subclass (``iris_classifier.py:IrisClassifier``):
    it is instantiated and turned into a Service.
    """
    from .service import Service

    module, module_part, attr = _import_module(spec, source_dir)
    module_name = module.__name__
    if attr:
        svc = getattr(module, attr, None)
        if svc is None:
            raise ImportServiceError(f"module {module_name} has no attribute {attr!r}")
    else:
        found = [v for v in vars(module).values() if isinstance(v, Service)]
        if not found:  # else a service class defined in that module
            found = [v for v in vars(module).values() if _is_service_class(v) and v.__module__ == module_name]
        if len(found) != 1:
            raise ImportServiceError(f"module {module_name} defines {len(found)} services; name one as {module_part}:svc")
        svc = found[0]
    if _is_service_class(svc):
        try:
            svc = svc()
        except TypeError as exc:
            raise ImportServiceError(f"{spec}: cannot create a {svc.__name__} without arguments: {exc}") from exc
    as_service = getattr(svc, "to_service", None)  # the 0.x class style wraps a Service
    if as_service is not None and not isinstance(svc, Service):
        svc = as_service()
    if not isinstance(svc, Service):
        raise ImportServiceError(f"{spec} is a {type(svc).__name__}, not an mlpack.Service")
    return svc
