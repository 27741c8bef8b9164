"""Sufficient statistics: merging uneven chunks equals one pass, and the solve equals sklearn."""

import itertools
import os
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LinearRegression

from linreg_ops.moments import BLOCK_ROWS, MomentStats, merge_all
from linreg_ops.training.solve import RankWarning, solve
from linreg_ops.training.split import held_out_rows, row_uniforms


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


def splitmix64_uniform(row: int, seed: int) -> float:
    """The row hash written out with Python integers: splitmix64 of row + seed·golden ratio."""
    mask = 2**64 - 1
    z = (row + (seed % 2**64) * 0x9E3779B97F4A7C15) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    z ^= z >> 31
    return (z >> 11) / 2.0**53


@pytest.mark.parametrize("seed", [0, 42, 2**32 + 7, 2**63 + 5, -1, 2**64 + 42])
def test_row_hash_is_splitmix64_of_row_and_seed(seed):
    """The split must not change between versions (a published model's test rows depend on
    it): bit for bit the reference splitmix64, for any integer seed taken modulo 2^64."""
    rows = [0, 1, 2, 3, 1000, 123_456_789, 2**40 + 3, 2**63 - 1]
    expected = [splitmix64_uniform(row, seed) for row in rows]
    np.testing.assert_array_equal(row_uniforms(np.array(rows), seed), expected)
    np.testing.assert_array_equal(row_uniforms(np.array(rows), seed % 2**64), expected)


def test_held_out_rows_are_those_below_the_test_size():
    index = np.arange(1000)
    uniforms = row_uniforms(index, 7)
    for row in (3, 500, 999):  # a test size equal to a row's own number: that row stays in
        test_size = float(uniforms[row])
        held_out = held_out_rows(index, 7, test_size)
        np.testing.assert_array_equal(held_out, uniforms < test_size)
        assert not held_out[row]
    assert not held_out_rows(index, 7, 0.0).any()


def test_an_empty_block_is_the_identity_of_merging():
    X, y = well_conditioned(7, n=50, d=3)
    empty = MomentStats.of(X[:0], y[:0])
    assert (empty.n, empty.mean_y, empty.cyy) == (0, 0.0, 0.0)
    assert (empty.min_y, empty.max_y) == (np.inf, -np.inf)
    np.testing.assert_array_equal(empty.mean_x, np.zeros(3))
    np.testing.assert_array_equal(empty.cxx, np.zeros((3, 3)))
    np.testing.assert_array_equal(empty.cxy, np.zeros(3))
    np.testing.assert_array_equal(empty.min_x, np.full(3, np.inf))  # identities of min / max
    np.testing.assert_array_equal(empty.max_x, np.full(3, -np.inf))
    whole = MomentStats.of(X, y)
    assert empty.merge(whole) is whole
    assert whole.merge(empty) is whole
    assert merge_all([empty, whole, empty]) is whole


def assert_same_moments(merged, whole):
    assert merged.n == whole.n
    assert merged.mean_y == pytest.approx(whole.mean_y, rel=1e-12)
    assert merged.cyy == pytest.approx(whole.cyy, rel=1e-10)
    np.testing.assert_allclose(merged.mean_x, whole.mean_x, rtol=1e-12)
    np.testing.assert_allclose(merged.cxx, whole.cxx, rtol=1e-10, atol=1e-8)
    np.testing.assert_allclose(merged.cxy, whole.cxy, rtol=1e-10, atol=1e-8)
    np.testing.assert_array_equal(merged.min_x, whole.min_x)
    np.testing.assert_array_equal(merged.max_x, whole.max_x)
    assert (merged.min_y, merged.max_y) == (whole.min_y, whole.max_y)


def test_merging_single_rows_equals_one_pass():
    X, y = well_conditioned(8, n=40, d=3)
    rows = [MomentStats.of(X[i : i + 1], y[i : i + 1]) for i in range(len(y))]
    assert_same_moments(merge_all(rows), MomentStats.of(X, y))
    # and one row merged onto the rest, from either side
    rest = MomentStats.of(X[1:], y[1:])
    assert_same_moments(rest.merge(rows[0]), MomentStats.of(X, y))
    assert_same_moments(rows[0].merge(rest), MomentStats.of(X, y))


def test_merging_keeps_every_moment_of_y():
    X, y = well_conditioned(9, n=1000, d=2)
    y = y * 10 + 50  # a mean far from zero: the dy² term of cyy matters
    parts = [MomentStats.of(X[a : a + 300], y[a : a + 300]) for a in range(0, 1000, 300)]
    assert_same_moments(merge_all(parts), MomentStats.of(X, y))
    assert merge_all(parts).cyy == pytest.approx(float(np.sum((y - y.mean()) ** 2)), rel=1e-10)


def test_merging_overflowing_statistics_is_silent():
    """Values near the float64 limit overflow the moments; merging them must not warn (the
    caller checks the statistics are finite and names the column). Each half is constant,
    so only the merge overflows."""
    X = np.array([[1.7e308], [1.7e308], [-1.7e308], [-1.7e308]])
    y = np.ones(4)
    parts = [MomentStats.of(X[a : a + 2], y[a : a + 2]) for a in (0, 2)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        merged = merge_all(parts)
    assert not np.isfinite(merged.cxx).all()


def test_squared_error_of_an_exact_fit_is_zero():
    rng = np.random.default_rng(12)
    X = rng.normal(size=(200, 3))
    coef = np.array([0.5, -1.0, 2.0])
    y = X @ coef + 0.25
    stats = MomentStats.of(X, y)
    assert stats.squared_error(coef, 0.25) == pytest.approx(0.0, abs=1e-18)
    assert stats.squared_error(coef, 0.5) == pytest.approx(200 * 0.25**2, rel=1e-9)


def test_constant_means_minimum_equals_maximum_whatever_the_moments_say():
    """Constancy is read from the range, never from rounded moments: statistics whose
    co-moment is not zero but whose range is one value are constant, and a column whose
    variance is zero but whose range is not (never produced by ``of``) is not."""
    one_value = MomentStats(
        4, np.array([4.2]), 1.0, np.array([1e-17]), 0.0, np.array([[1e-33]]), np.zeros(1), 1.0,
        np.array([4.2]), np.array([4.2]), 0.0, 2.0,
    )  # fmt: skip
    with pytest.warns(RankWarning, match="feature 'x' is constant"):
        coef, _ = solve(one_value, ["x"])
    assert coef[0] == 0.0
    assert not one_value.constant_y
    assert MomentStats.of(np.ones((3, 1)), np.full(3, 4.2)).constant_y


def test_solve_refuses_a_wrong_number_of_feature_names():
    X, y = well_conditioned(10, n=100, d=3)
    X[:, 0] = 1.0  # a constant column, so the names are read
    with pytest.raises(ValueError, match="zip"):
        solve(MomentStats.of(X, y), ["a", "b"])


def constant_and_collinear_table():
    X, y = well_conditioned(13)
    X[:, 2] = 5.0
    X[:, 4] = 3.0 * X[:, 3]
    return MomentStats.of(X, y)


def test_rank_warnings_point_at_the_caller_and_see_past_a_constant_column():
    """A constant column and a collinear pair in one table: both warnings, each attributed to
    the line that called ``solve`` (so the caller's warning filters apply)."""
    with pytest.warns(RankWarning) as record:
        coef, _ = solve(constant_and_collinear_table(), list("abcdef"))
    messages = sorted(str(warning.message) for warning in record)
    assert len(messages) == 2
    assert messages[0] == "feature 'c' is constant: its coefficient is 0"
    assert messages[1].endswith("are collinear: the minimum-norm solution is used")
    if "MUTANT_UNDER_TEST" not in os.environ:  # mutmut's trampoline adds a stack frame
        assert {warning.filename for warning in record} == {__file__}
    assert coef[2] == 0.0


def test_the_collinear_warning_names_the_collinear_pair_beside_a_constant_column():
    with pytest.warns(RankWarning) as record:
        solve(constant_and_collinear_table(), list("abcdef"))
    assert any("features 'd', 'e' are collinear" in str(w.message) for w in record)


def test_targets_are_rounded_to_float64_first():
    """A long double target with digits float64 cannot hold gives the statistics of its
    float64 value (the summary is the same whatever array type a reader produced)."""
    X, y = well_conditioned(14, n=64, d=2)
    wide = y.astype(np.longdouble) + np.longdouble(2) ** -60 * np.arange(64) * y
    got, want = MomentStats.of(X, wide), MomentStats.of(X, wide.astype(np.float64))
    assert (got.mean_y, got.cyy) == (want.mean_y, want.cyy)
    np.testing.assert_array_equal(got.cxy, want.cxy)


def test_overflow_across_blocks_is_silent_too():
    X = np.full((BLOCK_ROWS + 2, 1), 1.7e308)
    X[1::2] = -1.7e308
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stats = MomentStats.of(X, np.ones(len(X)))
    assert not np.isfinite(stats.cxx).all()


def test_merging_nothing_is_an_error():
    with pytest.raises(ValueError, match=r"^no statistics to merge$"):
        merge_all([])


def test_both_rank_warnings_of_one_call_point_at_the_same_line():
    """The constant-column and the collinear warnings of one ``solve`` call are attributed to
    the same frame (the caller's line, however deep the call): one filter silences both."""
    with pytest.warns(RankWarning) as record:
        solve(constant_and_collinear_table(), list("abcdef"))
    assert len(record) == 2
    assert len({(warning.filename, warning.lineno) for warning in record}) == 1


def test_features_in_an_object_array_give_the_statistics_of_their_float64_values():
    """Python numbers boxed in an object array (what a reader of mixed columns hands over) are
    converted like any other array type: the summary of their float64 values, bit for bit."""
    X, y = well_conditioned(15, n=64, d=2)
    boxed = np.array([[int(row[0]), float(row[1])] for row in X], dtype=object)
    got, want = MomentStats.of(boxed, y), MomentStats.of(boxed.astype(np.float64), y)
    assert (got.n, got.mean_y, got.cyy) == (want.n, want.mean_y, want.cyy)
    for field in ("shift_x", "mean_dx", "cxx", "cxy", "min_x", "max_x"):
        np.testing.assert_array_equal(getattr(got, field), getattr(want, field))


@settings(max_examples=30)
@given(
    seed=st.integers(0, 1000),
    exponent=st.floats(6, 15),
    cuts=st.lists(st.integers(1, 1999), max_size=12, unique=True),
)
def test_merged_moments_of_offset_rows_are_those_of_the_differences(seed, exponent, cuts):
    """A common offset up to 1e15 leaves the moments (and the solution) of the rows' exact
    differences from it, however the rows are cut into blocks: each block is measured from a
    row of its own and the merge works on differences, never on the offset."""
    rng = np.random.default_rng(seed)
    offset = 10.0**exponent
    spread = max(1.0, float(np.spacing(offset)) * 1000)
    X = offset + rng.normal(size=(2000, 3)) * spread * np.array([1.0, 3.0, 0.5])
    differences = X - offset  # exact: every value within a factor of 2 of the offset
    y = differences @ np.array([2.0, -1.0, 0.5]) / spread + rng.normal(scale=0.1, size=2000)
    bounds = [0, *sorted(cuts), len(y)]
    merged = merge_all(MomentStats.of(X[a:b], y[a:b]) for a, b in itertools.pairwise(bounds))
    exact = MomentStats.of(differences, y)
    np.testing.assert_allclose(merged.cxx, exact.cxx, rtol=1e-10)
    np.testing.assert_allclose(merged.cxy, exact.cxy, rtol=1e-10)
    np.testing.assert_array_equal(merged.min_x, X.min(axis=0))
    np.testing.assert_array_equal(merged.max_x, X.max(axis=0))
    np.testing.assert_allclose(merged.mean_x - offset, exact.mean_x, rtol=0, atol=spread)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RankWarning)  # nothing is called constant
        coef, _ = solve(merged, ["a", "b", "c"])
    np.testing.assert_allclose(coef, LinearRegression().fit(differences, y).coef_, rtol=1e-9)


def per_block(X: np.ndarray, y: np.ndarray) -> MomentStats:
    """The statistics of each cache-sized block, merged."""
    return merge_all(
        MomentStats.of(X[a : a + BLOCK_ROWS], y[a : a + BLOCK_ROWS])
        for a in range(0, len(y), BLOCK_ROWS)
    )


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 1000), exponent=st.floats(6, 15), extra=st.integers(1, BLOCK_ROWS))
def test_moments_of_many_blocks_keep_an_offset_exact(seed, exponent, extra):
    """Over several cache-sized blocks (each measured from a row of its own, then merged),
    an offset up to 1e15 leaves the moments of the rows' exact differences from it."""
    rng = np.random.default_rng(seed)
    offset = 10.0**exponent
    spread = max(1.0, float(np.spacing(offset)) * 1000)
    n = 2 * BLOCK_ROWS + extra
    X = offset + rng.normal(size=(n, 3)) * spread * np.array([1.0, 3.0, 0.5])
    differences = X - offset  # exact: every value within a factor of 2 of the offset
    y = differences @ np.array([2.0, -1.0, 0.5]) / spread + rng.normal(scale=0.1, size=n)
    got, exact = MomentStats.of(X, y), per_block(differences, y)
    np.testing.assert_allclose(got.cxx, exact.cxx, rtol=1e-10)
    np.testing.assert_allclose(got.cxy, exact.cxy, rtol=1e-10)
    assert got.cyy == pytest.approx(exact.cyy, rel=1e-10)
    np.testing.assert_array_equal(got.min_x, X.min(axis=0))
    np.testing.assert_array_equal(got.max_x, X.max(axis=0))
    assert (got.min_y, got.max_y) == (y.min(), y.max())
    ulp = float(np.spacing(offset))  # the mean is carried at the offset's precision
    np.testing.assert_allclose(got.mean_x - offset, exact.mean_x, rtol=0, atol=2 * ulp)
