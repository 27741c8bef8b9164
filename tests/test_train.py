"""The seed's five tests, by name, with assertions strong enough to catch a regression."""

import joblib
import numpy as np
import pytest
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import train_test_split

from helpers import (
    CALIFORNIA_FEATURES,
    SEED_COEF,
    SEED_FIRST_PREDICTIONS,
    SEED_INTERCEPT,
    SEED_MSE,
    SEED_R2,
)
from linreg_ops.metrics import mean_squared_error, r2_score
from linreg_ops.training.engines import fit_linear_regression


@pytest.fixture(scope="module")
def seed_split(california):
    return train_test_split(california.X, california.y, test_size=0.2, random_state=42)


@pytest.fixture(scope="module")
def fitted(seed_split):
    X_train, _, y_train, _ = seed_split
    return fit_linear_regression(X_train, y_train)


def test_dataset_loading(california):
    assert california.X.shape == (20640, 8)
    assert california.y.shape == (20640,)
    assert california.feature_names == CALIFORNIA_FEATURES
    assert california.target_name == "MedHouseVal"
    assert np.isfinite(california.X).all()
    assert np.isfinite(california.y).all()


def test_model_creation(fitted):
    assert type(fitted) is LinearRegression
    assert fitted.fit_intercept
    assert fitted.coef_.shape == (8,)
    assert fitted.n_features_in_ == 8


def test_model_training(fitted, seed_split):
    X_train, X_test, y_train, _ = seed_split
    assert X_train.shape == (16512, 8)
    assert X_test.shape == (4128, 8)
    np.testing.assert_allclose(fitted.coef_, SEED_COEF, rtol=1e-6)
    assert fitted.intercept_ == pytest.approx(SEED_INTERCEPT, abs=1e-9)
    direct = LinearRegression().fit(X_train, y_train)
    np.testing.assert_allclose(fitted.coef_, direct.coef_, rtol=1e-9)


def test_model_performance(fitted, seed_split):
    _, X_test, _, y_test = seed_split
    predictions = fitted.predict(X_test)
    assert r2_score(y_test, predictions) == pytest.approx(SEED_R2, abs=1e-4)
    assert mean_squared_error(y_test, predictions) == pytest.approx(SEED_MSE, abs=1e-4)
    np.testing.assert_allclose(predictions[:10], SEED_FIRST_PREDICTIONS, atol=5e-9)


def test_model_save_load(fitted, seed_split, trained_dir, models):
    """The seed's path, models/linear_regression_model.joblib, loads the published estimator."""
    _, X_test, _, _ = seed_split
    reloaded = joblib.load(trained_dir / "linear_regression_model.joblib")
    np.testing.assert_array_equal(reloaded.predict(X_test), fitted.predict(X_test))
    np.testing.assert_array_equal(models.float.coef, fitted.coef_)
    np.testing.assert_allclose(
        models.float.predict(X_test), fitted.predict(X_test), rtol=0, atol=1e-12
    )
