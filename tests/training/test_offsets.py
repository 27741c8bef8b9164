"""Offsets and constant columns, decided exactly on every engine, from arrays, CSV and Parquet.

A column is constant exactly when its minimum equals its maximum, and a large common offset
(1e6 … 1e15, int64 columns beyond 2⁵³) changes no coefficient by more than 1e-9 relative.
The reference is scikit-learn on the same rows with the offset subtracted first: every value
lies within a factor of two of its offset, so the subtraction is exact (Sterbenz) and the
problem is the same least-squares problem. Plain scikit-learn on the offset rows is no
reference: at 1e14 and beyond it is off by 1e-7 … 1e-4 (the last test shows it).
"""

import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import train_test_split

from linreg_ops.config import TrainConfig
from linreg_ops.errors import InputError
from linreg_ops.storage import cluster
from linreg_ops.training import engines, sources
from linreg_ops.training.solve import RankWarning
from linreg_ops.training.split import held_out_rows

pytestmark = pytest.mark.slow
CHUNK_ROWS = 37  # many blocks, so merges of blocks with different shifts are exercised
SOURCES = ("arrays", "csv", "parquet")


@dataclass(frozen=True)
class OffsetRows:
    """Rows near per-column offsets (float64, or int64 exact in float64) and a target."""

    X: np.ndarray  # float64 or int64, as the files hold it
    y: np.ndarray
    x_offset: np.ndarray
    y_offset: float

    @property
    def names(self) -> list[str]:
        return [f"x{j}" for j in range(self.X.shape[1])]

    def differences(self) -> tuple[np.ndarray, np.ndarray]:
        """The rows with the offsets subtracted: exact, so the same least-squares problem."""
        return self.X.astype(np.float64) - self.x_offset, self.y - self.y_offset


@st.composite
def offset_rows(draw: st.DrawFn) -> OffsetRows:
    seed = draw(st.integers(0, 2**32 - 1))
    n = draw(st.integers(40, 300))
    d = draw(st.integers(1, 3))
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(n, d))
    if draw(st.booleans()):  # int64 columns 2^p + k·2^(p−52): float64's spacing, all exact
        powers = np.array(draw(st.lists(st.integers(53, 62), min_size=d, max_size=d)))
        step = 2 ** (powers - 52)
        ticks = np.round(Z * 1000).astype(np.int64) + 5000
        X = (2**powers).astype(np.int64) + ticks * step
        x_offset = (2.0**powers).astype(np.float64)
    else:
        exponents = np.array(draw(st.lists(st.floats(6, 15), min_size=d, max_size=d)))
        signs = np.array(draw(st.lists(st.sampled_from([-1.0, 1.0]), min_size=d, max_size=d)))
        x_offset = signs * 10.0**exponents
        spread = np.maximum(1.0, np.spacing(np.abs(x_offset)) * 1000)  # values, not roundings
        X = x_offset + Z * spread
    Xs = X.astype(np.float64) - x_offset
    coef = rng.uniform(0.5, 3.0, d) * rng.choice([-1.0, 1.0], d)
    y_offset = draw(st.sampled_from([0.0, 1e6, 3e14, 1e15]))
    y = y_offset + (Xs / Xs.std(axis=0)) @ coef + rng.normal(scale=0.1, size=n)
    return OffsetRows(X, y, x_offset, y_offset)


def write(rows: OffsetRows, folder: Path, kind: str) -> Path:
    """Two files of the rows (CSV numbers as exact text, Parquet with the original types)."""
    folder.mkdir()
    half = len(rows.y) // 2
    for i, part in enumerate((slice(0, half), slice(half, None))):
        X, y = rows.X[part], rows.y[part]
        if kind == "csv":
            lines = [",".join([*rows.names, "y"])]
            lines += [
                ",".join([*map(repr, x.tolist()), repr(float(t))])
                for x, t in zip(X, y, strict=True)
            ]
            (folder / f"part-{i}.csv").write_text("\n".join(lines) + "\n")
        else:
            table = pa.table({**{n: X[:, j] for j, n in enumerate(rows.names)}, "y": y})
            pq.write_table(table, folder / f"part-{i}.parquet", row_group_size=25)
    return folder


def fit(rows: OffsetRows, kind: str, engine: str, scheduler: str | None, folder: Path):
    """``engines.fit`` on the rows as ``kind``, and the training rows it used (indices)."""
    config = TrainConfig(engine=engine, chunk_rows=CHUNK_ROWS, scheduler=scheduler)
    n = len(rows.y)
    if kind == "arrays":
        X = rows.X.astype(np.float64)
        source = sources.ArraySource(X, rows.y, tuple(rows.names), "y", "offset rows", "0" * 64)
        train, _ = train_test_split(np.arange(n), test_size=0.2, random_state=42)
        return engines.fit(source, config), train
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cluster, "PARTITION_BYTES", 2_000)  # several Dask partitions per file
        fitted = engines.fit(sources.file_source(write(rows, folder, kind), "y"), config)
    return fitted, np.flatnonzero(~held_out_rows(np.arange(n), 42, 0.2))


def assert_fits_like_scikit_learn(rows: OffsetRows, kind: str, engine: str, scheduler=None):
    with tempfile.TemporaryDirectory() as tmp:
        fitted, order = fit(rows, kind, engine, scheduler, Path(tmp) / "data")
    Xs, ys = rows.differences()
    reference = LinearRegression().fit(Xs[order], ys[order])
    np.testing.assert_allclose(fitted.coef, reference.coef_, rtol=1e-9)
    # the raw intercept carries the offsets: it is known to their rounding, not beyond
    expected = reference.intercept_ + rows.y_offset - rows.x_offset @ reference.coef_
    scale = (
        abs(reference.intercept_)
        + abs(rows.y_offset)
        + np.abs(rows.x_offset) @ np.abs(reference.coef_)
    )
    assert abs(fitted.intercept - expected) <= 1e-9 * scale


@settings(max_examples=12)
@given(rows=offset_rows())
def test_offset_columns_fit_like_scikit_learn_on_the_differences(rows):
    for kind in SOURCES:
        for engine in ("sklearn", "streaming", "auto"):
            with warnings.catch_warnings():
                warnings.simplefilter("error", RankWarning)  # nothing is called constant
                assert_fits_like_scikit_learn(rows, kind, engine)


@settings(max_examples=3)
@given(rows=offset_rows())
def test_offset_columns_fit_like_scikit_learn_on_dask(rows, scheduler):
    for kind in SOURCES:
        with warnings.catch_warnings():
            warnings.simplefilter("error", RankWarning)
            assert_fits_like_scikit_learn(rows, kind, "dask", scheduler)


def test_the_reported_offset_column_keeps_its_coefficient(scheduler):
    """The report: a feature 1e15 + x, x in 0..999, was called constant and zeroed (R² 0)
    by auto, streaming and dask."""
    rng = np.random.default_rng(3)
    x = np.arange(1000.0)
    z = rng.normal(size=1000)
    rows = OffsetRows(
        np.column_stack([1e15 + x, z]), 2.0 * x + 3.0 * z + rng.normal(size=1000),
        np.array([1e15, 0.0]), 0.0,
    )  # fmt: skip
    for engine in ("auto", "streaming", "dask"):
        with warnings.catch_warnings():
            warnings.simplefilter("error", RankWarning)
            assert_fits_like_scikit_learn(rows, "csv", engine, scheduler)


def constant_rows(value: float, n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    X = rng.normal(size=(n, 2))
    return X, X @ np.array([1.0, -2.0]) + rng.normal(scale=0.1, size=n) + value


FINITE = st.floats(allow_nan=False, allow_infinity=False)
REPORTED = st.sampled_from([4.2, 5.0, 1e15, -0.1, 0.1, 1.7e308, 5e-324])


def fit_table(X: np.ndarray, y: np.ndarray, kind: str, engine: str, scheduler=None):
    rows = OffsetRows(X, y, np.zeros(X.shape[1]), 0.0)
    with tempfile.TemporaryDirectory() as tmp:
        return fit(rows, kind, engine, scheduler, Path(tmp) / "data")[0]


@settings(max_examples=15)
@given(value=REPORTED | FINITE)
def test_a_constant_target_is_refused_whatever_its_value(value):
    """4.2 in every row trained (R² 0.0000) while 5.0 was refused: constancy came from the
    rounding of the moments."""
    X, _ = constant_rows(0.0)
    y = np.full(len(X), value)
    for kind in SOURCES:
        for engine in ("sklearn", "streaming", "auto"):
            with pytest.raises(InputError, match=r"target column 'y' is constant \(every row"):
                fit_table(X, y, kind, engine)


@pytest.mark.parametrize("value", [4.2, 1e15, -0.1])
def test_a_constant_target_is_refused_by_dask_whatever_its_value(value, scheduler):
    X, _ = constant_rows(0.0)
    with pytest.raises(InputError, match="target column 'y' is constant"):
        fit_table(X, np.full(len(X), value), "csv", "dask", scheduler)


def fit_with_a_constant_column(value: float, kind: str, engine: str, scheduler=None):
    X, y = constant_rows(3.0)
    wide = np.column_stack([X[:, 0], np.full(len(y), value), X[:, 1]])
    with pytest.warns(RankWarning, match="feature 'x1' is constant: its coefficient is 0"):
        fitted = fit_table(wide, y, kind, engine, scheduler)
    assert fitted.coef[1] == 0.0
    return fitted, X, y


@settings(max_examples=10)
@given(value=REPORTED | FINITE)
def test_a_constant_feature_is_zeroed_with_a_warning_on_every_engine(value):
    for kind in SOURCES:
        for engine in ("sklearn", "streaming"):
            fitted, X, y = fit_with_a_constant_column(value, kind, engine)
            other = fit_table(X, y, kind, engine)  # the same rows without the column
            np.testing.assert_allclose(fitted.coef[[0, 2]], other.coef, rtol=1e-9)


def test_a_constant_feature_is_zeroed_with_a_warning_on_dask(scheduler):
    fit_with_a_constant_column(1e15 + 0.125, "parquet", "dask", scheduler)


@settings(max_examples=15)
@given(
    exponent=st.floats(-100, 100),
    sign=st.sampled_from([-1.0, 1.0]),
    seed=st.integers(0, 2**32 - 1),
)
def test_two_adjacent_floats_are_not_a_constant_column(exponent, sign, seed):
    """Nothing but one value is constant: a column of v and the next float after v (a spread
    of one ulp, at any magnitude) keeps its coefficient — 1/ulp times that of its 0/1 bits."""
    rng = np.random.default_rng(seed)
    value = sign * 10.0**exponent
    ulp = np.nextafter(value, np.inf) - value
    bits = rng.integers(0, 2, size=80).astype(np.float64)
    other = rng.normal(size=80)
    y = bits * 1.5 - 2.0 * other + rng.normal(scale=0.1, size=80)
    X = np.column_stack([value + bits * ulp, other])
    for kind in ("arrays", "csv"):
        for engine in ("sklearn", "streaming"):
            with warnings.catch_warnings():
                warnings.simplefilter("error", RankWarning)
                with tempfile.TemporaryDirectory() as tmp:
                    fitted, order = fit(
                        OffsetRows(X, y, np.zeros(2), 0.0), kind, engine, None, Path(tmp) / "d"
                    )
            reference = LinearRegression().fit(np.column_stack([bits, other])[order], y[order])
            np.testing.assert_allclose(fitted.coef * [ulp, 1.0], reference.coef_, rtol=1e-9)


def test_plain_scikit_learn_on_offset_rows_is_no_reference():
    """Why the reference subtracts the offset first: scikit-learn's own centring loses the
    digits that the offset leaves of the spread (1e-4 relative at 1e15)."""
    rng = np.random.default_rng(8)
    Xs = np.round(rng.normal(size=(1000, 3)) * 800) / 8  # multiples of 1/8: exact at 1e15
    y = Xs @ np.array([1.5, -2.0, 0.5]) + rng.normal(size=1000)
    exact = LinearRegression().fit(Xs, y).coef_
    plain = LinearRegression().fit(1e15 + Xs, y).coef_
    assert np.max(np.abs(plain - exact) / np.abs(exact)) > 1e-6
    fitted = engines.fit_linear_regression(1e15 + Xs, y).coef_
    np.testing.assert_allclose(fitted, exact, rtol=1e-9)
