"""Drift of new rows from the training rows, per column, and the prediction's drift attributed
exactly to the features.

Per column, on the profile's training-quantile bins: the population stability index (on the
coarse bins), the Kolmogorov–Smirnov statistic and the Wasserstein distance normed by the
training σ (both on the fine grid: KS exact at every grid edge; Wasserstein from each bin's
share and mean, see ``wasserstein``), the mean shift in training σ and the
share of rows outside the training range. The verdict is Evidently's default for numeric
columns (``config.DriftConfig``), or a significant PSI.

For a linear model ŷ = w·x + b the prediction's drift is not estimated but computed: the
change of its mean is Σⱼ wⱼ Δμⱼ and the change of its variance wᵀ(Σ_new − Σ_train)w, each
split into one term per feature (the variance's cross terms shared equally by the pair).
Both are reported beside the same changes measured on the predictions themselves.
"""

import math
from typing import Any

import numpy as np

from linreg_ops.config import DRIFT_DEFAULTS, DriftConfig
from linreg_ops.monitoring.profile import Profile
from linreg_ops.monitoring.stats import DriftStats

__all__ = [
    "GAUGES",
    "column_drift",
    "drift_report",
    "gauge_samples",
    "ks_p_value",
    "ks_statistic",
    "psi",
    "wasserstein",
]


def psi(reference: np.ndarray, current: np.ndarray, floor: float) -> float:
    """Σ (q − p)·ln(q / p) over bins, an empty bin's share raised to ``floor``."""
    p = np.maximum(reference, floor)
    q = np.maximum(current, floor)
    return float(np.sum((q - p) * np.log(q / p)))


def ks_statistic(reference: np.ndarray, current: np.ndarray) -> float:
    """The largest difference of the two CDFs at the bins' upper edges."""
    return float(np.max(np.abs(np.cumsum(reference) - np.cumsum(current))))


def ks_p_value(statistic: float, n: int, m: int) -> float:
    """The two-sample KS test's p-value, from the asymptotic Kolmogorov distribution with
    Stephens' small-sample correction (Numerical Recipes §14.3). Hand-written: SciPy may not
    be imported on the serving path (import contracts); tests check it against SciPy."""
    if statistic <= 0.0:
        return 1.0
    root = math.sqrt(n * m / (n + m))
    x = (root + 0.12 + 0.11 / root) * statistic
    if x < 0.2:
        return 1.0
    terms = [(-1) ** (k - 1) * math.exp(-2.0 * k * k * x * x) for k in range(1, 101)]
    return min(max(2.0 * math.fsum(terms), 0.0), 1.0)


def wasserstein(
    edges: np.ndarray,
    reference: np.ndarray,
    reference_means: np.ndarray,
    current: np.ndarray,
    current_means: np.ndarray,
) -> float:
    """∫|F_ref − F_cur| dx, from each bin's share and mean (bin i holds (edges[i−1],
    edges[i]]; bin 0 everything below edges[0], the last everything above edges[-1]).

    Inside a bin, ∫(F_ref − F_cur) dx is known exactly from the CDFs at its lower edge and the
    bins' shares and means (∫ₐᵇ F = F(a)(b − a) + share·(b − mean)); the distance is the sum of
    its absolute values: exact wherever the CDFs do not cross inside a bin, and where they
    do, short by at most what the crossing bin holds. The outer bins need no bound: their
    integrals are share × distance of the mean from the edge.
    """
    below = np.concatenate([[0.0], np.cumsum(reference)[:-1] - np.cumsum(current)[:-1]])
    width = np.concatenate([[0.0], np.diff(edges), [0.0]])
    upper = np.concatenate([edges, [edges[-1]]])  # the last bin measured from its lower edge
    inside = (
        below * width + reference * (upper - reference_means) - current * (upper - current_means)
    )
    return float(np.abs(inside).sum())


def column_drift(
    profile: Profile, stats: DriftStats, column: int, config: DriftConfig = DRIFT_DEFAULTS
) -> dict[str, Any]:
    """Every figure of one column, and its verdict."""
    views = stats.parts()
    n = stats.n
    counts = views["counts"][column]
    current = counts / n
    reference = profile.shares[column]
    starts = np.concatenate([[0], profile.psi_cuts + 1])
    psi_value = psi(
        np.add.reduceat(reference, starts), np.add.reduceat(current, starts), config.share_floor
    )
    ks = ks_statistic(reference, current)
    std = float(profile.std[column])
    count = np.maximum(counts, 1)
    shift = float(views["sum"][column]) / n
    origin = profile.mean[column]  # the new rows' bin sums are of differences from it
    distance = wasserstein(
        profile.edges[column] - origin,
        reference,
        profile.bin_means[column] - origin,
        current,
        views["bin_sums"][column] / count,
    )
    normed = distance / max(std, 0.001)  # Evidently's floor for a constant column
    small = profile.n <= config.small_reference_rows
    p_value = ks_p_value(ks, profile.n, n)
    flagged = p_value < config.ks_p_value if small else normed >= config.wasserstein_threshold
    level = (
        "significant"
        if psi_value >= config.psi_significant
        else "moderate"
        if psi_value >= config.psi_moderate
        else "stable"
    )
    return {
        "name": profile.names[column],
        "psi": psi_value,
        "psi_level": level,
        "ks": ks,
        "ks_p_value": p_value,
        "wasserstein_norm": normed,
        "mean_shift_sigma": shift / std if std > 0.0 else (0.0 if shift == 0.0 else None),
        "outside_share": float(counts[0] + counts[-1]) / n,
        "reference_mean": float(profile.mean[column]),
        "mean": float(profile.mean[column]) + shift,
        "minimum": float(views["min"][column]),
        "maximum": float(views["max"][column]),
        "test": "ks" if small else "wasserstein",
        "drift": bool(flagged or psi_value >= config.psi_significant),
    }


def drift_report(
    profile: Profile,
    stats: DriftStats,
    coef: np.ndarray,
    *,
    source: str,
    version: int,
    training: dict[str, float] | None = None,
    target: str | None = None,
    config: DriftConfig = DRIFT_DEFAULTS,
) -> dict[str, Any]:
    """The drift of ``stats``' rows from ``profile``: what ``monitor --json``, ``drift.json``
    and ``GET /monitor`` return. ``training``: the version's R² and MSE, for a target."""
    n = stats.n
    report: dict[str, Any] = {
        "version": version,
        "source": source,
        "rows": n,
        "reference_rows": profile.n,
        "thresholds": {
            "test": "ks" if profile.n <= config.small_reference_rows else "wasserstein",
            "wasserstein_norm": config.wasserstein_threshold,
            "ks_p_value": config.ks_p_value,
            "small_reference_rows": config.small_reference_rows,
            "psi_moderate": config.psi_moderate,
            "psi_significant": config.psi_significant,
        },
        "features": [],
        "prediction": None,
        "attribution": [],
        "target": None,
        "drifted": [],
        "drift": False,
    }
    if n == 0:
        return report
    d = len(profile.features)
    features = [column_drift(profile, stats, j, config) for j in range(d)]
    prediction = column_drift(profile, stats, d, config)
    prediction.update(_attribution(profile, stats, np.asarray(coef, dtype=np.float64)))
    attribution = prediction.pop("per_feature")
    drifted = [f["name"] for f in features if f["drift"]]
    report.update(
        features=features,
        prediction=prediction,
        attribution=attribution,
        target=_target(stats, target, training),
        drifted=drifted,
        drift=bool(drifted or prediction["drift"]),
    )
    return report


def _attribution(profile: Profile, stats: DriftStats, w: np.ndarray) -> dict[str, Any]:
    views = stats.parts()
    n = stats.n
    d = len(w)
    delta = views["sum"] / n  # mean − training mean, of each feature and the prediction
    cross = views["cross"] / n
    covariance = cross[:d, :d] - np.outer(delta[:d], delta[:d])
    change = covariance - profile.covariance
    mean_terms = w * delta[:d]
    variance_terms = w * (change @ w)
    measured_variance = float(cross[d, d] - delta[d] ** 2)
    mean_total = math.fsum(mean_terms.tolist())
    variance_total = math.fsum(variance_terms.tolist())

    def share(term: float, total: float) -> float | None:
        return term / total if total != 0.0 else None

    return {
        "mean_change": float(delta[d]),
        "mean_change_attributed": mean_total,
        "variance": measured_variance,
        "reference_variance": profile.prediction_variance,
        "variance_change": measured_variance - profile.prediction_variance,
        "variance_change_attributed": variance_total,
        "per_feature": [
            {
                "name": profile.features[j],
                "weight": float(w[j]),
                "mean_shift": float(delta[j]),
                "mean_contribution": float(mean_terms[j]),
                "mean_share": share(float(mean_terms[j]), mean_total),
                "variance_contribution": float(variance_terms[j]),
                "variance_share": share(float(variance_terms[j]), variance_total),
            }
            for j in range(d)
        ],
    }


def _target(
    stats: DriftStats, target: str | None, training: dict[str, float] | None
) -> dict[str, Any] | None:
    views = stats.parts()
    m = int(views["target_count"][0])
    if target is None or m == 0:
        return None
    dy_sum, dy_squares, sse = (float(v) for v in views["target"])
    total = dy_squares - dy_sum * dy_sum / m
    return {
        "column": target,
        "rows": m,
        "r2": 1.0 - sse / total if total > 0.0 else None,
        "mse": sse / m,
        "training_r2": (training or {}).get("r2"),
        "training_mse": (training or {}).get("mse"),
    }


GAUGES = {  # name: (help, the column figure it reads)
    "linreg_ops_drift_psi": ("Population stability index against the training rows", "psi"),
    "linreg_ops_drift_ks": ("Kolmogorov-Smirnov statistic against the training rows", "ks"),
    "linreg_ops_drift_wasserstein_norm": (
        "Wasserstein distance to the training rows over the training standard deviation",
        "wasserstein_norm",
    ),
    "linreg_ops_drift_outside_range_share": (
        "Share of served rows outside the training range",
        "outside_share",
    ),
    "linreg_ops_drift_detected": ("1 when the column drifts at the defaults, else 0", "drift"),
}


def gauge_samples(report: dict[str, Any]) -> list[tuple[str, str, dict[str, str], float]]:
    """``GET /monitor``'s report as Prometheus gauge samples (name, help, labels, value):
    per column (``column`` label, the prediction included) each figure of ``GAUGES``, then
    the rows seen and the prediction's mean and variance change, measured and attributed
    (per feature, ``feature`` label). For a collector of the service's ``/metrics``."""
    samples: list[tuple[str, str, dict[str, str], float]] = [
        ("linreg_ops_drift_rows", "Rows the drift statistics cover", {}, float(report["rows"]))
    ]
    if not report["rows"]:
        return samples
    for column in [*report["features"], report["prediction"]]:
        for name, (text, key) in GAUGES.items():
            samples.append((name, text, {"column": column["name"]}, float(column[key])))
    prediction = report["prediction"]
    for key in ("mean_change", "variance_change"):
        text = f"Prediction {key.replace('_', ' ')}, measured on the predictions"
        samples.append((f"linreg_ops_drift_prediction_{key}", text, {}, float(prediction[key])))
    for row in report["attribution"]:
        for key in ("mean_contribution", "variance_contribution"):
            text = f"The feature's term of the prediction's {key.split('_')[0]} change"
            samples.append((f"linreg_ops_drift_{key}", text, {"feature": row["name"]}, row[key]))
    return samples
