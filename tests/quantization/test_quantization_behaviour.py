"""Quantized-model behaviour: the issue's fidelity targets on California Housing and on
synthetic data built to break naive schemes, edge cases, integer-only inference, the gate."""

import json
import warnings

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from helpers import collinear_data, fit_model, model_with, snapshot, split_rows, write_csv
from linreg_ops import pipeline
from linreg_ops.config import GateConfig as Gate
from linreg_ops.config import IntegerConfig, QuantConfig
from linreg_ops.errors import InputError, QualityGateError
from linreg_ops.inference import loading, predict
from linreg_ops.quantization.gate import fidelity
from linreg_ops.quantization.quantize import build_integer_model, quantize_model, rounding_note
from linreg_ops.quantization.rounding import objective
from linreg_ops.storage import store
from linreg_ops.training import sources


@pytest.fixture(scope="module")
def california_model(models, test_rows):
    return models.float, test_rows[1][:, :-1], test_rows[1][:, -1]


def delta_r2(model, config, X, y):
    return fidelity(model, quantize_model(model, config), X, y)["delta_r2"]


# --------------------------------------------------------------------------- California


def test_california_int8_per_tensor_nearest(california_model):
    assert (
        abs(
            delta_r2(
                *california_model[:1],
                QuantConfig("int8", rounding="nearest"),
                *california_model[1:],
            )
        )
        <= 0.001
    )


@pytest.mark.parametrize("rounding", ["hessian", "optimal"])
def test_california_int4_recovers_with_hessian_aware_rounding(california_model, rounding):
    model, X, y = california_model
    nearest = delta_r2(model, QuantConfig("int4", rounding="nearest"), X, y)
    assert nearest < -0.02, "int4 nearest should visibly hurt, or this test proves nothing"
    assert abs(delta_r2(model, QuantConfig("int4", rounding=rounding), X, y)) <= 0.002


def test_california_int16(california_model):
    model, X, y = california_model
    assert abs(delta_r2(model, QuantConfig("int16"), X, y)) <= 1e-5


def test_california_integer_only_int8_weights_int16_inputs(california_model):
    model, X, y = california_model
    integer = build_integer_model(model, QuantConfig("int8"), IntegerConfig("int16", "minmax"))
    figures = fidelity(model, integer, X, y)
    assert figures["mean_abs_diff_inside"] <= 0.005
    assert abs(figures["delta_r2"]) <= 0.001
    assert 0 < figures["clipped_rows"] < 10  # a few test rows lie outside the training range


def test_percentile_calibration_clips_more_rows(california_model):
    model, X, y = california_model
    minmax = fidelity(
        model, build_integer_model(model, integer=IntegerConfig(calibration="minmax")), X, y
    )
    percentile = fidelity(
        model, build_integer_model(model, integer=IntegerConfig(calibration="percentile")), X, y
    )
    assert percentile["clipped_rows"] > minmax["clipped_rows"]


# --------------------------------------------------------------------------- synthetic


def test_collinear_weights_break_nearest_rounding():
    X, y = collinear_data(0)
    X_train, y_train, X_test, y_test = split_rows(X, y)
    model = fit_model(X_train, y_train)
    assert delta_r2(model, QuantConfig("int8", rounding="nearest"), X_test, y_test) < -0.03


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("rounding", ["hessian", "optimal"])
def test_collinear_weights_survive_hessian_aware_rounding(seed, rounding):
    X, y = collinear_data(seed)
    X_train, y_train, X_test, y_test = split_rows(X, y)
    model = fit_model(X_train, y_train)
    assert abs(delta_r2(model, QuantConfig("int8", rounding=rounding), X_test, y_test)) <= 0.001


def hard_dataset(seed: int, d: int):
    """Feature scales from 1e-6 to 1e6, groups of collinear features, a noisy target."""
    rng = np.random.default_rng(seed)
    n = 4000
    base = rng.normal(size=(n, d))
    for start in range(0, d - 1, 5):
        base[:, start + 1] = base[:, start] + 0.05 * rng.normal(size=n)
    scales = 10.0 ** rng.uniform(-6, 6, d)
    coef = rng.normal(size=d) * 3
    y = base @ coef + rng.normal(size=n)
    return base * scales, y


@pytest.mark.parametrize(("seed", "d"), [(0, 8), (1, 20), (2, 50)])
def test_int8_default_rounding_on_hard_synthetic_data(seed, d):
    X, y = hard_dataset(seed, d)
    X_train, y_train, X_test, y_test = split_rows(X, y)
    model = fit_model(X_train, y_train)
    assert abs(delta_r2(model, QuantConfig("int8"), X_test, y_test)) <= 0.002


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), bits=st.sampled_from([2, 3, 4, 8]))
def test_per_channel_never_worse_than_per_tensor(seed, bits):
    X, y = hard_dataset(seed, 6)
    model = fit_model(X[:1000], y[:1000])
    folded = model.coef * model.feature_std.astype(np.float32)
    costs = {}
    for granularity in ("per-tensor", "per-channel"):
        quantized = quantize_model(model, QuantConfig(f"int{bits}", granularity, "nearest"))
        error = folded - quantized.dequantized_weights()
        costs[granularity] = error @ model.stats.correlation @ error
    assert costs["per-channel"] <= costs["per-tensor"] * (1 + 1e-9) + 1e-18


# --------------------------------------------------------------------------- edge cases


@pytest.mark.parametrize("rounding", ["nearest", "hessian", "optimal"])
def test_all_zero_coefficients_keep_the_intercept(rounding):
    X = np.random.default_rng(0).normal(size=(50, 3))
    model = model_with([0.0, 0.0, 0.0], 2.0719, X)
    quantized = quantize_model(model, QuantConfig("int8", rounding=rounding))
    assert quantized.weights.tolist() == [0, 0, 0]
    np.testing.assert_allclose(quantized.predict(X), 2.0719, rtol=1e-6)
    integer = build_integer_model(model, QuantConfig("int8", rounding=rounding))
    np.testing.assert_allclose(integer.predict(X), 2.0719, rtol=1e-3)


def test_one_feature():
    X = np.linspace(-3, 3, 40)[:, None]
    model = fit_model(X, 3.0 * X[:, 0] - 1.0)
    quantized = quantize_model(model, QuantConfig("int8", rounding="optimal"))
    assert quantized.weights.tolist() == [127]
    np.testing.assert_allclose(quantized.predict(X), model.predict(X), atol=1e-6)


@pytest.mark.parametrize("rounding", ["nearest", "hessian", "optimal"])
def test_constant_feature(rounding):
    rng = np.random.default_rng(4)
    X = np.column_stack([rng.normal(size=100), np.full(100, 7.5), rng.normal(size=100)])
    model = fit_model(X, 2 * X[:, 0] - X[:, 2] + 0.5)
    assert model.feature_std[1] == 1.0
    quantized = quantize_model(model, QuantConfig("int8", rounding=rounding))
    assert quantized.weights[1] == 0
    assert fidelity(model, quantized, X, model.predict(X) + 0.01)["max_abs_diff"] < 0.02
    integer = build_integer_model(model, QuantConfig("int8", rounding=rounding))
    assert np.abs(integer.predict(X) - model.predict(X)).max() < 0.05


def test_coefficient_ratios_from_1e_minus9_to_1e6():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(300, 4)) * np.array([1e9, 1.0, 1e-6, 1e3])
    coef = np.array([1e-9, 1.0, 1e6, -2e-3])  # every feature contributes ~1 per σ
    model = model_with(coef, 0.5, X)
    quantized = quantize_model(model, QuantConfig("int8"))
    assert np.all(quantized.weights != 0), "no coefficient may be rounded away"
    y = X @ coef + 0.5
    assert abs(fidelity(model, quantized, X, y + rng.normal(size=300))["delta_r2"]) < 0.002


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_coefficients_are_refused(bad):
    X = np.random.default_rng(0).normal(size=(20, 2))
    with pytest.raises(InputError, match="NaN or infinite coefficients"):
        quantize_model(model_with([1.0, bad], 0.0, X))
    with pytest.raises(InputError, match="NaN or infinite coefficients"):
        build_integer_model(model_with([bad, 1.0], 0.0, X))


def test_1000_features_optimal_falls_back_to_hessian():
    rng = np.random.default_rng(6)
    X = rng.normal(size=(2000, 1000))
    model = fit_model(X, X @ rng.normal(size=1000) + rng.normal(size=2000))
    config = QuantConfig("int8", rounding="optimal")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quantized = quantize_model(model, config)
    assert quantized.rounding == "hessian"
    assert "used hessian rounding instead" in rounding_note(config, model.n_features)
    nearest = quantize_model(model, QuantConfig("int8", rounding="nearest"))
    folded = model.coef * model.feature_std.astype(np.float32)
    costs = [
        objective(folded, model.stats.correlation, _grid_of(q), q.weights)
        for q in (quantized, nearest)
    ]
    assert costs[0] <= costs[1]


def _grid_of(quantized):
    from linreg_ops.quantization.rounding import Grid

    d = quantized.n_features
    return Grid(
        np.broadcast_to(quantized.scale.astype(np.float64), d).copy(),
        np.broadcast_to(quantized.zero_point, d).copy(),
        -127,
        127,
    )


def test_user_csv_with_features_from_1e_minus6_to_1e6(tmp_path):
    rng = np.random.default_rng(8)
    scales = np.array([1e-6, 1e-3, 1.0, 1e3, 1e6])
    X = rng.normal(size=(1000, 5)) * scales
    y = (X / scales) @ np.array([1.0, -2.0, 0.5, 3.0, -1.5]) + rng.normal(scale=0.5, size=1000)
    path = write_csv(
        tmp_path / "wide.csv", ["a", "b", "c", "d", "e", "y"], np.column_stack([X, y]).tolist()
    )
    models = tmp_path / "models"
    pipeline.train(sources.file_source(path, "y"), models)
    result = pipeline.quantize(models, gate=Gate(max_r2_drop=0.002))
    assert abs(result.figures["delta_r2"]) <= 0.002
    assert np.all(result.quantized.weights != 0)


# --------------------------------------------------------------------------- integer-only


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), input_dtype=st.sampled_from(["int8", "int16"]))
@example(seed=568, input_dtype="int8")  # a row inside every input range saturates the output
@example(seed=507, input_dtype="int16")  # a row with a clipped input saturates it
def test_integer_output_equals_float_simulation_within_one_step(seed, input_dtype):
    """The fixed-point output is the float simulation within one step, clipped to the output
    codes; a row whose simulation lies beyond them is flagged clipped, and every row not
    flagged has its own answer (within one step)."""
    X, y = hard_dataset(seed, 5)
    model = fit_model(X[:800], y[:800])
    integer = build_integer_model(model, QuantConfig("int8"), IntegerConfig(input_dtype))
    codes, clipped = integer.predict_codes(X[800:])
    accumulator = integer.accumulate(integer.quantize_inputs(X[800:])[0])
    simulated = np.rint(accumulator * (integer.accumulator_scale / integer.output_scale))
    low, high = integer.output_range
    assert np.abs(codes - np.clip(simulated, low, high)).max() <= 1
    assert clipped[(simulated < low - 1) | (simulated > high + 1)].all()
    assert np.abs(codes[~clipped] - simulated[~clipped]).max() <= 1
    assert 2**30 <= integer.multiplier < 2**31  # M0 in [0.5, 1) as a Q31 integer


def test_an_output_that_saturates_inside_every_input_range_is_clipped():
    """Issue 13, seed 568: the input codes share one σ-step, so a narrow feature's codes reach
    far beyond its training range; a row there kept every input inside its codes, yet its
    output saturated (31.20 served for 31.73) with clipped=False."""
    X, y = hard_dataset(568, 5)
    model = fit_model(X[:800], y[:800])
    integer = build_integer_model(model, QuantConfig("int8"), IntegerConfig("int8"))
    test = X[800:]
    _, inputs_clipped = integer.quantize_inputs(test)
    predictions, clipped = integer.predict_clipped(test)
    saturated = clipped & ~inputs_clipped
    assert saturated.sum() == 1
    row = int(np.flatnonzero(saturated)[0])
    assert abs(predictions[row]) == pytest.approx(integer.output_scale * 2**15, rel=1e-4)
    assert abs(model.predict(test[row : row + 1])[0]) > abs(predictions[row]) + 0.5
    served, served_clipped = predict.predict_rows(integer, test)
    np.testing.assert_array_equal(served, predictions)
    np.testing.assert_array_equal(served_clipped, clipped)
    assert not clipped[~inputs_clipped & ~saturated].any()


def test_integer_model_json_reproduces_bit_for_bit_in_plain_python(trained_dir, models, test_rows):
    """Re-implement the documented inference from the JSON alone, without numpy."""
    spec = json.loads((trained_dir / store.INTEGER_MODEL_JSON).read_text())
    rows = test_rows[1][:200, :-1]
    expected, _ = models.integer.predict_codes(rows)
    low, high = -(2 ** (spec["input_bits"] - 1)), 2 ** (spec["input_bits"] - 1) - 1
    out_low, out_high = -(2 ** (spec["output_bits"] - 1)), 2 ** (spec["output_bits"] - 1) - 1
    for row, want in zip(rows.tolist(), expected.tolist(), strict=True):
        acc = spec["bias"]
        for x, scale, zp, w in zip(
            row, spec["input_scale"], spec["input_zero_point"], spec["weights"], strict=True
        ):
            q = min(max(round(x / scale) + zp, low), high)  # Python's round is half to even
            acc += w * q
        out = (acc * spec["multiplier"] + (1 << (spec["shift"] - 1))) >> spec["shift"]
        assert min(max(out, out_low), out_high) == want


# --------------------------------------------------------------------------- gate


def test_gate_refuses_and_writes_nothing(models_copy):
    before = snapshot(models_copy)
    with pytest.raises(
        QualityGateError,
        match=r"int4 per-tensor nearest loses 0\.0\d+ R² .* more than --max-r2-drop 0\.001",
    ):
        pipeline.quantize(models_copy, QuantConfig("int4", rounding="nearest"))
    with pytest.raises(
        QualityGateError, match=r"moves a prediction by .* more than --max-abs-diff 0\.01"
    ):
        pipeline.quantize(models_copy, QuantConfig("int8"), gate=Gate(max_abs_diff=0.01))
    assert snapshot(models_copy) == before


def test_the_gate_covers_the_integer_only_model(models_copy):
    """Issue 8: int8 inputs moved predictions by 0.58 and were published anyway."""
    before = snapshot(models_copy)
    with pytest.raises(
        QualityGateError, match=r"integer-only int8×int8 minmax moves a prediction by 0\.\d+"
    ):
        pipeline.quantize(models_copy, integer=IntegerConfig("int8"), gate=Gate(None, 0.05))
    assert snapshot(models_copy) == before


def test_metrics_json_says_which_limits_each_model_met(models_copy):
    result = pipeline.quantize(models_copy, gate=Gate(max_r2_drop=0.001, max_abs_diff=1.0))
    gate = loading.load_metrics(result.version)["gate"]
    assert gate["max_r2_drop"] == 0.001
    assert gate["max_abs_diff"] == 1.0
    assert gate["quantized"] == {"max_r2_drop": True, "max_abs_diff": True}
    assert gate["integer_only"] == {"max_r2_drop": True, "max_abs_diff": True}


def test_gate_can_be_switched_off(models_copy):
    result = pipeline.quantize(
        models_copy, QuantConfig("int4", rounding="nearest"), gate=Gate(None, None)
    )
    assert result.figures["delta_r2"] < -0.02
    assert loading.load(models_copy).quantized.dtype == "int4"
    gate = loading.load_metrics(result.version)["gate"]
    assert gate["quantized"] == {"max_r2_drop": True, "max_abs_diff": True}


def test_a_gate_failure_in_run_leaves_the_previous_version(models_copy, regression_csv):
    """Issue 9: run used to replace model.json and delete the quantized models before its
    gate refused the new ones."""
    before = snapshot(models_copy)
    with pytest.raises(QualityGateError):
        pipeline.run(
            sources.file_source(regression_csv, "y"), models_copy, models_copy.parent / "reports",
            quant=QuantConfig("int2", rounding="nearest"),
        )  # fmt: skip
    assert snapshot(models_copy) == before
    assert loading.load(models_copy).kinds() == ["float", "quantized", "integer"]
