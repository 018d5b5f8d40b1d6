"""The model slots of a 0.x ``BentoService``: ``ModelArtifact`` (subclassed per framework, e.g.
``SklearnModelArtifact``), ``svc.artifacts`` and the runner-backed model an unpacked service sees."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from .exceptions import ConfigError

if TYPE_CHECKING:
    from .legacy import BentoService
    from .models import Model
    from .runner import Runner

__all__ = ["ArtifactCollection", "ModelArtifact"]


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
