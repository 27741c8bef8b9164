"""Fit scikit-learn's ``LinearRegression`` safely and publish the training artifacts.

scikit-learn passes ``LinearRegression(tol=1e-6)`` to ``lstsq`` as the relative rank cutoff,
so when feature scales differ by ~1e6 the small-scale column is treated as rank-deficient
and its coefficient silently zeroed. Fitting on standardized features (every column at unit
scale) and mapping the coefficients back avoids that, and on well-scaled data gives the
same coefficients as a direct fit to ~1e-15.
"""

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from linreg_ops import artifacts
from linreg_ops.data import Dataset, feature_columns, split, validate
from linreg_ops.errors import InputError
from linreg_ops.metrics import regression_metrics
from linreg_ops.model import FeatureStats, LinearModel
from linreg_ops.stats import held_out_rows

if TYPE_CHECKING:
    from sklearn.linear_model import LinearRegression

    from linreg_ops.stats import MomentStats


@dataclass(frozen=True)
class TrainResult:
    model: LinearModel
    n_train: int
    n_test: int
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


def estimator_from(coef: np.ndarray, intercept: float) -> "LinearRegression":
    """A ``LinearRegression`` carrying coefficients another engine solved (for the joblib file)."""
    from sklearn.linear_model import LinearRegression

    estimator = LinearRegression()
    estimator.coef_ = np.asarray(coef, dtype=np.float64)
    estimator.intercept_ = float(intercept)
    estimator.n_features_in_ = len(coef)
    estimator.rank_ = len(coef)
    return estimator


def check_engine(engine: str) -> None:
    from linreg_ops.engines import ENGINES

    if engine not in ENGINES:
        raise InputError(f"unknown engine {engine!r}: expected one of {', '.join(ENGINES)}")


def fit_in_memory(
    X: np.ndarray,
    y: np.ndarray,
    feature_names: Sequence[str],
    engine: str = "auto",
    chunk_rows: int = artifacts.DEFAULT_CHUNK_ROWS,
    scheduler: str | None = None,
) -> "LinearRegression":
    """Fit in-memory training rows with the chosen engine; every engine returns the same kind
    of estimator, so everything downstream is engine-agnostic."""
    from linreg_ops import engines
    from linreg_ops.stats import solve

    check_engine(engine)
    if engine == "auto":
        engine = "sklearn" if len(y) < engines.IN_MEMORY_ROWS else "streaming"
    if engine == "sklearn":
        return fit_linear_regression(X, y)
    if engine == "streaming":
        stats = engines.stream_arrays(X, y, chunk_rows)
    else:
        stats = engines.dask_arrays(X, y, chunk_rows, scheduler)
    return estimator_from(*solve(stats, feature_names))


def train(
    dataset: Dataset,
    models_dir: Path,
    test_size: float = 0.2,
    random_state: int = 42,
    engine: str = "auto",
    chunk_rows: int = artifacts.DEFAULT_CHUNK_ROWS,
    scheduler: str | None = None,
) -> TrainResult:
    """Split, fit, score on the held-out rows, and publish the training artifacts atomically."""
    data_split = split(dataset, test_size=test_size, random_state=random_state)
    estimator = fit_in_memory(
        data_split.X_train, data_split.y_train, dataset.feature_names, engine, chunk_rows, scheduler
    )
    model = to_linear_model(estimator, dataset, data_split.X_train)
    metrics = regression_metrics(data_split.y_test, model.predict(data_split.X_test))
    paths = publish(
        models_dir,
        estimator,
        model,
        data_split.X_test,
        data_split.y_test,
        metrics,
        n_train=int(data_split.y_train.size),
        training_data={"source": dataset.source, "sha256": dataset.sha256},
        split={
            "test_size": test_size,
            "random_state": random_state,
            "method": "sklearn.model_selection.train_test_split",
        },
    )
    return TrainResult(
        model=model,
        n_train=int(data_split.y_train.size),
        n_test=int(data_split.y_test.size),
        metrics=metrics,
        paths=paths,
    )


def train_files(
    data: Path,
    target: str,
    features: Sequence[str] | None,
    models_dir: Path,
    test_size: float = 0.2,
    random_state: int = 42,
    engine: str = "auto",
    chunk_rows: int = artifacts.DEFAULT_CHUNK_ROWS,
    scheduler: str | None = None,
) -> TrainResult:
    """Train on CSV/Parquet files with any engine; rows are split by the row hash.

    ``data`` is a file, a folder of files or a glob. ``auto`` streams: memory stays at one
    block of ``chunk_rows`` rows whatever the files' size.
    """
    from linreg_ops import engines

    if not 0.0 < test_size < 1.0:
        raise InputError(f"--test-size must be between 0 and 1, got {test_size}")
    check_engine(engine)
    files = engines.data_files(data)
    feature_names = feature_columns(files, target, features)
    if engine in ("auto", "streaming"):
        fit = engines.stream_files(
            files, target, feature_names, test_size, random_state, chunk_rows
        )
        estimator = estimator_from(fit.coef, fit.intercept)
    elif engine == "dask":
        fit = engines.dask_files(files, target, feature_names, test_size, random_state, scheduler)
        estimator = estimator_from(fit.coef, fit.intercept)
    else:  # sklearn: the whole data in memory, the same row-hash split
        columns = [*feature_names, target]
        values = np.vstack([artifacts.read_table(path, columns).values for path in files])
        dataset = Dataset(
            values[:, :-1], values[:, -1], tuple(feature_names), target, engines.describe(files), ""
        )
        validate(dataset)
        summary = engines.summarize(dataset.X, dataset.y, 0, test_size, random_state)
        train_rows = ~held_out_rows(np.arange(len(dataset.y)), random_state, test_size)
        estimator = fit_linear_regression(dataset.X[train_rows], dataset.y[train_rows])
        fit = engines.finish(summary, feature_names, target, dataset.source)
        fit = replace(fit, coef=estimator.coef_, intercept=float(estimator.intercept_))
    model = LinearModel(
        feature_names=tuple(feature_names),
        target_name=target,
        coef=np.asarray(fit.coef, dtype=np.float64),
        intercept=float(fit.intercept),
        stats=statistics_from_moments(fit.train, fit.sample[:, :-1]),
    )
    sse = fit.test.squared_error(model.coef, model.intercept)
    metrics = {"r2": 1.0 - sse / fit.test.cyy if fit.test.cyy > 0 else 0.0, "mse": sse / fit.test.n}
    digest = (
        artifacts.sha256_file(files[0])
        if len(files) == 1
        else artifacts.sha256_bytes("".join(artifacts.sha256_file(f) for f in files).encode())
    )
    paths = publish(
        models_dir,
        estimator,
        model,
        fit.stored_test[:, :-1],
        fit.stored_test[:, -1],
        metrics,
        n_train=fit.train.n,
        n_test=fit.test.n,
        training_data={
            "source": engines.describe(files),
            "files": [str(f) for f in files],
            "sha256": digest,
        },
        split={
            "test_size": test_size,
            "random_state": random_state,
            "method": "row hash: splitmix64(row index, random_state) < test_size",
            "engine": "streaming" if engine == "auto" else engine,
        },
    )
    return TrainResult(
        model=model, n_train=fit.train.n, n_test=fit.test.n, metrics=metrics, paths=paths
    )


def statistics_from_moments(stats: "MomentStats", sample: np.ndarray) -> FeatureStats:
    """FeatureStats from streamed moments; calibration quantiles from the bounded row sample."""
    std = stats.std_x
    std = np.where(std > 0.0, std, 1.0)
    constant = stats.std_x <= 0.0
    correlation = stats.cxx / stats.n / np.outer(std, std)
    correlation[constant, :] = 0.0
    correlation[:, constant] = 0.0
    low, high = np.quantile(sample, [CALIBRATION_QUANTILE, 1.0 - CALIBRATION_QUANTILE], axis=0)
    return FeatureStats(
        n=stats.n,
        mean=stats.mean_x,
        std=std,
        minimum=stats.min_x,
        maximum=stats.max_x,
        quantile_level=CALIBRATION_QUANTILE,
        low=low,
        high=high,
        correlation=correlation,
    )


def publish(
    models_dir: Path,
    estimator: "LinearRegression",
    model: LinearModel,
    X_test: np.ndarray,
    y_test: np.ndarray,
    metrics: dict[str, float],
    n_train: int,
    training_data: dict[str, Any],
    split: dict[str, Any],
    n_test: int | None = None,
) -> list[Path]:
    """Write the training artifacts under a fresh manifest (older artifacts are dropped)."""
    n_test = len(y_test) if n_test is None else n_test
    summary = {
        "float": metrics,
        "quantized": None,
        "n_train": n_train,
        "n_test": n_test,
        "n_test_stored": len(y_test),
        "features": list(model.feature_names),
    }
    manifest = artifacts.start_manifest(
        training_data=training_data, split={**split, "n_train": n_train, "n_test": n_test}
    )
    return artifacts.write_artifacts(
        models_dir,
        {
            artifacts.ESTIMATOR_JOBLIB: artifacts.joblib_bytes(estimator),
            artifacts.MODEL_JSON: artifacts.model_bytes(model),
            artifacts.TEST_SPLIT_CSV: artifacts.split_csv_bytes(
                model.feature_names, model.target_name, X_test, y_test
            ),
            artifacts.METRICS_JSON: artifacts.json_bytes(summary),
        },
        fresh_manifest=manifest,
    )
