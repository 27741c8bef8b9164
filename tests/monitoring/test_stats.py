"""Mergeable statistics: chunks merged are the concatenation; the request-sized path (one
broadcast comparison) bins as the block path (searchsorted) does."""

import itertools

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from helpers import fit_model
from linreg_ops.moments import MomentStats
from linreg_ops.monitoring.profile import Profile, build_profile
from linreg_ops.monitoring.stats import (
    BROADCAST_CELLS,
    MAX_DEVIATION,
    Accumulator,
    DriftStats,
    merge,
    monitorable,
    record,
)


def accumulator_for(seed: int, d: int = 3) -> tuple[Accumulator, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(400, d)) * rng.uniform(0.1, 10, d)
    X[:, 0] = np.round(X[:, 0])  # a discrete column: repeated edges
    y = X @ rng.normal(size=d) + rng.normal(size=400)
    model = fit_model(X, y)
    profile = Profile.of(build_profile(MomentStats.of(X, y), X, model))
    return Accumulator.of(profile, model), X


def exact_parts(stats: DriftStats) -> dict[str, np.ndarray]:
    parts = stats.parts()
    return {name: parts[name] for name in ("count", "target_count", "min", "max", "counts")}


@given(
    seed=st.integers(0, 2**32 - 1),
    rows=st.integers(0, 300),
    cuts=st.lists(st.integers(0, 300), max_size=6),
    with_target=st.booleans(),
)
def test_merging_chunk_statistics_equals_the_statistics_of_the_concatenation(
    seed, rows, cuts, with_target
):
    acc, X = accumulator_for(seed % 1000)
    rng = np.random.default_rng(seed)
    new = rng.normal(size=(rows, X.shape[1])) * X.std(axis=0) * 1.5 + X.mean(axis=0)
    new[: rows // 3] = X[: rows // 3]  # values exactly on the profile's edges, too
    y = rng.normal(size=rows) if with_target else None
    whole = DriftStats.empty(acc)
    record(whole, new, y)
    bounds = [0, *sorted(c for c in cuts if c <= rows), rows]
    merged = DriftStats.empty(acc)
    for start, stop in itertools.pairwise(bounds):
        part = DriftStats.empty(acc)
        record(part, new[start:stop], None if y is None else y[start:stop])
        merged = merge(merged, part)
    for name, values in exact_parts(whole).items():
        np.testing.assert_array_equal(exact_parts(merged)[name], values, err_msg=name)
    np.testing.assert_allclose(merged.data, whole.data, rtol=1e-9, atol=1e-9)


def test_request_sized_and_block_sized_binning_agree():
    acc, X = accumulator_for(3)
    rows = X[:50]
    assert 50 * acc.edges.size <= BROADCAST_CELLS < len(X) * acc.edges.size
    small = DriftStats.empty(acc)
    for start in range(0, len(X), 50):
        record(small, X[start : start + 50])
    large = DriftStats.empty(acc)
    record(large, X)
    np.testing.assert_array_equal(small.parts()["counts"], large.parts()["counts"])
    assert rows.shape[0] == 50


def brute_force_bins(acc: Accumulator, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each value's bin counted one at a time: how many of its column's edges lie below it."""
    Z = np.column_stack([X, X @ acc.coef + acc.intercept])
    counts = np.zeros((acc.columns, acc.bins), dtype=np.int64)
    sums = np.zeros((acc.columns, acc.bins))
    for row in Z:
        for j, value in enumerate(row):
            b = sum(1 for edge in acc.edges[j] if edge < value)
            counts[j, b] += 1
            sums[j, b] += value - acc.shift[j]
    return counts, sums


@given(seed=st.integers(0, 2**32 - 1), on_edges=st.integers(0, 200))
def test_block_binning_counts_every_value_in_the_bin_a_brute_force_count_gives(seed, on_edges):
    acc, X = accumulator_for(seed % 1000)
    rng = np.random.default_rng(seed)
    new = rng.normal(size=(300, X.shape[1])) * X.std(axis=0) * 2 + X.mean(axis=0)
    new[:on_edges] = X[:on_edges]  # repeated values, and values on the edges
    assert len(new) * acc.edges.size > BROADCAST_CELLS  # the block path
    stats = DriftStats.empty(acc)
    record(stats, new)
    counts, sums = brute_force_bins(acc, new)
    np.testing.assert_array_equal(stats.parts()["counts"], counts)
    np.testing.assert_allclose(stats.parts()["bin_sums"], sums, rtol=1e-9, atol=1e-9)


def test_request_sized_and_block_sized_bin_sums_agree():
    acc, X = accumulator_for(5)
    small = DriftStats.empty(acc)
    for start in range(0, len(X), 50):
        record(small, X[start : start + 50])
    large = DriftStats.empty(acc)
    record(large, X)
    np.testing.assert_allclose(
        small.parts()["bin_sums"], large.parts()["bin_sums"], rtol=1e-9, atol=1e-9
    )


def monitorable_row_by_row(acc: Accumulator, X: np.ndarray) -> np.ndarray:
    """The definition, one row at a time: every value, and the prediction, within
    MAX_DEVIATION of its training mean."""
    ok = []
    for row in X:
        with np.errstate(over="ignore", invalid="ignore"):
            values = [*row, row @ acc.coef + acc.intercept]
        ok.append(all(abs(v - m) < MAX_DEVIATION for v, m in zip(values, acc.shift, strict=True)))
    return np.array(ok, dtype=bool)


@given(
    seed=st.integers(0, 2**32 - 1),
    magnitudes=st.lists(
        st.sampled_from([1.0, 1e100, 1e149, 3e149, 1e150, 1e151, 1e300]), min_size=1, max_size=12
    ),
)
def test_monitorable_decides_every_row_as_the_definition_does(seed, magnitudes):
    """The shortcut (all rows at once, from the largest value) never says yes where the
    definition says no, and row by row the answer is the definition's."""
    acc, X = accumulator_for(seed % 1000)
    rng = np.random.default_rng(seed)
    rows = rng.normal(size=(len(magnitudes), X.shape[1])) * np.array(magnitudes)[:, None]
    np.testing.assert_array_equal(monitorable(acc, rows), monitorable_row_by_row(acc, rows))
    np.testing.assert_array_equal(monitorable(acc, X), monitorable_row_by_row(acc, X))


def test_a_row_whose_values_are_near_but_whose_prediction_is_beyond_is_not_monitorable():
    """Every value inside MAX_DEVIATION, the prediction beyond it: the shortcut must look at
    the prediction too."""
    acc, _ = accumulator_for(4)
    assert np.abs(acc.coef).sum() > 1.2
    row = 0.9 * MAX_DEVIATION * np.sign(acc.coef)
    assert (np.abs(row - acc.shift[:-1]) < MAX_DEVIATION).all()
    np.testing.assert_array_equal(monitorable(acc, row[None, :]), [False])
    np.testing.assert_array_equal(monitorable_row_by_row(acc, row[None, :]), [False])
