"""Sufficient statistics: merging uneven chunks equals one pass, and the solve equals sklearn."""

import itertools
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LinearRegression

from linreg_ops.stats import MomentStats, RankWarning, held_out_rows, merge_all, row_uniforms, solve


def well_conditioned(seed: int, n: int = 3000, d: int = 6):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * rng.uniform(0.5, 5, d) + rng.normal(size=d) * 10
    y = X @ rng.normal(size=d) + 3.0 + rng.normal(size=n)
    return X, y


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 1000),
    cuts=st.lists(st.integers(1, 2999), max_size=12, unique=True),
)
def test_merging_uneven_chunks_equals_one_pass(seed, cuts):
    X, y = well_conditioned(seed)
    bounds = [0, *sorted(cuts), len(y)]
    parts = [MomentStats.of(X[a:b], y[a:b]) for a, b in itertools.pairwise(bounds)]
    merged, whole = merge_all(parts), MomentStats.of(X, y)
    assert merged.n == whole.n
    np.testing.assert_allclose(merged.mean_x, whole.mean_x, rtol=1e-12)
    np.testing.assert_allclose(merged.cxx, whole.cxx, rtol=1e-10, atol=1e-8)
    np.testing.assert_allclose(merged.cxy, whole.cxy, rtol=1e-10, atol=1e-8)
    np.testing.assert_array_equal(merged.min_x, whole.min_x)
    coef, intercept = solve(merged, [f"x{i}" for i in range(6)])
    reference = LinearRegression().fit(X, y)
    np.testing.assert_allclose(coef, reference.coef_, rtol=1e-9)
    assert intercept == pytest.approx(reference.intercept_, rel=1e-9)


def test_merge_is_stable_where_raw_sums_are_not():
    # A large common offset: the uncentred XᵀX loses every significant digit of the variance.
    rng = np.random.default_rng(2)
    X = 1e9 + rng.normal(size=(100_000, 1))
    y = 2.0 * (X[:, 0] - 1e9) + rng.normal(scale=0.1, size=100_000)
    merged = merge_all(
        MomentStats.of(X[a : a + 999], y[a : a + 999]) for a in range(0, 100_000, 999)
    )
    coef, _ = solve(merged, ["x"])
    assert coef[0] == pytest.approx(2.0, rel=1e-3)
    assert merged.cxx[0, 0] / merged.n == pytest.approx(X.var(), rel=1e-6)
    raw = float(X[:, 0] @ X[:, 0]) / len(X) - X[:, 0].mean() ** 2  # what XᵀX would give
    assert abs(raw - X.var()) / X.var() > 1e-3


def test_squared_error_from_moments():
    X, y = well_conditioned(3)
    coef, intercept = np.array([1.0, -2, 0.5, 0, 3, 1]), 0.7
    expected = float(np.sum((y - X @ coef - intercept) ** 2))
    assert MomentStats.of(X, y).squared_error(coef, intercept) == pytest.approx(expected, rel=1e-9)


def test_constant_column_gets_zero_and_a_warning():
    X, y = well_conditioned(4)
    X[:, 2] = 5.0
    with pytest.warns(RankWarning, match="feature 'c' is constant"):
        coef, _ = solve(MomentStats.of(X, y), list("abcdef"))
    assert coef[2] == 0.0
    np.testing.assert_allclose(
        np.delete(coef, 2), LinearRegression().fit(np.delete(X, 2, 1), y).coef_, rtol=1e-9
    )


def test_collinear_columns_give_the_minimum_norm_solution_with_a_warning():
    X, y = well_conditioned(5)
    X[:, 1] = 2.0 * X[:, 0]
    with pytest.warns(RankWarning, match="features 'a', 'b' are collinear"):
        coef, _ = solve(MomentStats.of(X, y), list("abcdef"))
    predictions = X @ coef
    reference = LinearRegression().fit(X, y)
    np.testing.assert_allclose(
        predictions, reference.predict(X) - reference.intercept_, rtol=1e-6, atol=1e-6
    )


def test_well_posed_data_gives_no_warning():
    X, y = well_conditioned(6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        solve(MomentStats.of(X, y), list("abcdef"))


@given(seed=st.integers(0, 2**31), size=st.integers(1, 5000))
def test_row_hash_is_deterministic_and_uniform(seed, size):
    index = np.arange(size)
    first, again = row_uniforms(index, seed), row_uniforms(index, seed)
    np.testing.assert_array_equal(first, again)
    assert np.all((first >= 0) & (first < 1))
    # the same row gets the same number whatever block it arrives in
    np.testing.assert_array_equal(row_uniforms(index[size // 2 :], seed), first[size // 2 :])


def test_row_hash_split_share():
    held_out = held_out_rows(np.arange(200_000), 42, 0.2)
    assert held_out.mean() == pytest.approx(0.2, abs=0.005)
    assert not np.array_equal(held_out, held_out_rows(np.arange(200_000), 43, 0.2))


def test_a_feature_on_a_tiny_scale_beside_a_huge_one_is_not_constant():
    """Constant means no variation against the column's own magnitude: a feature varying on
    a 1e-7 scale beside one on 1e6 (a ratio beyond 1e-12) keeps its coefficient."""
    rng = np.random.default_rng(11)
    X = rng.normal(size=(5000, 2)) * np.array([1e-7, 1e6])
    y = X @ np.array([3e7, 2e-6]) + rng.normal(scale=0.01, size=5000)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RankWarning)  # and no warning calls it constant
        coef, _ = solve(MomentStats.of(X, y), ["tiny", "huge"])
    np.testing.assert_allclose(coef, [3e7, 2e-6], rtol=1e-3)
