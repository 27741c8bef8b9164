"""What quantization needs to know of the training features: their statistics, computed
once when the model is trained and kept in ``model.json``."""

import numpy as np

from linreg_ops.model import FeatureStats
from linreg_ops.moments import MomentStats

__all__ = ["CALIBRATION_QUANTILE", "feature_statistics"]

CALIBRATION_QUANTILE = 0.001


def feature_statistics(stats: MomentStats, sample: np.ndarray) -> FeatureStats:
    """What quantization needs from the training rows: mean, σ, range, quantiles (from a
    sample of rows) and the correlation matrix of the standardized features (a constant
    feature gets σ = 1 and a zero row).

    When the sample holds every training row (up to 100,000 rows, whatever the engine) the
    moments are recomputed from the rows in two passes, the most accurate way; beyond that
    they come from the merged moments, whose difference is at the 1e-14 level.
    """
    if len(sample) == stats.n:
        mean = sample.mean(axis=0)
        spread = sample.std(axis=0)
        std = np.where(spread > 0.0, spread, 1.0)
        z = (sample - mean) / std
        correlation = (z.T @ z) / len(sample)
    else:
        mean = stats.mean_x
        constant = stats.std_x <= 0.0
        std = np.where(constant, 1.0, stats.std_x)
        correlation = stats.cxx / stats.n / np.outer(std, std)
        correlation[constant, :] = 0.0
        correlation[:, constant] = 0.0
    low, high = np.quantile(sample, [CALIBRATION_QUANTILE, 1.0 - CALIBRATION_QUANTILE], axis=0)
    return FeatureStats(
        n=stats.n,
        mean=mean,
        std=std,
        minimum=stats.min_x,
        maximum=stats.max_x,
        quantile_level=CALIBRATION_QUANTILE,
        low=low,
        high=high,
        correlation=correlation,
    )
