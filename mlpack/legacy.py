"""The BentoML 0.x class style, a thin layer over ``mlpack.Service`` and ``Runner``.

- ``svc.pack("model", clf); svc.save()`` stores each artifact as the model ``<class>_<artifact>``
  (``irisclassifier_model``) and builds the bundle ``<class>`` from the class's module directory.
- An unpacked instance binds each artifact to the latest stored model of that name (in a served
  bundle, the bundle's copy). ``self.artifacts.model.predict`` then calls ``runner.predict.run``,
  which inside a server joins the adaptive micro-batcher: the DataFrames of concurrent requests
  share one model call, as with 0.x ``batch=True``. Other attributes come from the loaded model.
- ``batch=True``: the function gets the whole input (a request's DataFrame, or a chunk of
  ``mlpack run --input-file``); with ``JsonInput`` a list of the one request body, as in 0.x.
"""

from __future__ import annotations

import functools
import inspect
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from .exceptions import BuildError, ConfigError, ImportServiceError, MlpackError, NotFound
from .legacy_artifacts import ArtifactCollection, ModelArtifact, _RunnerModel

if TYPE_CHECKING:
    from .io import IODescriptor
    from .runner import Runner
    from .service import Service
    from .settings import Settings

# infer_requirements: from mlpack.requirements, via __getattr__ below
__all__ = ["ArtifactCollection", "BentoService", "ModelArtifact", "api", "artifacts", "env", "infer_requirements", "load"]  # noqa: F822

C = TypeVar("C", bound=type)
F = TypeVar("F", bound=Callable[..., Any])

_ENV_KEYS = {"infer_pip_packages", "pip_packages", "requirements_txt_file", "docker_base_image"}
_API_ATTR = "__mlpack_api__"


@dataclass(frozen=True)
class _ApiSpec:
    input: IODescriptor
    output: IODescriptor | None
    batch: bool | None
    route: str | None
    name: str | None
    doc: str | None
    max_batch_size: int | None
    max_latency_ms: float | None


# ---------------------------------------------------------------- decorators


def env(**options: Any) -> Callable[[C], C]:
    """``@env(infer_pip_packages=True, pip_packages=[...], requirements_txt_file=..., docker_base_image=...)``."""
    for key in sorted(set(options) - _ENV_KEYS):
        warnings.warn(f"@env({key}=...) is not supported by mlpack and is ignored", UserWarning, stacklevel=2)

    def decorate(cls: C) -> C:
        cls._env = {k: v for k, v in options.items() if k in _ENV_KEYS}
        return cls

    return decorate


def artifacts(specs: Sequence[ModelArtifact]) -> Callable[[C], C]:
    """``@artifacts([SklearnModelArtifact("model")])``: the model slots of a BentoService."""
    specs = list(specs)
    for spec in specs:
        if not isinstance(spec, ModelArtifact):
            raise ConfigError(f"@artifacts takes artifacts such as SklearnModelArtifact('model'), not {spec!r}")
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ConfigError(f"@artifacts: names must be unique, got {names}")

    def decorate(cls: C) -> C:
        cls._artifact_specs = tuple(specs)
        return cls

    return decorate


def api(
    *args: Any,
    input: IODescriptor | None = None,  # noqa: A002 - the 0.x argument name
    output: IODescriptor | None = None,
    batch: bool | None = None,
    route: str | None = None,
    api_name: str | None = None,
    api_doc: str | None = None,
    mb_max_batch_size: int | None = None,
    mb_max_latency: float | None = None,
    http_methods: Sequence[str] | None = None,  # noqa: ARG001 - APIs take POST
) -> Callable[[F], F]:
    """``@api(input=DataframeInput(), batch=True)`` on a BentoService method: ``POST /<method>``."""
    from .io import IODescriptor

    if args:  # @api(DataframeInput())
        input = args[0] if input is None else input  # noqa: A001
    if not isinstance(input, IODescriptor):
        raise ConfigError(f"@api needs input=... (e.g. DataframeInput()), got {input!r}")
    if output is not None and not isinstance(output, IODescriptor):
        raise ConfigError(f"@api output must be an IO descriptor such as JsonOutput(), got {output!r}")
    spec = _ApiSpec(input, output, batch, route, api_name, api_doc, mb_max_batch_size, mb_max_latency)

    def decorate(func: F) -> F:
        setattr(func, _API_ATTR, spec)  # a mark read by BentoService.to_service; the function is unchanged
        return func

    return decorate


# ---------------------------------------------------------------- the service class


class BentoService:
    """Base class of 0.x services: declare artifacts and APIs, ``pack``, ``save``; served via ``to_service``."""

    _env: ClassVar[dict[str, Any]] = {}
    _artifact_specs: ClassVar[tuple[ModelArtifact, ...]] = ()

    def __init__(self) -> None:
        self._packed: dict[str, Any] = {}
        self._bound: dict[str, _RunnerModel] = {}
        self._runners: dict[str, Runner] = {}
        self._settings: Settings | None = None  # None: the environment's store
        self._service: Service | None = None
        self._lock = threading.RLock()

    @property
    def name(self) -> str:
        """The service, bundle and model-name prefix: the class name, lowered."""
        from .tag import validate_part

        return validate_part(type(self).__name__.lower(), "service name")

    @property
    def artifacts(self) -> ArtifactCollection:
        return ArtifactCollection(self)

    @classmethod
    def _declared(cls) -> dict[str, ModelArtifact]:
        return {a.name: a for a in cls._artifact_specs}

    @classmethod
    def _api_specs(cls) -> dict[str, _ApiSpec]:
        """Methods marked with ``@api``, in definition order (subclasses override)."""
        found: dict[str, _ApiSpec] = {}
        for klass in reversed(cls.__mro__):
            for attr, value in vars(klass).items():
                spec = getattr(value, _API_ATTR, None)
                if isinstance(spec, _ApiSpec):
                    found[attr] = spec
        return found

    def pack(self, name: str, obj: Any) -> BentoService:
        """Put a trained model into the artifact ``name``; returns the service for chaining."""
        if name not in self._declared():
            raise NotFound(f"{type(self).__name__} has no artifact {name!r}; declared: {list(self._declared())}")
        with self._lock:
            self._packed[name] = obj
            self._bound.pop(name, None)
            self._service = None
        return self

    def _artifact(self, name: str) -> Any:
        if name not in self._declared():
            raise KeyError(name)
        with self._lock:
            if name in self._packed:
                return self._packed[name]
            return self._bound.setdefault(name, _RunnerModel(self._runner(name)))

    def _runner(self, name: str) -> Runner:
        """A runner over the stored model ``<service>_<artifact>`` (latest), made once."""
        from .models import get as get_model

        if name not in self._runners:
            model_name = f"{self.name}_{name}"
            try:
                model = get_model(f"{model_name}:latest", self._settings)
            except NotFound as exc:
                raise NotFound(
                    f"artifact {name!r} of {type(self).__name__} is not packed and no model {model_name!r} is stored; "
                    f"call .pack({name!r}, model) and .save() first"
                ) from exc
            specs = self._api_specs().values()  # 0.x mb_max_* options: the strictest applies
            size = min((s.max_batch_size for s in specs if s.max_batch_size), default=None)
            latency = min((s.max_latency_ms for s in specs if s.max_latency_ms), default=None)
            self._runners[name] = model.to_runner(max_batch_size=size, max_latency_ms=latency)
        return self._runners[name]

    def to_service(self) -> Service:
        """The ``mlpack.Service`` that serves and runs this class: one API per ``@api`` method."""
        from .service import Service

        with self._lock:
            if self._service is not None:
                return self._service
            runners = [self._runner(n) for n in self._declared() if n not in self._packed]
            svc = Service(self.name, runners=runners)
            for attr, spec in self._api_specs().items():
                _add_api(svc, getattr(self, attr), attr, spec)
            self._service = svc
            return svc

    def save(self, version: str | None = None, labels: Mapping[str, str] | None = None) -> str:
        """Store the packed artifacts and build the bundle; returns the bundle's directory."""
        from .build import build_bundle
        from .legacy_build import bundle_config, class_file

        cls = type(self)
        file = class_file(cls)
        missing = [n for n in self._declared() if n not in self._packed]
        if missing:
            raise BuildError(f"pack artifact(s) {', '.join(missing)} before save(), e.g. svc.pack({missing[0]!r}, model)")
        saved = [
            artifact.save_model(f"{self.name}_{name}", self._packed[name], labels=labels, settings=self._settings)
            for name, artifact in self._declared().items()
        ]
        context, config = bundle_config(cls, file, self.name, [str(m.tag) for m in saved])
        return str(build_bundle(context, config=config, version=version, labels=labels, settings=self._settings).path)


def _add_api(svc: Service, method: Callable[..., Any], attr: str, spec: _ApiSpec) -> None:
    from .io import JSON, PandasDataFrame

    table = isinstance(spec.input, PandasDataFrame)
    batch = table if spec.batch is None else spec.batch
    func = method
    if batch and not table:  # 0.x batch=True over JSON: the function takes and returns a list
        func = _one_of_batch(method, attr)
    svc.add_api(func, spec.input, spec.output or JSON(), route=spec.route or attr, name=spec.name or attr,
                doc=spec.doc, batch=batch and table)  # fmt: skip


def _one_of_batch(method: Callable[..., Any], attr: str) -> Callable[..., Any]:
    def first(results: Any) -> Any:
        if isinstance(results, (str, bytes, dict)) or not hasattr(results, "__len__") or len(results) != 1:
            raise MlpackError(f"API {attr!r} has batch=True: it must return a list of one result per input")
        return results[0]

    if inspect.iscoroutinefunction(method):

        @functools.wraps(method)
        async def call_async(value: Any) -> Any:
            return first(await method([value]))

        return call_async

    @functools.wraps(method)
    def call(value: Any) -> Any:
        return first(method([value]))

    return call


def load(path_or_tag: str | Path) -> BentoService:
    """0.x ``bentoml.load``: the service instance of a saved bundle, its artifacts the bundle's models."""
    from .settings import Settings
    from .target import import_attribute, prepare_bundle, resolve_bundle_path

    bundle = resolve_bundle_path(str(path_or_tag), Path.cwd())
    if bundle is None:
        raise ImportServiceError(f"{path_or_tag} is not a saved bundle (a path or a tag)")
    spec = prepare_bundle(bundle)
    cls = import_attribute(spec, bundle / "src")
    if not (isinstance(cls, type) and issubclass(cls, BentoService)):
        raise ImportServiceError(f"bundle {path_or_tag} serves {spec}, not a BentoService class; use mlpack serve")
    svc = cls()
    svc._settings = Settings.from_env(models_dir=bundle / "models")
    return svc


def __getattr__(name: str) -> Any:
    if name == "infer_requirements":  # moved to mlpack.requirements; imported on use (importlib.metadata is slow)
        from .requirements import infer_requirements

        return infer_requirements
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
