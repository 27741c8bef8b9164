"""Where training data comes from, what makes it acceptable, and how it is split.

California Housing goes through scikit-learn's own ``fetch_california_housing`` (it honours
``SCIKIT_LEARN_DATA``, so an offline cache works); a user's CSV/Parquet goes through
``artifacts.read_table``. Either way the data is validated once, here, with a message that
names the column and row, before anything is fitted or written.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from linreg_ops import artifacts
from linreg_ops.errors import InputError

CALIFORNIA_SOURCE = "sklearn.datasets.fetch_california_housing"


@dataclass(frozen=True)
class Dataset:
    """Features, target and where they came from (the SHA-256 goes into the manifest)."""

    X: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]
    target_name: str
    source: str
    sha256: str


@dataclass(frozen=True)
class Split:
    """A train/test split and the parameters that reproduce it."""

    X_train: np.ndarray
    X_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray
    test_size: float
    random_state: int


def load_california_housing() -> Dataset:
    """The seed's data set, exactly as scikit-learn loads it."""
    from sklearn.datasets import fetch_california_housing

    try:
        bunch = fetch_california_housing()
    except OSError as exc:
        raise InputError(
            "cannot load California Housing: scikit-learn found no cached copy and could not "
            f"download it ({exc}). Point SCIKIT_LEARN_DATA at a folder holding "
            "cal_housing_py3.pkz."
        ) from exc
    X = np.ascontiguousarray(bunch.data, dtype=np.float64)
    y = np.ascontiguousarray(bunch.target, dtype=np.float64)
    digest = artifacts.sha256_bytes(X.tobytes() + y.tobytes())
    return Dataset(
        X, y, tuple(bunch.feature_names), bunch.target_names[0], CALIFORNIA_SOURCE, digest
    )


def feature_columns(
    files: Sequence[Path], target: str, features: Sequence[str] | None = None
) -> list[str]:
    """The feature columns (default: every column but the target, from the first file),
    checked against the header of every file so that an error names the file at fault."""
    if features is not None:
        features = list(features)
        if not features:
            raise InputError("--features is empty: name at least one column")
        if target in features:
            raise InputError(f"the target column {target!r} is also listed in --features")
        if len(set(features)) != len(features):
            raise InputError("--features lists a column twice")
    for path in files:
        header = artifacts.read_table_header(path)
        if target not in header:
            raise InputError(
                f"target column {target!r} not found in {path}; columns are: {', '.join(header)}"
            )
        if features is None:
            features = [name for name in header if name != target]
            if not features:
                raise InputError(f"{path} has no feature columns besides the target {target!r}")
        missing = [name for name in features if name not in header]
        if missing:
            raise InputError(
                f"column {missing[0]!r} not found in {path}; columns are: {', '.join(header)}"
            )
    return list(features)


def load_table_dataset(path: Path, target: str, features: Sequence[str] | None = None) -> Dataset:
    """A user's CSV/Parquet: ``target`` is the label, ``features`` (default: the rest) inputs."""
    path = Path(path)
    features = feature_columns([path], target, features)
    table = artifacts.read_table(path, [*features, target])
    dataset = Dataset(
        X=np.ascontiguousarray(table.values[:, :-1]),
        y=np.ascontiguousarray(table.values[:, -1]),
        feature_names=tuple(features),
        target_name=target,
        source=str(path),
        sha256=artifacts.sha256_file(path),
    )
    validate(dataset)
    return dataset


def load_dataset(
    path: Path | None = None, target: str | None = None, features: Sequence[str] | None = None
) -> Dataset:
    """California Housing by default, or the user's file when ``path`` is given."""
    if path is None:
        if target is not None or features is not None:
            raise InputError("--target and --features need --data PATH")
        dataset = load_california_housing()
        validate(dataset)
        return dataset
    if not target:
        raise InputError("--data needs --target COLUMN (the column to predict)")
    return load_table_dataset(path, target, features)


def check_finite(
    values: np.ndarray, columns: Sequence[str], source: str, first_row: int = 0
) -> None:
    """Refuse NaN and infinity, naming the first cell that holds one (rows count from 1;
    ``first_row`` is the 0-based index of ``values[0]`` in the whole file)."""
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        kind = "NaN" if np.isnan(values[row, col]) else "an infinite value"
        raise InputError(
            f"{source}: column {columns[col]!r} row {first_row + row + 1} is {kind}; "
            "remove or impute it"
        )


def validate(dataset: Dataset) -> None:
    """Refuse data a least-squares fit cannot use, naming the first offending column and row."""
    check_finite(
        np.column_stack([dataset.X, dataset.y]),
        (*dataset.feature_names, dataset.target_name),
        dataset.source,
    )
    n_rows, n_features = dataset.X.shape
    if n_rows < n_features + 2:
        raise InputError(
            f"{dataset.source}: {n_rows} rows is too few to fit {n_features} features "
            f"(need at least {n_features + 2})"
        )
    if np.ptp(dataset.y) == 0.0:
        raise InputError(
            f"{dataset.source}: target column {dataset.target_name!r} is constant "
            f"(every row is {dataset.y[0]:g}); there is nothing to learn"
        )


def split(dataset: Dataset, test_size: float = 0.2, random_state: int = 42) -> Split:
    """The seed's ``train_test_split``, with the checks it leaves to chance."""
    from sklearn.model_selection import train_test_split

    if not 0.0 < test_size < 1.0:
        raise InputError(f"--test-size must be between 0 and 1, got {test_size}")
    n_rows, n_features = dataset.X.shape
    n_test = int(np.ceil(test_size * n_rows))
    n_train = n_rows - n_test
    if n_test < 2 or n_train < n_features + 2:
        raise InputError(
            f"{dataset.source}: a {test_size:g} test split of {n_rows} rows leaves {n_train} "
            f"training and {n_test} test rows; need at least {n_features + 2} training rows "
            "and 2 test rows"
        )
    X_train, X_test, y_train, y_test = train_test_split(
        dataset.X, dataset.y, test_size=test_size, random_state=random_state
    )
    if np.ptp(y_train) == 0.0:
        raise InputError(
            f"{dataset.source}: the target is constant on the training split; "
            "use more rows or another --random-state"
        )
    return Split(X_train, X_test, y_train, y_test, test_size, random_state)
