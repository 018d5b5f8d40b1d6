"""Train an SVC on the iris data set and save it into the mlpack model store."""

from __future__ import annotations

from sklearn import datasets, svm

import mlpack


def main() -> None:
    iris = datasets.load_iris()
    X, y = iris.data, iris.target
    clf = svm.SVC(gamma="scale")
    clf.fit(X, y)
    model = mlpack.sklearn.save_model(
        "iris_clf",
        clf,
        signatures={"predict": {"batchable": True, "batch_dim": 0}},
        metadata={"accuracy": float(clf.score(X, y)), "classes": list(iris.target_names)},
    )
    print(f"Model saved: {model}")


if __name__ == "__main__":
    main()
