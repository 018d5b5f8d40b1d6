"""The iris classifier as an mlpack Service (the BentoML 1.0 API, ``bentoml`` -> ``mlpack``).

``POST /predict`` (and ``/classify``, the BentoML 1.0 quickstart's name) take rows of four
measurements and return one class index per row. The model runs through a batchable runner:
concurrent requests are merged into one model call.
"""

import numpy as np

import mlpack
from mlpack.io import NumpyNdarray

iris_clf_runner = mlpack.sklearn.get("iris_clf:latest").to_runner()

svc = mlpack.Service("iris_classifier", runners=[iris_clf_runner])


@svc.api(input=NumpyNdarray(), output=NumpyNdarray(), route="predict")
async def predict(input_series: np.ndarray) -> np.ndarray:
    """Iris species index (0 setosa, 1 versicolor, 2 virginica) for each row of measurements."""
    return await iris_clf_runner.predict.async_run(input_series)


@svc.api(input=NumpyNdarray(), output=NumpyNdarray())
async def classify(input_series: np.ndarray) -> np.ndarray:
    """The same as /predict, under the name the BentoML 1.0 quickstart uses."""
    return await iris_clf_runner.predict.async_run(input_series)
