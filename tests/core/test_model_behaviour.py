"""Model behaviour: the scale guard, quantized fidelity on California, determinism, freshness."""

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import linreg_ops.model as model_module
from helpers import fit_model, integer_model, model_with
from linreg_ops import pipeline
from linreg_ops.config import QuantConfig
from linreg_ops.errors import ArtifactError
from linreg_ops.inference import loading
from linreg_ops.model import LinearModel, _float_accumulation_is_exact, outside_domain
from linreg_ops.quantization.quantize import quantize_model
from linreg_ops.storage import store
from linreg_ops.training import sources
from linreg_ops.training.engines import fit_linear_regression


def test_fit_recovers_coefficients_when_feature_scales_differ_by_1e7():
    # Plain LinearRegression() passes tol=1e-6 to lstsq as the rank cutoff and returns ≈0
    # for the first coefficient here; the standardized fit must recover all three.
    rng = np.random.default_rng(0)
    X = np.column_stack(
        [rng.normal(size=1000) * 1e-4, rng.normal(size=1000) * 1e3, rng.normal(size=1000)]
    )
    true_coef = np.array([7.0, -2.0, 0.5])
    y = X @ true_coef + 3.0 + rng.normal(scale=1e-6, size=1000)
    estimator = fit_linear_regression(X, y)
    np.testing.assert_allclose(estimator.coef_, true_coef, rtol=1e-3)
    assert estimator.intercept_ == pytest.approx(3.0, abs=1e-6)
    np.testing.assert_allclose(estimator.predict(X), y, atol=1e-5)


def test_constant_feature_gets_a_zero_coefficient():
    rng = np.random.default_rng(1)
    X = np.column_stack([rng.normal(size=50), np.full(50, 4.0)])
    y = 2 * X[:, 0] + 1
    estimator = fit_linear_regression(X, y)
    np.testing.assert_allclose(estimator.coef_, [2.0, 0.0], atol=1e-12)
    assert estimator.intercept_ == pytest.approx(1.0)


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_quantized_r2_within_0_001_of_float_on_california(models, test_rows, dtype):
    model = models.float
    X, y = test_rows[1][:, :-1], test_rows[1][:, -1]
    from linreg_ops.metrics import r2_score

    quantized = quantize_model(model, QuantConfig(dtype))
    assert abs(r2_score(y, quantized.predict(X)) - r2_score(y, model.predict(X))) <= 0.001
    assert quantized.scale.size == 1, "first version: one scale for all coefficients"


def test_higher_income_predicts_higher_value(models):
    model = models.float
    row = model.feature_mean.copy()
    richer = row.copy()
    richer[model.feature_names.index("MedInc")] += 1.0
    assert model.predict(richer[None])[0] > model.predict(row[None])[0]


def test_two_runs_give_byte_identical_models(california, tmp_path):
    for run in ("first", "second"):
        pipeline.train(california, tmp_path / run)
        pipeline.quantize(tmp_path / run)
    for name in (
        store.MODEL_JSON,
        store.QUANTIZED_MODEL_JSON,
        store.INTEGER_MODEL_JSON,
        store.TEST_SPLIT_CSV,
        store.METRICS_JSON,
    ):
        assert (tmp_path / "first" / name).read_bytes() == (tmp_path / "second" / name).read_bytes()


def test_retraining_publishes_a_version_without_the_old_quantized_model(
    models_copy, regression_csv
):
    pipeline.train(sources.file_source(regression_csv, "y"), models_copy)
    assert not (models_copy / store.QUANTIZED_MODEL_JSON).exists()
    assert not (models_copy / store.QUANT_PARAMS_JOBLIB).exists()
    loaded = loading.load(models_copy)
    assert loaded.version.number == 3
    assert loaded.kinds() == ["float"]
    assert loading.load_metrics(loaded.version)["quantized"] is None
    assert loaded.float.feature_names == ("a", "b", "c")
    assert loading.load(models_copy, 2).kinds() == ["float", "quantized", "integer"]


def test_user_data_spanning_1e_minus6_to_1e6(tmp_path):
    rng = np.random.default_rng(5)
    scales = np.array([1e-6, 1e-3, 1.0, 1e3, 1e6])
    X = rng.normal(size=(500, 5)) * scales
    true_coef = np.array([3e6, -2e3, 1.5, 4e-3, -1e-6])
    y = X @ true_coef + 10 + rng.normal(scale=1e-5, size=500)
    source = sources.ArraySource(X, y, tuple(f"x{i}" for i in range(5)), "y", "synthetic", "0" * 64)
    result = pipeline.train(source, tmp_path / "models")
    np.testing.assert_allclose(result.model.coef, true_coef, rtol=1e-3)
    assert result.metrics["r2"] > 0.999


# --------------------------------------------------------------------------- integer-only edges
# The fast path of IntegerLinearModel.predict_codes against the documented arithmetic, on
# tiny models whose every input code (and one beyond each end) is a row, with biases,
# multipliers and shifts that put the extreme accumulators exactly on the output range's ends.


def small_integer_model(
    weights, *, input_bits=3, multiplier=2**30, shift=20, bias=0, output_bits=16
):
    d = len(weights)
    return integer_model(
        weights,
        np.full(d, 0.5),
        np.arange(d) - 1,
        input_bits=input_bits,
        multiplier=multiplier,
        shift=shift,
        bias=bias,
        output_bits=output_bits,
    )


def reference_codes(model, X):
    """Steps 1–3 of IntegerLinearModel's docstring in numpy int64, wrap-around included; a
    row is clipped where an input code or the output code was saturated."""
    X = np.asarray(X, dtype=np.float64)
    qmin, qmax = model.input_range
    with np.errstate(over="ignore", invalid="ignore"):
        raw = np.rint(X / model.input_scale.astype(np.float64)) + model.input_zero_point
        clipped = ((raw < qmin) | (raw > qmax)).any(axis=1)
        codes = np.clip(raw, qmin, qmax).astype(np.int64)
    accumulator = (codes * model.weights).sum(axis=1) + np.int64(model.bias)
    rounding = np.int64(1) << np.int64(model.shift - 1)
    out = (accumulator * np.int64(model.multiplier) + rounding) >> np.int64(model.shift)
    low, high = model.output_range
    return np.clip(out, low, high), clipped | (out < low) | (out > high)


def every_code_row(model):
    """One row per input code vector in [qmin − 1, qmax + 1]^d, at the codes' centres."""
    qmin, qmax = model.input_range
    axes = [np.arange(qmin - 1, qmax + 2)] * model.n_features
    codes = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, model.n_features)
    return (codes - model.input_zero_point) * model.input_scale.astype(np.float64)


def assert_fast_path_matches(model, X):
    assert _float_accumulation_is_exact(model, X)
    codes, clipped = model.predict_codes(X)
    expected_codes, expected_clipped = reference_codes(model, X)
    assert codes.dtype == np.int64
    np.testing.assert_array_equal(clipped, expected_clipped)
    np.testing.assert_array_equal(codes, expected_codes)


def edge_biases(model, a_min, a_max):
    """Biases that put a_min or a_max exactly on (and one beside) each end of the output range,
    and a few far ones (accumulators near and beyond 2^50, products near 2^62)."""
    low, high = model.output_range
    m, s = model.multiplier, model.shift
    rounding = 1 << (s - 1)
    found = {0, 3 * 2**49, -3 * 2**49, 2**55, -(2**55)}
    if m == 1:
        found.add(2**62 - rounding - a_max)  # (a_max + bias)·m + 2^(s−1) = 2^62 exactly
    if m > 0:
        for target in (low, high + 1):
            for end in (a_min, a_max):
                bias = -((rounding - target * 2**s) // m) - end  # first bias reaching target
                found.update({bias - 1, bias, bias + 1})
    return sorted(b for b in found if -(2**63) <= b < 2**63)


@pytest.mark.parametrize("weights", [[1], [-1], [3], [1, 2], [2, -1], [0, -3]])
def test_integer_fast_path_at_the_output_range_ends(weights):
    for shift in (1, 2, 20, 48, 62):
        multipliers = {0, 1, 2, 3, 2**shift - 1, 2**shift, 2**shift + 1, 2**30, 2**31 - 1}
        for multiplier in sorted(m for m in multipliers if m < 2**63):
            for output_bits in (16, 64):
                model = small_integer_model(
                    weights, multiplier=multiplier, shift=shift, output_bits=output_bits
                )
                X = every_code_row(model)
                qmin, qmax = model.input_range
                a_min = sum(min(w * qmin, w * qmax) for w in weights)
                a_max = sum(max(w * qmin, w * qmax) for w in weights)
                for bias in edge_biases(model, a_min, a_max):
                    assert_fast_path_matches(replace(model, bias=bias), X)


def guard_case(**changes):
    base = small_integer_model([1, -2, 3], input_bits=8, shift=30)
    arrays = {"weights", "input_zero_point", "input_scale"}
    return replace(base, **{k: np.asarray(v) if k in arrays else v for k, v in changes.items()})


GUARD_EDGES = [  # (change, inside the float route's proof) on both sides of every bound
    ({}, True),
    ({"input_bits": 3}, True),
    ({"input_bits": 2}, False),
    ({"input_bits": 32}, True),
    ({"input_bits": 33}, False),
    ({"output_bits": 1}, True),
    ({"output_bits": 0}, False),
    ({"output_bits": 64}, True),
    ({"output_bits": 65}, False),
    ({"shift": 1}, True),
    ({"shift": 0}, False),
    ({"shift": 62}, True),
    ({"shift": 63}, False),
    ({"multiplier": -(2**63)}, True),
    ({"multiplier": -(2**63) - 1}, False),
    ({"multiplier": 2**63 - 1}, True),
    ({"multiplier": 2**63}, False),
    ({"bias": -(2**63)}, True),
    ({"bias": -(2**63) - 1}, False),
    ({"bias": 2**63 - 1}, True),
    ({"bias": 2**63}, False),
    ({"input_zero_point": [0, 2**50 - 1, 0]}, True),
    ({"input_zero_point": [0, 0, 2**50]}, False),
    ({"input_zero_point": [-(2**50), 0, 0]}, False),
    ({"weights": [2**43 - 2, 1, 0]}, True),  # Σ|w|·2^7 just below 2^50
    ({"weights": [2**43 - 1, 0, -1]}, False),
    ({"weights": [1.0, -2.0, 3.0]}, False),
    ({"input_zero_point": [0.0, 1.0, 2.0]}, False),
    ({"weights": [1, -2]}, False),
    ({"input_zero_point": [0, 1]}, False),
    ({"input_scale": np.ones(2, dtype=np.float32)}, False),
]


@pytest.mark.parametrize(("changes", "inside"), GUARD_EDGES)
def test_the_float_route_is_taken_exactly_inside_its_proof(changes, inside):
    """``_float_accumulation_is_exact`` on both sides of each documented bound; where it says
    yes, the float route must reproduce the int64 arithmetic."""
    model = guard_case(**changes)
    X = np.array([[0.5, -3.0, 1e9], [2.0, 0.0, -1.5], [np.inf, 0.25, 7.0]])
    assert _float_accumulation_is_exact(model, X) is inside
    if inside:
        assert_fast_path_matches(model, X)


def test_the_float_route_refuses_rows_of_another_shape():
    model = guard_case()
    assert _float_accumulation_is_exact(model, np.zeros((4, 3)))
    assert not _float_accumulation_is_exact(model, np.zeros((4, 2)))
    assert not _float_accumulation_is_exact(model, np.zeros(3))
    assert not _float_accumulation_is_exact(model, np.zeros((4, 3, 1)))
    empty = replace(
        model, feature_names=(), weights=np.zeros(0, dtype=np.int64),
        input_zero_point=np.zeros(0, dtype=np.int64), input_scale=np.zeros(0, np.float32),
    )  # fmt: skip
    assert not _float_accumulation_is_exact(empty, np.zeros((4, 0)))


def test_nan_inputs_go_the_int64_way():
    """Rows with a NaN (their int64 codes cannot be carried in float64) get exactly what the
    int64 route gives them, beside clipped and ordinary rows."""
    model = small_integer_model([2, -1, 1], input_bits=8, shift=20)
    X = every_code_row(replace(model, input_bits=3))[:40].copy()
    X[::3, 0] = np.nan
    X[1::5, 1] = 1e300  # clipped
    with np.errstate(invalid="ignore"):
        fast = model.predict_codes(X)
        exact = model._predict_codes_int64(X)
    np.testing.assert_array_equal(fast[0], exact[0])
    np.testing.assert_array_equal(fast[1], exact[1])


def test_only_rows_with_an_input_out_of_range_are_redone(monkeypatch):
    """The float route redoes (slowly, exactly) only the rows whose accumulator overflowed."""
    model = small_integer_model([3, -2], input_bits=8, shift=20)
    X = every_code_row(replace(model, input_bits=3))
    X = np.concatenate([X, np.array([[1e300, 0.0], [0.0, -1e300]])])
    redone = []
    real = model_module._predict_rows_clipped

    def spy(model, rows, *args):
        redone.append(len(rows))
        return real(model, rows, *args)

    monkeypatch.setattr(model_module, "_predict_rows_clipped", spy)
    assert_fast_path_matches(model, X)
    assert sum(redone) == 2


@pytest.mark.parametrize("layout", ["fortran", "strided"])
def test_rows_in_any_layout_over_many_blocks(monkeypatch, layout):
    model = small_integer_model([3, -2, 1], input_bits=8, shift=20)
    rng = np.random.default_rng(21)
    X = rng.integers(-140, 140, (500, 3)) * 0.5 + rng.choice([0.0, 0.25], (500, 3))
    X = np.asfortranarray(X) if layout == "fortran" else np.repeat(X, 2, axis=1)[:, ::2]
    assert not X.flags.c_contiguous
    monkeypatch.setattr(model_module, "ROW_BLOCK", 7)
    assert_fast_path_matches(model, X)


# Long double inputs a float64 cannot hold: just above a code's rounding tie.
TIE = np.longdouble(2) ** -60


def test_inputs_are_rounded_to_float64_before_anything_else():
    """A long double just above a tie rounds to the tie in float64 (then half to even): every
    route must give the codes of the float64 value, whatever array type arrives."""
    model = small_integer_model([3, -2], input_bits=8, shift=20)
    ties = (np.arange(-6, 6, dtype=np.longdouble)[:, None] + 0.5) * 0.5  # (k + ½)·scale
    X = np.concatenate([np.hstack([ties + TIE, ties - TIE])] * 2)
    X[len(ties) :, 1] = 1e300  # the same values again, on rows redone for a clipped input
    as64 = X.astype(np.float64)
    for route in (model.predict_codes, model._predict_codes_int64, model.quantize_inputs):
        got, want = route(X), route(as64)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
    assert (reference_codes(model, X)[0] == model.predict_codes(X)[0]).all()


def test_float_and_quantized_predictions_are_float64_of_float64_inputs():
    rng = np.random.default_rng(22)
    X = rng.normal(size=(50, 3))
    model = fit_model(X, X @ np.array([1.0, -2.0, 0.5]) + rng.normal(size=50))
    wide = X.astype(np.longdouble) + TIE * rng.integers(0, 8, X.shape)
    for predictor in (model, quantize_model(model, QuantConfig("int8"))):
        predictions = predictor.predict(wide)
        assert predictions.dtype == np.float64
        np.testing.assert_array_equal(predictions, predictor.predict(wide.astype(np.float64)))


# --------------------------------------------------------------------------- known answers


def constant_prediction_model(prediction):
    """A float model that predicts ``prediction`` exactly for an all-zero row."""
    X = np.random.default_rng(23).normal(size=(20, 2))
    return model_with(np.zeros(2), prediction, X)


@pytest.mark.parametrize("prediction", [-250.0, 1e6, 3.0e-7, 0.0])
@pytest.mark.parametrize("side", [1.0, -1.0])
def test_a_float_model_reproduces_answers_to_twice_its_rounding_bound(prediction, side):
    """Known answers recognize a float model to twice the rounding bound of each row's own
    arithmetic: an answer as many ulps away as fit in it passes, one ulp more does not
    (issue 13: a fixed relative 1e-9 let edits of up to 4 test predictions through)."""
    model = constant_prediction_model(prediction)
    rows = np.zeros((1, 2))
    assert model.predict(rows)[0] == prediction
    tolerance = 2.0 * model.rounding_bound(rows)[0]
    assert 0.0 < tolerance < 1e-12 * max(abs(prediction), 1e-300)
    ulp = abs(np.spacing(prediction)) if prediction else np.float64(2.0**-1074)
    inside = int(tolerance // ulp)
    assert model.reproduces(rows, np.array([prediction + side * inside * ulp]))
    assert not model.reproduces(rows, np.array([prediction + side * (inside + 1) * ulp]))
    assert not model.reproduces(rows, np.array([prediction + side * 1e-9 * (1 + abs(prediction))]))


def exact_float_prediction(model, row):
    """The exact value of the float model's arithmetic (rationals: no rounding at all)."""
    from fractions import Fraction

    total = Fraction(model.intercept)
    for x, c in zip(row.tolist(), model.coef.tolist(), strict=True):
        total += Fraction(x) * Fraction(c)
    return total


def exact_quantized_prediction(model, row):
    """Σ_j scale_j·(q_j − zp_j)/σ_j·(x_j − μ_j) + bias·bias_scale, exactly."""
    from fractions import Fraction

    d = model.n_features
    scale = np.broadcast_to(model.scale, d).tolist()
    zero_point = np.broadcast_to(model.zero_point, d).tolist()
    total = Fraction(model.bias) * Fraction(model.bias_scale)
    for j, x in enumerate(row.tolist()):
        coef = Fraction(scale[j]) * (int(model.weights[j]) - int(zero_point[j]))
        coef /= Fraction(float(model.feature_std[j]))
        total += coef * (Fraction(x) - Fraction(float(model.feature_mean[j])))
    return total


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    d=st.integers(1, 12),
    magnitude=st.sampled_from([1e-300, 1e-8, 1.0, 1e8, 1e150]),
    cancel=st.booleans(),
)
def test_the_rounding_bound_holds_against_the_exact_value(seed, d, magnitude, cancel):
    """Each float kind's answer lies within ``rounding_bound`` of its exact value (computed
    with rationals), on rows from tiny to huge and on rows whose terms cancel: the bound is
    a bound, so twice it is a sound tolerance between two runtimes."""
    from fractions import Fraction

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(60, d)) * 10.0 ** rng.uniform(-3, 3, d)
    y = X @ rng.normal(size=d) + rng.normal(size=60)
    model = fit_model(X, y)
    quantized = quantize_model(model, QuantConfig("int8"))
    rows = rng.normal(size=(20, d)) * magnitude
    if cancel:  # terms of opposite signs that (nearly) cancel: no relative accuracy left
        rows[:, 0] = -(rows[:, 1:] @ model.coef[1:] + model.intercept) / model.coef[0]
    for kind, exact in ((model, exact_float_prediction), (quantized, exact_quantized_prediction)):
        rows_inside = rows[~outside_domain(kind, rows)]
        predictions = kind.predict(rows_inside)
        bounds = kind.rounding_bound(rows_inside)
        for row, value, bound in zip(rows_inside, predictions, bounds, strict=True):
            assert abs(Fraction(float(value)) - exact(kind, row)) <= Fraction(float(bound))


def test_an_integer_model_is_recognized_by_its_output_codes():
    """An integer model's known answers are its int64 output codes, compared bit for bit: a
    model whose bias moves one code is not the same model, even with the same clipped rows."""
    model = small_integer_model([3, -2], input_bits=8, shift=30, bias=-5)
    X = every_code_row(replace(model, input_bits=3))
    answers = model.answers(X)
    assert answers.dtype == np.int64
    np.testing.assert_array_equal(answers, reference_codes(model, X)[0])
    assert model.reproduces(X, answers)
    assert not replace(model, bias=-4).reproduces(X, answers)


def test_the_int64_route_gives_every_row_its_code_over_many_blocks(monkeypatch):
    """Models beyond the float route's bound accumulate in int64, block by block: every row of
    a batch of many blocks (some clipped, most wrapping around int64) must get its own code."""
    model = guard_case(weights=[2**43 - 1, 0, -1])
    rng = np.random.default_rng(24)
    X = rng.integers(-140, 140, (200, 3)) * 0.5
    X[::9, 1] = 1e300
    assert not _float_accumulation_is_exact(model, X)
    monkeypatch.setattr(model_module, "ROW_BLOCK", 7)
    codes, clipped = model.predict_codes(X)
    expected_codes, expected_clipped = reference_codes(model, X)
    np.testing.assert_array_equal(clipped, expected_clipped)
    np.testing.assert_array_equal(codes, expected_codes)
    assert clipped.any()
    assert not clipped.all()


def _edits_of_one_number(model):
    """Each stored number of a float kind (that predictions use), moved a little, one at a
    time: (what, edited model)."""
    if isinstance(model, LinearModel):
        for j in range(model.n_features):
            yield f"coef[{j}]", replace(model, coef=model.coef + np.eye(model.n_features)[j] * 1e-3)
        yield "intercept", replace(model, intercept=model.intercept + 1e-3)
        return
    d = model.n_features
    for j in range(d):
        yield f"weights[{j}]", replace(model, weights=model.weights + np.eye(d, dtype=np.int64)[j])
        std = model.feature_std.copy()
        std[j] *= np.float32(1.01)
        yield f"feature_std[{j}]", replace(model, feature_std=std)
        mean = model.feature_mean.copy()
        mean[j] += np.float32(0.5)
        yield f"feature_mean[{j}]", replace(model, feature_mean=mean)
    yield "scale", replace(model, scale=model.scale * np.float32(1.01))
    yield "zero_point", replace(model, zero_point=model.zero_point + 1)
    yield "bias", replace(model, bias=model.bias + 1000)
    yield "bias_scale", replace(model, bias_scale=model.bias_scale * 1.01)


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1), d=st.integers(1, 6), dtype=st.sampled_from(["int8", "uint8"])
)
def test_an_edit_of_one_number_moves_answers_along_one_edit_direction(seed, d, dtype):
    """``edit_directions`` is what ``sensitive_rows`` relies on: an edit of any one number
    moves every row's answer by one multiple of u·x + u₀, for one of the directions."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(80, d)) * 10.0 ** rng.uniform(-2, 2, d) + rng.normal(size=d)
    model = fit_model(X, X @ rng.normal(size=d) + rng.normal(size=80))
    rows = rng.normal(size=(30, d)) * 3 * model.feature_std + model.feature_mean
    for kind in (model, quantize_model(model, QuantConfig(dtype))):
        directions = kind.edit_directions()
        along = rows @ directions[:, :-1].T + directions[:, -1]  # (rows, directions)
        for what, edited in _edits_of_one_number(kind):
            moved = edited.predict(rows) - kind.predict(rows)
            if not np.abs(moved).max() > 1e-9 * np.abs(kind.predict(rows)).max():
                continue  # the edit changed nothing (a zero point with no effect, say)
            residuals = []
            for k in range(len(directions)):
                a = along[:, k] @ moved / (along[:, k] @ along[:, k] or 1.0)
                residuals.append(np.abs(moved - a * along[:, k]).max())
            assert min(residuals) <= 1e-6 * np.abs(moved).max(), what


def test_the_most_sensitive_row_reveals_an_edit_the_old_probe_rows_do_not(models, test_rows):
    """An edit of one coefficient that stays within rounding on the old probe rows (the first
    16 test rows and the two rows beyond the training range) but moves a test row beyond
    it: the known answers include the row where that edit shows most (``sensitive_rows``),
    so the edited model is refused. On California the edge rows reveal most edits; the
    feature where they fall furthest behind the most sensitive test row is the one tried."""
    X = test_rows[1][:, :-1]
    model = models.float
    stats = model.stats
    width = stats.maximum - stats.minimum
    old_probe = np.vstack(
        [X[: loading.KNOWN_ANSWER_ROWS], stats.minimum - width - 1, stats.maximum + width + 1]
    )

    def reach(rows):  # per feature: the largest movement per unit of relative edit, in tolerances
        return (np.abs(rows * model.coef) / (2.0 * model.rounding_bound(rows))[:, None]).max(0)

    gain = reach(X) / reach(old_probe)
    j = int(np.argmax(gain))
    assert gain[j] > 1.05, "the old probe rows would catch every such edit"
    r = 1.0 / np.sqrt(reach(X)[j] * reach(old_probe)[j])  # between the two thresholds
    edited = replace(model, coef=model.coef + np.eye(model.n_features)[j] * model.coef[j] * r)
    assert not edited.reproduces(X, model.answers(X))
    assert edited.reproduces(old_probe, model.answers(old_probe))
    with pytest.raises(ArtifactError, match="float model does not reproduce"):
        loading.check_known_answers(replace(models, float=edited))


def test_sensitive_rows_catch_an_edit_far_from_the_edges():
    """A model where the rows beyond the training range are dominated by one large term, so
    an edit of the other coefficient shows only on rows where that term is small: the probe
    rows must include such a row."""
    rng = np.random.default_rng(31)
    X = np.column_stack([rng.normal(size=400) * 100, rng.normal(size=400)])
    X[20::7, 0] = rng.normal(size=X[20::7, 0].shape) * 1e-3  # rows where the big term vanishes
    model = fit_model(X, 50.0 * X[:, 0] + 0.01 * X[:, 1] + rng.normal(size=400) * 0.01)
    section = loading.known_answers({"float": model}, X)
    rows, answers = np.array(section["rows"]), np.array(section["float"])
    tolerance = 2.0 * model.rounding_bound(X)
    r = 1.2 / (np.abs(X[:, 1] * model.coef[1]) / tolerance).max()
    edited = replace(model, coef=model.coef * np.array([1.0, 1.0 + r]))
    assert not edited.reproduces(X, model.answers(X))
    first_and_edges = rows[: loading.KNOWN_ANSWER_ROWS + 2]
    assert edited.reproduces(first_and_edges, answers[: loading.KNOWN_ANSWER_ROWS + 2])
    assert not edited.reproduces(rows, answers)
