"""The two model objects every stage passes around: plain data, numpy only.

Both know how to predict, because prediction is one line of arithmetic and has to be the
same wherever it runs (batch CLI, HTTP service, container). Neither knows any file format.
"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LinearModel:
    """A fitted float64 linear model ``y = X @ coef + intercept`` plus its training statistics.

    ``feature_mean``/``feature_std`` describe the training split; quantization folds the
    coefficients into that standardized space, so they travel with the model.
    """

    feature_names: tuple[str, ...]
    target_name: str
    coef: np.ndarray
    intercept: float
    feature_mean: np.ndarray
    feature_std: np.ndarray

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Float64 predictions for rows of ``X`` in ``feature_names`` order."""
        return np.asarray(X, dtype=np.float64) @ self.coef + self.intercept


@dataclass(frozen=True)
class QuantizedLinearModel:
    """Integer weights in standardized feature space: real = scale·(q − zero_point).

    Prediction: ``z = (x − feature_mean) / feature_std`` (float32 statistics), then
    ``ŷ = scale · (Σ_j (q_j − zero_point_j)·z_j + bias)`` where ``bias`` is an int32 at the
    weight scale. ``scale`` and ``zero_point`` have one entry per tensor (per-tensor) or one
    per feature (per-channel); both broadcast the same way.
    """

    feature_names: tuple[str, ...]
    target_name: str
    dtype: str
    bits: int
    symmetric: bool
    granularity: str
    weights: np.ndarray  # int64 codes, shape (d,)
    scale: np.ndarray  # float64, shape (1,) or (d,)
    zero_point: np.ndarray  # int64, shape (1,) or (d,)
    bias: int  # int32 range, at scale[0] (per-tensor) or scale 1/bias_scale
    bias_scale: float
    feature_mean: np.ndarray  # float32
    feature_std: np.ndarray  # float32, 1 where the training feature was constant

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    def dequantized_weights(self) -> np.ndarray:
        """Real-valued weights in standardized space, exactly as the integers encode them."""
        return self.scale * (self.weights - self.zero_point).astype(np.float64)

    def standardize(self, X: np.ndarray) -> np.ndarray:
        mean = self.feature_mean.astype(np.float64)
        std = self.feature_std.astype(np.float64)
        return (np.asarray(X, dtype=np.float64) - mean) / std

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predictions from the integers: dequantize once, then one matrix-vector product."""
        return self.standardize(X) @ self.dequantized_weights() + self.bias * self.bias_scale

    def to_raw_space(self) -> tuple[np.ndarray, float]:
        """Equivalent raw-feature coefficients and intercept, for the seed's comparison."""
        std = self.feature_std.astype(np.float64)
        mean = self.feature_mean.astype(np.float64)
        coef = self.dequantized_weights() / std
        return coef, float(self.bias * self.bias_scale - coef @ mean)
