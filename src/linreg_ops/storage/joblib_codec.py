"""The seed's joblib artifacts: a scikit-learn estimator and parameter dicts, pickled.

Written for compatibility with the seed's scripts only: linreg-ops itself never reads them
back. A module of its own, apart from the JSON ``codecs``, because it imports joblib and
scikit-learn (inside its functions), which prediction and serving must never import.
"""

import io
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from sklearn.linear_model import LinearRegression

__all__ = ["estimator_from", "joblib_bytes"]


def joblib_bytes(obj: Any) -> bytes:
    """Seed-compatible joblib/pickle bytes. linreg-ops itself never reads them back."""
    import joblib

    buffer = io.BytesIO()
    joblib.dump(obj, buffer)
    return buffer.getvalue()


def estimator_from(coef: np.ndarray, intercept: float) -> "LinearRegression":
    """A ``LinearRegression`` carrying coefficients another engine solved (for the joblib file)."""
    from sklearn.linear_model import LinearRegression

    estimator = LinearRegression()
    estimator.coef_ = np.asarray(coef, dtype=np.float64)
    estimator.intercept_ = float(intercept)
    estimator.n_features_in_ = len(coef)
    estimator.rank_ = len(coef)
    return estimator
