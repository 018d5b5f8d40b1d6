"""The Runner: one way to execute a stored model, used by serve, run and containerize.

``runner.predict.run(x)`` calls the model directly (or, from a worker thread of a running
server, through the batcher); ``await runner.predict.async_run(x)`` goes through the adaptive
micro-batcher when the signature is batchable and runs the model in a worker thread either way.

Both check the input against the model's input contract first (``runner.input_contract``,
recorded at save time; see ``mlpack.contract``), so that a request the model cannot take is a
422 and never joins a batch. A request the model raises ValueError or TypeError for when it runs
in a call of its own (alone, or isolated from a failed batch) gets ``BadInput`` (422): its own
data is to blame. Any other error, or one the whole batch shares, stays what it was (a 500).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .exceptions import BadInput, MlpackError
from .tag import validate_part

if TYPE_CHECKING:
    from .batching import AdaptiveBatcher
    from .contract import InputContract


class RunnableModel(Protocol):
    """What a Runner needs of a stored model (``mlpack.models.Model`` is one)."""

    @property
    def tag(self) -> Any: ...
    @property
    def info(self) -> Any: ...  # .signatures: {method: {batchable, batch_dim}}
    @property
    def input_contract(self) -> InputContract | None: ...
    def load_runnable(self, *, checked: Collection[str] = ()) -> Mapping[str, Callable[..., Any]]: ...
    def load_model(self) -> Any: ...


def own_fault(exc: Exception) -> Exception:
    """The error of a request that failed in a model call of its own: ValueError and TypeError
    from the model mean the request's data is to blame (422); anything else is the service's."""
    if isinstance(exc, (ValueError, TypeError)) and not isinstance(exc, MlpackError):
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if len(text) > 300:
            text = text[:297] + "..."
        err = BadInput(f"the model cannot take this input: {text}", status=422)
        err.__cause__ = exc
        return err
    return exc

DEFAULT_MAX_BATCH_SIZE = 100
DEFAULT_MAX_LATENCY_MS = 10_000.0
# A request alone may run the model on the event loop once its calls have taken at most this
# (mlpack.batching): the hand-off to the model thread costs more than such a call.
DEFAULT_INLINE_MAX_MS = 1.0


@dataclass(frozen=True)
class BatchingOptions:
    enabled: bool = True
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    max_latency_ms: float = DEFAULT_MAX_LATENCY_MS
    inline_max_ms: float = DEFAULT_INLINE_MAX_MS


class RunnerMethod:
    """One signature of a runner, e.g. ``runner.predict``."""

    def __init__(self, runner: Runner, name: str, batchable: bool, batch_dim: int | list[int]) -> None:
        self.runner = runner
        self.name = name
        self.batchable = batchable
        self.batch_dim = tuple(batch_dim) if isinstance(batch_dim, list) else batch_dim
        in_dim = self.batch_dim[0] if isinstance(self.batch_dim, tuple) else self.batch_dim
        # the contract describes rows x columns: it applies when requests are batched along rows
        self.contract = runner.input_contract if in_dim == 0 else None
        self._batcher: AdaptiveBatcher | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<RunnerMethod {self.runner.name}.{self.name} batchable={self.batchable}>"

    def _fn(self) -> Callable[..., Any]:
        return self.runner.runnable()[self.name]

    def batcher(self) -> AdaptiveBatcher | None:
        """The batcher for this method, made on first use (None when not batching)."""
        batcher = self._batcher
        if batcher is not None:  # the per-request path: no lock once it exists
            return batcher
        opts = self.runner.batching
        if not (self.batchable and opts.enabled):
            return None
        with self._lock:
            if self._batcher is None:
                from .batching import AdaptiveBatcher

                fn = self._fn()
                hook, isolated = self.runner.on_batch, self.runner.on_isolate
                on_batch = None
                if hook is not None:
                    # a hook may offer one of its own for this method (no per-call lookups)
                    for_method = getattr(hook, "for_method", None)
                    on_batch = for_method(self) if for_method is not None else (lambda rows: hook(self, rows))
                self._batcher = AdaptiveBatcher(
                    fn,
                    max_batch_size=opts.max_batch_size,
                    max_latency_ms=opts.max_latency_ms,
                    batch_dim=self.batch_dim,
                    on_batch=on_batch,
                    alone_error=own_fault,
                    on_isolate=(lambda extra, alone: isolated(self, extra, alone)) if isolated else None,
                    name=f"{self.runner.name}.{self.name}",
                    inline_max_ms=opts.inline_max_ms,
                    # the scan of values, once per batch (requests get the rest of the check)
                    check=self.contract.check_values if self.contract is not None else None,
                    alone=self.runner.alone,
                )
            return self._batcher

    def run(self, *args: Any, **kwargs: Any) -> Any:
        """Call the model now. From a worker thread of a running server, join its batches."""
        single = len(args) == 1 and not kwargs
        if single and self.contract is not None:
            self.contract.check(args[0])
        loop = self.runner.loop
        if loop is not None and single and self.batcher() is not None:
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is None and loop.is_running():
                return asyncio.run_coroutine_threadsafe(self._submit(args[0]), loop).result()
        return self._alone(*args, **kwargs)

    async def async_run(self, *args: Any, **kwargs: Any) -> Any:
        """Call the model without blocking the event loop, batching when the signature allows."""
        single = len(args) == 1 and not kwargs
        if single:
            batcher = self._batcher
            if self.contract is not None:
                # once batching, the batcher scans the values, once for a whole batch
                self.contract.check(args[0], values=batcher is None)
            if batcher is not None:  # made once the model was in: the per-request path
                return await batcher.submit(args[0])
        if not self.runner.ready:
            await asyncio.to_thread(self.runner.load)
        batcher = self.batcher() if single else None
        if batcher is not None:
            return await batcher.submit(args[0])
        return await asyncio.to_thread(self._alone, *args, **kwargs)

    async def _submit(self, x: Any) -> Any:
        """``async_run`` for ``run`` from a server's worker thread: checked already."""
        if not self.runner.ready:
            await asyncio.to_thread(self.runner.load)
        batcher = self.batcher()
        assert batcher is not None
        return await batcher.submit(x)

    def _alone(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self._fn()(*args, **kwargs)
        except (ValueError, TypeError) as exc:
            err = own_fault(exc)
            if err is exc:  # already mlpack's own error (e.g. BadInput): as it was
                raise
            raise err from exc


class Runner:
    """Executes one stored model; one ``RunnerMethod`` attribute per signature."""

    def __init__(
        self,
        model: RunnableModel,
        name: str | None = None,
        max_batch_size: int | None = None,
        max_latency_ms: float | None = None,
    ) -> None:
        self.model = model
        self.name = validate_part(name or model.tag.name, "runner name")
        self.max_batch_size = max_batch_size
        self.max_latency_ms = max_latency_ms
        self.batching = BatchingOptions(
            max_batch_size=max_batch_size or DEFAULT_MAX_BATCH_SIZE,
            max_latency_ms=DEFAULT_MAX_LATENCY_MS if max_latency_ms is None else max_latency_ms,
        )
        self.loop: asyncio.AbstractEventLoop | None = None
        self.on_batch: Callable[[RunnerMethod, int], None] | None = None
        # (method, extra model calls, requests that failed alone), after a failed batch was isolated
        self.on_isolate: Callable[[RunnerMethod, int, int], None] | None = None
        # set by a server: whether the current request is the only one it has under way
        self.alone: Callable[[], bool] | None = None
        #: what the model accepts (``mlpack.contract.InputContract``), or None when not recorded
        self.input_contract: InputContract | None = model.input_contract
        self._runnable: Mapping[str, Callable[..., Any]] | None = None
        self._load_lock = threading.Lock()
        self.methods: dict[str, RunnerMethod] = {
            method: RunnerMethod(self, method, opts.get("batchable", False), opts.get("batch_dim", 0))
            for method, opts in model.info.signatures.items()
        }
        for method, runner_method in self.methods.items():  # runner.predict without __getattr__
            if not hasattr(type(self), method) and method not in self.__dict__:
                self.__dict__[method] = runner_method

    def __getattr__(self, name: str) -> RunnerMethod:
        methods = self.__dict__.get("methods", {})
        if name in methods:
            return methods[name]
        raise AttributeError(f"runner {self.__dict__.get('name')!r} has no method {name!r}; signatures: {sorted(methods)}")

    def __repr__(self) -> str:
        return f"<Runner {self.name} model={self.model.tag}>"

    def configure(self, options: BatchingOptions) -> None:
        """Apply batching settings from the server configuration (before the first request)."""
        self.batching = options
        for method in self.methods.values():
            method._batcher = None

    @property
    def ready(self) -> bool:
        return self._runnable is not None

    def load(self) -> None:
        """Load (and verify) the model; safe to call from several threads, loads once."""
        with self._load_lock:
            if self._runnable is None:
                # every single-argument call of these is checked against the contract first
                checked = [name for name, method in self.methods.items() if method.contract is not None]
                self._runnable = self.model.load_runnable(checked=checked)

    # BentoML compatibility: runners are "initialized locally" outside of a server
    init_local = load

    def runnable(self) -> Mapping[str, Callable[..., Any]]:
        if self._runnable is None:
            self.load()
        assert self._runnable is not None
        return self._runnable

    def queue_depth(self) -> int:
        return sum(m._batcher.queue_depth for m in self.methods.values() if m._batcher is not None)

    async def close(self) -> None:
        for method in self.methods.values():
            if method._batcher is not None:
                await method._batcher.close()
                method._batcher = None

