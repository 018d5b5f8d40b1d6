"""Server settings: CLI flag > MLPACK_* env > config file > defaults; bad files are clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mlpack.config import resolve_serve_options
from mlpack.exceptions import ConfigError
from mlpack.runner import BatchingOptions


def _file(tmp_path: Path, data: dict) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_defaults() -> None:
    opts = resolve_serve_options("svc.py:svc", env={})
    assert (opts.host, opts.port, opts.workers, opts.max_request_size, opts.metrics_enabled) == (
        "127.0.0.1", 3000, 1, 20 * 1024 * 1024, True,
    )  # fmt: skip


def test_precedence_flag_env_file(tmp_path: Path) -> None:
    config = _file(tmp_path, {"api_server": {"port": 4000, "workers": 3, "host": "0.0.0.0", "timeout": 5}})
    from_file = resolve_serve_options("t", config=config, env={})
    assert (from_file.port, from_file.workers, from_file.host, from_file.timeout) == (4000, 3, "0.0.0.0", 5)
    env = {"MLPACK_PORT": "5000", "MLPACK_WORKERS": "2"}
    from_env = resolve_serve_options("t", config=config, env=env)
    assert (from_env.port, from_env.workers) == (5000, 2)
    from_flag = resolve_serve_options("t", config=config, env=env, port=6000, workers=1, host="127.0.0.1")
    assert (from_flag.port, from_flag.workers, from_flag.host) == (6000, 1, "127.0.0.1")
    by_env_var = resolve_serve_options("t", env={"MLPACK_CONFIG": config})
    assert by_env_var.port == 4000


def test_production_uses_every_cpu_unless_workers_given() -> None:
    import os

    assert resolve_serve_options("t", production=True, env={}).workers == (os.cpu_count() or 1)
    assert resolve_serve_options("t", production=True, workers=1, env={}).workers == 1


def test_batching_precedence_per_runner(tmp_path: Path, home: Path, iris_svc) -> None:
    import mlpack

    model = mlpack.sklearn.save_model("iris_clf", iris_svc, signatures={"predict": {"batchable": True}})
    runner = model.to_runner(max_batch_size=8, max_latency_ms=50)
    other = model.to_runner(name="other")
    config = _file(
        tmp_path,
        {
            "runners": {
                "batching": {"max_batch_size": 64, "max_latency_ms": 200, "inline_max_ms": 0.5},
                "iris_clf": {"batching": {"max_batch_size": 4, "inline_max_ms": 0}},
            }
        },
    )
    opts = resolve_serve_options("t", config=config, env={})
    assert opts.batching_for(runner) == BatchingOptions(enabled=True, max_batch_size=4, max_latency_ms=50, inline_max_ms=0)
    assert opts.batching_for(other) == BatchingOptions(enabled=True, max_batch_size=64, max_latency_ms=200, inline_max_ms=0.5)
    assert resolve_serve_options("t", env={}).batching_for(other).inline_max_ms == 1.0  # the default
    flat = resolve_serve_options("t", config=_file(tmp_path, {"runners": {"other": {"enabled": False}}}), env={})
    assert flat.batching_for(other).enabled is False


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("api_server: {workerz: 2}\n", "api_server.workerz"),
        ("api_server: {port: -1}\n", "api_server.port"),
        ("runners: {batching: {max_batch_size: 0}}\n", "max_batch_size"),
        ("api_server: [1, 2\n", "not valid YAML"),
        ("api_server: {max_header_size: 100}\n", "api_server.max_header_size"),
        ("api_server: {request_timeout: 0}\n", "api_server.request_timeout"),
        ("api_server: {keepalive_timeout: .inf}\n", "api_server.keepalive_timeout"),
        ("api_server: {max_connections: 0}\n", "api_server.max_connections"),
        ("api_server: {max_conections: 10}\n", "api_server.max_conections"),
    ],
)
def test_bad_config_files(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        resolve_serve_options("t", config=str(path), env={})


def test_missing_config_file_and_bad_env(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        resolve_serve_options("t", config=str(tmp_path / "nope.yaml"), env={})
    with pytest.raises(ConfigError, match="MLPACK_PORT"):
        resolve_serve_options("t", env={"MLPACK_PORT": "http"})


def test_http_limits_defaults() -> None:
    opts = resolve_serve_options("t", env={})
    assert (opts.timeout, opts.max_header_size, opts.request_timeout, opts.keepalive_timeout, opts.max_connections) == (
        60, 64 * 1024, 60, 5, 1000,
    )  # fmt: skip


def test_http_limits_env_over_file(tmp_path: Path) -> None:
    config = _file(
        tmp_path,
        {"api_server": {"timeout": 30, "max_header_size": 8192, "keepalive_timeout": 2, "max_connections": 50}},
    )
    from_file = resolve_serve_options("t", config=config, env={})
    # request_timeout follows timeout unless it is set itself
    assert (from_file.timeout, from_file.request_timeout, from_file.max_header_size) == (30, 30, 8192)
    assert (from_file.keepalive_timeout, from_file.max_connections) == (2, 50)
    env = {
        "MLPACK_TIMEOUT": "20", "MLPACK_REQUEST_TIMEOUT": "7.5", "MLPACK_MAX_HEADER_SIZE": "4096",
        "MLPACK_KEEPALIVE_TIMEOUT": "1", "MLPACK_MAX_CONNECTIONS": "9", "MLPACK_MAX_REQUEST_SIZE": "1000",
    }  # fmt: skip
    from_env = resolve_serve_options("t", config=config, env=env)
    assert (from_env.timeout, from_env.request_timeout, from_env.max_header_size) == (20, 7.5, 4096)
    assert (from_env.keepalive_timeout, from_env.max_connections, from_env.max_request_size) == (1, 9, 1000)
    assert resolve_serve_options("t", config=config, env={"MLPACK_TIMEOUT": "9"}).request_timeout == 9
    own = resolve_serve_options("t", config=_file(tmp_path, {"api_server": {"timeout": 30, "request_timeout": 3}}), env={})
    assert (own.timeout, own.request_timeout) == (30, 3)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("MLPACK_MAX_HEADER_SIZE", "64k", "not a whole number"),
        ("MLPACK_MAX_HEADER_SIZE", "10", "at least 1024"),
        ("MLPACK_MAX_CONNECTIONS", "0", "at least 1"),
        ("MLPACK_REQUEST_TIMEOUT", "soon", "not a number of seconds"),
        ("MLPACK_KEEPALIVE_TIMEOUT", "-1", "positive number of seconds"),
        ("MLPACK_TIMEOUT", "nan", "positive number of seconds"),
    ],
)
def test_bad_http_limit_env(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"{name}=.*{message}"):
        resolve_serve_options("t", env={name: value})


def test_options_survive_the_trip_to_worker_processes(tmp_path: Path) -> None:
    from mlpack.config import ServeOptions

    config = _file(tmp_path, {"api_server": {"max_header_size": 2048, "request_timeout": 4, "max_connections": 3}})
    opts = resolve_serve_options("t", config=config, env={})
    assert ServeOptions.from_json(opts.to_json()) == opts


def test_readme_configuration_block_is_valid_and_shows_the_defaults(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = readme.split("**Configuration**", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    shown = yaml.safe_load(block)["api_server"]
    config = tmp_path / "readme.yaml"
    config.write_text(block)
    from_readme = resolve_serve_options("t", config=str(config), env={})
    defaults = resolve_serve_options("t", env={})
    keys = ["timeout", "max_request_size", "max_header_size", "request_timeout", "keepalive_timeout", "max_connections"]
    assert {k: shown[k] for k in keys} == {k: getattr(defaults, k) for k in keys}
    assert from_readme.workers == shown["workers"]
