"""Quantization: the affine convention's error bounds, exact zero, saturation, edge cases."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from linreg_ops.errors import InputError
from linreg_ops.model import LinearModel
from linreg_ops.quantize import (
    choose_scale_and_zero_point,
    dequantize_values,
    parse_dtype,
    quantize_model,
    quantize_values,
)

weights = arrays(
    np.float64,
    st.integers(1, 40),
    elements=st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False),
)
dtype_names = st.sampled_from(["int8", "uint8", "int4", "uint4", "int2", "int16", "uint16"])


@given(values=weights, dtype_name=dtype_names)
def test_dequantization_error_is_at_most_half_a_step(values, dtype_name):
    dtype = parse_dtype(dtype_name)
    scale, zero_point = choose_scale_and_zero_point(values, dtype)
    codes = quantize_values(values, scale, zero_point, dtype)
    error = np.abs(values - dequantize_values(codes, scale, zero_point))
    assert np.all(error <= scale / 2 * (1 + 1e-9) + 1e-300)
    assert codes.min() >= dtype.qmin
    assert codes.max() <= dtype.qmax


@given(values=weights, dtype_name=dtype_names)
def test_zero_maps_exactly_to_the_zero_point(values, dtype_name):
    dtype = parse_dtype(dtype_name)
    scale, zero_point = choose_scale_and_zero_point(values, dtype)
    assert dtype.qmin <= zero_point <= dtype.qmax
    code = quantize_values(np.array([0.0]), scale, zero_point, dtype)
    assert code[0] == zero_point
    assert dequantize_values(code, scale, zero_point)[0] == 0.0


def test_symmetric_uses_restricted_range_and_zero_point_zero():
    dtype = parse_dtype("int8")
    assert (dtype.qmin, dtype.qmax) == (-127, 127)
    scale, zero_point = choose_scale_and_zero_point(np.array([-2.0, 1.0]), dtype)
    assert zero_point == 0
    assert scale == 2.0 / 127
    np.testing.assert_array_equal(
        quantize_values(np.array([-2.0, 1.0]), scale, 0, dtype), [-127, 64]
    )


def test_asymmetric_uint8_range():
    dtype = parse_dtype("uint8")
    assert (dtype.qmin, dtype.qmax) == (0, 255)
    scale, zero_point = choose_scale_and_zero_point(np.array([-1.0, 3.0]), dtype)
    assert scale == 4.0 / 255
    assert zero_point == 64  # rint(1 / (4/255)) = rint(63.75)


def test_rounding_is_half_to_even_and_saturating():
    dtype = parse_dtype("int8")
    codes = quantize_values(np.array([0.5, 1.5, 2.5, -0.5, 1000.0, -1000.0]), 1.0, 0, dtype)
    np.testing.assert_array_equal(codes, [0, 2, 2, 0, 127, -127])


@pytest.mark.parametrize("name", ["int1", "int17", "float8", "int", "uint0", "INT8"])
def test_unsupported_dtypes_are_refused(name):
    with pytest.raises(InputError, match="unsupported dtype"):
        parse_dtype(name)


def linear_model(coef, intercept=1.0, mean=None, std=None) -> LinearModel:
    coef = np.asarray(coef, dtype=np.float64)
    d = coef.size
    return LinearModel(
        feature_names=tuple(f"x{i}" for i in range(d)),
        target_name="y",
        coef=coef,
        intercept=intercept,
        feature_mean=np.zeros(d) if mean is None else np.asarray(mean, dtype=np.float64),
        feature_std=np.ones(d) if std is None else np.asarray(std, dtype=np.float64),
    )


def test_all_zero_coefficients_keep_the_intercept():
    quantized = quantize_model(linear_model([0.0, 0.0, 0.0], intercept=2.0719))
    assert quantized.weights.tolist() == [0, 0, 0]
    X = np.random.default_rng(0).normal(size=(5, 3))
    np.testing.assert_allclose(quantized.predict(X), 2.0719, rtol=1e-8)


def test_one_feature():
    quantized = quantize_model(linear_model([3.0], intercept=-1.0))
    assert quantized.weights.tolist() == [127]
    np.testing.assert_allclose(quantized.predict(np.array([[2.0]])), [5.0], atol=3.0 / 127)


def test_constant_feature_with_unit_sigma_contributes_nothing():
    model = linear_model([0.0, 2.0], intercept=0.5, mean=[4.0, 0.0], std=[1.0, 1.0])
    quantized = quantize_model(model)
    X = np.array([[4.0, 1.0], [4.0, -1.0]])
    np.testing.assert_allclose(quantized.predict(X), model.predict(X), atol=2.0 / 127)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_coefficients_are_refused(bad):
    with pytest.raises(InputError, match="NaN or infinite coefficients"):
        quantize_model(linear_model([1.0, bad]))


def test_bias_that_cannot_fit_int32_is_refused():
    with pytest.raises(InputError, match="does not fit in int32"):
        quantize_model(linear_model([1e-6, -1e-6], intercept=1e9))


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_dequantized_model_matches_float_within_the_bound(dtype):
    rng = np.random.default_rng(3)
    model = linear_model(
        rng.normal(size=6), intercept=0.3, mean=rng.normal(size=6), std=rng.uniform(0.5, 3, 6)
    )
    quantized = quantize_model(model, dtype)
    X = rng.normal(size=(100, 6))
    z = np.abs(quantized.standardize(X))
    # Each folded weight is off by ≤ scale/2, the bias by ≤ scale/2 too.
    bound = quantized.scale[0] / 2 * (z.sum(axis=1) + 1) + 1e-6
    assert np.all(np.abs(quantized.predict(X) - model.predict(X)) <= bound)
