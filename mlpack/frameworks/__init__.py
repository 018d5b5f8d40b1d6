"""Framework savers. Each module offers ``save_model``, ``load_model``, ``get`` and ``load_runnable``.

Adding a framework means adding a module here and a line in ``mlpack.models.FRAMEWORKS``;
the store does not change.
"""

from __future__ import annotations

from typing import Any

from ..exceptions import NotFound
from ..models import Model
from ..models import get as _get_model
from ..settings import Settings
from ..tag import Tag


def get_for(module: str, tag: Tag | str | Model, settings: Settings | None = None) -> Model:
    """A stored model, checked to have been saved by ``module``."""
    model = tag if isinstance(tag, Model) else _get_model(tag, settings)
    if model.info.module != module:
        raise NotFound(f"model {model.tag} was saved with {model.info.module}, not {module}; use {model.info.module}.get()")
    return model


def method_table(obj: Any, model: Model) -> dict[str, Any]:
    """Bound methods of ``obj`` for each signature of ``model``."""
    table = {}
    for method in model.info.signatures:
        fn = getattr(obj, method, None)
        if not callable(fn):
            raise NotFound(f"model {model.tag} ({type(obj).__name__}) has no method {method!r} named in its signatures")
        table[method] = fn
    return table
