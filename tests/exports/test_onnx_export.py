"""ONNX export: valid standard graphs, and numbers that match the numpy models.

float and quantized: within twice the model's rounding bound of ``predict`` (the same
arithmetic, another summation order); integer: codes, clipped flags and ŷ equal to
``IntegerLinearModel.predict_codes`` / ``predict`` bit for bit. Every graph takes float64 by
default, float32 on request, and answers NaN where ``predict`` refuses a row.
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
from linreg_ops.model import outside_domain

SHA = "0123456789abcdef" * 4


def exported(model, **options) -> tuple[bytes, onnx.ModelProto]:
    data = export.onnx_model_bytes(model, artifact_sha256=SHA, **options)
    return data, onnx.load_from_string(data)


def reference_codes(integer, X):
    """The numpy reference on exactly the values the graph sees (outside the domain, which
    predict refuses, the graph's codes are those of the row with such values set to 0)."""
    X = np.asarray(X, dtype=np.float64)
    inside = np.abs(X) <= integer.input_bounds
    with np.errstate(over="ignore"):
        return integer.predict_codes(np.where(inside, X, 0.0))


def within_rounding(model, y, X):
    """Whether ``y`` is ``model.predict(X)`` up to the rounding of both computations."""
    X = np.asarray(X, dtype=np.float64)
    return bool(np.all(np.abs(y - model.predict(X)) <= 2.0 * model.rounding_bound(X)))


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
    assert graph_input.type.tensor_type.elem_type == onnx.TensorProto.DOUBLE  # the default
    _, proto32 = exported(model, input_type="float32")
    assert proto32.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
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
    assert meta["input_type"] == "float64"
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
    for kind in ("model", "quantized"):
        for input_type in export.INPUT_TYPES:
            _, proto = exported(getattr(cal_models, kind), input_type=input_type)
            outputs = [(o.name, o.type.tensor_type.elem_type) for o in proto.graph.output]
            assert outputs == [("y", onnx.TensorProto.DOUBLE)]


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
    with pytest.raises(InputError, match="input type must be float64 or float32, got 'float16'"):
        export.onnx_model_bytes(cal_models.model, artifact_sha256=SHA, input_type="float16")
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
    for input_type in export.INPUT_TYPES:
        data, _ = exported(model, input_type=input_type)
        X = cal_models.X_test.astype(input_type)
        pairs = zip(ort_run(data, X), ort_run(data, X, optimize=False), strict=True)
        for optimized, plain in pairs:
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


def test_float_graph_matches_predict_within_rounding(cal_models, ort_run):
    X = cal_models.X_test
    data, _ = exported(cal_models.model)
    [y] = ort_run(data, X)
    reference = cal_models.model.predict(X)
    assert y.dtype == np.float64
    assert y.shape == (len(X),)
    relative = np.abs(y - reference) / np.abs(reference)
    print(f"float ONNX vs predict on {len(X)} test rows: max rel {relative.max():.3g}")
    assert within_rounding(cal_models.model, y, X)
    # Both lie within one rounding bound of the exact value.
    exact = exact_predictions(cal_models.model, X)
    from_exact = np.abs(y - exact)
    print(f"float ONNX vs the exact value: max rel {(from_exact / np.abs(exact)).max():.3g}")
    assert np.all(from_exact <= cal_models.model.rounding_bound(X))


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), d=st.integers(1, 40))
def test_float_graph_on_random_models(seed, d, fit, ort_run):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(200, d)) * 10.0 ** rng.uniform(-3, 3, d) + 10.0 ** rng.uniform(-2, 4, d)
    model = fit(X, X @ rng.normal(size=d) + rng.normal(size=200))
    data, _ = exported(model)
    [y] = ort_run(data, X)
    assert within_rounding(model, y, X)


def test_float32_input_costs_the_rounding_of_the_inputs(cal_models, ort_run):
    """What ``--onnx-input float32`` costs the float kinds on float64 data: the graph answers
    the float32-rounded inputs (exactly as predict would answer them), ~2.4e-6 on California."""
    X = cal_models.X_test
    for model in (cal_models.model, cal_models.quantized):
        data, _ = exported(model, input_type="float32")
        [y] = ort_run(data, X.astype(np.float32))
        assert within_rounding(model, y, X.astype(np.float32))
        moved = np.abs(y - model.predict(X)).max()
        print(f"{model.label} ONNX, float32 input: max |Δŷ| {moved:.3g} against float64 input")
        assert 1e-8 < moved < 1e-4


# --------------------------------------------------------------------------- quantized


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
def test_quantized_graph_matches_predict_within_rounding(
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
    [y] = ort_run(data, X)
    assert y.dtype == np.float64
    difference = np.abs(y - quantized.predict(X))
    print(f"quantized {dtype} {granularity}: max |Δŷ| {difference.max():.3g} against predict")
    assert within_rounding(quantized, y, X)


# --------------------------------------------------------------------------- integer


def check_integer_bit_for_bit(integer, X, ort_run, input_type="float64"):
    """Codes, clipped flags and y equal numpy's; y is NaN exactly where predict refuses."""
    data, _ = exported(integer, input_type=input_type)
    codes, clipped, y = ort_run(data, X)
    reference, reference_clipped = reference_codes(integer, X)
    assert codes.dtype == np.int16
    assert clipped.dtype == np.bool_
    assert y.dtype == np.float64
    np.testing.assert_array_equal(codes.astype(np.int64), reference)
    np.testing.assert_array_equal(clipped, reference_clipped)
    X64 = np.asarray(X, dtype=np.float64)
    refused = outside_domain(integer, X64)
    assert np.isnan(y[refused]).all()
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(y[~refused], integer.predict(X64[~refused]))
    return reference, reference_clipped


def test_integer_codes_bit_for_bit_on_the_test_split(cal_models, ort_run):
    """The default export is bit for bit on the float64 rows themselves (issue 13: the
    float32 default moved 4 of the 4,128 test rows' codes)."""
    check_integer_bit_for_bit(cal_models.integer, cal_models.X_test, ort_run)
    check_integer_bit_for_bit(
        cal_models.integer, cal_models.X_test.astype(np.float32), ort_run, "float32"
    )
    data, _ = exported(cal_models.integer)
    codes, _, _ = ort_run(data, cal_models.X_test)
    np.testing.assert_array_equal(codes, cal_models.integer.predict_codes(cal_models.X_test)[0])


def test_float32_input_differs_only_by_the_cast(cal_models):
    """What ``--onnx-input float32`` costs on float64 data: docs/exports.md's '4 of 4,128 rows'."""
    integer, X = cal_models.integer, cal_models.X_test
    direct, _ = integer.predict_codes(X)
    through_float32, _ = integer.predict_codes(X.astype(np.float32).astype(np.float64))
    moved = np.flatnonzero(direct != through_float32)
    print(f"float32 cast moves {moved.size} of {len(X)} output codes by ≤ 1")
    assert 0 < moved.size <= 5
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


@pytest.mark.parametrize("input_type", ["float32", "float64"])
def test_integer_codes_bit_for_bit_on_100k_edge_rows(cal_models, edge_rows, ort_run, input_type):
    dtype = np.float32 if input_type == "float32" else np.float64
    integer = cal_models.integer
    stats = cal_models.model.stats
    X = edge_rows(integer, 100_000, seed=5, dtype=dtype, limits=(stats.minimum, stats.maximum))
    check_integer_bit_for_bit(integer, X, ort_run, input_type)
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
    check_integer_bit_for_bit(loud, X, ort_run, input_type)
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
    check_integer_bit_for_bit(integer, X, ort_run, "float32")
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
    for input_type in export.INPUT_TYPES:
        X = edge_rows(integer, 3_000, seed=seed % 1000, dtype=np.dtype(input_type))
        check_integer_bit_for_bit(integer, X, ort_run, input_type)
