"""Integer-only inference, fast path: ``IntegerLinearModel.predict_codes`` accumulates in float64
(exact below 2^53) and finds clipped rows by overflow. These properties check it, bit for bit,
against the documented arithmetic written out plainly here: numpy int64 for every row and
plain Python integers for a sample, on random models (fitted and built the project's way, or
constructed directly to reach the accumulation bounds) and on rows inside, at and far beyond
the calibrated range."""

import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

import linreg_ops.model as model_module
from helpers import fit_model, integer_model
from linreg_ops.config import IntegerConfig, QuantConfig
from linreg_ops.errors import InputError
from linreg_ops.model import _float_accumulation_is_exact, _requantization
from linreg_ops.quantization.quantize import build_integer_model

INT64 = 2**63
FLOAT_BOUND = 2**50  # Σ|w|·2^(b−1) below this: the float64 route (_float_accumulation_is_exact)


# --------------------------------------------------------------------------- references


def reference_int64(model, X):
    """The four documented steps with numpy: float64 input rounding, then int64 throughout
    (element-wise products summed per row; wrap-around as int64 arithmetic has it). A row is
    clipped when an input code or the output code had to be saturated."""
    X = np.asarray(X, dtype=np.float64)
    qmin, qmax = model.input_range
    scaled = np.rint(X / model.input_scale.astype(np.float64))
    raw = scaled + model.input_zero_point.astype(np.float64)
    clipped = np.any((raw < qmin) | (raw > qmax), axis=1)
    codes = np.clip(raw, qmin, qmax).astype(np.int64)
    products = codes * model.weights.astype(np.int64)
    accumulator = products.sum(axis=1, dtype=np.int64) + np.int64(model.bias)
    half = np.int64(1) << np.int64(model.shift - 1)
    out = (accumulator * np.int64(model.multiplier) + half) >> np.int64(model.shift)
    low, high = model.output_range
    return np.clip(out, low, high), clipped | (out < low) | (out > high)


def reference_python(model, row):
    """One row with Python floats and unbounded integers (``round`` is half to even)."""
    low, high = model.input_range
    accumulator, clipped = int(model.bias), False
    for x, scale, zero_point, weight in zip(
        row,
        model.input_scale.tolist(),
        model.input_zero_point.tolist(),
        model.weights.tolist(),
        strict=True,
    ):
        scaled = x / scale  # Python's float division overflows to ±inf like numpy's
        code = round(scaled) + zero_point if math.isfinite(scaled) else scaled
        clipped |= not low <= code <= high
        accumulator += weight * int(min(max(code, low), high))
    out = (accumulator * model.multiplier + (1 << (model.shift - 1))) >> model.shift
    out_low, out_high = model.output_range
    return min(max(out, out_low), out_high), clipped or not out_low <= out <= out_high


def reference(model, X):
    with np.errstate(over="ignore"):
        return reference_int64(model, X)


def predict_codes(model, X):
    with np.errstate(over="ignore"):  # x / scale overflows to inf for the huge rows
        return model.predict_codes(X)


def record_events(model, X):
    """What a Hypothesis example covered (shown by --hypothesis-show-statistics)."""
    _, clipped = predict_codes(model, X)
    event("float64 route" if _float_accumulation_is_exact(model, X) else "int64 route")
    event(f"clipped rows: {'none' if not clipped.any() else 'all' if clipped.all() else 'some'}")
    event("checked with Python integers too" if _fits_int64(model) else "int64 wrap-around")
    if _float_accumulation_is_exact(model, X):
        requantize = _requantization(model)
        event(f"requantization: {len(requantize.offsets)} float additions")
        clip = "float64" if requantize.float_clip else "int64" if requantize.int_clip else "none"
        event(f"output clip: {clip}")


def assert_matches_references(model, X, python_rows=40):
    X = np.asarray(X, dtype=np.float64)
    codes, clipped = predict_codes(model, X)
    expected_codes, expected_clipped = reference(model, X)
    assert codes.dtype == np.int64
    assert clipped.dtype == bool
    assert codes.shape == clipped.shape == (len(X),)
    np.testing.assert_array_equal(clipped, expected_clipped)
    np.testing.assert_array_equal(codes, expected_codes)
    if _fits_int64(model):
        step = max(1, len(X) // python_rows)
        for i in range(0, len(X), step):
            assert reference_python(model, X[i].tolist()) == (codes[i], clipped[i]), i


def _fits_int64(model):
    """Whether (acc + bias)·multiplier + rounding can never wrap around in int64."""
    top = int(np.abs(model.weights).astype(object).sum()) * 2 ** (model.input_bits - 1)
    worst = (top + abs(int(model.bias))) * abs(model.multiplier) + 2 ** (model.shift - 1)
    return worst < INT64


# --------------------------------------------------------------------------- rows


HUGE = [1e300, -1e300, 1.7e308, -1.7e308, 2.0**63, -(2.0**63), 1e19, -1e19, 4.5e15, -4.5e15]
TINY = [0.0, -0.0, 5e-324, -5e-324, 1e-300]


def edge_values(model, rng, n):
    """Per feature, ``n`` values that sit on the rounding and clipping edges of its codes:
    exact ties (k + 1/2)·scale, the last code inside and the first outside the range on
    both sides (and the floats next to them), huge and tiny magnitudes."""
    scale = model.input_scale.astype(np.float64)
    zero_point = model.input_zero_point.astype(np.float64)
    qmin, qmax = model.input_range
    d = model.n_features
    k = np.concatenate([[qmin, qmax + 1, qmin - 1, qmax], rng.integers(qmin - 3, qmax + 3, 6)])
    ties = (k[:, None] - zero_point + rng.choice([-0.5, 0.5], (len(k), d))) * scale
    candidates = np.concatenate(
        [
            ties,
            np.nextafter(ties, np.inf),
            np.nextafter(ties, -np.inf),
            (k[:, None] - zero_point) * scale,
            np.tile(np.array(HUGE + TINY)[:, None], (1, d)),
        ]
    )
    picks = rng.integers(0, len(candidates), (n, d))
    return candidates[picks, np.arange(d)]


def make_rows(model, typical, rng, n, edge_share):
    """Rows resampled from ``typical``; a share of their values replaced by edge values."""
    X = typical[rng.integers(0, len(typical), n)].copy()
    replace = rng.random(X.shape) < edge_share
    X[replace] = edge_values(model, rng, n)[replace]
    return X


def dataset(rng, n, d):
    """Features with scales from 1e-6 to 1e6 and offsets, a few of them near-collinear."""
    base = rng.normal(size=(n, d))
    for j in range(1, d, 3):
        base[:, j] = base[:, j - 1] + 0.1 * rng.normal(size=n)
    scales = 10.0 ** rng.uniform(-6, 6, d)
    offsets = rng.normal(size=d) * scales * rng.choice([0, 1, 100], d)
    X = base * scales + offsets
    y = base @ rng.normal(size=d) * 3 + rng.normal(size=n)
    return X, y


# --------------------------------------------------------------------------- built models


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    d=st.integers(1, 64),
    weight_bits=st.sampled_from([2, 3, 4, 8, 12, 16]),
    input_dtype=st.sampled_from(["int8", "int16"]),
    calibration=st.sampled_from(["minmax", "percentile"]),
    rounding=st.sampled_from(["nearest", "hessian"]),
    edge_share=st.sampled_from([0.0, 0.001, 0.05, 0.5]),
)
def test_built_models_match_the_reference(
    seed, d, weight_bits, input_dtype, calibration, rounding, edge_share
):
    rng = np.random.default_rng(seed)
    n_train = max(40, 3 * d)
    X_all, y_all = dataset(rng, n_train + 300, d)  # the last 300 rows: unseen, a few outside
    try:
        model = build_integer_model(
            fit_model(X_all[:n_train], y_all[:n_train]),
            QuantConfig(f"int{weight_bits}", rounding=rounding),
            IntegerConfig(input_dtype, calibration),
        )
    except InputError:  # accumulation beyond int32 for wide int16 × int16 models
        assume(False)
    X = make_rows(model, X_all, rng, 700, edge_share)
    assert _float_accumulation_is_exact(model, X), "built models must take the fast path"
    assert_matches_references(model, X)
    record_events(model, X)


def test_models_at_the_int32_accumulation_bound_take_the_fast_path():
    """The widest accumulators ``build_integer_model`` accepts are far inside the float bound."""
    rng = np.random.default_rng(3)
    X, y = dataset(rng, 400, 64)
    model = build_integer_model(
        fit_model(X, y), QuantConfig("int16", rounding="nearest"), IntegerConfig("int8")
    )
    worst = int(np.abs(model.weights).sum()) * 2**7 + abs(model.bias)
    assert 2**25 < worst < 2**31
    rows = make_rows(model, X, rng, 5000, 0.02)
    assert _float_accumulation_is_exact(model, rows)
    assert_matches_references(model, rows)


# --------------------------------------------------------------------------- direct models


def direct_model(rng, d, input_bits, weight_total, multiplier, shift, bias, output_bits=16):
    """An IntegerLinearModel with chosen integers: weights of random signs (some zero) whose
    magnitudes sum to about ``weight_total``, zero points inside and outside the code range."""
    raw = rng.random(d) * (rng.random(d) < 0.85)
    raw = raw / raw.sum() if raw.sum() > 0 else np.full(d, 1 / d)
    weights = np.array(
        [round(r * weight_total) * int(rng.choice([-1, 1])) for r in raw], dtype=np.int64
    )
    span = 2**input_bits
    return integer_model(
        weights,
        10.0 ** rng.uniform(-4, 4, d),
        rng.integers(-2 * span, 2 * span, d),
        input_bits=input_bits,
        multiplier=multiplier,
        shift=shift,
        bias=bias,
        output_bits=output_bits,
    )


def typical_rows(model, rng, n):
    """Rows whose codes spread over the whole range, plus a margin on both sides."""
    qmin, qmax = model.input_range
    codes = rng.integers(qmin - 2, qmax + 3, (n, model.n_features))
    jitter = rng.uniform(-0.5, 0.5, codes.shape)
    scale = model.input_scale.astype(np.float64)
    return (codes - model.input_zero_point + jitter) * scale


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    d=st.integers(1, 64),
    input_bits=st.sampled_from([8, 16]),
    bound_bits=st.integers(15, 54),
    multiplier_bits=st.integers(1, 31),
    shift=st.integers(1, 62),
    edge_share=st.sampled_from([0.0, 0.01, 0.2]),
)
def test_direct_models_on_both_sides_of_the_float_bound(
    seed, d, input_bits, bound_bits, multiplier_bits, shift, edge_share
):
    """Weights whose Σ|w|·2^(b−1) straddles the float bound (so both routes run), multipliers
    and shifts that clip outputs or not, biases up to 2^40, rows at every edge."""
    rng = np.random.default_rng(seed)
    total = 2.0 ** (bound_bits - (input_bits - 1)) * rng.uniform(0.5, 1.0)
    multiplier = int(rng.integers(2 ** (multiplier_bits - 1), 2**multiplier_bits))
    bias = int(rng.integers(-(2**40), 2**40))
    model = direct_model(rng, d, input_bits, total, multiplier, shift, bias)
    X = make_rows(model, typical_rows(model, rng, 200), rng, 600, edge_share)
    bound = int(np.abs(model.weights).sum()) * 2 ** (input_bits - 1)
    assert _float_accumulation_is_exact(model, X) == (bound < FLOAT_BOUND)
    assert_matches_references(model, X)
    record_events(model, X)


@pytest.mark.parametrize("offset", [-2, -1, 0, 1])
@pytest.mark.parametrize("input_bits", [8, 16])
def test_weights_exactly_at_the_float_bound(offset, input_bits):
    """Σ|w|·2^(b−1) = bound + offset·2^(b−1): just inside runs in float64, at or beyond in int64."""
    rng = np.random.default_rng(11 + offset)
    target = FLOAT_BOUND // 2 ** (input_bits - 1) + offset
    weights = np.array([target // 3, target // 3, -(target - 2 * (target // 3))], dtype=np.int64)
    model = replace(direct_model(rng, 3, input_bits, 1.0, 2**20, 62, 12345), weights=weights)
    X = make_rows(model, typical_rows(model, rng, 300), rng, 1000, 0.05)
    assert _float_accumulation_is_exact(model, X) == (offset < 0)
    assert_matches_references(model, X)


def test_wrap_around_matches():
    """Accumulators near 2^50 times a 31-bit multiplier wrap around int64 in the documented
    formula; the float path must wrap identically."""
    rng = np.random.default_rng(5)
    model = direct_model(rng, 8, 16, 2.0**35, 2**31 - 1, 30, -(2**40))
    X = make_rows(model, typical_rows(model, rng, 500), rng, 3000, 0.05)
    assert _float_accumulation_is_exact(model, X)
    assert not _fits_int64(model)
    assert_matches_references(model, X)


@pytest.mark.parametrize(
    ("weight_total", "multiplier", "shift", "clip_in"),
    [(2.0**15, 2**30, 43, "float64"), (2.0**4, 2**30 + 1, 29, "int64")],
)
def test_output_clipping_matches(weight_total, multiplier, shift, clip_in):
    """Outputs beyond the 16-bit range on both sides, and inside it, in one batch: clipped on
    the float accumulator when the output moves by at most one per accumulator unit, else in
    int64 after the shift. |out| reaches about 2^17 in both cases. A row whose inputs all lie
    inside their codes but whose output saturates is flagged clipped (issue 13: 31.73 was
    served as 31.20 with clipped=False); a row strictly inside the output codes is not."""
    rng = np.random.default_rng(6)
    model = direct_model(rng, 8, 16, weight_total, multiplier, shift, 0)
    requantize = _requantization(model)
    clip = (requantize.float_clip is not None, requantize.int_clip)
    assert clip == (clip_in == "float64", clip_in == "int64")
    X = make_rows(model, typical_rows(model, rng, 500), rng, 3000, 0.01)
    codes, clipped = predict_codes(model, X)
    with np.errstate(over="ignore"):  # x / scale overflows to inf for the huge rows
        input_codes, inputs_clipped = model.quantize_inputs(X)
    low, high = model.output_range
    inputs_inside = ~inputs_clipped
    assert (codes[inputs_inside] == low).any()
    assert (codes[inputs_inside] == high).any()
    unclipped = (model.accumulate(input_codes) * np.int64(model.multiplier)
                 + (np.int64(1) << np.int64(shift - 1))) >> np.int64(shift)  # fmt: skip
    saturated = (unclipped < low) | (unclipped > high)
    assert (saturated & inputs_inside).any()
    np.testing.assert_array_equal(clipped, inputs_clipped | saturated)
    strictly_inside = (codes > low) & (codes < high)
    assert strictly_inside.any()
    assert not clipped[strictly_inside & inputs_inside].any()
    assert_matches_references(model, X)


@pytest.mark.parametrize("bias", [-(2**30), 2**30])
def test_every_output_clipped_to_one_end(bias):
    """A bias that puts every reachable accumulator beyond one end of the output range: the
    float clip then moves the accumulator outside its own reachable range, and must still
    give the end code."""
    rng = np.random.default_rng(7)
    model = direct_model(rng, 8, 16, 2.0**4, 2**30, 40, bias)
    assert _requantization(model).float_clip is not None
    X = make_rows(model, typical_rows(model, rng, 300), rng, 1000, 0.01)
    codes, clipped = predict_codes(model, X)
    assert (codes == (model.output_range[0] if bias < 0 else model.output_range[1])).all()
    assert clipped.any()
    assert_matches_references(model, X)


@pytest.mark.parametrize("weight_sum_parity", [0, 1])
def test_zero_weights_still_flag_their_clipped_inputs(weight_sum_parity):
    """A feature with weight 0 never moves the accumulator but its clipping must be reported
    (inf·0 is NaN); both parities of Σw (the half-unit offset) are covered."""
    rng = np.random.default_rng(weight_sum_parity)
    weights = np.array([0, 5, -3, 2 + weight_sum_parity], dtype=np.int64)
    model = replace(direct_model(rng, 4, 16, 100.0, 2**30, 40, 77), weights=weights)
    qmin, qmax = model.input_range
    codes = rng.integers(qmin, qmax + 1, (64, 4))
    X = (codes - model.input_zero_point) * model.input_scale.astype(np.float64)
    X[:16, 0] = 1e300
    X[16:32, 0] = -1e300
    X[32:48, 0] = (qmax + 1 - model.input_zero_point[0]) * np.float64(model.input_scale[0])
    _, clipped = predict_codes(model, X)
    assert clipped[:48].all()
    assert not clipped[48:].any()
    assert_matches_references(model, X)


# --------------------------------------------------------------------------- layouts, blocks


@pytest.mark.parametrize("row_block", [1, 3, 64, 1000])
def test_any_block_size_gives_the_same_codes(monkeypatch, row_block):
    rng = np.random.default_rng(9)
    model = direct_model(rng, 5, 16, 3e4, 2**30, 45, -99)
    X = make_rows(model, typical_rows(model, rng, 300), rng, 2000, 0.02)
    expected = reference(model, X)
    monkeypatch.setattr(model_module, "ROW_BLOCK", row_block)
    codes, clipped = predict_codes(model, X)
    np.testing.assert_array_equal(codes, expected[0])
    np.testing.assert_array_equal(clipped, expected[1])


def test_memory_layouts_and_input_types():
    rng = np.random.default_rng(10)
    model = direct_model(rng, 6, 8, 500.0, 2**29, 20, 3)
    X = make_rows(model, typical_rows(model, rng, 300), rng, 777, 0.05)
    expected = reference(model, X)
    wide = np.repeat(X, 2, axis=1)
    for variant in (
        np.asfortranarray(X),
        wide[:, ::2],
        X[::-1],
        np.clip(X, -3e38, 3e38).astype(np.float32),
    ):
        codes, clipped = predict_codes(model, variant)
        wanted = reference(model, variant)
        np.testing.assert_array_equal(codes, wanted[0])
        np.testing.assert_array_equal(clipped, wanted[1])
    codes, clipped = predict_codes(model, X.tolist())
    np.testing.assert_array_equal(codes, expected[0])
    np.testing.assert_array_equal(clipped, expected[1])
    for n in (0, 1, 2):
        codes, clipped = predict_codes(model, X[:n])
        np.testing.assert_array_equal(codes, expected[0][:n])
        np.testing.assert_array_equal(clipped, expected[1][:n])
