"""Fit scikit-learn's ``LinearRegression`` safely and publish the training artifacts.

scikit-learn passes ``LinearRegression(tol=1e-6)`` to ``lstsq`` as the relative rank cutoff,
so when feature scales differ by ~1e6 the small-scale column is treated as rank-deficient
and its coefficient silently zeroed. Fitting on standardized features (every column at unit
scale) and mapping the coefficients back avoids that, and on well-scaled data gives the
same coefficients as a direct fit to ~1e-15.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from linreg_ops import artifacts
from linreg_ops.data import Dataset, Split, split
from linreg_ops.errors import InputError
from linreg_ops.metrics import regression_metrics
from linreg_ops.model import FeatureStats, LinearModel

if TYPE_CHECKING:
    from sklearn.linear_model import LinearRegression


@dataclass(frozen=True)
class TrainResult:
    model: LinearModel
    split: Split
    metrics: dict[str, float]
    paths: list[Path]


CALIBRATION_QUANTILE = 0.001


def standardization(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column means and standard deviations; a constant column gets σ = 1 so it stays finite."""
    mean = X.mean(axis=0)
    std = X.std(axis=0)
    return mean, np.where(std > 0.0, std, 1.0)


def feature_statistics(X: np.ndarray) -> FeatureStats:
    """The per-feature summary that quantization and calibration use later."""
    mean, std = standardization(X)
    z = (X - mean) / std
    low, high = np.quantile(X, [CALIBRATION_QUANTILE, 1.0 - CALIBRATION_QUANTILE], axis=0)
    return FeatureStats(
        n=X.shape[0],
        mean=mean,
        std=std,
        minimum=X.min(axis=0),
        maximum=X.max(axis=0),
        quantile_level=CALIBRATION_QUANTILE,
        low=low,
        high=high,
        correlation=(z.T @ z) / X.shape[0],
    )


def fit_linear_regression(X: np.ndarray, y: np.ndarray) -> "LinearRegression":
    """A fitted ``LinearRegression`` whose ``coef_``/``intercept_`` are in raw feature units.

    The fit runs on standardized features so no column falls under ``lstsq``'s rank cutoff;
    the estimator is then the ordinary one the seed saved (``predict`` works on raw X).
    """
    from sklearn.linear_model import LinearRegression

    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if X.ndim != 2 or y.ndim != 1 or X.shape[0] != y.shape[0]:
        raise InputError(
            f"expected X of shape (n, d) and y of shape (n,), got {X.shape} and {y.shape}"
        )
    if not (np.isfinite(X).all() and np.isfinite(y).all()):
        raise InputError("X and y must be finite (no NaN or infinity)")
    mean, std = standardization(X)
    estimator = LinearRegression().fit((X - mean) / std, y)
    coef = estimator.coef_ / std
    estimator.coef_ = coef
    estimator.intercept_ = float(estimator.intercept_ - coef @ mean)
    return estimator


def to_linear_model(estimator: Any, dataset: Dataset, X_train: np.ndarray) -> LinearModel:
    """The numpy-only view of a fitted estimator, with the statistics quantization needs."""
    return LinearModel(
        feature_names=dataset.feature_names,
        target_name=dataset.target_name,
        coef=np.asarray(estimator.coef_, dtype=np.float64),
        intercept=float(estimator.intercept_),
        stats=feature_statistics(X_train),
    )


def train(
    dataset: Dataset, models_dir: Path, test_size: float = 0.2, random_state: int = 42
) -> TrainResult:
    """Split, fit, score on the held-out rows, and publish the training artifacts atomically."""
    data_split = split(dataset, test_size=test_size, random_state=random_state)
    estimator = fit_linear_regression(data_split.X_train, data_split.y_train)
    model = to_linear_model(estimator, dataset, data_split.X_train)
    metrics = regression_metrics(data_split.y_test, model.predict(data_split.X_test))
    summary = {
        "float": metrics,
        "quantized": None,
        "n_train": int(data_split.y_train.size),
        "n_test": int(data_split.y_test.size),
        "features": list(dataset.feature_names),
    }
    manifest = artifacts.start_manifest(
        training_data={"source": dataset.source, "sha256": dataset.sha256},
        split={
            "test_size": test_size,
            "random_state": random_state,
            "method": "sklearn.model_selection.train_test_split",
            "n_train": summary["n_train"],
            "n_test": summary["n_test"],
        },
    )
    paths = artifacts.write_artifacts(
        models_dir,
        {
            artifacts.ESTIMATOR_JOBLIB: artifacts.joblib_bytes(estimator),
            artifacts.MODEL_JSON: artifacts.model_bytes(model),
            artifacts.TEST_SPLIT_CSV: artifacts.split_csv_bytes(
                dataset.feature_names, dataset.target_name, data_split.X_test, data_split.y_test
            ),
            artifacts.METRICS_JSON: artifacts.json_bytes(summary),
        },
        fresh_manifest=manifest,
    )
    return TrainResult(model=model, split=data_split, metrics=metrics, paths=paths)
