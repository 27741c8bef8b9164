"""numpy metrics agree with scikit-learn's, so evaluation can drop the dependency."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn import metrics as sk

from linreg_ops.metrics import (
    mean_squared_error,
    prediction_drift,
    quantized_fidelity,
    r2_score,
)

# Millesimal values: sums of squares stay far from subnormal numbers, where R²'s division
# overflows in any implementation.
finite = st.integers(-(10**9), 10**9).map(lambda i: i / 1000)


@given(data=st.data(), n=st.integers(2, 50))
def test_agree_with_scikit_learn(data, n):
    y_true = data.draw(arrays(np.float64, n, elements=finite))
    y_pred = data.draw(arrays(np.float64, n, elements=finite))
    assert mean_squared_error(y_true, y_pred) == pytest.approx(
        sk.mean_squared_error(y_true, y_pred), rel=1e-9, abs=1e-9
    )
    assert r2_score(y_true, y_pred) == pytest.approx(
        sk.r2_score(y_true, y_pred), rel=1e-9, abs=1e-9
    )


def test_constant_target_follows_scikit_learn():
    assert r2_score(np.ones(3), np.ones(3)) == 1.0
    assert r2_score(np.ones(3), np.array([1.0, 2.0, 1.0])) == 0.0


def test_prediction_drift():
    drift = prediction_drift(np.array([1.0, 2.0, 3.0]), np.array([1.5, 2.0, 2.0]))
    assert drift == {"max_abs_diff": 1.0, "mean_abs_diff": 0.5}


# Values a float64 cannot hold: 1 + k·2^-60 rounds to 1.0 in float64, not in x87 long double.
EXTENDED = np.longdouble(1) + np.arange(8, dtype=np.longdouble) * np.longdouble(2) ** -60


@pytest.mark.parametrize("dtype", [np.longdouble, np.float32, np.float16, np.int64])
def test_metrics_compute_in_float64_whatever_the_input_dtype(dtype):
    """Every input is rounded to float64 first, so evaluation and serving report the same
    figures for the same float64 values, whatever array type a caller passes."""
    rng = np.random.default_rng(11)
    y = rng.normal(size=101) * 40
    pred = y + rng.normal(size=101)
    y_true, y_pred = y.astype(dtype), pred.astype(dtype)
    if dtype is np.longdouble:  # extra digits that float64 drops
        y_true = y_true + EXTENDED[rng.integers(1, 8, 101)] - 1
        y_pred = y_pred + EXTENDED[rng.integers(1, 8, 101)] - 1
    as64 = y_true.astype(np.float64), y_pred.astype(np.float64)
    for function in (mean_squared_error, r2_score, prediction_drift):
        assert function(y_true, y_pred) == function(*as64)
        assert function(y_true, as64[1]) == function(*as64)
        assert function(as64[0], y_pred) == function(*as64)


def test_extended_precision_is_dropped_before_any_arithmetic():
    ones = np.ones(8)
    assert mean_squared_error(EXTENDED, ones) == 0.0
    assert mean_squared_error(ones, EXTENDED) == 0.0
    assert r2_score(EXTENDED, ones) == 1.0  # a constant target, predicted exactly
    assert r2_score(ones, EXTENDED) == 1.0
    assert prediction_drift(EXTENDED, ones) == {"max_abs_diff": 0.0, "mean_abs_diff": 0.0}


def test_quantized_fidelity_counts_clipped_rows_and_the_drift_inside():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    float_pred = np.array([1.0, 2.0, 3.0, 5.0])
    quantized = np.array([1.5, 2.0, 3.0, 9.0])  # the clipped last row moves by 4
    figures = quantized_fidelity(y, float_pred, quantized, np.array([False, False, False, True]))
    assert figures["clipped_rows"] == 1
    assert figures["clipped_share"] == 0.25
    assert figures["max_abs_diff"] == 4.0
    assert figures["mean_abs_diff"] == 4.5 / 4
    assert figures["mean_abs_diff_inside"] == 0.5 / 3
    assert figures["delta_r2"] == figures["r2"] - r2_score(y, float_pred)
    assert figures["mse"] == mean_squared_error(y, quantized)
    assert set(figures) == {
        "r2", "mse", "max_abs_diff", "mean_abs_diff", "delta_r2", "clipped_rows",
        "clipped_share", "mean_abs_diff_inside",
    }  # fmt: skip


def test_quantized_fidelity_without_clipping_and_with_every_row_clipped():
    y = np.array([1.0, 2.0, 3.0])
    float_pred = np.array([1.0, 2.0, 4.0])
    quantized = np.array([1.0, 2.5, 4.0])
    unclipped = quantized_fidelity(y, float_pred, quantized)
    assert (unclipped["clipped_rows"], unclipped["clipped_share"]) == (0, 0.0)
    assert unclipped["mean_abs_diff_inside"] == unclipped["mean_abs_diff"] == 0.5 / 3
    every = quantized_fidelity(y, float_pred, quantized, np.ones(3, dtype=bool))
    assert (every["clipped_rows"], every["clipped_share"]) == (3, 1.0)
    assert every["mean_abs_diff_inside"] == 0.0  # no row inside: nothing to average
