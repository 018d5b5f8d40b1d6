"""`mlpack run`: a service's API over --input text or an --input-file, in a real CLI subprocess."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mlpack
from mlpack.exceptions import BadInput, MlpackError

COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]

SERVICE = """
import numpy as np
from pydantic import BaseModel

import mlpack
from mlpack.io import JSON, NumpyNdarray, PandasDataFrame

runner = mlpack.sklearn.get("iris_clf:latest").to_runner()
svc = mlpack.Service("iris_classifier", runners=[runner])
COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


class Flower(BaseModel):
    sepal_length: float
    sepal_width: float
    petal_length: float
    petal_width: float


@svc.api(input=NumpyNdarray(), output=NumpyNdarray())
def predict(arr):
    return runner.predict.run(arr)


@svc.api(input=PandasDataFrame(columns=COLUMNS), output=PandasDataFrame())
def predict_df(df):
    return df.assign(species=runner.predict.run(df.to_numpy()))[["species"]]


@svc.api(input=JSON(pydantic_model=Flower), output=JSON())
async def classify(flower: Flower) -> dict:
    x = np.array([[flower.sepal_length, flower.sepal_width, flower.petal_length, flower.petal_width]])
    species = await runner.predict.async_run(x)
    return {"species": int(species[0]), "petal_length": flower.petal_length}
"""


@pytest.fixture
def project(tmp_path: Path, home: Path, iris, iris_svc) -> Path:
    """A project with the iris model in the store, a service.py, an mlpackfile and the iris data."""
    mlpack.sklearn.save_model("iris_clf", iris_svc, signatures={"predict": {"batchable": True, "batch_dim": 0}})
    path = tmp_path / "project"
    path.mkdir()
    (path / "service.py").write_text(SERVICE)
    (path / "mlpackfile.yaml").write_text('service: "service.py:svc"\n')
    X, _ = iris
    df = pd.DataFrame(X, columns=COLUMNS)
    df.to_csv(path / "iris.csv", index=False)
    df.to_json(path / "iris.json", orient="records")
    df.to_json(path / "iris.jsonl", orient="records", lines=True)
    df.to_parquet(path / "iris.parquet", index=False)
    return path


@pytest.fixture
def expected(iris, iris_svc) -> list[int]:
    return iris_svc.predict(iris[0]).tolist()


def one_error_line(res) -> str:
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    return lines[0]


def leftovers(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if p.name.startswith(".") or p.suffix == ".part")


# ---------------------------------------------------------------- the CLI


def test_input_text_with_an_explicit_target(cli, project) -> None:
    res = cli("run", "service.py:svc", "predict", "--input", "[[5.1,3.5,1.4,0.2]]", cwd=project)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == [0]
    assert res.stderr == ""
    res = cli("run", "classify", "--input", json.dumps(dict(zip(COLUMNS, [6.3, 3.3, 6.0, 2.5]))), cwd=project)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"species": 2, "petal_length": 6.0}  # one document, as over HTTP


@pytest.mark.parametrize("suffix", [".csv", ".json", ".jsonl", ".parquet"])
def test_every_input_format_in_many_chunks_keeps_the_order(cli, project, expected, suffix) -> None:
    res = cli("run", "predict", "--input-file", f"iris{suffix}", "--batch-size", "7", cwd=project)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == expected


@pytest.mark.parametrize("suffix", [".json", ".csv", ".jsonl"])
def test_output_file_format_follows_its_extension(cli, project, expected, suffix) -> None:
    res = cli("run", "predict_df", "--input-file", "iris.csv", "--output-file", f"out{suffix}", "--batch-size", "7", cwd=project)
    assert res.returncode == 0, res.stderr
    assert res.stdout == ""
    out = project / f"out{suffix}"
    if suffix == ".csv":
        got = pd.read_csv(out)["species"].tolist()
    elif suffix == ".json":
        got = [r["species"] for r in json.loads(out.read_text())]
    else:
        got = [json.loads(line)["species"] for line in out.read_text().splitlines()]
    assert got == expected
    assert leftovers(project) == []


def test_csv_to_stdout_and_parquet_output(cli, project, expected) -> None:
    res = cli("run", "predict", "--input-file", "iris.parquet", "-o", "csv", cwd=project)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "result\n" + "".join(f"{p}\n" for p in expected)
    res = cli("run", "predict", "--input-file", "iris.csv", "--output-file", "out.parquet", cwd=project)
    assert res.returncode == 0, res.stderr
    assert pd.read_parquet(project / "out.parquet")["result"].tolist() == expected


def test_async_pydantic_api_is_called_once_per_record(cli, project, expected, iris) -> None:
    res = cli("run", "classify", "--input-file", "iris.jsonl", "--output-file", "out.jsonl", "--batch-size", "40", cwd=project)
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in (project / "out.jsonl").read_text().splitlines()]
    assert [r["species"] for r in rows] == expected
    assert [r["petal_length"] for r in rows] == iris[0][:, 2].tolist()  # each result belongs to its record


def test_bad_value_stops_naming_row_and_column_and_leaves_no_file(cli, project) -> None:
    lines = (project / "iris.csv").read_text().splitlines(keepends=True)
    lines[123] = "5.0,abc,1.4,0.2\n"  # row 123: the header is line 1
    (project / "bad.csv").write_text("".join(lines))
    res = cli("run", "predict", "--input-file", "bad.csv", "--output-file", "out.json", "--batch-size", "50", cwd=project)
    line = one_error_line(res)
    assert "row 123 (line 124 of bad.csv)" in line and "'sepal_width'" in line and "'abc' is not a number" in line
    assert not (project / "out.json").exists()
    assert leftovers(project) == []


def test_missing_column_stops_and_keeps_an_earlier_output(cli, project) -> None:
    pd.read_csv(project / "iris.csv").drop(columns=["petal_width"]).to_csv(project / "three.csv", index=False)
    (project / "out.csv").write_text("old\n")
    res = cli("run", "predict_df", "--input-file", "three.csv", "--output-file", "out.csv", cwd=project)
    assert "missing column(s) 'petal_width'" in one_error_line(res)
    assert (project / "out.csv").read_text() == "old\n"  # only a finished run replaces it
    assert leftovers(project) == []


def test_unknown_api_lists_the_apis(cli, project) -> None:
    line = one_error_line(cli("run", "predikt", "--input", "[[1,2,3,4]]", cwd=project))
    assert "no API 'predikt'" in line and "predict, predict_df, classify" in line


def test_usage_errors(cli, project, tmp_path) -> None:
    assert "either --input" in one_error_line(cli("run", "predict", cwd=project))
    assert "no such file" in one_error_line(cli("run", "predict", "--input-file", "nope.csv", cwd=project))
    assert "mlpackfile.yaml" in one_error_line(cli("run", "predict", "--input", "[]", cwd=tmp_path))


# ---------------------------------------------------------------- the library


@pytest.fixture
def service(project, monkeypatch):
    """The project's service imported in this process (a fresh ``service`` module)."""
    from mlpack.target import load_service

    monkeypatch.syspath_prepend(str(project))
    sys.modules.pop("service", None)
    yield load_service("service.py:svc", project).service
    sys.modules.pop("service", None)


def test_run_file_streams_chunks_and_counts(service, project, expected) -> None:
    from mlpack.offline import run_file

    seen: list[int] = []
    buf = io.StringIO()
    stats = run_file(service, "predict", project / "iris.csv", buf, batch_size=40, progress=seen.append)
    assert (stats.rows, stats.chunks) == (150, 4) and seen == [40, 40, 40, 30] and stats.seconds > 0
    assert json.loads(buf.getvalue()) == expected


def test_run_file_errors(service, project) -> None:
    from mlpack.offline import run_file, run_text

    with pytest.raises(BadInput, match="its APIs: predict, predict_df, classify"):
        run_file(service, "nope", project / "iris.csv", io.StringIO())
    with pytest.raises(BadInput, match="parquet output needs an output file"):
        run_file(service, "predict", project / "iris.csv", io.StringIO(), out_fmt="parquet")
    with pytest.raises(BadInput, match="unknown output format"):
        run_text(service, "predict", "[[1,2,3,4]]", io.StringIO(), out_fmt="xml")


def test_a_failing_api_names_the_rows(service, project) -> None:
    from mlpack.offline import run_file

    def broken(arr: np.ndarray) -> np.ndarray:
        raise RuntimeError("model exploded")

    service.apis["predict"].func = broken
    with pytest.raises(MlpackError, match=r"API 'predict' failed on rows 1-100: RuntimeError: model exploded"):
        run_file(service, "predict", project / "iris.csv", project / "out.json", batch_size=100)
    assert not (project / "out.json").exists() and leftovers(project) == []


# ---------------------------------------------------------------- the numeric CSV reader's fast path


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_numeric_csv_blocks_with_blank_lines_bom_and_no_final_newline(tmp_path, newline) -> None:
    from mlpack.io import NumpyNdarray

    lines = ["a,b", "1,2", "", "3,4", "5,6", "  ", "7,8", "9,10"]
    path = tmp_path / "x.csv"
    path.write_bytes(b"\xef\xbb\xbf" + newline.join(lines).encode())
    for size in (1, 2, 3, 100):
        chunks = list(NumpyNdarray().iter_file(path, chunk_size=size))
        assert np.concatenate(chunks).tolist() == [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10]]
    lines[6] = "7,8,0"
    path.write_text(newline.join(lines), newline="")
    with pytest.raises(BadInput, match=r"row 4 \(line 7 of .*x.csv\): expected 2 fields \(as in the header\), found 3"):
        list(NumpyNdarray().iter_file(path, chunk_size=2))
    path.write_text("a,b,a\n1,2,3\n")
    with pytest.raises(BadInput, match="line 1 of .*the header repeats column.*'a'"):
        list(NumpyNdarray().iter_file(path))
