"""Server configuration: CLI flag > ``MLPACK_*`` env > config file > defaults, frozen once resolved."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .exceptions import ConfigError
from .runner import DEFAULT_INLINE_MAX_MS, DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_LATENCY_MS, BatchingOptions, Runner

DEFAULT_PORT = 3000
DEFAULT_MAX_REQUEST_SIZE = 20 * 1024 * 1024
DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_HEADER_SIZE = 64 * 1024
DEFAULT_KEEPALIVE_TIMEOUT = 5.0
DEFAULT_MAX_CONNECTIONS = 1000


def _schema() -> Any:
    """The config file's pydantic models, built on demand (pydantic is not imported by the CLI)."""
    from pydantic import BaseModel, ConfigDict, Field

    class Strict(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

    class Batching(Strict):
        enabled: bool | None = None
        max_batch_size: int | None = Field(None, ge=1)
        max_latency_ms: float | None = Field(None, ge=0)
        inline_max_ms: float | None = Field(None, ge=0)  # 0: model calls never run on the event loop

    class Metrics(Strict):
        enabled: bool = True

    class Switch(Strict):
        enabled: bool = True

    class MlflowSwitch(Strict):
        enabled: bool = True
        api: str | None = None  # the API /invocations calls (default: the service's only API)

    class Protocols(Strict):
        native: Switch = Switch()
        v2: Switch = Switch()
        kserve_v1: Switch = Switch()
        mlflow: MlflowSwitch = MlflowSwitch()

    class Auth(Strict):
        token_file: str | None = None
        protect_metrics: bool = True
        protect_docs: bool = False

    class ApiServer(Strict):
        host: str | None = None
        port: int | None = Field(None, ge=0, le=65535)
        workers: int | None = Field(None, ge=1)
        timeout: float | None = Field(None, gt=0, allow_inf_nan=False)
        max_request_size: int | None = Field(None, ge=1)
        max_header_size: int | None = Field(None, ge=1024)
        request_timeout: float | None = Field(None, gt=0, allow_inf_nan=False)
        keepalive_timeout: float | None = Field(None, gt=0, allow_inf_nan=False)
        max_connections: int | None = Field(None, ge=1)
        metrics: Metrics = Metrics()
        access_log: bool = False
        protocols: Protocols = Protocols()
        auth: Auth = Auth()

    class RunnerConfig(Strict):
        batching: Batching = Batching()

    class ConfigFile(Strict):
        model_config = ConfigDict(extra="allow", frozen=True)  # runners.<name> keys are free
        api_server: ApiServer = ApiServer()
        runners: dict[str, Any] = {}

    return ConfigFile, Batching, RunnerConfig


def read_config_file(path: str | Path | None) -> dict[str, Any]:
    """Validate a YAML config file; the result is plain data (the file's values, defaults filled)."""
    from pydantic import ValidationError

    from .yamlio import loads_yaml

    ConfigFile, Batching, RunnerConfig = _schema()
    if path is None:
        return ConfigFile().model_dump()
    try:
        raw = loads_yaml(Path(path).read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    try:
        parsed = ConfigFile.model_validate(raw)
        runners: dict[str, Any] = {}
        for key, value in (parsed.runners or {}).items():
            if key == "batching":
                runners[key] = Batching.model_validate(value).model_dump()
            else:  # per-runner: {batching: {...}} as in BentoML, or the batching keys directly
                value = value or {}
                nested = value if "batching" in value else {"batching": value}
                runners[key] = RunnerConfig.model_validate(nested).model_dump()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"config file {path}: {where}: {first['msg']}") from exc
    data = parsed.model_dump()
    data["runners"] = runners
    return data


@dataclass(frozen=True)
class ServeOptions:
    """Everything a server process needs; serialisable so that worker processes get the same."""

    target: str
    working_dir: str
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    workers: int = 1
    reload: bool = False
    timeout: float = DEFAULT_TIMEOUT
    max_request_size: int = DEFAULT_MAX_REQUEST_SIZE
    max_header_size: int = DEFAULT_MAX_HEADER_SIZE
    request_timeout: float = DEFAULT_TIMEOUT
    keepalive_timeout: float = DEFAULT_KEEPALIVE_TIMEOUT
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    metrics_enabled: bool = True
    access_log: bool = False
    runners: dict[str, Any] = field(default_factory=dict)
    # api_server.protocols: {native: {enabled}, v2: {enabled}, kserve_v1: {enabled}, mlflow: {enabled, api}}
    protocols: dict[str, Any] = field(default_factory=dict)
    auth_token_file: str | None = None  # bearer tokens, one a line (mlpack.protocols.auth)
    protect_metrics: bool = True
    protect_docs: bool = False

    def protocol_enabled(self, name: str) -> bool:
        """Whether protocol ``name`` (native, v2, kserve_v1, mlflow) is switched on; all are by default."""
        return bool((self.protocols.get(name) or {}).get("enabled", True))

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeOptions:
        return cls(**json.loads(text))

    def batching_for(self, runner: Runner) -> BatchingOptions:
        """Per-runner config > ``to_runner()`` arguments > global config > defaults."""
        glob = self.runners.get("batching") or {}
        own = (self.runners.get(runner.name) or {}).get("batching") or {}

        def pick(key: str, code_value: Any, default: Any) -> Any:
            for value in (own.get(key), code_value, glob.get(key)):
                if value is not None:
                    return value
            return default

        return BatchingOptions(
            enabled=pick("enabled", None, True),
            max_batch_size=int(pick("max_batch_size", runner.max_batch_size, DEFAULT_MAX_BATCH_SIZE)),
            max_latency_ms=float(pick("max_latency_ms", runner.max_latency_ms, DEFAULT_MAX_LATENCY_MS)),
            inline_max_ms=float(pick("inline_max_ms", None, DEFAULT_INLINE_MAX_MS)),
        )


def resolve_serve_options(
    target: str,
    *,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
    production: bool = False,
    reload: bool = False,
    config: str | None = None,
    working_dir: str | None = None,
    auth_token_file: str | None = None,
    env: Mapping[str, str] | None = None,
) -> ServeOptions:
    env = os.environ if env is None else env
    file = read_config_file(config or env.get("MLPACK_CONFIG") or None)
    server = file["api_server"]

    def first(*values: Any) -> Any:
        return next((v for v in values if v not in (None, "")), None)

    def as_int(name: str, minimum: int | None = None) -> int | None:
        value = env.get(name)
        if value in (None, ""):
            return None
        try:
            number = int(value)
        except ValueError:
            raise ConfigError(f"{name}={value!r} is not a whole number") from None
        if minimum is not None and number < minimum:
            raise ConfigError(f"{name}={value!r} must be at least {minimum}")
        return number

    def as_seconds(name: str) -> float | None:
        value = env.get(name)
        if value in (None, ""):
            return None
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"{name}={value!r} is not a number of seconds") from None
        if not 0 < number < float("inf"):
            raise ConfigError(f"{name}={value!r} must be a positive number of seconds")
        return number

    timeout = first(as_seconds("MLPACK_TIMEOUT"), server["timeout"], DEFAULT_TIMEOUT)
    env_port = as_int("MLPACK_PORT")
    if env_port is not None and not 0 <= env_port <= 65535:
        raise ConfigError(f"MLPACK_PORT={env_port} is not a TCP port (0-65535; 0 picks a free one)")
    if port is not None and not 0 <= port <= 65535:
        raise ConfigError(f"port {port} is not a TCP port (0-65535; 0 picks a free one)")
    if production and workers is None:
        workers = os.cpu_count() or 1
    auth = server["auth"]
    token_file = first(auth_token_file, env.get("MLPACK_AUTH_TOKEN_FILE"), auth["token_file"])
    if token_file is not None:
        from .protocols.auth import read_token_file

        token_file = str(Path(token_file).resolve())
        read_token_file(token_file)  # a missing, unreadable or empty file stops the start, here
    return ServeOptions(
        target=target,
        working_dir=str(Path(working_dir or os.getcwd()).resolve()),
        host=first(host, env.get("MLPACK_HOST"), server["host"], "127.0.0.1"),
        port=next(p for p in (port, env_port, server["port"], DEFAULT_PORT) if p is not None),
        workers=first(workers, as_int("MLPACK_WORKERS"), server["workers"], 1),
        reload=reload,
        timeout=timeout,
        max_request_size=first(as_int("MLPACK_MAX_REQUEST_SIZE", 1), server["max_request_size"], DEFAULT_MAX_REQUEST_SIZE),
        max_header_size=first(as_int("MLPACK_MAX_HEADER_SIZE", 1024), server["max_header_size"], DEFAULT_MAX_HEADER_SIZE),
        # a request must arrive whole within api_server.timeout unless request_timeout says otherwise
        request_timeout=first(as_seconds("MLPACK_REQUEST_TIMEOUT"), server["request_timeout"], timeout),
        keepalive_timeout=first(as_seconds("MLPACK_KEEPALIVE_TIMEOUT"), server["keepalive_timeout"], DEFAULT_KEEPALIVE_TIMEOUT),
        max_connections=first(as_int("MLPACK_MAX_CONNECTIONS", 1), server["max_connections"], DEFAULT_MAX_CONNECTIONS),
        metrics_enabled=server["metrics"]["enabled"],
        access_log=server["access_log"],
        runners=file["runners"],
        protocols=server["protocols"],
        auth_token_file=token_file,
        protect_metrics=auth["protect_metrics"],
        protect_docs=auth["protect_docs"],
    )
