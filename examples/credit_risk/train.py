"""Train the credit-risk model of the BentoML 1.0 tutorial and save it into the mlpack store.

    python train.py                          # a synthetic data set (seeded, no download)
    python train.py --data CreditScoring.csv # the public credit-scoring data set

Both go through the same preparation: the numeric codes of CreditScoring.csv become labels,
``99999999`` in income/assets/debt means missing (-> 0), rows of unknown status are dropped,
and the target is ``status == "default"``. A ``DictVectorizer`` one-hot encodes the records
for an XGBoost booster (``binary:logistic``); the vectorizer is saved with the model as the
custom object ``DictVectorizer``.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.feature_extraction import DictVectorizer
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

import mlpack

FEATURES = ["seniority", "home", "time", "age", "marital", "records", "job",
            "expenses", "income", "assets", "debt", "amount", "price"]  # fmt: skip
CODES = {
    "status": {1: "ok", 2: "default", 0: "unk"},
    "home": {1: "rent", 2: "owner", 3: "private", 4: "ignore", 5: "parents", 6: "other", 0: "unk"},
    "marital": {1: "single", 2: "married", 3: "widow", 4: "separated", 5: "divorced", 0: "unk"},
    "records": {1: "no", 2: "yes", 0: "unk"},
    "job": {1: "fixed", 2: "partime", 3: "freelance", 4: "others", 0: "unk"},
}
MISSING = 99999999  # CreditScoring.csv's code for an unknown income, assets or debt
XGB_PARAMS = {
    "eta": 0.1,
    "max_depth": 3,
    "min_child_weight": 1,
    "objective": "binary:logistic",
    "eval_metric": "auc",
    "nthread": 8,
    "seed": 1,
    "verbosity": 1,
}


def synthetic_raw(n: int = 4000, seed: int = 1) -> pd.DataFrame:
    """Applications coded like CreditScoring.csv, the default risk depending on them plausibly."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 69, n)
    seniority = np.minimum(rng.exponential(7.0, n).astype(int), np.maximum(age - 16, 0))
    home = rng.choice([1, 2, 3, 4, 5, 6, 0], n, p=[0.22, 0.47, 0.05, 0.01, 0.18, 0.065, 0.005])
    marital = rng.choice([1, 2, 3, 4, 5, 0], n, p=[0.22, 0.725, 0.015, 0.03, 0.009, 0.001])
    records = rng.choice([1, 2], n, p=[0.83, 0.17])
    job = rng.choice([1, 2, 3, 4, 0], n, p=[0.63, 0.10, 0.23, 0.039, 0.001])
    time = rng.choice([12, 24, 36, 48, 60], n, p=[0.08, 0.12, 0.2, 0.2, 0.4])
    expenses = np.clip(rng.normal(50, 18, n) + 15 * (marital == 2), 35, 180).astype(int)
    income = np.clip(rng.lognormal(np.log(130), 0.45, n), 0, 959).astype(int)
    assets = np.where(rng.random(n) < 0.35, 0, np.round(rng.lognormal(np.log(5000), 1.0, n), -2)).astype(int)
    debt = np.where(rng.random(n) < 0.8, 0, np.round(rng.lognormal(np.log(2000), 0.8, n), -1)).astype(int)
    price = np.clip(rng.lognormal(np.log(1400), 0.5, n), 105, 11140).astype(int)
    amount = np.clip(price * rng.uniform(0.35, 1.0, n), 100, 5000).astype(int)
    logit = (
        -0.7
        + 1.6 * (records == 2)
        + 1.1 * (job == 2)
        + 0.5 * (job == 3)
        + 0.7 * (job == 4)
        - 0.06 * seniority
        - 0.5 * (home == 2)
        + 0.3 * (home == 1)
        + 0.2 * (home == 5)
        + 2.5 * (amount / price - 0.7)
        - 0.006 * (income - expenses)
        - 0.2 * np.log1p(assets / 1000)
        + 0.3 * np.log1p(debt / 1000)
        + 0.01 * (time - 36)
        - 0.01 * (age - 35)
    )
    status = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), 2, 1)
    status[rng.random(n) < 0.001] = 0
    raw = pd.DataFrame({
        "Status": status, "Seniority": seniority, "Home": home, "Time": time, "Age": age, "Marital": marital,
        "Records": records, "Job": job, "Expenses": expenses, "Income": income, "Assets": assets, "Debt": debt,
        "Amount": amount, "Price": price,
    })  # fmt: skip
    for col, share in (("Income", 0.01), ("Assets", 0.01), ("Debt", 0.004)):
        raw.loc[rng.random(n) < share, col] = MISSING
    return raw


def prepare(raw: pd.DataFrame) -> pd.DataFrame:
    """CreditScoring.csv columns -> lower-case names, labels instead of codes, no unknown status."""
    df = raw.copy()
    df.columns = df.columns.str.lower()
    missing = [c for c in ["status", *FEATURES] if c not in df.columns]
    if missing:
        raise SystemExit(f"the data has no column(s) {', '.join(missing)}")
    for col, codes in CODES.items():
        df[col] = df[col].map(codes)
    for col in ("income", "assets", "debt"):
        df[col] = df[col].replace(to_replace=MISSING, value=np.nan)
    df = df[df.status != "unk"].reset_index(drop=True)
    return df[["status", *FEATURES]]


def train(df: pd.DataFrame, rounds: int = 175) -> tuple[xgb.Booster, DictVectorizer, float]:
    """Fit the vectorizer and the booster on 80% of ``df``; the AUC is on the other 20%."""
    df_train, df_val = train_test_split(df, test_size=0.2, random_state=11)
    y_train = (df_train.status == "default").astype(int).to_numpy()
    y_val = (df_val.status == "default").astype(int).to_numpy()
    dv = DictVectorizer(sparse=False)
    X_train = dv.fit_transform(df_train[FEATURES].fillna(0).to_dict(orient="records"))
    X_val = dv.transform(df_val[FEATURES].fillna(0).to_dict(orient="records"))
    names = list(dv.get_feature_names_out())
    dtrain = xgb.DMatrix(X_train, label=y_train, feature_names=names)
    model = xgb.train(XGB_PARAMS, dtrain, num_boost_round=rounds)
    pred = model.predict(xgb.DMatrix(X_val, feature_names=names))
    auc = roc_auc_score(y_val, pred) if len(set(y_val)) == 2 else float("nan")
    return model, dv, float(auc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="CreditScoring.csv (default: a synthetic data set with the same columns)")
    parser.add_argument("--rows", type=int, default=4000, help="rows of synthetic data (default: 4000)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the synthetic data (default: 1)")
    args = parser.parse_args()
    raw = pd.read_csv(args.data) if args.data else synthetic_raw(args.rows, args.seed)
    df = prepare(raw)
    model, dv, auc = train(df)
    print(f"{len(df)} applications, {(df.status == 'default').mean():.1%} defaults; validation AUC {auc:.3f}")
    saved = mlpack.xgboost.save_model(
        "credit_risk_model",
        model,
        custom_objects={"DictVectorizer": dv},
        signatures={"predict": {"batchable": True, "batch_dim": 0}},
        metadata={"validation_auc": auc, "rows": len(df)},
    )
    print(f"Model saved: {saved}")


if __name__ == "__main__":
    main()
