"""Quantization schemes: the affine convention's bounds, exact zero, saturation, configs."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from linreg_ops.errors import InputError
from linreg_ops.quantize import IntegerConfig, QuantConfig, choose_scale_and_zero_point, parse_dtype
from linreg_ops.rounding import Grid


def quantize_values(values, scale, zero_point, dtype):
    """Nearest codes on a one-scale grid: what nearest rounding publishes."""
    values = np.asarray(values, dtype=np.float64)
    return Grid(
        np.full(values.size, scale), np.full(values.size, zero_point), dtype.qmin, dtype.qmax
    ).nearest(values)


def dequantize_values(codes, scale, zero_point):
    codes = np.asarray(codes)
    return Grid(np.full(codes.size, scale), np.full(codes.size, zero_point), 0, 0).dequantize(codes)


weights = arrays(
    np.float64,
    st.integers(1, 40),
    elements=st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False),
)
dtype_names = st.sampled_from(["int8", "uint8", "int4", "uint4", "int2", "int3", "int16", "uint16"])


@given(values=weights, dtype_name=dtype_names)
def test_dequantization_error_is_at_most_half_a_step(values, dtype_name):
    dtype = parse_dtype(dtype_name)
    scale, zero_point = choose_scale_and_zero_point(values, dtype)
    codes = quantize_values(values, scale, zero_point, dtype)
    error = np.abs(values - dequantize_values(codes, scale, zero_point))
    # float32 scales: the range end may sit a float32 rounding beyond the last code.
    tolerance = np.abs(values) * 2**-23 + 1e-300
    assert np.all(error <= scale / 2 + tolerance)
    assert codes.min() >= dtype.qmin
    assert codes.max() <= dtype.qmax


@given(values=weights, dtype_name=dtype_names)
def test_zero_maps_exactly_to_the_zero_point(values, dtype_name):
    dtype = parse_dtype(dtype_name)
    scale, zero_point = choose_scale_and_zero_point(values, dtype)
    assert dtype.qmin <= zero_point <= dtype.qmax
    assert scale > 0
    code = quantize_values(np.array([0.0]), scale, zero_point, dtype)
    assert code[0] == zero_point
    assert dequantize_values(code, scale, zero_point)[0] == 0.0


def test_scales_are_float32_values():
    scale, _ = choose_scale_and_zero_point(np.array([0.1, -0.3]), parse_dtype("int8"))
    assert scale == float(np.float32(0.3 / 127))


def test_symmetric_uses_restricted_range_and_zero_point_zero():
    dtype = parse_dtype("int8")
    assert (dtype.qmin, dtype.qmax) == (-127, 127)
    values = np.array([-2.0, 1.0])
    scale, zero_point = choose_scale_and_zero_point(values, dtype)
    assert zero_point == 0
    np.testing.assert_array_equal(quantize_values(values, scale, 0, dtype), [-127, 64])


def test_asymmetric_uint8_range():
    dtype = parse_dtype("uint8")
    assert (dtype.qmin, dtype.qmax) == (0, 255)
    scale, zero_point = choose_scale_and_zero_point(np.array([-1.0, 3.0]), dtype)
    assert scale == pytest.approx(4.0 / 255, rel=1e-7)
    assert zero_point == 64  # rint(1 / (4/255)) = rint(63.75)


@pytest.mark.parametrize(("name", "bits", "symmetric"), [("int2", 2, True), ("uint16", 16, False)])
def test_any_width_from_2_to_16(name, bits, symmetric):
    dtype = parse_dtype(name)
    assert (dtype.bits, dtype.symmetric) == (bits, symmetric)


def test_rounding_is_half_to_even_and_saturating():
    dtype = parse_dtype("int8")
    codes = quantize_values(np.array([0.5, 1.5, 2.5, -0.5, 1000.0, -1000.0]), 1.0, 0, dtype)
    np.testing.assert_array_equal(codes, [0, 2, 2, 0, 127, -127])


@pytest.mark.parametrize("name", ["int1", "int17", "float8", "int", "uint0", "INT8"])
def test_unsupported_dtypes_are_refused(name):
    with pytest.raises(InputError, match="unsupported dtype"):
        parse_dtype(name)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"granularity": "per-row"}, "unknown granularity 'per-row'"),
        ({"rounding": "stochastic"}, "unknown rounding 'stochastic'"),
        ({"dtype": "int32"}, "unsupported dtype 'int32'"),
    ],
)
def test_bad_configs_are_refused(kwargs, message):
    with pytest.raises(InputError, match=message):
        QuantConfig(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"input_dtype": "int4"}, "unknown input dtype 'int4'"),
        ({"calibration": "mse"}, "unknown calibration"),
    ],
)
def test_bad_integer_configs_are_refused(kwargs, message):
    with pytest.raises(InputError, match=message):
        IntegerConfig(**kwargs)


@settings(max_examples=50)
@given(values=arrays(np.float64, 5, elements=st.floats(-10, 10, allow_nan=False)))
def test_float32_scale_never_underflows(values):
    scale, _ = choose_scale_and_zero_point(values * 1e-300, parse_dtype("int8"))
    assert scale >= np.finfo(np.float32).tiny
