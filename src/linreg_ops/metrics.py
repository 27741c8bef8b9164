"""Regression metrics in plain numpy, so evaluation and serving never need scikit-learn.

One definition of R² for every path: from predictions (``r2_score``) and from the moments
the streaming engines keep (``r2_from_sums``) both end in ``r2_from_sums``.
"""

import numpy as np

__all__ = [
    "mean_squared_error",
    "prediction_drift",
    "quantized_fidelity",
    "r2_from_sums",
    "r2_score",
    "regression_metrics",
]


def r2_from_sums(residual_ss: float, total_ss: float) -> float:
    """1 − SSE/SST, as scikit-learn defines it: for a constant target (SST = 0) 1.0 when every
    prediction is exact and 0.0 otherwise, never NaN or infinity."""
    if total_ss == 0.0:
        return 1.0 if residual_ss == 0.0 else 0.0
    return 1.0 - residual_ss / total_ss


def mean_squared_error(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean of squared residuals (the seed's "loss")."""
    residuals = np.asarray(y_true, dtype=np.float64) - np.asarray(y_pred, dtype=np.float64)
    return float(np.mean(residuals * residuals))


def r2_score(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Coefficient of determination of predictions."""
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    residual_ss = float(np.sum((y_true - y_pred) ** 2))
    total_ss = float(np.sum((y_true - y_true.mean()) ** 2))
    return r2_from_sums(residual_ss, total_ss)


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """The two figures the seed reports, keyed as ``metrics.json`` stores them."""
    return {"r2": r2_score(y_true, y_pred), "mse": mean_squared_error(y_true, y_pred)}


def prediction_drift(reference: np.ndarray, candidate: np.ndarray) -> dict[str, float]:
    """How far a candidate's predictions move from a reference's: max and mean |Δŷ|."""
    diff = np.abs(np.asarray(candidate, dtype=np.float64) - np.asarray(reference, dtype=np.float64))
    return {"max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean())}


def quantized_fidelity(
    y_true: np.ndarray,
    float_pred: np.ndarray,
    quantized_pred: np.ndarray,
    clipped: np.ndarray | None = None,
) -> dict[str, float]:
    """What quantization costs: R²/MSE, ΔR² against float, prediction drift, clipped rows.

    ``clipped`` flags rows whose inputs fell outside an integer model's calibrated range;
    ``mean_abs_diff_inside`` is the drift on the other rows.
    """
    clipped = np.zeros(len(y_true), dtype=bool) if clipped is None else np.asarray(clipped)
    figures: dict[str, float] = {
        **regression_metrics(y_true, quantized_pred),
        **prediction_drift(float_pred, quantized_pred),
    }
    figures["delta_r2"] = figures["r2"] - r2_score(y_true, float_pred)
    figures["clipped_rows"] = int(clipped.sum())
    figures["clipped_share"] = float(clipped.mean())
    inside = ~clipped
    figures["mean_abs_diff_inside"] = (
        prediction_drift(float_pred[inside], quantized_pred[inside])["mean_abs_diff"]
        if inside.any()
        else 0.0
    )
    return figures
