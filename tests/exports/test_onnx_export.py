"""ONNX export: valid standard graphs, and numbers that match the numpy models.

float: within 1e-12 relative of ``LinearModel.predict``; quantized: within a stated float32
error bound of ``QuantizedLinearModel.predict``; integer: codes, clipped flags and ŷ equal to
``IntegerLinearModel.predict_codes`` / ``predict`` bit for bit.
"""

import json
from dataclasses import replace
from fractions import Fraction

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import linreg_ops
from helpers import SEED_COEF, SEED_R2
from linreg_ops.errors import InputError
from linreg_ops.exports import onnx as export

SHA = "0123456789abcdef" * 4
F32_UNIT = 2.0**-24  # unit roundoff of float32


def exported(model, **options) -> tuple[bytes, onnx.ModelProto]:
    data = export.onnx_model_bytes(model, artifact_sha256=SHA, **options)
    return data, onnx.load_from_string(data)


def reference_codes(integer, X):
    """The numpy reference on exactly the values the graph sees."""
    return integer.predict_codes(np.asarray(X, dtype=np.float64))


def test_the_california_fixture_is_the_seed_run(cal_models):
    """The models every figure here is measured on: the seed's split and fit (R² 0.5758)."""
    prediction = cal_models.model.predict(cal_models.X_test)
    residual = np.sum((cal_models.y_test - prediction) ** 2)
    r2 = 1 - residual / np.sum((cal_models.y_test - cal_models.y_test.mean()) ** 2)
    assert round(float(r2), 4) == SEED_R2
    np.testing.assert_allclose(cal_models.model.coef, SEED_COEF, rtol=1e-6)


# --------------------------------------------------------------------------- structure


@pytest.mark.parametrize("kind", ["model", "quantized", "integer"])
def test_graph_is_valid_standard_onnx_with_metadata(cal_models, kind):
    model = getattr(cal_models, kind)
    data, proto = exported(model)
    onnx.checker.check_model(proto, full_check=True)
    assert proto.ir_version == export.ONNX_IR_VERSION
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", export.ONNX_OPSET)]
    assert {node.domain for node in proto.graph.node} <= {"", "ai.onnx"}
    assert all(onnx.defs.has(node.op_type, "") for node in proto.graph.node)
    [graph_input] = proto.graph.input
    assert graph_input.name == "X"
    expected = onnx.TensorProto.DOUBLE if kind == "model" else onnx.TensorProto.FLOAT
    assert graph_input.type.tensor_type.elem_type == expected
    dims = graph_input.type.tensor_type.shape.dim
    assert dims[0].dim_param == "N"
    assert not dims[0].HasField("dim_value")
    assert dims[1].dim_value == model.n_features
    meta = {prop.key: prop.value for prop in proto.metadata_props}
    assert json.loads(meta["feature_names"]) == list(model.feature_names)
    assert (
        meta["model_kind"]
        == {"model": "float", "quantized": "quantized", "integer": "integer"}[kind]
    )
    assert meta["artifact_sha256"] == SHA
    assert meta["linreg_ops_version"] == linreg_ops.__version__
    assert export.onnx_model_bytes(model, artifact_sha256=SHA) == data  # deterministic


def test_output_names_and_types(cal_models):
    _, proto = exported(cal_models.integer)
    outputs = {o.name: o.type.tensor_type.elem_type for o in proto.graph.output}
    assert outputs == {
        "codes": onnx.TensorProto.INT16,
        "clipped": onnx.TensorProto.BOOL,
        "y": onnx.TensorProto.DOUBLE,
    }
    for kind, elem in [("model", onnx.TensorProto.DOUBLE), ("quantized", onnx.TensorProto.FLOAT)]:
        _, proto = exported(getattr(cal_models, kind))
        assert [(o.name, o.type.tensor_type.elem_type) for o in proto.graph.output] == [("y", elem)]


def test_odd_feature_names_survive_in_metadata(fit, quantize_variants):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 3))
    names = ['a "quoted" */ name', "ünïcödé ☃", ""]
    model = fit(X, X @ [1.0, 2.0, 3.0] + rng.normal(size=300), names=names)
    for candidate in (
        model,
        quantize_variants(model),
        quantize_variants(model, input_dtype="int8"),
    ):
        _, proto = exported(candidate)
        meta = {prop.key: prop.value for prop in proto.metadata_props}
        assert json.loads(meta["feature_names"]) == names


def test_bad_digest_and_bad_options_are_input_errors(cal_models):
    with pytest.raises(InputError, match="64 hexadecimal"):
        export.onnx_model_bytes(cal_models.model, artifact_sha256="*/ nope")
    with pytest.raises(InputError, match="integer model only"):
        export.onnx_model_bytes(cal_models.model, artifact_sha256=SHA, integer_input="float64")
    with pytest.raises(InputError, match="cannot export"):
        export.onnx_model_bytes(object(), artifact_sha256=SHA)


def test_missing_onnx_names_the_extra(monkeypatch, cal_models):
    import sys

    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    with pytest.raises(InputError) as error:
        export.onnx_model_bytes(cal_models.model, artifact_sha256=SHA)
    message = str(error.value)
    assert message.startswith("the ONNX export needs the 'onnx' extra (onnx is not installed): ")
    assert "-m pip install" in message
    assert "[onnx]'" in message


@pytest.mark.parametrize("kind", ["model", "quantized", "integer"])
def test_onnxruntime_optimizations_change_nothing(cal_models, ort_run, kind):
    """Default (all) optimizations give the bits of the unoptimized graph: no fusion such as
    DequantizeLinear + MatMul → MatMulNBits, which would quantize the activations too."""
    model = getattr(cal_models, kind)
    data, _ = exported(model)
    X = cal_models.X_test if kind == "model" else cal_models.X_test.astype(np.float32)
    for optimized, plain in zip(ort_run(data, X), ort_run(data, X, optimize=False), strict=True):
        np.testing.assert_array_equal(optimized, plain)


# --------------------------------------------------------------------------- float


def exact_predictions(model, X) -> np.ndarray:
    """Σ x_j·c_j + b in exact rational arithmetic, rounded once."""
    coef = [Fraction(c) for c in model.coef]
    intercept = Fraction(model.intercept)
    return np.array(
        [
            float(sum((Fraction(x) * c for x, c in zip(row, coef, strict=True)), intercept))
            for row in X
        ]
    )


def test_float_graph_matches_predict_within_1e_12_relative(cal_models, ort_run):
    X = cal_models.X_test
    data, _ = exported(cal_models.model)
    [y] = ort_run(data, X)
    reference = cal_models.model.predict(X)
    assert y.dtype == np.float64
    assert y.shape == (len(X),)
    relative = np.abs(y - reference) / np.abs(reference)
    print(f"float ONNX vs predict on {len(X)} test rows: max rel {relative.max():.3g}")
    assert relative.max() <= 1e-12
    # Most of that gap is numpy's own rounding: the graph is closer to the exact value.
    exact = exact_predictions(cal_models.model, X)
    from_exact = (np.abs(y - exact) / np.abs(exact)).max()
    print(f"float ONNX vs the exact value: max rel {from_exact:.3g}")
    assert from_exact <= 1e-12


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), d=st.integers(1, 40))
def test_float_graph_on_random_models(seed, d, fit, ort_run):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(200, d)) * 10.0 ** rng.uniform(-3, 3, d) + 10.0 ** rng.uniform(-2, 4, d)
    model = fit(X, X @ rng.normal(size=d) + rng.normal(size=200))
    data, _ = exported(model)
    [y] = ort_run(data, X)
    # Both sides round each of d products and d sums once: bound by the terms' magnitude.
    terms = np.abs(X) @ np.abs(model.coef) + abs(model.intercept)
    assert np.all(np.abs(y - model.predict(X)) <= (4 * d + 8) * 2.0**-53 * terms)


# --------------------------------------------------------------------------- quantized


def quantized_bound(quantized, X) -> np.ndarray:
    """The float32 error bound we state, per row: (d + 7)·2⁻²⁴·S with
    S = Σ_j |ŵ_j|·(2|x_j| + |μ_j|)/σ_j + |bias·bias_scale|.

    Each term of the float32 graph passes through at most d + 6 roundings (cast of x, Sub,
    Div, DequantizeLinear, Mul, the d−1 additions of the dot product, the bias cast and
    product, the final Add), each relative ≤ 2⁻²⁴; one extra unit covers the float64
    reference's own rounding.
    """
    d = quantized.n_features
    weights = np.abs(quantized.dequantized_weights())
    mean = quantized.feature_mean.astype(np.float64)
    std = quantized.feature_std.astype(np.float64)
    magnitude = (2 * np.abs(X) + np.abs(mean)) @ (weights / std)
    magnitude += abs(quantized.bias * quantized.bias_scale)
    return (d + 7) * F32_UNIT * magnitude


@pytest.mark.parametrize(
    ("dtype", "granularity"),
    [
        ("int8", "per-tensor"),
        ("int8", "per-channel"),
        ("uint8", "per-channel"),
        ("int4", "per-tensor"),
        ("uint3", "per-channel"),
        ("int12", "per-tensor"),
        ("int16", "per-channel"),
        ("uint16", "per-tensor"),
    ],
)
def test_quantized_graph_within_float32_bound(
    cal_models, quantize_variants, ort_run, dtype, granularity
):
    quantized = quantize_variants(cal_models.model, dtype, granularity)
    data, proto = exported(quantized)
    stored = {init.name: init.data_type for init in proto.graph.initializer}
    expected = {8: "INT8", 16: "INT16"}[8 if quantized.bits <= 8 else 16]
    if not quantized.symmetric:
        expected = "U" + expected
    assert stored["weight_codes"] == getattr(onnx.TensorProto, expected)
    assert stored["bias_code"] == onnx.TensorProto.INT32
    X = cal_models.X_test
    [y] = ort_run(data, X.astype(np.float32))
    assert y.dtype == np.float32
    reference = quantized.predict(X)
    difference = np.abs(y.astype(np.float64) - reference)
    bound = quantized_bound(quantized, X)
    print(
        f"quantized {dtype} {granularity}: max |Δŷ| {difference.max():.3g}, "
        f"max rel {(difference / np.abs(reference)).max():.3g}, "
        f"max share of the bound {(difference / bound).max():.3f}"
    )
    assert np.all(difference <= bound)
    assert difference.max() <= 1e-5  # the California figure the README quotes (2.8e-6 for int8)


# --------------------------------------------------------------------------- integer


def check_integer_bit_for_bit(integer, X, ort_run, integer_input="float32"):
    data, _ = exported(integer, integer_input=integer_input)
    codes, clipped, y = ort_run(data, X)
    reference, reference_clipped = reference_codes(integer, X)
    assert codes.dtype == np.int16
    assert clipped.dtype == np.bool_
    assert y.dtype == np.float64
    np.testing.assert_array_equal(codes.astype(np.int64), reference)
    np.testing.assert_array_equal(clipped, reference_clipped)
    np.testing.assert_array_equal(y, integer.predict(np.asarray(X, dtype=np.float64)))
    return reference, reference_clipped


def test_integer_codes_bit_for_bit_on_the_test_split(cal_models, ort_run):
    X32 = cal_models.X_test.astype(np.float32)
    check_integer_bit_for_bit(cal_models.integer, X32, ort_run)
    # float64 input: bit for bit on the stored float64 rows themselves.
    check_integer_bit_for_bit(cal_models.integer, cal_models.X_test, ort_run, "float64")


def test_float32_input_differs_only_by_the_cast(cal_models):
    """What the default float32 graph costs on float64 data: the README's '1 of 4,128 rows'."""
    integer, X = cal_models.integer, cal_models.X_test
    direct, _ = integer.predict_codes(X)
    through_float32, _ = integer.predict_codes(X.astype(np.float32).astype(np.float64))
    moved = np.flatnonzero(direct != through_float32)
    print(f"float32 cast moves {moved.size} of {len(X)} output codes by ≤ 1")
    assert moved.size <= 5
    assert np.all(np.abs(direct[moved] - through_float32[moved]) <= 1)


def edge_coverage(integer, X):
    """What the rows exercise, measured on the numpy reference's intermediates."""
    X = np.asarray(X, dtype=np.float64)
    steps = X / integer.input_scale.astype(np.float64)
    codes, clipped = integer.quantize_inputs(X)
    accumulator = integer.accumulate(codes)
    t = accumulator * np.int64(integer.multiplier) + (np.int64(1) << np.int64(integer.shift - 1))
    remainder = t & ((np.int64(1) << np.int64(integer.shift)) - 1)
    out = integer.requantize(accumulator)
    qmin, qmax = integer.input_range
    omin, omax = integer.output_range
    finite = np.isfinite(steps)
    ties = finite & (steps - np.floor(np.where(finite, steps, 0)) == 0.5)
    return {
        "qmin each feature": bool((codes == qmin).any(axis=0).all()),
        "qmax each feature": bool((codes == qmax).any(axis=0).all()),
        "clipped and not": bool(clipped.any() and not clipped.all()),
        "exact ties": int(ties.sum()),
        "negative t, floor ≠ trunc": int(((t < 0) & (remainder != 0)).sum()),
        "positive t": int((t > 0).sum()),
        "output at omin": int((out == omin).sum()),
        "output at omax": int((out == omax).sum()),
    }


@pytest.mark.parametrize("integer_input", ["float32", "float64"])
def test_integer_codes_bit_for_bit_on_100k_edge_rows(cal_models, edge_rows, ort_run, integer_input):
    dtype = np.float32 if integer_input == "float32" else np.float64
    integer = cal_models.integer
    stats = cal_models.model.stats
    X = edge_rows(integer, 100_000, seed=5, dtype=dtype, limits=(stats.minimum, stats.maximum))
    check_integer_bit_for_bit(integer, X, ort_run, integer_input)
    coverage = edge_coverage(integer, X)
    assert coverage["qmin each feature"]
    assert coverage["qmax each feature"]
    assert coverage["clipped and not"]
    assert coverage["negative t, floor ≠ trunc"] > 1000
    assert coverage["positive t"] > 1000
    if dtype == np.float64:
        assert coverage["exact ties"] > 1000
    # A gain of 8 on the same model drives the output codes into both clips.
    loud = replace(integer, shift=integer.shift - 3)
    check_integer_bit_for_bit(loud, X, ort_run, integer_input)
    louder = edge_coverage(loud, X)
    assert louder["output at omin"] > 100
    assert louder["output at omax"] > 100


def test_integer_int8_inputs_with_power_of_two_scales_hit_float32_ties(
    cal_models, quantize_variants, edge_rows, ort_run
):
    """Scales that are powers of two make half-steps exact in float32 too."""
    integer = quantize_variants(cal_models.model, "int8", input_dtype="int8")
    scale = 2.0 ** np.round(np.log2(integer.input_scale.astype(np.float64)))
    integer = replace(integer, input_scale=scale.astype(np.float32))
    X = edge_rows(integer, 20_000, seed=9, dtype=np.float32)
    check_integer_bit_for_bit(integer, X, ort_run)
    assert edge_coverage(integer, X)["exact ties"] > 100


def test_integer_model_outside_int64_is_refused(cal_models):
    overflowing = replace(cal_models.integer, bias=2**62)
    with pytest.raises(InputError, match="beyond int64"):
        export.onnx_model_bytes(overflowing, artifact_sha256=SHA)


def random_integer_model(fit, quantize_variants, d, seed, bits, input_dtype, calibration, rounding):
    """A synthetic integer-only model: d features of wildly different scales and offsets."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(300, d)) * 10.0 ** rng.uniform(-3, 3, d)
    X += rng.choice([-1, 1], d) * 10.0 ** rng.uniform(-2, 4, d)
    y = X @ (rng.normal(size=d) / X.std(axis=0)) + rng.normal(size=300)
    model = fit(X, y)
    return quantize_variants(model, f"int{bits}", "per-tensor", rounding, input_dtype, calibration)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(
    d=st.integers(1, 40),
    seed=st.integers(0, 2**32 - 1),
    bits=st.integers(2, 16),
    input_dtype=st.sampled_from(["int8", "int16"]),
    calibration=st.sampled_from(["minmax", "percentile"]),
    rounding=st.sampled_from(["nearest", "hessian"]),
)
def test_integer_codes_bit_for_bit_on_random_models(
    d, seed, bits, input_dtype, calibration, rounding, fit, quantize_variants, edge_rows, ort_run
):
    try:
        integer = random_integer_model(
            fit, quantize_variants, d, seed, bits, input_dtype, calibration, rounding
        )
    except InputError:  # the accumulator could pass int32: build_integer_model refuses it
        assume(False)
    for dtype, integer_input in [(np.float32, "float32"), (np.float64, "float64")]:
        X = edge_rows(integer, 3_000, seed=seed % 1000, dtype=dtype)
        check_integer_bit_for_bit(integer, X, ort_run, integer_input)
