"""The seed's five tests, by name, with assertions strong enough to catch a regression."""

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from helpers import SEED_COEF, SEED_FIRST_PREDICTIONS, SEED_INTERCEPT, SEED_MSE, SEED_R2
from linreg_ops import artifacts
from linreg_ops.data import split
from linreg_ops.metrics import mean_squared_error, r2_score
from linreg_ops.train import fit_linear_regression


@pytest.fixture(scope="module")
def seed_split(california):
    return split(california, test_size=0.2, random_state=42)


@pytest.fixture(scope="module")
def fitted(seed_split):
    return fit_linear_regression(seed_split.X_train, seed_split.y_train)


def test_dataset_loading(california):
    assert california.X.shape == (20640, 8)
    assert california.y.shape == (20640,)
    assert california.feature_names == (
        "MedInc", "HouseAge", "AveRooms", "AveBedrms",
        "Population", "AveOccup", "Latitude", "Longitude",
    )  # fmt: skip
    assert california.target_name == "MedHouseVal"
    assert np.isfinite(california.X).all()
    assert np.isfinite(california.y).all()


def test_model_creation(fitted):
    assert type(fitted) is LinearRegression
    assert fitted.fit_intercept
    assert fitted.coef_.shape == (8,)
    assert fitted.n_features_in_ == 8


def test_model_training(fitted, seed_split):
    assert seed_split.X_train.shape == (16512, 8)
    assert seed_split.X_test.shape == (4128, 8)
    np.testing.assert_allclose(fitted.coef_, SEED_COEF, rtol=1e-6)
    assert fitted.intercept_ == pytest.approx(SEED_INTERCEPT, abs=1e-9)
    direct = LinearRegression().fit(seed_split.X_train, seed_split.y_train)
    np.testing.assert_allclose(fitted.coef_, direct.coef_, rtol=1e-9)


def test_model_performance(fitted, seed_split):
    predictions = fitted.predict(seed_split.X_test)
    assert r2_score(seed_split.y_test, predictions) == pytest.approx(SEED_R2, abs=1e-4)
    assert mean_squared_error(seed_split.y_test, predictions) == pytest.approx(SEED_MSE, abs=1e-4)
    np.testing.assert_allclose(predictions[:10], SEED_FIRST_PREDICTIONS, atol=5e-9)


def test_model_save_load(fitted, seed_split, trained_dir):
    reloaded = artifacts.load_joblib_artifact(trained_dir, artifacts.ESTIMATOR_JOBLIB)
    np.testing.assert_array_equal(
        reloaded.predict(seed_split.X_test), fitted.predict(seed_split.X_test)
    )
    safe = artifacts.load_model(trained_dir)
    np.testing.assert_array_equal(safe.coef, fitted.coef_)
    np.testing.assert_allclose(
        safe.predict(seed_split.X_test), fitted.predict(seed_split.X_test), rtol=0, atol=1e-12
    )
