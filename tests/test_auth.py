"""Bearer tokens on the server (``mlpack serve --auth-token-file``), against real servers of the
iris example with real clients: httpx, curl, tritonclient."""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as tritonclient
from tritonclient.utils import InferenceServerException

from mlpack.config import resolve_serve_options
from mlpack.exceptions import ConfigError
from mlpack.protocols.auth import BearerAuth, read_token_file

from .protocol_servers import example_server
from .server import ROOT, Server

TOKENS = ["tok-A1b2C3d4E5f6", "second.token_with-symbols~+/="]
ROW = [[5.1, 3.5, 1.4, 0.2]]
PROBES = ["/livez", "/readyz", "/healthz", "/ping", "/health", "/v2/health/live", "/v2/health/ready"]


def token_file(base: Path) -> Path:
    path = base / "tokens.txt"
    path.write_text(f"# the team's tokens\n\n  {TOKENS[0]}  \n# retired: old-token\n{TOKENS[1]}\n")
    return path


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# the API route of every protocol: (method, path, json body)
API_CALLS = [
    ("POST", "/predict", ROW),
    ("POST", "/invocations", {"inputs": ROW}),
    ("POST", "/v1/models/predict:predict", {"instances": ROW}),
    ("POST", "/v2/models/predict/infer", {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": ROW[0]}]}),
    ("GET", "/v2/models/predict", None),
    ("GET", "/v1/models", None),
    ("GET", "/version", None),
]


# ---------------------------------------------------------------- the token file


def test_token_file_rules(tmp_path: Path) -> None:
    digests = read_token_file(str(token_file(tmp_path)))
    assert len(digests) == 2
    empty = tmp_path / "empty"
    empty.write_text("# only a comment\n\n   \n")
    with pytest.raises(ConfigError, match="has no tokens"):
        read_token_file(str(empty))
    with pytest.raises(ConfigError, match="cannot read auth token file"):
        read_token_file(str(tmp_path / "missing"))
    spaced = tmp_path / "spaced"
    spaced.write_text("two words\n")
    with pytest.raises(ConfigError, match="line 1") as info:
        read_token_file(str(spaced))
    assert "two words" not in str(info.value)  # a token never shows in a message


def test_header_check() -> None:
    import hashlib

    auth = BearerAuth((hashlib.sha256(b"abc").digest(),), frozenset({"/livez"}), True)
    assert auth.allows([(b"authorization", b"Bearer abc")]) and auth.allows([(b"authorization", b"bearer  abc ")])
    for value in (b"Bearer abd", b"Basic abc", b"abc", b"Bearer", b"Bearer abcabc"):
        assert not auth.allows([(b"authorization", value)]), value
    assert not auth.allows([(b"x-other", b"Bearer abc")])
    assert auth.is_open("/livez") and auth.is_open("/static/swagger-ui/x.js") and auth.protects("/predict")


def test_flag_env_and_config_file(tmp_path: Path) -> None:
    tokens = token_file(tmp_path)
    config = tmp_path / "c.yaml"
    config.write_text(f"api_server:\n  auth:\n    token_file: {tokens}\n    protect_metrics: false\n")
    assert resolve_serve_options("x", config=str(config), env={}).auth_token_file == str(tokens)
    assert resolve_serve_options("x", env={"MLPACK_AUTH_TOKEN_FILE": str(tokens)}).auth_token_file == str(tokens)
    other = tmp_path / "other.txt"
    other.write_text("zzz\n")
    opts = resolve_serve_options("x", auth_token_file=str(other), config=str(config), env={"MLPACK_AUTH_TOKEN_FILE": str(tokens)})
    assert opts.auth_token_file == str(other) and opts.protect_metrics is False and opts.protect_docs is False
    assert resolve_serve_options("x", env={}).auth_token_file is None


def test_bad_token_file_is_one_line_of_error(tmp_path: Path, cli) -> None:  # noqa: ANN001
    empty = tmp_path / "empty.txt"
    empty.write_text("\n# nothing\n")
    for path in (empty, tmp_path / "missing.txt"):
        res = cli("serve", "service.py:svc", "--auth-token-file", str(path), cwd=ROOT / "examples" / "iris", timeout=60)
        assert res.returncode != 0
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and "auth token file" in lines[0], res.stderr


# ---------------------------------------------------------------- a real server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("auth")
    config = base / "config.yaml"
    config.write_text("api_server:\n  access_log: true\n  protocols:\n    mlflow: {api: predict}\n")  # the access log too
    with example_server("iris", base, "--auth-token-file", str(token_file(base)), "--config", str(config)) as srv:
        yield srv


@pytest.mark.slow
def test_every_protocol_needs_a_token(server: Server) -> None:
    with server.client() as c:
        for method, path, body in API_CALLS:
            for headers in ({}, bearer("wrong"), {"Authorization": f"Basic {TOKENS[0]}"}, {"Authorization": TOKENS[0]}):
                res = c.request(method, path, json=body, headers=headers)
                assert res.status_code == 401, (method, path, headers, res.text)
                assert res.headers["www-authenticate"].startswith("Bearer")
                assert "bearer token" in res.json()["error"]
            for token in TOKENS:
                res = c.request(method, path, json=body, headers=bearer(token))
                assert res.status_code == 200, (method, path, res.text)
        assert c.post("/predict", json=ROW, headers=bearer(TOKENS[1])).json() == [0]
        assert c.post("/invocations", json={"inputs": ROW}, headers=bearer(TOKENS[0])).json() == {"predictions": [0]}
        assert c.get("/no/such/path").status_code == 401  # what exists is not told without a token
        for path in PROBES:
            assert c.get(path).status_code == 200, path


@pytest.mark.slow
def test_tritonclient_sends_the_token(server: Server) -> None:
    client = tritonclient.InferenceServerClient(server.url.removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready()  # probes: open
    rows = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype=np.float32)
    inp = tritonclient.InferInput("input-0", list(rows.shape), "FP32")
    inp.set_data_from_numpy(rows)
    with pytest.raises(InferenceServerException) as info:
        client.infer("predict", [inp])
    assert "401" in str(info.value) or "bearer" in str(info.value).lower()
    result = client.infer("predict", [inp], headers=bearer(TOKENS[0]))
    assert result.as_numpy("output-0").tolist() == [0, 2]
    assert client.get_model_metadata("predict", headers=bearer(TOKENS[1]))["name"] == "predict"


@pytest.mark.slow
def test_metrics_and_docs_by_default(server: Server) -> None:
    with server.client() as c:
        assert c.get("/metrics").status_code == 401  # protect_metrics: true by default
        assert "mlpack_requests_total" in c.get("/metrics", headers=bearer(TOKENS[0])).text
        assert c.get("/").status_code == 200  # protect_docs: false by default
        spec = c.get("/docs.json").json()
    scheme = spec["components"]["securitySchemes"]["bearerAuth"]
    assert scheme == {**scheme, "type": "http", "scheme": "bearer"}
    for path in ("/predict", "/invocations", "/v2/models/{name}/infer", "/v1/models/{name}:predict"):
        (operation,) = spec["paths"][path].values()
        assert operation["security"] == [{"bearerAuth": []}] and "401" in operation["responses"], path
    for path in ("/livez", "/readyz", "/ping", "/v2/health/ready"):
        assert "security" not in spec["paths"][path]["get"], path
    from openapi_spec_validator import validate

    validate(spec)


@pytest.mark.slow
def test_the_token_never_shows_in_the_log(server: Server) -> None:
    with server.client() as c:
        c.post("/predict", json=ROW, headers=bearer(TOKENS[0]))
        c.post("/predict", json=ROW, headers=bearer(TOKENS[0] + "x"))
    log = server.output()
    assert "models loaded" in log
    assert not any(t in log for t in TOKENS), log


@pytest.mark.slow
def test_env_variable_and_config_switches(tmp_path: Path) -> None:
    """MLPACK_AUTH_TOKEN_FILE (how the container image gets it), with metrics open and docs protected."""
    config = tmp_path / "config.yaml"
    config.write_text("api_server:\n  auth:\n    protect_metrics: false\n    protect_docs: true\n")
    env = {"MLPACK_AUTH_TOKEN_FILE": str(token_file(tmp_path))}
    with example_server("iris", tmp_path, "--config", str(config), env=env) as srv, srv.client() as c:
        assert c.post("/predict", json=ROW).status_code == 401
        assert c.post("/predict", json=ROW, headers=bearer(TOKENS[0])).json() == [0]
        assert c.get("/metrics").status_code == 200
        assert c.get("/docs.json").status_code == 401 and c.get("/").status_code == 401
        assert "bearerAuth" in c.get("/docs.json", headers=bearer(TOKENS[1])).text
        assert c.get("/readyz").status_code == 200


@pytest.mark.slow
def test_readme_bearer_token_example(tmp_path: Path) -> None:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### Bearer tokens\n") :]
    block = re.search(r"```sh\n(.*?)```", section, flags=re.S).group(1)
    serve, curl = [ln for ln in block.splitlines() if ln.strip()][:2]
    words = shlex.split(serve, comments=True)
    assert words[:2] == ["mlpack", "serve"] and words[3] == "--auth-token-file"
    project = tmp_path / "iris"
    with example_server("iris", tmp_path, "--auth-token-file", str(token_file(tmp_path))) as srv:
        port = srv.url.rsplit(":", 1)[1]
        (project / "tokens.txt").write_text(TOKENS[0] + "\n")
        command = curl.replace("localhost:3000", f"127.0.0.1:{port}")
        res = subprocess.run(["bash", "-c", command + " -s -f"], cwd=project, capture_output=True, text=True, timeout=60)
        assert res.returncode == 0 and res.stdout.strip() == "[0]", res.stderr
        res = subprocess.run(["bash", "-c", command.replace("Bearer", "Bearer x") + " -s -o /dev/null -w '%{http_code}'"],
                             cwd=project, capture_output=True, text=True, timeout=60)  # fmt: skip
        assert res.stdout == "401"


def test_protocol_and_auth_config_is_checked(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    for text, where in [
        ("api_server:\n  protocols:\n    grpc: {enabled: true}\n", "api_server.protocols.grpc"),
        ("api_server:\n  protocols:\n    v2: {enabled: maybe}\n", "api_server.protocols.v2.enabled"),
        ("api_server:\n  auth:\n    tokens: [abc]\n", "api_server.auth.tokens"),
    ]:
        config.write_text(text)
        with pytest.raises(ConfigError, match=re.escape(where)):
            resolve_serve_options("x", config=str(config), env={})
    config.write_text("api_server:\n  protocols:\n    v2: {enabled: false}\n    mlflow: {api: predict}\n")
    opts = resolve_serve_options("x", config=str(config), env={})
    assert not opts.protocol_enabled("v2") and opts.protocol_enabled("native") and opts.protocol_enabled("mlflow")
    assert opts.protocols["mlflow"]["api"] == "predict"
    assert type(opts).from_json(opts.to_json()) == opts  # what worker processes get
