"""Where training data comes from: California Housing in memory, or the user's files.

California Housing goes through scikit-learn's own ``fetch_california_housing`` (it honours
``SCIKIT_LEARN_DATA``, so an offline cache works) and is split with the seed's
``train_test_split``. A user's CSV/Parquet files (a file, a folder or a glob) are described
here and read by ``tables``; the engines split them by row hash.
"""

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from linreg_ops.errors import InputError, did_you_mean
from linreg_ops.storage import codecs, tables
from linreg_ops.storage.digests import sha256_bytes, sha256_file

__all__ = [
    "CALIFORNIA_SOURCE",
    "CALIFORNIA_UNITS",
    "SHARED_CACHE",
    "ArraySource",
    "FileSource",
    "Source",
    "california_source",
    "feature_columns",
    "file_source",
    "use_shared_cache",
]

CALIFORNIA_SOURCE = "sklearn.datasets.fetch_california_housing"
SHARED_CACHE = Path("shared", "datasets", "california_housing", "scikit_learn_data")
CALIFORNIA_UNITS = "$100,000s"  # MedHouseVal: median house value per block group


@dataclass(frozen=True)
class ArraySource:
    """Rows already in memory, split with the seed's ``train_test_split``."""

    X: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]
    target_name: str
    description: str
    sha256: str
    target_units: str | None = None


@dataclass(frozen=True)
class FileSource:
    """CSV/Parquet files; the feature columns are checked against every file's header."""

    files: tuple[Path, ...]
    feature_names: tuple[str, ...]
    target_name: str
    features_given: bool  # chosen with --features (else: every other column)

    @property
    def description(self) -> str:
        if len(self.files) == 1:
            return str(self.files[0])
        return f"{len(self.files)} files in {self.files[0].parent}"

    @property
    def hint(self) -> str:
        """Added to a non-numeric-column error when the user did not choose the columns."""
        if self.features_given:
            return ""
        return "pass --features with the numeric columns to use (the default is every column)"

    def sha256(self) -> str:
        digests = [sha256_file(path) for path in self.files]
        return digests[0] if len(digests) == 1 else sha256_bytes("".join(digests).encode())


Source = ArraySource | FileSource


def use_shared_cache(checkout: Path) -> None:
    """Point scikit-learn at the shared cache beside ``checkout`` as the Makefile does, for
    scripts run outside ``make`` (the seed's shims, the benchmarks); an explicit
    ``SCIKIT_LEARN_DATA`` wins."""
    cache = checkout.resolve().parent / SHARED_CACHE
    if "SCIKIT_LEARN_DATA" not in os.environ and cache.is_dir():
        os.environ["SCIKIT_LEARN_DATA"] = str(cache)


def california_source() -> ArraySource:
    """The seed's data set, exactly as scikit-learn loads it."""
    from sklearn.datasets import fetch_california_housing

    try:
        bunch = fetch_california_housing()
    except OSError as exc:
        raise InputError(
            "cannot load California Housing: scikit-learn found no cached copy "
            f"({exc}). Point SCIKIT_LEARN_DATA at a folder holding cal_housing_py3.pkz "
            "(make run uses ../shared/datasets/california_housing/scikit_learn_data)"
        ) from None
    X = np.ascontiguousarray(bunch.data, dtype=np.float64)
    y = np.ascontiguousarray(bunch.target, dtype=np.float64)
    return ArraySource(
        X=X,
        y=y,
        feature_names=tuple(bunch.feature_names),
        target_name=bunch.target_names[0],
        description=CALIFORNIA_SOURCE,
        sha256=sha256_bytes(X.tobytes() + y.tobytes()),
        target_units=CALIFORNIA_UNITS,
    )


def file_source(
    data: str | Path, target: str | None, features: Sequence[str] | None = None
) -> FileSource:
    """The files named by ``data`` and the columns to use from each of them."""
    if not target:
        raise InputError("--data needs --target COLUMN (the column to predict)")
    files = tables.table_files(data)
    return FileSource(
        files=tuple(files),
        feature_names=tuple(feature_columns(files, target, features)),
        target_name=target,
        features_given=features is not None,
    )


def feature_columns(
    files: Sequence[Path], target: str, features: Sequence[str] | None = None
) -> list[str]:
    """The feature columns (default: every column but the target, from the first file),
    checked against the header of every file so that an error names the file at fault."""
    chosen = None if features is None else list(features)
    if chosen is not None:
        if not chosen:
            raise InputError("--features is empty: name at least one column")
        if target in chosen:
            raise InputError(f"the target column {target!r} is also listed in --features")
        if len(set(chosen)) != len(chosen):
            raise InputError("--features lists a column twice")
    for path in files:
        header = tables.read_header(path)
        if target not in header:
            raise InputError(
                f"target column {target!r} not found in {path}{did_you_mean(target, header)} "
                f"(columns are: {', '.join(header)})"
            )
        if chosen is None:
            chosen = [name for name in header if name != target]
            if not chosen:
                raise InputError(f"{path} has no feature columns besides the target {target!r}")
        tables.check_columns(str(path), header, [*chosen, target])
    assert chosen is not None
    for name in [*chosen, target]:  # what a model file can name (checked again on load)
        if not name or len(name) > codecs.NAME_MAX_CHARS:
            what = "has no name" if not name else f"has a name of {len(name):,} characters"
            raise InputError(
                f"column {[*chosen, target].index(name) + 1} of the selection {what}: names "
                f"of 1 to {codecs.NAME_MAX_CHARS} characters are kept in the model; "
                "pass --features with the columns to use (or rename it)"
            )
    return chosen
