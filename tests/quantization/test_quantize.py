"""Quantization schemes: the affine convention's bounds, exact zero, saturation, configs."""

import functools
import os
import re
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import linreg_ops.quantization.quantize as quantize_module
from helpers import fit_model
from linreg_ops.config import GateConfig, IntegerConfig, QuantConfig, parse_dtype
from linreg_ops.errors import InputError
from linreg_ops.model import FeatureStats, LinearModel
from linreg_ops.quantization.gate import fidelity, gate_failure, limits_met
from linreg_ops.quantization.quantize import (
    _clips,
    _float32,
    _grid,
    _int32_bias,
    _shrink_factors,
    build_integer_model,
    choose_scale_and_zero_point,
    float_parameter_bytes,
    quantize_model,
    quantized_parameter_bytes,
    round_weights,
    rounding_note,
)
from linreg_ops.quantization.rounding import Grid, objective, sphere_decode
from linreg_ops.quantization.sweep import sweep
from linreg_ops.storage import codecs


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
@given(
    values=arrays(np.float64, 5, elements=st.floats(-10, 10, allow_nan=False)),
    magnitude=st.sampled_from([1e-300, 1e-310, 1e-320, 5e-324]),
    dtype=st.sampled_from(["int8", "uint8", "int2", "uint16"]),
)
@example(values=np.full(5, 1.52e-322 / 1e-300), magnitude=1e-300, dtype="int8")  # issue 13
@example(values=np.full(5, 1.0), magnitude=5e-324, dtype="uint8")  # was a ZeroDivisionError
def test_float32_scale_never_underflows(values, magnitude, dtype):
    """A range whose width over the codes underflows float64 (1.52e-322 / 127 is 0.0) still
    gets a usable scale, and its values still quantize to codes in range."""
    quant_dtype = parse_dtype(dtype)
    scale, zero_point = choose_scale_and_zero_point(values * magnitude, quant_dtype)
    assert scale >= np.finfo(np.float32).tiny
    assert quant_dtype.qmin <= zero_point <= quant_dtype.qmax


def test_float32_rounds_to_float32_and_lifts_only_positive_values_to_the_smallest_normal():
    tiny = float(np.finfo(np.float32).tiny)
    assert _float32(0.1) == float(np.float32(0.1))
    assert _float32(1e-300) == tiny
    assert _float32(0.0) == 0.0
    assert _float32(-0.1) == float(np.float32(-0.1))
    assert _float32(-1e-300) == 0.0


def test_integer_values_are_calibrated_by_their_real_magnitude():
    """int8's −128 has no int8 absolute value (np.abs wraps it to −128): the range must be
    taken in float64, or 5 would look like the largest magnitude."""
    values = np.array([-128, 5], dtype=np.int8)
    assert choose_scale_and_zero_point(values, parse_dtype("int8")) == (
        float(np.float32(128 / 127)),
        0,
    )


# --------------------------------------------------------------------------- sizes, sweep, gate


def test_parameter_bytes_pack_bits_and_round_up():
    assert float_parameter_bytes(3) == 32
    assert quantized_parameter_bytes(3, 4) == 2 + 4 + 4 + 1  # 12 bits of codes: 2 bytes
    assert quantized_parameter_bytes(3, 3, n_scales=3) == 2 + 4 + 12 + 2
    assert quantized_parameter_bytes(1, 2) == 1 + 4 + 4 + 1
    assert quantized_parameter_bytes(10, 16, n_scales=10) == 20 + 4 + 40 + 20


def small_model(d=3, seed=0, n=200):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * rng.uniform(0.5, 3, d) + rng.normal(size=d)
    y = X @ rng.normal(size=d) + 0.5 + 0.1 * rng.normal(size=n)
    return fit_model(X, y), X, y


def test_sweep_has_one_row_per_configuration_with_its_fidelity_and_size():
    model, X, y = small_model()
    rows = sweep(model, X, y, bits=[3, 8], roundings=["nearest"])
    assert [(r["bits"], r["granularity"], r["rounding"]) for r in rows] == [
        (bits, granularity, rounding)
        for bits in (3, 8)
        for granularity in ("per-tensor", "per-channel")
        for rounding in ("nearest",)
    ]
    for row in rows:
        config = QuantConfig(f"int{row['bits']}", row["granularity"], row["rounding"])
        quantized = quantize_model(model, config)
        assert row["applied_rounding"] == quantized.rounding == row["rounding"]
        for name, value in fidelity(model, quantized, X, y).items():
            assert row[name] == value, name
        scales = 1 if row["granularity"] == "per-tensor" else 3
        assert row["parameter_bytes"] == quantized_parameter_bytes(3, row["bits"], scales)


def test_gate_limits_are_inclusive_and_failures_are_joined():
    figures = {"delta_r2": -0.01, "max_abs_diff": 0.5}
    assert limits_met(figures, GateConfig(0.01, 0.5)) == {"max_r2_drop": True, "max_abs_diff": True}
    assert gate_failure("int4", figures, GateConfig(0.01, 0.5)) is None
    assert gate_failure("int4", figures, GateConfig(0.005, 0.25)) == (
        "int4 loses 0.010000 R² against the float model, more than --max-r2-drop 0.005 "
        "and moves a prediction by 0.500000, more than --max-abs-diff 0.25"
    )


# --------------------------------------------------------------------------- grids


def direct_model(coef, intercept=0.0, mean=None, std=None, low=None, high=None, quantiles=None):
    """A LinearModel with chosen coefficients and training statistics (identity correlation)."""
    d = len(coef)
    f = lambda v, default: np.asarray(default if v is None else v, dtype=np.float64)  # noqa: E731
    mean, std = f(mean, np.zeros(d)), f(std, np.ones(d))
    low, high = f(low, mean - 3 * std), f(high, mean + 3 * std)
    q_low, q_high = (low, high) if quantiles is None else map(np.asarray, quantiles)
    stats = FeatureStats(1000, mean, std, low, high, 0.001, q_low, q_high, np.eye(d))
    return LinearModel(tuple(f"x{j}" for j in range(d)), "y", f(coef, None), intercept, stats)


def test_per_channel_nearest_gives_every_weight_its_own_full_range():
    coef = np.array([0.5, -2.0, 0.0, 3.0])
    for name, zero_points in [("int8", [0, 0, 0, 0]), ("uint8", [0, 255, 0, 0])]:
        quantized = quantize_model(direct_model(coef), QuantConfig(name, "per-channel", "nearest"))
        dtype = parse_dtype(name)
        assert quantized.zero_point.dtype == np.int64
        np.testing.assert_array_equal(quantized.zero_point, zero_points)
        span = dtype.qmax - dtype.qmin if not dtype.symmetric else dtype.qmax
        expected = np.float32(np.abs(coef) / span)
        # a zero weight gets the tensor's scale: max |w| symmetric, max − min asymmetric
        expected[2] = np.float32((3.0 if dtype.symmetric else 5.0) / span)
        np.testing.assert_array_equal(quantized.scale, expected)
        np.testing.assert_allclose(quantized.dequantized_weights(), coef, rtol=1e-7)
        assert quantized.dequantized_weights()[2] == 0.0


def test_range_factors_to_try():
    """Nearest keeps min/max; the others also try narrower and wider ranges, 1.0 among them,
    largest first (ties go to the wider grid), and fewer of them for wide models."""
    np.testing.assert_array_equal(_shrink_factors(QuantConfig(rounding="nearest"), 8), [1.0])
    for rounding in ("hessian", "optimal"):
        narrow, at_64, wide = (
            _shrink_factors(QuantConfig(rounding=rounding), d) for d in (1, 64, 65)
        )
        for factors in (narrow, wide):
            assert 1.0 in factors
            assert (factors.max(), factors.min()) == (1.25, 0.5)
            assert np.all(np.diff(factors) < 0)
        np.testing.assert_array_equal(at_64, narrow)
        assert len(wide) < len(narrow)


def test_range_factors_are_whole_percents_or_five_percent_steps_for_wide_models():
    """The scale search's grid: every 1% from 125% down to 50% of the min/max range, every
    5% above 64 features (so 100%, the min/max grid itself, is one of the steps)."""
    for d, step in [(8, 0.01), (65, 0.05)]:
        factors = _shrink_factors(QuantConfig(rounding="hessian"), d)
        np.testing.assert_allclose(factors, np.arange(1.25, 0.5 - step / 2, -step), atol=1e-12)


def test_a_shrunk_grid_scales_every_range_including_the_one_lent_to_a_zero_weight():
    values = np.array([0.5, -2.0, 0.0, 3.0])
    for granularity in ("per-tensor", "per-channel"):
        grid = _grid(values, parse_dtype("int8"), granularity, 0.5)
        ranges = np.abs(values) if granularity == "per-channel" else np.full(4, 3.0)
        ranges[2] = 3.0  # a zero weight gets the (shrunk) tensor's scale
        np.testing.assert_array_equal(grid.scale, np.float32(ranges * 0.5 / 127))
        np.testing.assert_array_equal(grid.zero_point, np.zeros(4))


def test_clips_is_beyond_half_a_step_past_either_end():
    grid = Grid(np.full(1, 0.5), np.full(1, 2), -7, 7)  # code = value / 0.5 + 2
    edge_high, edge_low = (7.5 - 2) * 0.5, (-7.5 - 2) * 0.5
    assert not _clips(np.array([edge_high]), grid)
    assert _clips(np.array([np.nextafter(edge_high, np.inf)]), grid)
    assert not _clips(np.array([edge_low]), grid)
    assert _clips(np.array([np.nextafter(edge_low, -np.inf)]), grid)
    assert not _clips(np.array([0.0]), grid)
    assert _clips(np.array([0.0, 100.0]), Grid(np.full(2, 0.5), np.full(2, 2), -7, 7))


def test_optimal_rounding_is_exact_up_to_32_features_and_nearest_stays_nearest():
    rng = np.random.default_rng(3)
    for d, applied in [(32, "optimal"), (33, "hessian")]:
        model = direct_model(rng.normal(size=d))
        config = QuantConfig("int4", rounding="optimal")
        assert quantize_model(model, config).rounding == applied
        note = rounding_note(config, d)
        assert (note is None) == (applied == "optimal")
        if note:
            assert "exact only up to 32 features (this model has 33)" in note
    for rounding in ("nearest", "hessian"):
        model = direct_model(rng.normal(size=40))
        assert quantize_model(model, QuantConfig("int4", rounding=rounding)).rounding == rounding
        assert rounding_note(QuantConfig("int4", rounding=rounding), 40) is None


# --------------------------------------------------------------------------- integer-only


def test_integer_weights_are_per_tensor_symmetric_whatever_the_config():
    model, _, _ = small_model(d=4, seed=1)
    reference = build_integer_model(model, QuantConfig("int8", "per-tensor", "nearest"))
    for config in (QuantConfig("uint8", "per-channel", "nearest"), QuantConfig("uint8")):
        built = build_integer_model(model, replace(config, rounding="nearest"))
        assert built.weight_dtype == "int8"
        np.testing.assert_array_equal(built.weights, reference.weights)
        assert built.accumulator_scale == reference.accumulator_scale


def offset_features():
    """A weighted feature spanning 10 σ (the widest) beside unweighted ones far from zero."""
    std = np.array([1.0, 2.0, 0.5, 3.0, 0.25, 7.0])
    mean = np.array([0.0, 1e6, -3e7, 4.5e5, 123456.7, -9e6])
    reach = np.array([10, 3, 3, 3, 3, 3]) * std
    return direct_model([1.0, 0, 0, 0, 0, 0], 3.0, mean, std, mean - reach, mean + reach)


def float32_ceil(values):
    """The smallest float32 not below each value, by brute force over its two neighbours."""
    nearest = np.asarray(values).astype(np.float32)
    up = np.nextafter(nearest, np.float32(np.inf))
    return np.where(nearest.astype(np.float64) >= values, nearest, up)


def test_minmax_input_calibration_spans_the_codes_of_the_widest_feature():
    """Each feature's training minimum is code qmin and the widest feature's maximum the last
    code or the one below it; scales are float32 values rounded up (never narrower than the
    range needs), and the zero points were computed with exactly those."""
    model = offset_features()
    built = build_integer_model(model, integer=IntegerConfig("int8", "minmax"))
    assert built.input_scale.dtype == np.float32
    np.testing.assert_array_equal(built.input_scale, float32_ceil(model.feature_std * 20 / 255))
    stats = model.stats
    codes, clipped = built.quantize_inputs(np.stack([stats.minimum, stats.maximum]))
    assert not clipped.any()
    np.testing.assert_array_equal(codes[0], [-128] * 6)
    assert codes[1, 0] in (126, 127)


def test_an_input_at_the_calibrated_maximum_is_not_reported_as_clipped():
    model = offset_features()
    built = build_integer_model(model, integer=IntegerConfig("int16", "minmax"))
    _, clipped = built.quantize_inputs(np.stack([model.stats.minimum, model.stats.maximum]))
    assert not clipped.any()


def test_a_rounding_tie_that_would_code_the_maximum_past_qmax_widens_that_scale():
    """Step 0.25 exactly (a float32): the minimum is −101.5 steps, a tie rint takes to
    −102, and the maximum 153.5 steps, a tie rint takes to 154, one code past 127. That
    feature's scale is widened by one float32 step; the other feature's is untouched."""
    low, high = np.array([-101.5 * 0.25, -1.0]), np.array([153.5 * 0.25, 1.0])
    model = direct_model([1.0, 1.0], 0.0, [0.0, 0.0], [1.0, 1.0], low, high)
    built = build_integer_model(model, integer=IntegerConfig("int8", "minmax"))
    widened = np.nextafter(np.float32(0.25), np.float32(1.0))
    np.testing.assert_array_equal(built.input_scale, [widened, np.float32(0.25)])
    codes, clipped = built.quantize_inputs(np.stack([low, high]))
    assert not clipped.any()
    np.testing.assert_array_equal(codes, [[-128, -128], [126, -120]])


def test_percentile_calibration_narrower_than_one_standard_deviation():
    mean, std = np.zeros(2), np.ones(2)
    quantiles = (np.array([-0.15, -0.05]), np.array([0.25, 0.05]))  # the widest spans 0.4 σ
    model = direct_model([1.0, 2.0], 0.0, mean, std, quantiles=quantiles)
    built = build_integer_model(model, integer=IntegerConfig("int8", "percentile"))
    np.testing.assert_array_equal(built.input_scale, float32_ceil(std * 0.4 / 255))
    codes, clipped = built.quantize_inputs(np.array([[-0.15, 0.0], [0.25, 0.0]]))
    assert not clipped.any()
    assert codes[:, 0].tolist() == [-128, 127]


def test_no_calibrated_spread_gives_an_input_step_of_one_standard_deviation():
    mean, std = np.array([2.0, -8.0]), np.array([0.5, 4.0])  # on the 1 σ grid
    model = direct_model([1.0, 2.0], 1.0, mean, std, quantiles=(mean, mean))
    built = build_integer_model(model, integer=IntegerConfig("int8", "percentile"))
    np.testing.assert_array_equal(built.input_scale, std.astype(np.float32))
    codes, clipped = built.quantize_inputs(mean[None])
    assert not clipped.any()
    np.testing.assert_array_equal(codes, [[-128, -128]])
    assert built.predict(mean[None])[0] == pytest.approx(
        model.predict(mean[None])[0], abs=built.accumulator_scale
    )


@pytest.mark.parametrize(
    ("mean", "low", "high", "intercept"),
    [(1.0, -1.0, 1.5, -1.0), (-1.0, -1.5, 1.0, 1.0)],
    ids=["far-below-the-mean", "far-above-the-mean"],
)
def test_the_output_scale_fits_the_calibrated_range_tightly(mean, low, high, intercept):
    """ŷ at either end of the calibrated range is representable (no output clipping) and the
    larger end uses at least 90% of the 16-bit output range."""
    model = direct_model([1.0], intercept, [mean], [1.0], [low], [high])
    built = build_integer_model(model, QuantConfig("int16", rounding="nearest"))
    X = np.array([[low], [high]])
    codes, clipped = built.predict_codes(X)
    assert not clipped.any()
    assert np.all(np.abs(codes) < 2**15 - 1)
    assert np.abs(codes).max() >= 0.9 * (2**15 - 1)
    np.testing.assert_allclose(built.predict(X), model.predict(X), atol=4 * built.output_scale)


@pytest.mark.parametrize("exponent", [-20, -40, -60, 20])
def test_integer_only_inference_does_not_depend_on_the_targets_units(exponent):
    """The same model with its target in other units (coefficients and intercept times a
    power of two, down to |ŷ| ~ 1e-18) builds the same integers and output codes, its
    output scale multiplied by that power: no absolute floor drowns small predictions."""
    model, X, _ = small_model(d=3, seed=2)
    factor = 2.0**exponent
    scaled = replace(model, coef=model.coef * factor, intercept=model.intercept * factor)
    reference, built = build_integer_model(model), build_integer_model(scaled)
    np.testing.assert_array_equal(built.weights, reference.weights)
    assert (built.bias, built.multiplier, built.shift) == (
        reference.bias,
        reference.multiplier,
        reference.shift,
    )
    assert built.output_scale == reference.output_scale * factor
    np.testing.assert_array_equal(built.predict_codes(X)[0], reference.predict_codes(X)[0])


def test_a_multiplier_rounding_up_to_2_to_the_31_is_renormalised():
    """accumulator_scale / output_scale = 1 − 2^-32: its mantissa rounds to 2^31, which is
    not an int32; the model must carry 2^30 and one less bit of shift instead."""
    c, s = 127 * (1 + 2**-16), 1 - 2**-16  # weight scale 1 + 2^-16, input step 1 − 2^-16
    low, high = -100.25 * s, 154.75 * s  # 255 steps, neither end on a rounding tie
    intercept = (32767 - 1e-12) / 1.01 - c * high  # output scale exactly 1.0
    model = direct_model([c], intercept, [0.0], [1.0], [low], [high])
    built = build_integer_model(
        model, QuantConfig("int8", rounding="nearest"), IntegerConfig("int8")
    )
    assert built.accumulator_scale == 1 - 2**-32
    assert built.output_scale == 1.0
    assert (built.multiplier, built.shift) == (2**30, 30)
    X = np.linspace(low, high, 9)[:, None]
    codes, clipped = built.predict_codes(X)
    assert not clipped.any()
    accumulator = built.accumulate(built.quantize_inputs(X)[0])
    np.testing.assert_array_equal(codes, np.rint(accumulator * built.accumulator_scale))


def test_the_requantization_shift_never_falls_below_one():
    """A feature with no weight but a huge calibrated range makes the input step (and the
    accumulator scale) large: from shift 1 on, the output scale is widened instead of the
    shift falling to 0, and the model still predicts within one accumulator step."""
    shifts = {}
    for k in range(24, 32):
        model = direct_model([1.0, 0.0], 0.0, [0, 0], [1, 1], [-1, -(2.0**k)], [1, 2.0**k])
        config = (QuantConfig("int8", rounding="nearest"), IntegerConfig("int8"))
        built = build_integer_model(model, *config)
        shifts[k] = built.shift
        X = np.array([[0.0, 0.0], [0.5, 2.0**k / 3], [-0.9, -(2.0**k)]])
        np.testing.assert_allclose(
            built.predict(X), model.predict(X), atol=2 * built.accumulator_scale
        )
    assert [shifts[k] for k in range(24, 32)] == [5, 4, 3, 2, 1, 1, 1, 1]


def test_the_requantization_shift_must_be_at_most_62():
    """A percentile range near zero far below the feature's mean: a tiny input step beside a
    large output range, so the shift grows; 62 is the last one accepted."""
    shifts = {}
    for k in (30, 31, 32):
        model = direct_model([1.0], 0.0, [1.0], [1.0], [0.0], [2.0], quantiles=([0.0], [2.0**-k]))
        config = (QuantConfig("int8", rounding="nearest"), IntegerConfig("int8", "percentile"))
        try:
            shifts[k] = build_integer_model(model, *config).shift
        except InputError as error:
            shifts[k] = str(error)
    assert shifts == {30: 61, 31: 62, 32: "integer-only requantization shift 63 is out of range"}


def test_a_model_predicting_zero_everywhere_can_be_built_integer_only():
    built = build_integer_model(direct_model([0.0, 0.0], 0.0))
    assert built.predict(np.zeros((1, 2)))[0] == 0.0


def test_an_accumulator_bound_of_exactly_int32_max_is_accepted():
    """Σ|w|·2^15 + |bias| = 2^31 − 1 fits; one more does not."""
    wide = (QuantConfig("int16", rounding="nearest"), IntegerConfig("int16"))
    unit = build_integer_model(direct_model([1.0]), *wide)
    weights = int(np.abs(unit.weights).sum()) * 2**15
    for bias, fits in [(2**31 - 1 - weights, True), (2**31 - weights, False)]:
        offset = int(unit.weights @ unit.input_zero_point)  # the inputs' zero points
        model = direct_model([1.0], (bias + offset) * unit.accumulator_scale)
        if fits:
            assert build_integer_model(model, *wide).bias == bias
        else:
            with pytest.raises(InputError, match="could reach 2,147,483,648, beyond int32"):
                build_integer_model(model, *wide)


def test_integer_only_accumulation_must_fit_int32():
    one = direct_model([1.0])
    wide = (QuantConfig("int16", rounding="nearest"), IntegerConfig("int16"))
    built = build_integer_model(one, *wide)  # 32767 · 2^15: fits
    assert int(np.abs(built.weights).sum()) * 2**15 + abs(built.bias) < 2**31
    message = r"beyond int32: use --input-dtype int8 or fewer weight bits"
    with pytest.raises(InputError, match=message):  # three of them do not
        build_integer_model(direct_model([1.0, 1.0, 1.0]), *wide)
    far = direct_model([1.0], mean=[1000.0], low=[999.0], high=[1001.0])
    with pytest.raises(InputError, match=message):  # nor does a bias that large
        build_integer_model(far, *wide)


# --------------------------------------------------------------------------- scales, rounding


def test_empty_or_all_zero_tensors_get_scale_one_and_an_exact_zero():
    for name in ("int8", "uint8"):
        dtype = parse_dtype(name)
        assert choose_scale_and_zero_point(np.array([]), dtype) == (1.0, 0)
        assert choose_scale_and_zero_point(np.zeros(3), dtype) == (1.0, 0)


@pytest.mark.parametrize(
    ("values", "low", "high"),
    [([0.25, 0.75], 0.0, 0.75), ([-1.0, 0.5], -1.0, 0.5), ([-0.5, -0.25], -0.5, 0.0)],
)
def test_asymmetric_ranges_always_contain_zero(values, low, high):
    scale, zero_point = choose_scale_and_zero_point(np.array(values), parse_dtype("uint8"))
    assert scale == float(np.float32((high - low) / 255))
    assert zero_point == round(-low / scale)


def test_per_channel_is_never_worse_than_one_shared_scale():
    """[127, 1] sits exactly on the int8 grid of scale 1; per-weight scales 1 and 1/127 (a
    float32) do not: the per-tensor candidate must win, reported as the requested rounding."""
    for rounding in ("nearest", "hessian"):
        model = direct_model([127.0, 1.0])
        quantized = quantize_model(model, QuantConfig("int8", "per-channel", rounding))
        assert quantized.rounding == rounding
        np.testing.assert_array_equal(quantized.dequantized_weights(), [127.0, 1.0])


def collinear_problem(seed=5, d=6):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(300, d))
    z[:, 1:] = z[:, :1] + 0.05 * rng.normal(size=(300, d - 1))
    return rng.normal(size=d) * 2, z.T @ z / 300


def test_optimal_rounding_improves_on_hessian_where_hessian_is_not_optimal():
    values, gram = collinear_problem()
    dtype = parse_dtype("int3")
    hessian = round_weights(values, gram, dtype, QuantConfig("int3", rounding="hessian"))
    optimal = round_weights(values, gram, dtype, QuantConfig("int3", rounding="optimal"))
    assert optimal.rounding == "optimal"
    assert optimal.cost < 0.6 * hessian.cost
    assert optimal.cost == objective(values, gram, optimal.grid, optimal.codes)


def test_optimal_rounding_warns_when_the_exact_search_runs_out_of_budget(monkeypatch):
    values, gram = collinear_problem()
    monkeypatch.setattr(
        quantize_module, "sphere_decode", functools.partial(sphere_decode, node_budget=1)
    )
    with pytest.warns(RuntimeWarning) as record:
        result = round_weights(
            values, gram, parse_dtype("int3"), QuantConfig("int3", rounding="optimal")
        )
    assert {str(warning.message) for warning in record} == {
        "optimal rounding hit its search budget: the result is the best found, not proven optimal"
    }
    if "MUTANT_UNDER_TEST" not in os.environ:  # mutmut's trampoline adds a stack frame
        assert {warning.filename for warning in record} == {__file__}
    assert result.cost == objective(values, gram, result.grid, result.codes)


# --------------------------------------------------------------------------- the float model


@pytest.mark.parametrize(
    ("value", "base", "code", "bias_scale"),
    [
        (0.3, 1.0, round(0.3 * 2**16), 2**-16),  # the finest power of two: 2^-16
        (2.0**14, 1.0, 2**30, 2**-16),  # exactly 2^30 at 2^-16 still fits
        (2.0**14 + 1, 1.0, round((2.0**14 + 1) * 2**15), 2**-15),
        (3 * 2.0**27, 1.0, 3 * 2**28, 0.5),  # only 2^-1 keeps it within 2^30
        (1.5 * 2.0**30, 1.0, round(1.5 * 2**30), 1.0),  # beyond 2^30 at every shift: int32
        (0.75 * 2.0**30, 0.5, round(1.5 * 2**30), 0.5),  # ... at the base scale
        (2.0**31 - 1, 1.0, 2**31 - 1, 1.0),
        (-(2.0**31), 1.0, -(2**31), 1.0),
    ],
)
def test_the_bias_takes_the_finest_power_of_two_scale_that_fits(value, base, code, bias_scale):
    assert _int32_bias(value, base, "bias") == (code, bias_scale)


@pytest.mark.parametrize("value", [2.0**31, -(2.0**31) - 1])
def test_a_bias_beyond_int32_is_refused(value):
    message = (
        f"the folded intercept {value:.6g} does not fit in int32 at the scale 1: the weights "
        "are too small relative to the intercept for this dtype"
    )
    with pytest.raises(InputError, match=f"^{re.escape(message)}$"):
        _int32_bias(value, 1.0, "folded intercept")


def test_quantize_model_keeps_the_mean_prediction_and_a_power_of_two_bias_scale():
    """Features far from zero (their means are not float32 values) and a string config."""
    mean = np.array([1e6 + 0.3, -2e5 - 0.7])
    model = direct_model([1.5, -0.8], 4.0, mean, [1.0, 3.0])
    quantized = quantize_model(model, "uint4")
    assert (quantized.dtype, quantized.bits, quantized.symmetric) == ("uint4", 4, False)
    assert quantized.scale.dtype == np.float32
    ratio = quantized.bias_scale / float(quantized.scale.max())
    assert ratio == 2.0 ** round(np.log2(ratio))  # the weight scale times a power of two
    assert quantized.predict(mean[None])[0] == pytest.approx(
        model.predict(mean[None])[0], abs=quantized.bias_scale
    )


def test_an_all_zero_model_keeps_its_intercept_at_scale_one():
    quantized = quantize_model(direct_model([0.0, 0.0], 0.3), QuantConfig("int8"))
    np.testing.assert_array_equal(quantized.weights, [0, 0])
    assert (quantized.bias, quantized.bias_scale) == (round(0.3 * 2**16), 2**-16)


def test_an_intercept_too_large_for_the_weights_is_refused():
    with pytest.raises(InputError, match=r"^the folded intercept 1e\+20 does not fit in int32"):
        quantize_model(direct_model([1e-3], 1e20), QuantConfig("int8"))
    with pytest.raises(
        InputError,
        match=r"^the model has NaN or infinite coefficients; refit it before quantizing$",
    ):
        quantize_model(direct_model([np.nan]), QuantConfig("int8"))


# --------------------------------------------------------------------------- hostile ranges (attack)


@pytest.mark.parametrize(
    ("value", "bits"),
    [(1.7e18, 16), (1e9, 16), (-1e20, 8), (5e5, 16)],  # hung / built but would not load / wrapped
)
def test_a_weightless_column_far_from_zero_gets_a_scale_of_its_own(value, bits):
    """A constant column (weight 0) far from zero: σ·t would need a zero point beyond int32
    (the tie loop then ran for minutes, or the model was refused on load); its codes never
    reach the accumulator, so it gets a scale of its own and the model builds and loads."""
    model = direct_model([1.0, 0.0], mean=[0, value], low=[-3, value], high=[3, value])
    built = build_integer_model(model, integer=IntegerConfig(f"int{bits}"))
    loaded = codecs.decode_integer(codecs.encode_integer(built), "x")
    rows = np.array([[-3.0, value], [0.0, value], [3.0, value], [1.0, value]])
    codes, clipped = loaded.quantize_inputs(rows)
    assert not clipped.any()
    assert codes[0, 0] == -(2 ** (bits - 1))
    # within half an input step per weighted feature and an output step or two
    tolerance = 0.5 * np.abs(model.coef) @ built.input_scale + 2 * built.output_scale
    np.testing.assert_allclose(loaded.predict(rows), model.predict(rows), atol=tolerance)
    assert loaded.input_scale[0] == float32_ceil(6 / 65535 if bits == 16 else 6 / 255)  # σ·t
    own = abs(value) / (2**bits - 1)  # its own: the largest magnitude over the code span
    assert built.input_scale[1] == float32_ceil(own)


@pytest.mark.parametrize("offset", [2**31 - 1 - 2**15, -(2**31 - 1)])
def test_a_weightless_column_keeps_the_common_step_up_to_a_zero_point_of_int32(offset):
    """The boundary of the rule above: rint(low/scale) = offset gives the zero point
    −2^15 − offset, at (or one below) the int32 limits: still σ·t, exactly."""
    scale = float(float32_ceil(6 / 65535))
    value = offset * scale
    model = direct_model([1.0, 0.0], mean=[0, value], low=[-3, value], high=[3, value])
    built = build_integer_model(model)
    assert built.input_scale[1] == built.input_scale[0] == np.float32(scale)
    assert built.input_zero_point[1] == -(2**15) - offset


def test_a_model_whose_every_column_is_weightless_and_far_from_zero_predicts_its_intercept():
    model = direct_model([0.0, 0.0], 2.0, mean=[1e10, -1e12], low=[1e10, -1e12], high=[1e10, -1e12])
    built = build_integer_model(model)
    rows = np.array([[1e10, -1e12]])
    assert built.predict(rows)[0] == pytest.approx(2.0, abs=2 * built.accumulator_scale)
    assert not built.predict_clipped(rows)[1].any()


def test_a_weighted_column_too_far_from_zero_for_its_spread_is_refused_by_name():
    """A million σ from zero: its zero point would not fit int32, and it has a weight, so
    no scale of its own can serve it (before, the model built and then failed to load)."""
    model = direct_model([1.0, 1000.0], mean=[0, 1000.0], std=[1, 1e-3])
    message = re.escape("cannot code feature 'x1' as int16 inputs: it lies around 1000, far")
    with pytest.raises(InputError, match=message):
        build_integer_model(model)


@pytest.mark.parametrize(
    "model",
    [
        direct_model([1e40], 0.0, [0.0], [1.0], [-3.0], [1e4]),  # output scale beyond float32
        direct_model([1e100, 1e100]),  # weight scale beyond float32 (a target in tiny units)
    ],
)
def test_scales_beyond_float32_are_refused_not_stored_as_inf(model):
    message = (
        r"a quantization scale of \S+ is beyond float32: the target's or the features' values "
        "are too large to quantize; express them in larger units"
    )
    with pytest.raises(InputError, match=f"^{message}$"):
        build_integer_model(model)
