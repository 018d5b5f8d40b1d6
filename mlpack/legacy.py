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

import ast
import functools
import importlib
import inspect
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from .exceptions import BuildError, ConfigError, ImportServiceError, MlpackError, NotFound

if TYPE_CHECKING:
    from .io import IODescriptor
    from .models import Model
    from .runner import Runner
    from .service import Service
    from .settings import Settings

__all__ = ["ArtifactCollection", "BentoService", "ModelArtifact", "api", "artifacts", "env", "infer_requirements", "load"]

C = TypeVar("C", bound=type)
F = TypeVar("F", bound=Callable[..., Any])

_ENV_KEYS = {"infer_pip_packages", "pip_packages", "requirements_txt_file", "docker_base_image"}
_API_ATTR = "__mlpack_api__"


class ModelArtifact:
    """A named model slot of a ``BentoService``; framework subclasses say how it is stored."""

    module: ClassVar[str] = ""  # the saver, e.g. "mlpack.sklearn"

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name.isidentifier():
            raise ConfigError(f"artifact name {name!r} must be a Python identifier")
        self.name = name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    def signatures(self, obj: Any) -> dict[str, dict[str, Any]]:
        """Runner signatures for ``obj``: its predict-like methods, batchable along rows."""
        methods = [m for m in ("predict", "predict_proba") if callable(getattr(obj, m, None))]
        return {m: {"batchable": True, "batch_dim": 0} for m in methods or ["predict"]}

    def save_model(self, name: str, obj: Any, **kwargs: Any) -> Model:
        """Store ``obj`` as model ``name`` with the framework's ``save_model``."""
        from .models import FRAMEWORKS

        framework = importlib.import_module(FRAMEWORKS[self.module])
        return framework.save_model(name, obj, signatures=self.signatures(obj), **kwargs)


class _RunnerModel:
    """``self.artifacts.<name>`` of a bound service: signature methods go through the Runner."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner
        self._object: Any = None

    def __getattr__(self, name: str) -> Any:
        runner = self.__dict__.get("_runner")
        if runner is None or name.startswith("__"):
            raise AttributeError(name)
        method = runner.methods.get(name)
        if method is not None:
            return method.run
        return getattr(self._loaded(), name)

    def _loaded(self) -> Any:
        if self._object is None:
            owners = [getattr(fn, "__self__", None) for fn in self._runner.runnable().values()]
            owner = next((o for o in owners if o is not None), None)  # a bound method's estimator: no second load
            self._object = owner if owner is not None else self._runner.model.load_model()
        return self._object

    def __repr__(self) -> str:
        return f"<model {self._runner.model.tag} via runner {self._runner.name}>"


class ArtifactCollection(Mapping[str, Any]):
    """``svc.artifacts``: ``svc.artifacts.model`` (or ``["model"]``) is the model."""

    def __init__(self, service: BentoService) -> None:
        self._service = service

    def __getitem__(self, name: str) -> Any:
        return self._service._artifact(name)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in self._service._declared():
            raise AttributeError(f"{type(self._service).__name__} has no artifact {name!r}")
        return self[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._service._declared())

    def __len__(self) -> int:
        return len(self._service._declared())


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
        from .build import BuildConfig, PythonOptions, build_bundle

        cls = type(self)
        module = sys.modules.get(cls.__module__)
        file = getattr(module, "__file__", None)
        if cls.__module__ == "__main__" or not file or getattr(module, cls.__name__, None) is not cls:
            raise BuildError(f"define {cls.__name__} at the top level of its own module (e.g. {cls.__name__.lower()}.py) "
                             "and import it in the script that packs it, so that a server can import it")  # fmt: skip
        missing = [n for n in self._declared() if n not in self._packed]
        if missing:
            raise BuildError(f"pack artifact(s) {', '.join(missing)} before save(), e.g. svc.pack({missing[0]!r}, model)")
        saved = [
            artifact.save_model(f"{self.name}_{name}", self._packed[name], labels=labels, settings=self._settings)
            for name, artifact in self._declared().items()
        ]
        context, service, include = _source_layout(cls.__module__, Path(file))
        opts = cls._env
        packages = [*(infer_requirements(Path(file), context) if opts.get("infer_pip_packages") else [])]
        packages += opts.get("pip_packages", [])
        config = BuildConfig(
            service=f"{service}:{cls.__name__}",
            name=self.name,
            include=include,
            models=[str(m.tag) for m in saved],
            python=PythonOptions(packages=list(dict.fromkeys(packages)), requirements_txt=opts.get("requirements_txt_file")),
            docker={"base_image": opts["docker_base_image"]} if opts.get("docker_base_image") else {},
        )
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


# ---------------------------------------------------------------- bundle source and requirements


def _source_layout(module_name: str, file: Path) -> tuple[Path, str, list[str]]:
    """``(build context, service module spec, include patterns)`` for a class's module."""
    file = file.resolve()
    parts = module_name.split(".")
    context = file.parents[len(parts) - 1 + (file.name == "__init__.py")]
    if len(parts) > 1:
        return context, module_name, [f"/{parts[0]}/**/*.py"]
    # the module, its sibling modules and packages; no data files
    packages = sorted(d.name for d in context.iterdir() if (d / "__init__.py").is_file())
    return context, file.name, ["/*.py", *(f"/{p}/**/*.py" for p in packages)]


def _imports(statements: list[ast.stmt]) -> Iterator[str]:
    for node in statements:
        if isinstance(node, ast.Import):
            yield from (alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.partition(".")[0]
        elif isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.unparse(node.test):
            yield from _imports(node.body)
            yield from _imports(node.orelse)


def infer_requirements(file: Path, root: Path | None = None) -> list[str]:
    """Pinned distributions for the top-level imports of ``file`` (no stdlib, local modules or mlpack)."""
    from .requirements import pin, resolve_dist

    try:
        tree = ast.parse(Path(file).read_text(encoding="utf-8"), str(file))
    except (OSError, SyntaxError) as exc:
        raise BuildError(f"cannot read the imports of {file}: {exc}") from exc
    local_dirs = {Path(file).parent, *([root] if root else [])}
    found = []
    for name in dict.fromkeys(_imports(tree.body)):
        if name in sys.stdlib_module_names or name in ("mlpack", "bentoml"):
            continue
        if any((d / f"{name}.py").is_file() or (d / name).is_dir() for d in local_dirs):
            continue
        found.append(pin(resolve_dist(name)))
    return found


def load(path_or_tag: str | Path) -> BentoService:
    """0.x ``bentoml.load``: the service instance of a saved bundle, its artifacts the bundle's models."""
    from .bundles import read_info
    from .settings import Settings
    from .target import import_attribute, resolve_bundle_path

    bundle = resolve_bundle_path(str(path_or_tag), Path.cwd())
    if bundle is None:
        raise ImportServiceError(f"{path_or_tag} is not a saved bundle (a path or a tag)")
    spec = read_info(bundle).service
    cls = import_attribute(spec, bundle / "src")
    if not (isinstance(cls, type) and issubclass(cls, BentoService)):
        raise ImportServiceError(f"bundle {path_or_tag} serves {spec}, not a BentoService class; use mlpack serve")
    svc = cls()
    svc._settings = Settings.from_env(models_dir=bundle / "models")
    return svc
