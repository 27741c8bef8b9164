"""The model objects every stage passes around: plain data, numpy only.

Each knows how to predict, because prediction is a line or two of arithmetic that has to be
identical wherever it runs (batch CLI, HTTP service, container). None knows a file format.
"""

from dataclasses import dataclass

import numpy as np

ROW_BLOCK = 65_536  # rows per block in integer-only inference: its temporaries stay in cache


def row_dot(X: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """Σ_j X[i, j]·coef[j] for each row, summed in feature order.

    Not ``X @ coef``: BLAS picks its summation order by batch size and memory layout, so a
    row's prediction would change in the last bits with the rows around it. This loop gives
    every row the same bits whether it comes alone over HTTP or in a block of a million (C
    order first, because the inner loop differs for strided rows).
    """
    return np.einsum("ij,j->i", np.ascontiguousarray(X, dtype=np.float64), coef)


@dataclass(frozen=True)
class FeatureStats:
    """What the training split looked like, per feature: enough to standardize, calibrate and
    weigh rounding errors without the training rows themselves.

    ``correlation`` is ZᵀZ/n for the standardized training features Z (a constant feature
    has σ = 1 and a zero row), the Gram matrix that Hessian-aware rounding needs.
    """

    n: int
    mean: np.ndarray
    std: np.ndarray
    minimum: np.ndarray
    maximum: np.ndarray
    quantile_level: float
    low: np.ndarray  # the quantile_level quantile
    high: np.ndarray  # the 1 − quantile_level quantile
    correlation: np.ndarray


@dataclass(frozen=True)
class LinearModel:
    """A fitted float64 linear model ``y = X @ coef + intercept`` and its training statistics."""

    feature_names: tuple[str, ...]
    target_name: str
    coef: np.ndarray
    intercept: float
    stats: FeatureStats

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    @property
    def feature_mean(self) -> np.ndarray:
        return self.stats.mean

    @property
    def feature_std(self) -> np.ndarray:
        return self.stats.std

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Float64 predictions for rows of ``X`` in ``feature_names`` order."""
        return row_dot(X, self.coef) + self.intercept


@dataclass(frozen=True)
class QuantizedLinearModel:
    """Integer weights in standardized feature space: real = scale·(q − zero_point).

    Prediction: ``z = (x − feature_mean) / feature_std`` (float32 statistics), then
    ``ŷ = Σ_j scale_j·(q_j − zero_point_j)·z_j + bias·bias_scale`` with ``bias`` an int32.
    ``scale``/``zero_point`` hold one entry (per-tensor) or one per feature (per-channel).
    """

    feature_names: tuple[str, ...]
    target_name: str
    dtype: str
    bits: int
    symmetric: bool
    granularity: str
    rounding: str
    weights: np.ndarray  # int64 codes, shape (d,)
    scale: np.ndarray  # float32 values, shape (1,) or (d,)
    zero_point: np.ndarray  # int64, shape (1,) or (d,)
    bias: int  # int32
    bias_scale: float  # float32 value: the weight scale times a power of two
    feature_mean: np.ndarray  # float32
    feature_std: np.ndarray  # float32, 1 where the training feature was constant

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    def dequantized_weights(self) -> np.ndarray:
        """Real-valued weights in standardized space, exactly as the integers encode them."""
        scale = self.scale.astype(np.float64)
        return scale * (self.weights - self.zero_point).astype(np.float64)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predictions from the integers: dequantize once and fold the standardization into
        the weights, so a batch costs one matrix-vector product, like the float model."""
        coef, intercept = self.to_raw_space()
        return row_dot(X, coef) + intercept

    def to_raw_space(self) -> tuple[np.ndarray, float]:
        """Equivalent raw-feature coefficients and intercept, for the seed's comparison."""
        std = self.feature_std.astype(np.float64)
        mean = self.feature_mean.astype(np.float64)
        coef = self.dequantized_weights() / std
        return coef, float(self.bias * self.bias_scale - coef @ mean)


@dataclass(frozen=True)
class IntegerLinearModel:
    """Integer-only inference (Jacob et al. 2018): no float operation between codes in and out.

    1. inputs:  q_x = clip(round_half_even(x / input_scale) + input_zero_point, qmin, qmax)
    2. accumulate in int64: acc = Σ_j weights_j · q_x,j + bias   (bias: int32; it already holds
       −Σ_j weights_j · input_zero_point_j, so zero points cost nothing per row)
    3. requantize once: out = clip((acc · multiplier + 2^(shift−1)) >> shift, output range),
       multiplier an int32 M0·2^31 with M0 in [0.5, 1)
    4. outside the integer path: ŷ = output_scale · out
    """

    feature_names: tuple[str, ...]
    target_name: str
    weight_dtype: str
    weights: np.ndarray  # int64 codes: the per-tensor standardized weights
    accumulator_scale: float  # real value of one accumulator unit (weight scale × input step)
    rounding: str
    bias: int  # int32, at accumulator_scale
    input_bits: int
    input_scale: np.ndarray  # float32 values, per feature
    input_zero_point: np.ndarray  # int64 (may lie outside the code range)
    calibration: str
    output_bits: int
    output_scale: float  # float32 value
    multiplier: int  # int32, M0·2^31
    shift: int  # total right shift

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    @property
    def input_range(self) -> tuple[int, int]:
        return -(2 ** (self.input_bits - 1)), 2 ** (self.input_bits - 1) - 1

    @property
    def output_range(self) -> tuple[int, int]:
        return -(2 ** (self.output_bits - 1)), 2 ** (self.output_bits - 1) - 1

    def quantize_inputs(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Input codes, and for each row whether any feature was clipped to the calibrated range."""
        raw = np.asarray(X, dtype=np.float64) / self.input_scale.astype(np.float64)
        np.rint(raw, out=raw)
        raw += self.input_zero_point
        qmin, qmax = self.input_range
        clipped = ((raw < qmin) | (raw > qmax)).any(axis=1)
        np.clip(raw, qmin, qmax, out=raw)
        return raw.astype(np.int64), clipped

    def accumulate(self, codes: np.ndarray) -> np.ndarray:
        return codes @ self.weights + self.bias

    def requantize(self, accumulator: np.ndarray) -> np.ndarray:
        rounding = np.int64(1) << np.int64(self.shift - 1)
        out = (accumulator * np.int64(self.multiplier) + rounding) >> np.int64(self.shift)
        return np.clip(out, *self.output_range)

    def predict_codes(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Integer output codes and the per-row clipped flags, in cache-sized row blocks."""
        X = np.asarray(X, dtype=np.float64)
        out = np.empty(len(X), dtype=np.int64)
        clipped = np.empty(len(X), dtype=bool)
        for start in range(0, len(X), ROW_BLOCK):
            block = slice(start, start + ROW_BLOCK)
            codes, clipped[block] = self.quantize_inputs(X[block])
            out[block] = self.requantize(self.accumulate(codes))
        return out, clipped

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.predict_codes(X)[0] * np.float64(self.output_scale)
