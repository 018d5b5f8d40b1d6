"""``mlpack.Service``: named APIs over IO descriptors, backed by runners."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .exceptions import MlpackError
from .tag import validate_part

if TYPE_CHECKING:
    from .io import IODescriptor
    from .models import Model
    from .runner import Runner

# paths the server owns; an API may not take them
RESERVED_ROUTES = {"/", "/docs.json", "/livez", "/healthz", "/readyz", "/metrics", "/static"}


def _plain(contract: Any) -> Any:
    """A contract as a dict, whether given as a dict or a dataclass (never called: a runner's
    attributes may be its model's methods)."""
    if dataclasses.is_dataclass(contract) and not isinstance(contract, type):
        contract = dataclasses.asdict(contract)
    return contract


class ServiceError(MlpackError):
    """A service definition is invalid (duplicate API, reserved route...)."""

    exit_code = 2


@dataclass
class API:
    """One endpoint: ``POST /<route>`` reads ``input``, calls ``func``, writes ``output``."""

    name: str
    func: Callable[..., Any]
    input: IODescriptor
    output: IODescriptor
    route: str
    doc: str = ""
    is_async: bool = field(init=False)
    # 0.x class-style APIs take the whole batch; informational for OpenAPI/bundle.yaml
    batch: bool = False

    def __post_init__(self) -> None:
        self.is_async = inspect.iscoroutinefunction(self.func)

    async def call(self, value: Any) -> Any:
        """Run the user function: async on the loop, sync in the thread pool."""
        if self.is_async:
            return await self.func(value)
        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(self.func, value)

    def to_spec(self) -> dict[str, Any]:
        return {"name": self.name, "route": self.route, "input": self.input.to_spec(), "output": self.output.to_spec()}


class Service:
    """A prediction service: ``svc = mlpack.Service("iris_classifier", runners=[runner])``."""

    def __init__(self, name: str, runners: list[Runner] | None = None, models: list[Model] | None = None) -> None:
        self.name = validate_part(name, "service name")
        self.runners: list[Runner] = list(runners or [])
        self.extra_models: list[Model] = list(models or [])
        self.apis: dict[str, API] = {}
        names = [r.name for r in self.runners]
        if len(set(names)) != len(names):
            raise ServiceError(f"service {self.name}: runner names must be unique, got {names}")

    def __repr__(self) -> str:
        return f'Service(name="{self.name}", apis={list(self.apis)}, runners={[r.name for r in self.runners]})'

    @property
    def models(self) -> list[Model]:
        """Every stored model the service uses (bundled by ``mlpack build``)."""
        seen: dict[str, Model] = {}
        for model in [*(r.model for r in self.runners), *self.extra_models]:
            seen.setdefault(str(model.tag), model)
        return list(seen.values())

    def api(
        self,
        input: IODescriptor,  # noqa: A002 - BentoML's argument name
        output: IODescriptor,
        route: str | None = None,
        name: str | None = None,
        doc: str | None = None,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Register a function as ``POST /<route>`` (default: the function name)."""

        def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
            self.add_api(func, input, output, route=route, name=name, doc=doc)
            return func

        return decorator

    def add_api(
        self,
        func: Callable[..., Any],
        input: IODescriptor,  # noqa: A002
        output: IODescriptor,
        *,
        route: str | None = None,
        name: str | None = None,
        doc: str | None = None,
        batch: bool = False,
    ) -> API:
        api_name = name or func.__name__
        if not api_name.isidentifier():
            raise ServiceError(f"API name {api_name!r} must be a Python identifier")
        path = "/" + (route if route is not None else api_name).strip("/")
        if api_name in self.apis:
            raise ServiceError(f"service {self.name} already has an API named {api_name!r}")
        if path in RESERVED_ROUTES or path.startswith("/static/") or any(a.route == path for a in self.apis.values()):
            raise ServiceError(f"route {path} of API {api_name!r} is taken; pass route=... to choose another")
        api = API(api_name, func, input, output, path, inspect.cleandoc(doc or func.__doc__ or ""), batch=batch)
        self.apis[api_name] = api
        return api

    def input_contract(self) -> dict[str, Any] | None:
        """The model input contract the OpenAPI document applies to APIs with an open input.

        Which API calls which runner is only known at run time, so the rule is simple: a
        service with exactly one runner uses that runner's model contract (None for a model
        saved without one); a service with several runners, or none, uses none.
        """
        if len(self.runners) != 1:
            return None
        runner = self.runners[0]
        contract = _plain(getattr(runner, "input_contract", None))
        if not isinstance(contract, dict):  # models saved before contracts: None
            contract = _plain(getattr(getattr(getattr(runner, "model", None), "info", None), "input_contract", None))
        return contract if isinstance(contract, dict) else None

    def openapi_json(self) -> bytes:
        """The OpenAPI document as served at ``/docs.json``.

        The standard library writes it, not orjson: schema limits may be integers beyond 64 bits.
        """
        import json

        return json.dumps(self.openapi_spec(), separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()

    def openapi_spec(self) -> dict[str, Any]:
        from .openapi import openapi_spec  # one way: openapi never imports service

        return openapi_spec(self.name, self.apis.values(), self.input_contract())
