"""Rounding methods on a fixed grid: Hessian-aware and optimal never lose to nearest, and
optimal is the true minimum (checked by brute force where that is possible)."""

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from linreg_ops.quantization.rounding import (
    Grid,
    _coordinate_descent,
    _damped_inverse,
    _enumerate,
    _gptq,
    lll_reduce,
    objective,
    round_hessian,
    round_nearest,
    round_optimal,
    sphere_decode,
)


@st.composite
def problems(draw, max_d=6):
    """Weights, a PSD Gram matrix from (possibly collinear) data, and a symmetric grid."""
    d = draw(st.integers(1, max_d))
    seed = draw(st.integers(0, 2**32 - 1))
    bits = draw(st.sampled_from([2, 3, 4, 8]))
    collinear = draw(st.booleans())
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(200, d))
    if collinear and d > 1:
        z[:, 1:] = z[:, :1] + 0.05 * rng.normal(size=(200, d - 1))
    gram = z.T @ z / 200
    values = rng.normal(size=d) * draw(st.sampled_from([1.0, 30.0]))
    qmax = 2 ** (bits - 1) - 1
    shrink = draw(st.sampled_from([1.0, 0.8]))
    scale = np.full(d, max(np.abs(values).max(), 1e-9) * shrink / qmax)
    return values, gram, Grid(scale, np.zeros(d, dtype=np.int64), -qmax, qmax)


@settings(max_examples=60, deadline=None)
@given(problem=problems())
def test_hessian_and_optimal_never_lose_to_nearest(problem):
    values, gram, grid = problem
    nearest = objective(values, gram, grid, round_nearest(values, gram, grid))
    hessian = objective(values, gram, grid, round_hessian(values, gram, grid))
    optimal = objective(values, gram, grid, round_optimal(values, gram, grid))
    assert hessian <= nearest * (1 + 1e-12) + 1e-15
    assert optimal <= hessian * (1 + 1e-9) + 1e-15


@settings(max_examples=40, deadline=None)
@given(problem=problems(max_d=3))
def test_optimal_matches_brute_force(problem):
    values, gram, grid = problem
    if grid.qmax > 7:  # keep the exhaustive search small
        return
    codes = round_optimal(values, gram, grid)
    best = min(
        objective(values, gram, grid, np.array(candidate))
        for candidate in itertools.product(range(grid.qmin, grid.qmax + 1), repeat=values.size)
    )
    assert objective(values, gram, grid, codes) <= best * (1 + 1e-9) + 1e-12


def test_hessian_fixes_cancelling_collinear_weights():
    rng = np.random.default_rng(1)
    x = rng.normal(size=500)
    z = x[:, None] + 0.01 * rng.normal(size=(500, 6))
    z = (z - z.mean(0)) / z.std(0)
    gram = z.T @ z / 500
    values = 30.0 * (-1.0) ** np.arange(6) + np.array([0.11, 0.07, 0.13, 0.02, 0.05, 0.09])
    grid = Grid(np.full(6, 31.0 / 127), np.zeros(6, dtype=np.int64), -127, 127)
    nearest = objective(values, gram, grid, round_nearest(values, gram, grid))
    hessian = objective(values, gram, grid, round_hessian(values, gram, grid))
    assert hessian < nearest / 10


def test_zero_rows_of_the_gram_keep_their_start_code():
    gram = np.diag([1.0, 0.0, 2.0])
    grid = Grid(np.full(3, 0.1), np.zeros(3, dtype=np.int64), -7, 7)
    values = np.array([0.33, 0.5, -0.21])
    start = round_nearest(values, gram, grid)
    result = sphere_decode(values, gram, grid, start)
    assert result.proven_optimal
    assert result.codes[1] == start[1]


def test_lll_gives_an_equivalent_reduced_basis():
    rng = np.random.default_rng(3)
    basis = np.triu(rng.normal(size=(5, 5))) + np.eye(5) * 3
    basis[:, 1] = basis[:, 0] * 1000 + basis[:, 1]  # a badly skewed basis
    reduced, unimodular = lll_reduce(basis)
    np.testing.assert_allclose(basis @ unimodular, reduced, atol=1e-6)
    assert round(abs(np.linalg.det(unimodular))) == 1
    assert np.linalg.norm(reduced, axis=0).max() < np.linalg.norm(basis, axis=0).max()


# --------------------------------------------------------------------------- the exact search


def all_codes(grid, d):
    """Every code vector of the grid's range, one per row."""
    axes = [np.arange(grid.qmin, grid.qmax + 1)] * d
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, d)


def brute_force_cost(values, gram, grid):
    codes = all_codes(grid, values.size)
    errors = values - grid.scale * (codes - grid.zero_point)
    return float(np.einsum("nd,de,ne->n", errors, gram, errors).min())


def exact_search_problems():
    """Small problems the brute force can check: collinear and independent features, unequal
    scales, zero points off zero, weights beyond the range (the box binds) or inside it, and
    nearly singular ones on narrow grids, whose optimum lies several codes from the centre."""
    for seed in range(120):
        rng = np.random.default_rng(seed)
        d = 1 + seed % 4
        z = rng.normal(size=(100, d))
        if seed % 2 and d > 1:
            z[:, 1:] = z[:, :1] + (0.05, 0.005)[seed % 5 < 2] * rng.normal(size=(100, d - 1))
        gram = z.T @ z / 100
        qmin, qmax = ((-7, 7), (0, 15), (-3, 3), (-1, 1))[seed % 4 if d < 4 else 2 + seed % 2]
        zero_point = np.zeros(d, dtype=np.int64) if qmin < 0 else rng.integers(3, 12, d)
        scale = rng.uniform(0.05, 3.0, d)
        reach = 1.6 if seed % 3 == 0 else 0.9  # beyond the range, or inside it
        codes = rng.uniform(qmin, qmax, d) * reach
        values = scale * (codes - zero_point) + rng.normal(size=d) * scale
        yield values, gram, Grid(scale, zero_point, qmin, qmax)


def test_sphere_decode_finds_the_brute_force_optimum_from_any_start():
    for values, gram, grid in exact_search_problems():
        d = values.size
        best = brute_force_cost(values, gram, grid)
        starts = [
            np.full(d, grid.qmin),
            np.full(d, grid.qmax),
            grid.nearest(values),
            grid.qmax + grid.qmin - grid.nearest(values),  # mirrored: a far, poor start
        ]
        for start in starts:
            result = sphere_decode(values, gram, grid, start.astype(np.int64))
            assert result.proven_optimal is True
            assert result.codes.dtype == np.int64
            assert np.all((result.codes >= grid.qmin) & (result.codes <= grid.qmax))
            assert objective(values, gram, grid, result.codes) <= best * (1 + 1e-9) + 1e-12
            assert isinstance(result.nodes, int)
            assert result.nodes > 0


def test_sphere_decode_leaves_weights_the_objective_ignores_alone():
    """A zero row of H (a constant feature) keeps whatever code it started with, not the
    nearest one, and a Gram matrix without any such row is searched as usual."""
    gram = np.diag([1.0, 0.0, 2.0])
    grid = Grid(np.full(3, 0.1), np.zeros(3, dtype=np.int64), -7, 7)
    values = np.array([0.33, 0.5, -0.21])
    start = np.array([0, -6, 0], dtype=np.int64)
    result = sphere_decode(values, gram, grid, start)
    np.testing.assert_array_equal(result.codes, [3, -6, -2])
    assert result.proven_optimal
    assert start[1] == -6, "the start codes are not modified"


def test_sphere_decode_without_any_weight_to_search():
    start = np.array([1, -2], dtype=np.int64)
    grid = Grid(np.ones(2), np.zeros(2, dtype=np.int64), -7, 7)
    result = sphere_decode(np.array([0.4, 3.0]), np.zeros((2, 2)), grid, start)
    np.testing.assert_array_equal(result.codes, start)
    assert (result.proven_optimal, result.nodes) == (True, 0)
    assert result.codes is not start


def test_sphere_decode_gives_up_unproven_on_a_matrix_that_is_not_a_gram_matrix():
    start = np.array([1, -2], dtype=np.int64)
    grid = Grid(np.ones(2), np.zeros(2, dtype=np.int64), -7, 7)
    indefinite = np.array([[1.0, 2.0], [2.0, 1.0]])
    result = sphere_decode(np.array([0.4, 3.0]), indefinite, grid, start)
    np.testing.assert_array_equal(result.codes, start)
    assert (result.proven_optimal, result.nodes) == (False, 0)


def test_sphere_decode_handles_exactly_collinear_features_on_a_coarse_grid():
    """A singular Gram matrix (one feature duplicated) at a large scale: the jitter must be
    relative to the matrix, or the Cholesky factorization fails."""
    gram = np.array([[1.0, 1.0], [1.0, 1.0]])
    grid = Grid(np.full(2, 1000.0), np.zeros(2, dtype=np.int64), -7, 7)
    values = np.array([2500.0, -1300.0])
    result = sphere_decode(values, gram, grid, grid.nearest(values))
    assert result.proven_optimal
    assert objective(values, gram, grid, result.codes) <= brute_force_cost(values, gram, grid)


def hard_problem(d=8, seed=4):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(300, d))
    z[:, 1:] = z[:, :1] + 0.02 * rng.normal(size=(300, d - 1))
    gram = z.T @ z / 300
    grid = Grid(np.full(d, 0.05), np.zeros(d, dtype=np.int64), -127, 127)
    values = rng.normal(size=d) * 3
    return values, gram, grid


def test_the_node_budget_counts_every_node_of_both_searches():
    values, gram, grid = hard_problem()
    start = np.zeros(values.size, dtype=np.int64)
    unlimited = sphere_decode(values, gram, grid, start)
    assert unlimited.proven_optimal
    budget = 5
    short = sphere_decode(values, gram, grid, start, node_budget=budget)
    assert not short.proven_optimal
    assert short.nodes > budget  # the exhausted search and the box search after it


def test_enumerate_stops_exactly_at_its_budget():
    values, gram, grid = hard_problem()
    upper = np.linalg.cholesky(gram * np.outer(grid.scale, grid.scale)).T
    target = values / grid.scale
    start = np.zeros(values.size, dtype=np.int64)
    low, high = np.full(values.size, -127.0), np.full(values.size, 127.0)
    codes, finished, nodes = _enumerate(upper, target, start, low, high, 10**7)
    assert finished
    assert nodes > 10
    again = _enumerate(upper, target, start, low, high, nodes)  # just enough
    np.testing.assert_array_equal(again[0], codes)
    assert again[1:] == (True, nodes)
    short = _enumerate(upper, target, start, low, high, nodes - 1)
    assert short[1:] == (False, nodes)
    # one level from the optimum: its code, then one neighbour, and both sides are closed
    one = _enumerate(np.ones((1, 1)), np.array([0.3]), np.array([0]), -np.ones(1), np.ones(1), 9)
    assert (one[0].tolist(), one[1], one[2]) == ([0], True, 2)


def test_lll_output_is_size_reduced_and_lovasz_reduced():
    """The definition of an LLL-reduced basis (δ = 3/4), on skewed random bases."""
    for seed in range(20):
        rng = np.random.default_rng(seed)
        n = 2 + seed % 5
        basis = np.triu(rng.normal(size=(n, n))) + np.eye(n) * 2
        basis[:, 1:] += basis[:, :1] * rng.uniform(50, 500, n - 1)
        reduced, unimodular = lll_reduce(basis)
        assert unimodular.dtype == np.int64
        np.testing.assert_allclose(basis @ unimodular, reduced, atol=1e-6 * np.abs(basis).max())
        assert round(abs(np.linalg.det(unimodular))) == 1
        _, r = np.linalg.qr(reduced)
        for k in range(1, n):
            for j in range(k):
                assert abs(r[j, k] / r[j, j]) <= 0.5 + 1e-9
            assert 0.75 * r[k - 1, k - 1] ** 2 <= r[k - 1, k] ** 2 + r[k, k] ** 2 + 1e-9


# --------------------------------------------------------------------------- Hessian-aware


def polish_problems():
    for seed in range(30):
        rng = np.random.default_rng(100 + seed)
        d = 2 + seed % 6
        z = rng.normal(size=(200, d))
        if seed % 2:
            z[:, 1:] = z[:, :1] + 0.1 * rng.normal(size=(200, d - 1))
        gram = z.T @ z / 200
        qmax = (3, 7, 127)[seed % 3]
        values = rng.normal(size=d) * (1.0 + seed % 4)
        scale = np.full(d, np.abs(values).max() * rng.uniform(0.6, 1.1) / qmax)
        yield values, gram, Grid(scale, np.zeros(d, dtype=np.int64), -qmax, qmax)


def single_moves(codes, grid):
    for j in range(codes.size):
        for step in (-1, 1):
            moved = codes.copy()
            moved[j] += step
            if grid.qmin <= moved[j] <= grid.qmax:
                yield moved


def test_the_polish_ends_where_no_single_code_move_helps():
    """Coordinate descent from nearest rounding: never worse than its start, and no ±1 move of
    one code (inside the range) lowers the objective any further."""
    for values, gram, grid in polish_problems():
        start = grid.nearest(values)
        polished = _coordinate_descent(values, gram, grid, start)
        assert polished.dtype == np.int64
        np.testing.assert_array_equal(start, grid.nearest(values))  # the start is not modified
        cost = objective(values, gram, grid, polished)
        assert cost <= objective(values, gram, grid, start)
        assert np.all((polished >= grid.qmin) & (polished <= grid.qmax))
        tolerance = 1e-12 * max(cost, 1e-300)
        for moved in single_moves(polished, grid):
            assert objective(values, gram, grid, moved) >= cost - tolerance


def test_round_hessian_ends_at_a_local_optimum():
    """GPTQ then the polish (or nearest, if that is better): on these problems, one and two
    weights included, no single ±1 code move improves the result."""
    for values, gram, grid in polish_problems():
        codes = round_hessian(values, gram, grid)
        cost = objective(values, gram, grid, codes)
        assert cost <= objective(values, gram, grid, grid.nearest(values))
        for moved in single_moves(codes, grid):
            assert objective(values, gram, grid, moved) >= cost * (1 - 1e-12)


def test_damped_inverse_adds_one_percent_of_the_mean_diagonal():
    gram = np.array([[2.0, 0.5], [0.5, 1.0]])
    expected = np.linalg.inv(gram + 0.015 * np.eye(2))
    np.testing.assert_allclose(_damped_inverse(gram), expected, rtol=1e-12)
    correlation = np.array([[1.0, 0.999], [0.999, 1.0]])  # a unit diagonal, nearly singular
    np.testing.assert_allclose(
        _damped_inverse(correlation), np.linalg.inv(correlation + 0.01 * np.eye(2)), rtol=1e-12
    )
    np.testing.assert_array_equal(_damped_inverse(np.zeros((3, 3))), np.eye(3))  # no data at all


def test_gptq_on_independent_features_is_nearest_rounding():
    """With a diagonal H there is no error to push onto other weights."""
    values = np.array([3.0, 0.5, -1.2])
    gram = np.diag([3.0, 2.0, 1.0])
    grid = Grid(np.full(3, 3.0 / 7), np.zeros(3, dtype=np.int64), -7, 7)
    np.testing.assert_array_equal(_gptq(values, gram, grid), grid.nearest(values))


def test_gptq_on_a_per_channel_grid_uses_each_weights_own_scale():
    values = np.array([3.0, 0.5, -1.2])
    gram = np.diag([3.0, 2.0, 1.0])
    grid = Grid(np.abs(values) / 7, np.zeros(3, dtype=np.int64), -7, 7)  # per-channel
    np.testing.assert_array_equal(_gptq(values, gram, grid), grid.nearest(values))


def test_gptq_leaves_a_constant_feature_for_last_wherever_it_sits():
    """Act-order with ties: features of equal H diagonal (every feature of a correlation
    matrix) are rounded in index order and a constant feature (a zero diagonal) last, so
    moving the constant column from the front to the back changes no code."""
    for seed in range(10):
        rng = np.random.default_rng(seed)
        z = rng.normal(size=(300, 7))
        z[:, 1:] = z[:, :1] + 0.1 * rng.normal(size=(300, 6))
        z = (z - z.mean(0)) / z.std(0)
        z[:, 0] = 0.0
        gram = z.T @ z / 300
        values = rng.normal(size=7) * 2
        grid = Grid(np.full(7, 2.0 / 7), np.zeros(7, dtype=np.int64), -7, 7)
        back = np.r_[1:7, 0]
        moved = _gptq(values[back], gram[np.ix_(back, back)], grid)
        np.testing.assert_array_equal(_gptq(values, gram, grid)[back], moved)


def test_hessian_rounding_corrects_two_correlated_weights():
    """Two weights are the smallest case with errors to cancel: both 0.4 of a step round
    down to 0 and, with a correlation of 0.99, add up; one code up nearly cancels them."""
    gram = np.array([[1.0, 0.99], [0.99, 1.0]])
    grid = Grid(np.full(2, 1.0), np.zeros(2, dtype=np.int64), -7, 7)
    values = np.array([0.4, 0.4])
    np.testing.assert_array_equal(grid.nearest(values), [0, 0])
    codes = round_hessian(values, gram, grid)
    assert sorted(codes.tolist()) == [0, 1]
    nearest = objective(values, gram, grid, grid.nearest(values))
    assert objective(values, gram, grid, codes) < nearest / 10


def test_the_polish_can_move_a_code_onto_either_end_of_the_range():
    grid = Grid(np.ones(2), np.zeros(2, dtype=np.int64), -7, 7)
    values = np.array([-7.0, 7.0])
    start = np.array([-6, 6], dtype=np.int64)
    polished = _coordinate_descent(values, np.eye(2), grid, start)
    np.testing.assert_array_equal(polished, [-7, 7])


@settings(max_examples=60, deadline=None)
@given(problem=problems(), exponent=st.sampled_from([-60, -30, -12, 12, 30]))
def test_hessian_rounding_does_not_depend_on_the_units_of_the_weights(problem, exponent):
    """Weights and scales times a power of two (a target in other units) is the same
    problem with the objective scaled exactly: the same codes must come out."""
    values, gram, grid = problem
    factor = 2.0**exponent
    scaled = Grid(grid.scale * factor, grid.zero_point, grid.qmin, grid.qmax)
    np.testing.assert_array_equal(
        round_hessian(values * factor, gram, scaled), round_hessian(values, gram, grid)
    )


def test_the_grid_of_one_weight_has_that_weights_scale_and_zero_point_only():
    grid = Grid(np.array([0.5, 2.0, 4.0]), np.array([3, 4, 5]), 0, 15)
    one = grid.only(1)
    np.testing.assert_array_equal(one.scale, [2.0])
    np.testing.assert_array_equal(one.zero_point, [4])
    assert (one.qmin, one.qmax) == (0, 15)
    np.testing.assert_array_equal(one.nearest(np.array([3.1])), [6])


def test_enumerate_returns_integer_codes():
    codes, finished, nodes = _enumerate(
        np.array([[2.0, 0.5], [0.0, 1.0]]),
        np.array([0.3, -1.6]),
        np.zeros(2, dtype=np.int64),
        np.full(2, -7.0),
        np.full(2, 7.0),
        100,
    )
    assert codes.dtype == np.int64
    assert finished
    assert nodes > 0


def interior_problems(count=120):
    """Random (partly collinear) problems whose optimum lies inside the range: the answer
    comes from the unconstrained search in the LLL-reduced basis."""
    for seed in range(count):
        rng = np.random.default_rng(seed)
        d = 2 + seed % 3
        z = rng.normal(size=(50, d))
        if seed % 2:
            noise = (0.3, 0.05, 0.005)[seed % 3]
            z[:, 1:] = z[:, :1] + noise * rng.normal(size=(50, d - 1))
        gram = z.T @ z / 50
        scale = rng.uniform(0.05, 3.0, d)
        values = scale * rng.uniform(-7, 7, d) * 0.8
        yield values, gram, Grid(scale, np.zeros(d, dtype=np.int64), -7, 7)


def test_sphere_decode_matches_brute_force_when_the_optimum_is_inside_the_range():
    for values, gram, grid in interior_problems():
        result = sphere_decode(values, gram, grid, grid.nearest(values))
        assert result.proven_optimal
        best = brute_force_cost(values, gram, grid)
        assert objective(values, gram, grid, result.codes) <= best * (1 + 1e-9) + 1e-12


def test_an_optimum_on_the_edge_of_the_range_needs_no_second_search():
    """The range is inclusive: an unconstrained optimum at qmin or qmax is accepted as the
    constrained one, so it costs the same nodes as the same problem one code inside."""
    rng = np.random.default_rng(1)
    z = rng.normal(size=(100, 3))
    z[:, 1:] += z[:, :1]
    gram = z.T @ z / 100
    grid = Grid(np.full(3, 0.25), np.zeros(3, dtype=np.int64), -7, 7)
    start = np.zeros(3, dtype=np.int64)
    for edge, inside in [([7, -3, 2], [6, -3, 2]), ([-7, 0, 1], [-6, 0, 1])]:
        on_edge = sphere_decode(grid.scale * np.array(edge) + 0.01, gram, grid, start)
        np.testing.assert_array_equal(on_edge.codes, edge)
        assert on_edge.proven_optimal
        shifted = sphere_decode(grid.scale * np.array(inside) + 0.01, gram, grid, start)
        assert on_edge.nodes == shifted.nodes


def test_lll_reduces_dense_random_bases():
    """The definition of an LLL-reduced basis (δ = 3/4), on unskewed Gaussian bases."""
    for seed in range(40):
        rng = np.random.default_rng(seed)
        n = 2 + seed % 5
        basis = rng.normal(size=(n, n))
        reduced, unimodular = lll_reduce(basis)
        np.testing.assert_allclose(basis @ unimodular, reduced, atol=1e-9)
        _, r = np.linalg.qr(reduced)
        for k in range(1, n):
            for j in range(k):
                assert abs(r[j, k] / r[j, j]) <= 0.5 + 1e-9
            assert 0.75 * r[k - 1, k - 1] ** 2 <= r[k - 1, k] ** 2 + r[k, k] ** 2 + 1e-9
