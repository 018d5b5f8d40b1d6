"""The examples, end to end, with the commands their READMEs give, through the real CLI.

Each test copies an example to a temporary directory and runs its README's commands in
subprocesses against a fresh MLPACK_HOME. Every ``mlpack`` command run here must appear in
the README (``--dry-run`` aside), and the README's curl requests are replayed as written
against the running server, so the READMEs cannot drift from what works.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.server import ROOT, Server, running_server

EXAMPLES = ROOT / "examples"
TEST_ONLY_FLAGS = ("--dry-run",)
SAMPLE = {"seniority": 3, "home": "owner", "time": 36, "age": 26, "marital": "single", "records": "no", "job": "freelance",
          "expenses": 35, "income": 0.0, "assets": 60000.0, "debt": 3000.0, "amount": 800, "price": 1000}  # fmt: skip


def readme_commands(readme: Path) -> list[list[str]]:
    """The commands of the README's ``sh`` blocks, split like a shell would (comments dropped)."""
    commands, buffer, in_block = [], "", False
    for line in readme.read_text().splitlines():
        if line.startswith("```"):
            in_block = line.strip() == "```sh" and not in_block
            buffer = ""
            continue
        if not in_block:
            continue
        buffer += line[:-1] + " " if line.endswith("\\") else line + "\n"
        if line.endswith("\\"):
            continue
        try:
            words = shlex.split(buffer, comments=True)
        except ValueError:  # a quote spans lines (a JSON body): read on
            continue
        if words:
            commands.append(words)
        buffer = ""
    return commands


class Example:
    """An example copied to a temporary directory, its README's commands at hand."""

    def __init__(self, name: str, tmp_path: Path, home: Path, cli) -> None:  # noqa: ANN001
        self.dir = tmp_path / name
        shutil.copytree(EXAMPLES / name, self.dir, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        self.home, self._cli = home, cli
        self.commands = readme_commands(self.dir / "README.md")

    def documented(self, words: list[str]) -> None:
        shown = [w for w in words if w not in TEST_ONLY_FLAGS]
        assert shown in self.commands, f"`{shlex.join(shown)}` is not in the README's commands"

    def mlpack(self, *args: str, cwd: Path | None = None, ok: bool = True):  # noqa: ANN201
        self.documented(["mlpack", *args])
        res = self._cli(*args, cwd=cwd or self.dir)
        if ok:
            assert res.returncode == 0, f"mlpack {shlex.join(args)}:\n{res.stderr}"
        return res

    def python(self, *args: str, cwd: Path | None = None) -> str:
        self.documented(["python", *args])
        env = {**os.environ, "MLPACK_HOME": str(self.home), "PYTHONPATH": str(ROOT)}
        res = subprocess.run([sys.executable, *args], cwd=cwd or self.dir, env=env, capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, f"python {shlex.join(args)}:\n{res.stderr}"
        return res.stdout

    def serve(self, target: str, *args: str, cwd: Path | None = None):  # noqa: ANN201
        self.documented(["mlpack", "serve", target, *args])
        return running_server(target, home=self.home, cwd=cwd or self.dir, args=args)

    def curl(self, server: Server, path: str) -> list[httpx.Response]:
        """Replay each README curl request to ``path`` against ``server``."""
        sent = []
        for words in self.commands:
            if words[0] != "curl" or not any(w.endswith(path) and "localhost:3000" in w for w in words):
                continue
            headers, body, url = {}, None, next(w for w in words if "localhost:3000" in w)
            for flag, value in zip(words, words[1:]):
                if flag in ("-H", "--header"):
                    key, _, val = value.partition(":")
                    headers[key.strip()] = val.strip()
                elif flag in ("-d", "--data", "--data-binary"):
                    body = Path(self.dir / value[1:]).read_bytes() if value.startswith("@") else value.encode()
            sent.append(httpx.post(server.url + url.split("localhost:3000", 1)[1], content=body, headers=headers))
        assert sent, f"no curl request to {path} in the README"
        return sent


@pytest.fixture
def example(tmp_path: Path, home: Path, cli):  # noqa: ANN001, ANN201
    return lambda name: Example(name, tmp_path, home, cli)


def _bundle_tag(res) -> str:  # noqa: ANN001
    return res.stdout.strip().splitlines()[-1]


def test_iris(example) -> None:  # noqa: ANN001
    from sklearn.datasets import load_iris

    ex = example("iris")
    ex.python("train.py")
    listed = json.loads(ex._cli("models", "list", "-o", "json").stdout)
    assert [m["tag"].split(":")[0] for m in listed] == ["iris_clf"]
    assert "iris_clf" in ex.mlpack("models", "list").stdout
    assert "signatures" in ex.mlpack("models", "get", "iris_clf:latest").stdout
    tag = _bundle_tag(ex.mlpack("build"))
    assert tag.startswith("iris_classifier:")
    assert tag in ex.mlpack("bundles", "list").stdout
    with ThreadPoolExecutor() as pool:  # offline runs and the server at once: independent processes
        runs = [
            pool.submit(ex.mlpack, "run", "iris_classifier:latest", "predict", "--input-file", "iris.csv"),
            pool.submit(ex.mlpack, "run", "predict", "--input-file", "iris.csv", "-o", "csv"),  # target: ./mlpackfile.yaml
            pool.submit(ex.mlpack, "containerize", "iris_classifier:latest", "-t", "iris:1", "--dry-run"),
        ]
        with ex.serve("iris_classifier:latest") as srv:
            # the README's requests: the 1.x one, and the 0.x one of the legacy section
            assert [(r.status_code, r.json()) for r in ex.curl(srv, "/predict")] == [(200, [0])] * 2
            assert [r.json() for r in ex.curl(srv, "/classify")] == [[0, 2]]
        from_bundle, from_source, image = (f.result() for f in runs)
    predicted = json.loads(from_bundle.stdout)
    truth = load_iris().target.tolist()
    assert len(predicted) == 150 and sum(p == t for p, t in zip(predicted, truth)) >= 145
    assert from_source.stdout.split() == ["result", *map(str, predicted)]
    assert "-t iris:1" in image.stdout and "env/docker/Dockerfile" in image.stdout


def _concurrent_posts(url: str, bodies: list) -> list:
    import asyncio

    async def post_all() -> list:
        async with httpx.AsyncClient(timeout=30) as client:
            responses = await asyncio.gather(*(client.post(url, json=b) for b in bodies))
        return [r.json() for r in responses]

    return asyncio.run(post_all())


def test_iris_legacy(example) -> None:  # noqa: ANN001
    ex = example("iris")
    legacy = ex.dir / "legacy"
    saved_path = Path(ex.python("main.py", cwd=legacy).strip().splitlines()[-1])
    assert saved_path.parent.parent == ex.home / "bundles" and (saved_path / "bundle.yaml").is_file()
    assert sorted(p.name for p in (saved_path / "src").iterdir()) == ["iris_classifier.py", "main.py"]
    with ThreadPoolExecutor() as pool:
        runs = [
            pool.submit(ex.mlpack, "run", "IrisClassifier:latest", "predict", "--input", "[[5.1, 3.5, 1.4, 0.2]]", cwd=legacy),
            pool.submit(ex.mlpack, "run", "IrisClassifier:latest", "predict", "--input-file", "./iris_data.csv", cwd=legacy),
            pool.submit(ex.mlpack, "containerize", "IrisClassifier:latest", "-t", "iris-classifier", "--dry-run", cwd=legacy),
        ]
        with ex.serve("IrisClassifier:latest", cwd=legacy) as srv:
            assert [(r.status_code, r.json()) for r in ex.curl(srv, "/predict")] == [(200, [0])] * 2
            csv = (legacy / "iris_data.csv").read_bytes()
            assert httpx.post(srv.url + "/predict", content=csv, headers={"content-type": "text/csv"}).json() == [0, 0, 0, 1, 2]
            # concurrent requests of many sizes: the runner's batcher merges and splits them back
            sizes = list(range(1, 41))
            assert _concurrent_posts(srv.url + "/predict", [[[6.7, 3.0, 5.2, 2.3]] * n for n in sizes]) == [
                [2] * n for n in sizes
            ]
            assert "irisclassifier" in srv.output() and "Traceback" not in srv.output()
        one, from_file, image = (f.result() for f in runs)
    assert json.loads(one.stdout) == [0] and "upper-case" in one.stderr
    assert json.loads(from_file.stdout) == [0, 0, 0, 1, 2]
    assert "-t iris-classifier" in image.stdout


def test_credit_risk(example) -> None:  # noqa: ANN001
    ex = example("credit_risk")
    assert "Model saved" in ex.python("train.py")
    assert "credit_risk_model" in ex.mlpack("models", "list").stdout
    info = ex.mlpack("models", "get", "credit_risk_model:latest").stdout
    assert "batchable: true" in info and "custom_objects.pkl" in info
    tag = _bundle_tag(ex.mlpack("build"))
    assert tag.startswith("credit_risk_classifier:")
    with ThreadPoolExecutor() as pool:
        runs = [
            pool.submit(ex.mlpack, "run", "credit_risk_classifier:latest", "classify", "--input-file", "applications.csv",
                        "-o", "csv", "--output-file", "decisions.csv"),
            pool.submit(ex.mlpack, "containerize", "credit_risk_classifier:latest", "-t", "credit-risk:1", "--dry-run"),
        ]  # fmt: skip
        with ex.serve("credit_risk_classifier:latest", "--config", "configuration.yaml") as srv:
            (res,) = ex.curl(srv, "/classify")
            assert res.status_code == 200 and res.json() == {"Status": "APPROVED"}
            with srv.client() as c:
                for _ in range(20):
                    assert c.post("/classify", json=SAMPLE).json() == {"Status": "APPROVED"}
                risky = {
                    **SAMPLE,
                    "records": "yes",
                    "job": "partime",
                    "seniority": 0,
                    "assets": 0.0,
                    "amount": 1400,
                    "price": 1400,
                }
                assert c.post("/classify", json=risky).json()["Status"] in ("MAYBE", "DECLINED")
                bad = c.post("/classify", json={**SAMPLE, "age": "old"})
                assert bad.status_code == 422 and "age" in bad.json()["error"]
            # .dict() is deprecated in pydantic 2: no warning per request in the log
            assert "deprecat" not in srv.output().lower() and "Traceback" not in srv.output()
        _, image = (f.result() for f in runs)
    decisions = (ex.dir / "decisions.csv").read_text().split()
    assert decisions[0] == "Status" and decisions[1] == "APPROVED" and len(decisions) == 6
    assert set(decisions[1:]) <= {"APPROVED", "MAYBE", "DECLINED"}
    assert "-t credit-risk:1" in image.stdout


def _credit_scoring_csv(path: Path) -> int:
    """A tiny CreditScoring.csv: numeric codes, 99999999 for missing, two rows of unknown status."""
    import numpy as np

    rng = np.random.default_rng(7)
    header = "Status,Seniority,Home,Time,Age,Marital,Records,Job,Expenses,Income,Assets,Debt,Amount,Price"
    lines = [header]
    for i in range(60):
        status = 0 if i in (5, 17) else 1 + (i % 3 == 0)
        income = 99999999 if i == 9 else int(rng.integers(50, 300))
        assets = 99999999 if i == 11 else int(rng.integers(0, 20)) * 1000
        row = [status, rng.integers(0, 20), rng.integers(0, 7), 36, rng.integers(18, 70), rng.integers(0, 6),
               1 + (status == 2), rng.integers(0, 5), 60, income, assets, 0, 800 + 10 * i, 1000 + 15 * i]  # fmt: skip
        lines.append(",".join(str(int(v)) for v in row))
    path.write_text("\n".join(lines) + "\n")
    return 58


def test_credit_risk_train_with_data(example) -> None:  # noqa: ANN001
    import mlpack

    ex = example("credit_risk")
    rows = _credit_scoring_csv(ex.dir / "CreditScoring.csv")
    out = ex.python("train.py", "--data", "CreditScoring.csv")
    assert f"{rows} applications" in out and "Model saved" in out
    model = mlpack.xgboost.get("credit_risk_model:latest")
    assert model.info.metadata["rows"] == rows
    names = set(model.custom_objects["DictVectorizer"].get_feature_names_out())
    assert {"home=owner", "marital=single", "records=yes", "job=freelance", "income", "price"} <= names
    assert not any(n.startswith("status") for n in names)


def test_credit_risk_prepare_maps_codes(tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("credit_train", EXAMPLES / "credit_risk" / "train.py")
    train = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train)
    _credit_scoring_csv(tmp_path / "c.csv")
    import pandas as pd

    df = train.prepare(pd.read_csv(tmp_path / "c.csv"))
    assert list(df.columns) == ["status", *train.FEATURES] and len(df) == 58
    assert set(df.status) == {"ok", "default"} and df.home.isin(list(train.CODES["home"].values())).all()
    assert df.income.isna().sum() == 1 and df.assets.isna().sum() == 1  # 99999999 -> missing
    synthetic = train.prepare(train.synthetic_raw(500, seed=3))
    assert 0.1 < (synthetic.status == "default").mean() < 0.5 and synthetic.income.isna().any()


def _locust_summary(output: str) -> tuple[int, int]:
    match = re.search(r"Aggregated\s+(\d+)\s+(\d+)\(", output)
    assert match, output[-2000:]
    return int(match.group(1)), int(match.group(2))


@pytest.mark.slow
def test_credit_risk_under_locust(example) -> None:  # noqa: ANN001
    ex = example("credit_risk")
    ex.python("train.py")
    ex.mlpack("build")
    with ex.serve("credit_risk_classifier:latest", "--config", "configuration.yaml") as srv:
        res = subprocess.run(
            [sys.executable, "-m", "locust", "-f", "locustfile.py", "--headless", "-u", "10", "-r", "5", "-t", "15s",
             "--host", srv.url, "--only-summary", "--exit-code-on-error", "1"],
            cwd=ex.dir, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        output = res.stdout + res.stderr
        requests, failures = _locust_summary(output)
        assert res.returncode == 0, output[-3000:]
        assert requests > 50 and failures == 0, output[-3000:]
        assert "Traceback" not in srv.output()
