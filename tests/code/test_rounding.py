"""Rounding methods on a fixed grid: Hessian-aware and optimal never lose to nearest, and
optimal is the true minimum (checked by brute force where that is possible)."""

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from linreg_ops.rounding import (
    Grid,
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
