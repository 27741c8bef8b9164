"""numpy metrics agree with scikit-learn's, so evaluation can drop the dependency."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn import metrics as sk

from linreg_ops.metrics import mean_squared_error, prediction_drift, r2_score

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
