"""The BentoML 0.x class style: decorators, pack/save, artifact binding, adapters, mlpack.load."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import mlpack
from mlpack.exceptions import BuildError, ConfigError, NotFound
from mlpack.tag import UppercaseTagWarning

SERVICE = textwrap.dedent(
    """
    import pandas as pd
    from mlpack import env, artifacts, api, BentoService
    from mlpack.adapters import DataframeInput, JsonInput
    from mlpack.frameworks.sklearn import SklearnModelArtifact

    @env(infer_pip_packages=True)
    @artifacts([SklearnModelArtifact('model')])
    class IrisClassifier(BentoService):
        @api(input=DataframeInput(), batch=True)
        def predict(self, df: pd.DataFrame):
            return self.artifacts.model.predict(df)

        @api(input=JsonInput(), batch=True)
        def species(self, items):
            return [["setosa", "versicolor", "virginica"][int(c)] for c in self.artifacts.model.predict(items)]

        @api(input=JsonInput(), batch=False, route="v1/size")
        async def size(self, item):
            return {"rows": len(item)}
    """
)


@pytest.fixture
def project(tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch):
    """A project directory holding ``legacy_iris.py``, importable; forgotten after the test."""
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "legacy_iris.py").write_text(SERVICE)
    (proj / "helpers.py").write_text("X = 1\n")
    (proj / "data.csv").write_text("a,b\n1,2\n")
    (proj / "tools").mkdir()
    (proj / "tools" / "__init__.py").write_text("")
    (proj / "tools" / "prep.py").write_text("Y = 2\n")
    (proj / "tools" / "table.csv").write_text("a\n1\n")
    (proj / "notebooks").mkdir()
    (proj / "notebooks" / "scratch.py").write_text("")  # not a package: not bundled
    monkeypatch.syspath_prepend(str(proj))
    monkeypatch.setenv("MLPACK_MODELS_DIR", "")  # restored (unset) after the test
    monkeypatch.delenv("MLPACK_MODELS_DIR")
    yield proj
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", "") or "").startswith(str(tmp_path)):
            del sys.modules[name]


@pytest.fixture
def packed(project: Path, iris_svc):
    from legacy_iris import IrisClassifier

    return IrisClassifier().pack("model", iris_svc)


X = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]


def test_packed_service_calls_the_object_itself(packed, iris_svc) -> None:
    assert packed.artifacts.model is iris_svc and packed.artifacts["model"] is iris_svc
    assert list(packed.artifacts) == ["model"] and packed.name == "irisclassifier"
    assert packed.predict(pd.DataFrame(X)).tolist() == [0, 2]
    svc = packed.to_service()
    assert svc.name == "irisclassifier" and svc.runners == []  # nothing stored yet: the object is used as is
    assert {a.name: a.route for a in svc.apis.values()} == {"predict": "/predict", "species": "/species", "size": "/v1/size"}
    assert svc.apis["predict"].batch and not svc.apis["species"].batch


def test_save_stores_models_and_builds_the_bundle(packed, project: Path, home: Path) -> None:
    from importlib.metadata import version

    path = Path(packed.save(labels={"stage": "dev"}))
    assert path.parent == home / "bundles" / "irisclassifier"
    info = yaml.safe_load((path / "bundle.yaml").read_text())
    assert info["service"] == "legacy_iris.py:IrisClassifier" and info["name"] == "irisclassifier"
    assert info["labels"] == {"stage": "dev"}
    model = mlpack.models.get("irisclassifier_model:latest")
    assert info["models"][0]["tag"] == str(model.tag)
    assert model.info.signatures["predict"] == {"batchable": True, "batch_dim": 0}
    files = sorted(p.relative_to(path / "src").as_posix() for p in (path / "src").rglob("*") if p.is_file())
    assert files == ["helpers.py", "legacy_iris.py", "tools/__init__.py", "tools/prep.py"]  # code only, no data
    reqs = (path / "env" / "python" / "requirements.txt").read_text().split()
    assert f"pandas=={version('pandas')}" in reqs and f"scikit-learn=={version('scikit-learn')}" in reqs


def test_unpacked_instance_binds_to_the_stored_model_through_a_runner(packed, project: Path) -> None:
    from legacy_iris import IrisClassifier

    fresh = IrisClassifier()
    with pytest.raises(NotFound, match=r"pack\('model', model\) and .save\(\)"):
        fresh.to_service()
    packed.save()
    svc = IrisClassifier().to_service()
    (runner,) = svc.runners
    assert runner.name == "irisclassifier_model" and runner.predict.batchable
    bound = IrisClassifier()
    model = bound.artifacts.model
    assert "via runner irisclassifier_model" in repr(model)
    assert model.predict(np.array(X)).tolist() == [0, 2]
    assert model.support_vectors_.shape[1] == 4  # not a signature: read from the loaded model
    assert bound.species(X) == ["setosa", "virginica"]


def test_served_class_target_uses_the_bundle_models(packed, project: Path, home: Path, monkeypatch) -> None:
    from mlpack.target import import_service

    bundle = Path(packed.save())
    mlpack.models.delete("irisclassifier_model", force=True)  # only the bundle's copy is left
    for name in [n for n in sys.modules if n == "legacy_iris"]:
        del sys.modules[name]
    monkeypatch.setenv("MLPACK_MODELS_DIR", str(bundle / "models"))
    svc = import_service("legacy_iris.py:IrisClassifier", bundle / "src")
    assert svc.runners[0].model.path.is_relative_to(bundle)
    assert asyncio.run(svc.apis["predict"].call(pd.DataFrame(X))).tolist() == [0, 2]
    assert asyncio.run(svc.apis["species"].call([6.7, 3.0, 5.2, 2.3])) == "virginica"  # one item, batch of one
    assert asyncio.run(svc.apis["size"].call([1, 2, 3])) == {"rows": 3}
    assert import_service("legacy_iris.py", bundle / "src").name == "irisclassifier"  # the one class, found


@pytest.mark.filterwarnings("ignore:X has feature names")
def test_offline_run_of_a_class_service(packed, project: Path) -> None:
    import io

    from mlpack.offline import run_file, run_text

    packed.save()
    from legacy_iris import IrisClassifier

    svc = IrisClassifier().to_service()
    out = io.StringIO()
    run_text(svc, "predict", "[[5.1, 3.5, 1.4, 0.2]]", out)
    assert out.getvalue().strip() == "[0]"
    (project / "rows.csv").write_text("a,b,c,d\n5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n")
    out = io.StringIO()
    stats = run_file(svc, "predict", project / "rows.csv", out, out_fmt="jsonl")
    assert stats.rows == 2 and out.getvalue().split() == ["0", "2"]
    out = io.StringIO()
    (project / "rows.jsonl").write_text("[5.1, 3.5, 1.4, 0.2]\n[6.7, 3.0, 5.2, 2.3]\n")
    run_file(svc, "species", project / "rows.jsonl", out, out_fmt="jsonl")  # JSON items, one call each
    assert out.getvalue().split() == ['"setosa"', '"virginica"']


def test_load_gives_the_service_with_bundle_artifacts(packed, project: Path) -> None:
    path = packed.save()
    mlpack.models.delete("irisclassifier_model", force=True)
    with pytest.warns(UppercaseTagWarning):
        by_tag = mlpack.load("IrisClassifier:latest")
    for loaded in (mlpack.load(path), by_tag):
        assert loaded.predict(pd.DataFrame(X)).tolist() == [0, 2]
        assert loaded.artifacts.model.predict(np.array(X[:1])).tolist() == [0]


def test_save_errors(project: Path, iris_svc) -> None:
    from legacy_iris import IrisClassifier

    with pytest.raises(BuildError, match="pack artifact"):
        IrisClassifier().save()
    with pytest.raises(NotFound, match="no artifact 'clf'"):
        IrisClassifier().pack("clf", iris_svc)
    with pytest.raises(AttributeError, match="no artifact 'other'"):
        IrisClassifier().artifacts.other  # noqa: B018

    @mlpack.artifacts([mlpack.frameworks.sklearn.SklearnModelArtifact("model")])
    class Local(mlpack.BentoService):  # defined in a test function: a server could not import it
        pass

    with pytest.raises(BuildError, match="top level of its own module"):
        Local().pack("model", iris_svc).save()


def test_decorator_errors() -> None:
    from mlpack.adapters import DataframeInput
    from mlpack.frameworks.sklearn import SklearnModelArtifact

    with pytest.raises(ConfigError, match="needs input"):
        mlpack.api(batch=True)
    with pytest.raises(ConfigError, match="unique"):
        mlpack.artifacts([SklearnModelArtifact("m"), SklearnModelArtifact("m")])
    with pytest.raises(ConfigError, match="identifier"):
        SklearnModelArtifact("my model")
    with pytest.raises(ConfigError, match="typ"):
        DataframeInput(typ="series")
    with pytest.warns(UserWarning, match="conda_channels"):
        mlpack.env(conda_channels=["conda-forge"])

    def predict(self, df):  # noqa: ANN001, ANN202
        return df

    assert mlpack.api(DataframeInput())(predict) is predict  # positional input; the function is unchanged


def test_dataframe_input_takes_rows_records_and_csv() -> None:
    from mlpack.adapters import DataframeInput

    di = DataframeInput()
    assert di.from_cli(text="[[5.1, 3.5, 1.4, 0.2]]").shape == (1, 4)
    assert list(di.from_cli(text='[{"a": 1, "b": 2}, {"a": 3, "b": 4}]').columns) == ["a", "b"]
    assert di.from_cli(text='{"a": {"0": 1, "1": 3}}')["a"].tolist() == [1, 3]
    assert di._parse(b"a,b\n1,2\n", "text/csv", None, "body").to_dict("records") == [{"a": 1, "b": 2}]
    typed = DataframeInput(columns=["x", "y"], input_dtypes={"x": "float64", "y": "float64"})
    assert typed.from_cli(text="[[1, 2]]").dtypes.tolist() == [np.float64, np.float64]


def test_infer_requirements(tmp_path: Path) -> None:
    from importlib.metadata import version

    from mlpack.legacy import infer_requirements

    (tmp_path / "local_helpers.py").write_text("")
    (tmp_path / "pkg").mkdir()
    src = tmp_path / "svc.py"
    src.write_text(
        textwrap.dedent(
            """
            from __future__ import annotations
            import os, json
            import numpy as np
            from sklearn import svm
            from mlpack import BentoService
            import local_helpers
            from pkg import thing
            from . import sibling
            from typing import TYPE_CHECKING
            if TYPE_CHECKING:
                import pyarrow
            def f():
                import yaml
            """
        )
    )
    assert infer_requirements(src) == [f"numpy=={version('numpy')}", f"scikit-learn=={version('scikit-learn')}"]


def test_xgboost_artifact(tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    xgb = pytest.importorskip("xgboost")
    (tmp_path / "boost_svc.py").write_text(
        textwrap.dedent(
            """
            from mlpack import artifacts, api, env, BentoService
            from mlpack.adapters import DataframeInput
            from mlpack.frameworks.xgboost import XgboostModelArtifact

            @env(pip_packages=["xgboost"], docker_base_image="python:3.11-slim")
            @artifacts([XgboostModelArtifact("booster", model_extension=".json")])
            class Boost(BentoService):
                @api(input=DataframeInput(columns=["a", "b"]), batch=True)
                def score(self, df):
                    return self.artifacts.booster.predict(df)
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    rng = np.random.default_rng(0)
    X = rng.random((200, 2))
    booster = xgb.train({"objective": "binary:logistic"}, xgb.DMatrix(X, label=X[:, 0] > 0.5, feature_names=["a", "b"]), 5)
    from boost_svc import Boost

    try:
        path = Path(Boost().pack("booster", booster).save())
        info = yaml.safe_load((path / "bundle.yaml").read_text())
        assert info["docker"]["base_image"] == "python:3.11-slim" and info["models"][0]["module"] == "mlpack.xgboost"
        assert any(r.startswith("xgboost") for r in info["python"]["requirements"])
        scores = mlpack.load(path).score(pd.DataFrame(X[:3], columns=["a", "b"]))
        assert np.allclose(scores, booster.predict(xgb.DMatrix(X[:3], feature_names=["a", "b"])))
    finally:
        sys.modules.pop("boost_svc", None)


def test_source_layout_of_a_module_in_a_package(tmp_path: Path) -> None:
    from mlpack.legacy_build import source_layout

    (tmp_path / "app" / "services").mkdir(parents=True)
    file = tmp_path / "app" / "services" / "iris.py"
    file.write_text("")
    assert source_layout("app.services.iris", file) == (tmp_path.resolve(), "app.services.iris", ["/app/**/*.py"])
