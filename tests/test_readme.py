"""The top-level README, run as written: its Python, YAML and shell blocks, through the real CLI.

The README's shell commands are read from its ```sh blocks. Each is either run here verbatim
(placeholders like ``<version>`` filled in with what the earlier commands produced; ``serve``
gets a free port, ``curl`` is replayed against it) or listed in ``COVERED_ELSEWHERE`` with the
test that runs it; the last assertion fails when the README gains a command nobody runs.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.server import ROOT, running_server

README = ROOT / "README.md"
COVERED_ELSEWHERE = {
    "make demo": "tests/test_demo.py runs it",
    "make test": "what CI runs (.ci/run); running it here would recurse",
}
# Sections whose commands their own tests run (as written, or the same commands with test values).
SECTIONS_COVERED_ELSEWHERE = {
    "What a client gets for bad input": "tests/test_contract.py replays its curl requests",
    "Trust": "tests/test_trust.py runs its commands as written",
    "Dask": "tests/test_dask.py runs its commands as written",
    "Images that build with no network": "tests/test_kubernetes.py (build --wheels), tests/test_build.py (containerize)",
    "Kubernetes": "tests/test_kubernetes.py runs its commands as written",
    "Team hub": "tests/test_hub_server.py (token, serve, PostgreSQL, S3), tests/test_hub_push_pull.py (login, push, pull)",
    "Protocols": "tests/test_protocol_v2.py runs its tritonclient example as written",
    "MLflow scoring protocol": "tests/test_protocol_mlflow.py runs its examples as written",
    "Switching protocols off": "tests/test_protocol_mlflow.py (switches)",
    "Bearer tokens": "tests/test_auth.py runs its curl example, tests/test_build.py its docker run in a real image",
}
TEST_ONLY_FLAGS = ("--dry-run",)  # containerize builds no image here (tests/test_build.py does)


@dataclass
class Block:
    section: str
    lang: str
    text: str


def readme_blocks(text: str) -> list[Block]:
    blocks, section, lang, lines = [], "", None, []
    for line in text.splitlines():
        if lang is None and line.startswith(("## ", "### ")):
            section = line.split(" ", 1)[1].strip()
        elif line.startswith("```"):
            if lang is None:
                lang, lines = line[3:].strip(), []
            else:
                blocks.append(Block(section, lang, "\n".join(lines) + "\n"))
                lang = None
        elif lang is not None:
            lines.append(line)
    return blocks


def commands(block: Block) -> list[str]:
    """The block's commands, comments dropped, each as one shell-quoted string."""
    found, buffer = [], ""
    for line in block.text.splitlines():
        buffer += line[:-1] + " " if line.endswith("\\") else line + "\n"
        if line.endswith("\\"):
            continue
        try:
            words = shlex.split(buffer, comments=True)
        except ValueError:  # a quote spans lines: read on
            continue
        if words:
            found.append(shlex.join(words))
        buffer = ""
    return found


def file_block(blocks: list[Block], lang: str, name: str) -> str:
    """The block that starts with ``# <name>``: a file the README asks you to write."""
    (match,) = [b.text for b in blocks if b.lang == lang and b.text.startswith(f"# {name}")]
    return match


class Readme:
    def __init__(self, tmp_path: Path, home: Path, cli) -> None:  # noqa: ANN001
        self.blocks = readme_blocks(README.read_text())
        self.shown = [c for b in self.blocks if b.lang == "sh" for c in commands(b)]
        self.ran: list[str] = []
        self.values: dict[str, str] = {}
        self.dir, self.home, self._cli = tmp_path / "project", home, cli
        self.dir.mkdir()

    def filled(self, command: str) -> list[str]:
        words = shlex.split(command)
        return [re.sub(r"<([a-z-]+)>", lambda m: self.values[m.group(1)], w) for w in words]

    def take(self, command: str) -> list[str]:
        """A README command, marked as run; its words with placeholders filled in."""
        shown = shlex.join(w for w in shlex.split(command) if w not in TEST_ONLY_FLAGS)
        assert shown in self.shown, f"`{shown}` is not a README command"
        self.ran.append(shown)
        return self.filled(command)

    def mlpack(self, command: str) -> str:
        words = self.take(command)
        assert words[0] == "mlpack"
        res = self._cli(*words[1:], cwd=self.dir)
        assert res.returncode == 0, f"{command}:\n{res.stderr}"
        assert "Traceback" not in res.stderr, res.stderr
        return res.stdout

    def curl(self, command: str, base_url: str) -> httpx.Response:
        words = self.take(command)
        method, headers, data, url = "GET", {}, None, None
        it = iter(words[1:])
        for word in it:
            if word == "-X":
                method = next(it)
            elif word == "-H":
                key, _, value = next(it).partition(":")
                headers[key.strip()] = value.strip()
            elif word == "-d":
                data, method = next(it), "POST" if method == "GET" else method
            else:
                url = word
        assert url and url.startswith("localhost:3000/"), url  # the documented default port
        return httpx.request(method, base_url + url.removeprefix("localhost:3000"), headers=headers, content=data, timeout=30)

    def serve(self, command: str):  # noqa: ANN201 - a context manager
        words = self.take(command)
        assert words[:2] == ["mlpack", "serve"] and len(words) == 3, words
        return running_server(words[2], home=self.home, cwd=self.dir)


def in_section(readme: Readme, section: str) -> list[str]:
    return [c for b in readme.blocks if b.lang == "sh" and b.section == section for c in commands(b)]


@pytest.mark.slow
def test_readme_commands_run_as_written(tmp_path: Path, home: Path, cli, iris) -> None:
    readme = Readme(tmp_path, home, cli)
    env = {**os.environ, "MLPACK_HOME": str(home), "PYTHONPATH": str(ROOT)}

    # The model store: the README's Python saves the model, then its commands, in order.
    (save_code,) = [b.text for b in readme.blocks if b.lang == "python" and b.section == "The model store"]
    res = subprocess.run([sys.executable, "-c", save_code], cwd=readme.dir, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    store = in_section(readme, "The model store")
    assert json.loads(cli("models", "list", "-o", "json").stdout)[0]["name"] == "iris_clf"
    version = json.loads(cli("models", "get", "iris_clf", "-o", "json").stdout)["version"]
    readme.values.update({"version": version, "version-prefix": version[:8]})
    outputs = {command: readme.mlpack(command) for command in store}
    listed, shown_yaml = outputs[store[0]], outputs[store[1]]
    assert f"iris_clf:{version}" in listed and f"version: {version}" in shown_yaml
    assert (readme.dir / "out" / f"iris_clf-{version}.mlmodel").is_file()  # export made ./out/ and wrote inside
    assert outputs[store[-1]].strip() == f"iris_clf:{version}"  # deleted, then imported back
    assert (home / "models" / "iris_clf" / version / "model.yaml").is_file()

    # Services and serving: service.py as written, served, queried with the README's curl.
    (readme.dir / "service.py").write_text(file_block(readme.blocks, "python", "service.py"))
    serve_cmd, curl_cmd = in_section(readme, "Services and serving")
    with readme.serve(serve_cmd) as server:
        response = readme.curl(curl_cmd, server.url)
        assert response.status_code == 200 and response.json() == [0], response.text
    config = [b.text for b in readme.blocks if b.lang == "yaml" and b.text.startswith("api_server:")]
    (readme.dir / "config.yaml").write_text(config[0])
    from mlpack.config import read_config_file

    assert read_config_file(readme.dir / "config.yaml")["runners"]["iris_clf"]["batching"]["max_batch_size"] == 32

    # Bundles and containers: the README's mlpackfile.yaml, built, listed, served, containerized (dry run).
    (readme.dir / "mlpackfile.yaml").write_text(file_block(readme.blocks, "yaml", "mlpackfile.yaml"))
    build, listing, serve_bundle, containerize = in_section(readme, "Bundles and containers")
    assert readme.mlpack(build).startswith("iris_classifier:")
    assert "iris_classifier:" in readme.mlpack(listing)
    with readme.serve(serve_bundle) as server, server.client() as client:
        assert client.post("/predict", json=[[6.7, 3.0, 5.2, 2.3]]).json() == [2]
    assert containerize.startswith("mlpack containerize ")
    dry = readme.mlpack(containerize + " --dry-run")
    assert "iris:1" in dry and "env/docker/Dockerfile" in dry

    # Offline runs: from the bundle tag, and from ./mlpackfile.yaml over a CSV (data made here).
    X, _ = iris
    rows = "sepal_length,sepal_width,petal_length,petal_width\n" + "".join(",".join(map(str, r)) + "\n" for r in X)
    (readme.dir / "iris.csv").write_text(rows)
    by_tag, by_file = in_section(readme, "Offline runs")
    assert json.loads(readme.mlpack(by_tag)) == [0]
    readme.mlpack(by_file)
    predictions = (readme.dir / "predictions.csv").read_text().splitlines()
    assert len(predictions) == len(X) + 1 and set(predictions[1:]) == {"0", "1", "2"}

    # Every command of the README was run above or is covered by another test.
    elsewhere = {c for b in readme.blocks if b.lang == "sh" and b.section in SECTIONS_COVERED_ELSEWHERE for c in commands(b)}
    missing = [c for c in readme.shown if c not in readme.ran and c not in COVERED_ELSEWHERE and c not in elsewhere]
    assert not missing, f"README commands no test runs: {missing}"
    assert set(COVERED_ELSEWHERE) <= set(readme.shown), "COVERED_ELSEWHERE lists a command the README lost"


def test_readme_parser_finds_every_shell_command() -> None:
    """The parser sees the commands a reader sees (so the coverage check above means something)."""
    blocks = readme_blocks(README.read_text())
    shown = [c for b in blocks if b.lang == "sh" for c in commands(b)]
    raw = [line.split("#")[0].strip() for b in blocks if b.lang == "sh" for line in b.text.splitlines()]
    continued = sum(line.rstrip().endswith("\\") for b in blocks if b.lang == "sh" for line in b.text.splitlines())
    assert len(shown) == len([line for line in raw if line]) - continued >= 14
    assert "mlpack models export iris_clf ./out/" in shown
    assert any(c.startswith("curl -X POST") for c in shown)
