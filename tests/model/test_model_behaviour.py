"""Model behaviour: the scale guard, quantized fidelity on California, determinism, freshness."""

import numpy as np
import pytest

from linreg_ops import data, pipeline, predict, store
from linreg_ops.engines import fit_linear_regression
from linreg_ops.quantize import QuantConfig, quantize_model


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
    pipeline.train(data.file_source(regression_csv, "y"), models_copy)
    assert not (models_copy / store.QUANTIZED_MODEL_JSON).exists()
    assert not (models_copy / store.QUANT_PARAMS_JOBLIB).exists()
    loaded = predict.load(models_copy)
    assert loaded.version.number == 3
    assert loaded.kinds() == ["float"]
    assert predict.load_metrics(loaded.version)["quantized"] is None
    assert loaded.float.feature_names == ("a", "b", "c")
    assert predict.load(models_copy, 2).kinds() == ["float", "quantized", "integer"]


def test_user_data_spanning_1e_minus6_to_1e6(tmp_path):
    rng = np.random.default_rng(5)
    scales = np.array([1e-6, 1e-3, 1.0, 1e3, 1e6])
    X = rng.normal(size=(500, 5)) * scales
    true_coef = np.array([3e6, -2e3, 1.5, 4e-3, -1e-6])
    y = X @ true_coef + 10 + rng.normal(scale=1e-5, size=500)
    source = data.ArraySource(X, y, tuple(f"x{i}" for i in range(5)), "y", "synthetic", "0" * 64)
    result = pipeline.train(source, tmp_path / "models")
    np.testing.assert_allclose(result.model.coef, true_coef, rtol=1e-3)
    assert result.metrics["r2"] > 0.999
