"""What the bundle of a 0.x ``BentoService`` class is built from: the source files of the class's
module, its requirements and the build config ``BentoService.save`` passes to ``build_bundle``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .exceptions import BuildError

if TYPE_CHECKING:
    from .build import BuildConfig


def class_file(cls: type) -> Path:
    """The file of the module defining ``cls``; BuildError unless a server can import ``cls`` from it."""
    module = sys.modules.get(cls.__module__)
    file = getattr(module, "__file__", None)
    if cls.__module__ == "__main__" or not file or getattr(module, cls.__name__, None) is not cls:
        raise BuildError(f"define {cls.__name__} at the top level of its own module (e.g. {cls.__name__.lower()}.py) "
                         "and import it in the script that packs it, so that a server can import it")  # fmt: skip
    return Path(file)


def source_layout(module_name: str, file: Path) -> tuple[Path, str, list[str]]:
    """``(build context, service module spec, include patterns)`` for a class's module."""
    file = file.resolve()
    parts = module_name.split(".")
    context = file.parents[len(parts) - 1 + (file.name == "__init__.py")]
    if len(parts) > 1:
        return context, module_name, [f"/{parts[0]}/**/*.py"]
    # the module, its sibling modules and packages; no data files
    packages = sorted(d.name for d in context.iterdir() if (d / "__init__.py").is_file())
    return context, file.name, ["/*.py", *(f"/{p}/**/*.py" for p in packages)]


def bundle_config(cls: type, file: Path, name: str, models: list[str]) -> tuple[Path, BuildConfig]:
    """``(build context, config)`` of the bundle ``name`` of ``cls`` (defined in ``file``) with the stored ``models``."""
    from .build import BuildConfig, PythonOptions
    from .requirements import infer_requirements

    context, service, include = source_layout(cls.__module__, file)
    opts = cls._env  # type: ignore[attr-defined]
    packages = [*(infer_requirements(file, context) if opts.get("infer_pip_packages") else [])]
    packages += opts.get("pip_packages", [])
    config = BuildConfig(
        service=f"{service}:{cls.__name__}",
        name=name,
        include=include,
        models=models,
        python=PythonOptions(packages=list(dict.fromkeys(packages)), requirements_txt=opts.get("requirements_txt_file")),
        docker={"base_image": opts["docker_base_image"]} if opts.get("docker_base_image") else {},
    )
    return context, config
