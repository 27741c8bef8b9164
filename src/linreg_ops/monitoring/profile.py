"""The reference profile: what drift is measured against, computed once when a model is trained
and stored with its version (``drift_profile.json``).

Per column (each feature, then the float model's prediction): a grid of training-quantile
edges, bounded by one edge just below the training minimum and one at the maximum, so the bins
are "below the training range", ``grid_bins`` quantile bins, and "above it"; the share of
training rows in each; which edges bound the coarser PSI bins; range, mean and σ. For the
model: the features' covariance and the prediction's mean and variance, exact from the
training moments, which the drift attribution compares against.

Quantiles and shares come from the training *sample* every engine keeps (all training rows up
to 100,000, beyond that a deterministic row-hash sample of that size, in bounded memory); a
share read from 100,000 rows is within ±0.003 of the whole data's (2σ of a binomial share),
far inside the thresholds. Ranges and moments are exact, from the merged moments.
"""

from dataclasses import dataclass

import numpy as np

from linreg_ops.config import DRIFT_DEFAULTS, DriftConfig
from linreg_ops.errors import ArtifactError
from linreg_ops.model import LinearModel
from linreg_ops.moments import MomentStats
from linreg_ops.storage import codecs, store
from linreg_ops.storage.codecs import DriftProfileDoc
from linreg_ops.storage.store import Version

__all__ = ["PREDICTION", "Profile", "bin_shares", "build_profile", "load_profile"]

PREDICTION = "prediction"  # the name of the model's output among the monitored columns


def build_profile(
    train: MomentStats,
    sample: np.ndarray,
    model: LinearModel,
    config: DriftConfig = DRIFT_DEFAULTS,
) -> DriftProfileDoc:
    """The profile of the training rows (``train``: their moments; ``sample``: training rows
    for the quantiles) as seen by ``model``."""
    sample = np.asarray(sample, dtype=np.float64)
    predictions = model.predict(sample)
    levels = np.arange(1, config.grid_bins) / config.grid_bins
    values = np.column_stack([sample, predictions])
    quantiles = np.quantile(values, levels, axis=0).T  # (columns, grid_bins − 1)
    covariance = train.cxx / train.n
    prediction_mean = float(model.coef @ train.mean_x + model.intercept)
    prediction_variance = max(float(model.coef @ covariance @ model.coef), 0.0)
    minimum = np.append(train.min_x, predictions.min())
    maximum = np.append(train.max_x, predictions.max())
    mean = np.append(train.mean_x, prediction_mean)
    std = np.append(train.std_x, np.sqrt(prediction_variance))
    step = config.grid_bins // config.psi_bins
    cuts = [step * k for k in range(1, config.psi_bins)]
    columns = []
    for j, name in enumerate([*model.feature_names, PREDICTION]):
        edges = np.concatenate(
            [
                [np.nextafter(minimum[j], -np.inf)],
                np.clip(quantiles[j], minimum[j], maximum[j]),
                [maximum[j]],
            ]
        )
        shares, means = bin_shares(values[:, j], edges)
        columns.append(
            codecs.ColumnProfile(
                name=name,
                edges=edges.tolist(),
                shares=shares.tolist(),
                bin_means=means.tolist(),
                psi_cuts=cuts,
                minimum=float(minimum[j]),
                maximum=float(maximum[j]),
                mean=float(mean[j]),
                std=float(std[j]),
            )
        )
    return DriftProfileDoc(
        schema_version=codecs.SCHEMA_VERSION,
        kind="drift_profile",
        features=list(model.feature_names),
        target=model.target_name,
        n=train.n,
        sample_rows=len(sample),
        columns=columns,
        covariance=covariance.tolist(),
        prediction_mean=prediction_mean,
        prediction_variance=prediction_variance,
        target_mean=float(train.mean_y),
        target_variance=max(float(train.cyy / train.n), 0.0),
    )


def bin_shares(values: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The share of ``values`` in each bin of ``edges`` (bin i holds (edges[i−1], edges[i]]),
    and their mean in each bin (an empty bin's: its midpoint, or its one edge)."""
    index = np.searchsorted(edges, values, side="left")
    counts = np.bincount(index, minlength=len(edges) + 1)
    sums = np.bincount(index, weights=values, minlength=len(edges) + 1)
    bounds = np.concatenate([[edges[0]], edges, [edges[-1]]])
    midpoints = (bounds[:-1] + bounds[1:]) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / np.maximum(counts, 1), midpoints)
    # rounding may put a bin's mean a hair outside it: clip to the bin (the outer ones are open)
    low, high = bounds[:-1].copy(), bounds[1:].copy()
    low[0], high[-1] = -np.inf, np.inf
    means = np.clip(means, low, high)
    shares: np.ndarray = counts / max(len(values), 1)
    return shares, means


@dataclass(frozen=True)
class Profile:
    """A stored profile as arrays, one row per column (the features, then the prediction)."""

    features: tuple[str, ...]
    names: tuple[str, ...]
    n: int
    sample_rows: int
    edges: np.ndarray  # (columns, edges)
    shares: np.ndarray  # (columns, edges + 1)
    bin_means: np.ndarray  # (columns, edges + 1)
    psi_cuts: np.ndarray
    minimum: np.ndarray
    maximum: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    covariance: np.ndarray
    prediction_variance: float
    target_mean: float

    @classmethod
    def of(cls, doc: DriftProfileDoc) -> "Profile":
        def column(field: str) -> np.ndarray:
            return np.asarray([getattr(c, field) for c in doc.columns], dtype=np.float64)

        return cls(
            features=tuple(doc.features),
            names=tuple(c.name for c in doc.columns),
            n=doc.n,
            sample_rows=doc.sample_rows,
            edges=column("edges"),
            shares=column("shares"),
            bin_means=column("bin_means"),
            psi_cuts=np.asarray(doc.columns[0].psi_cuts, dtype=np.int64),
            minimum=column("minimum"),
            maximum=column("maximum"),
            mean=column("mean"),
            std=column("std"),
            covariance=np.asarray(doc.covariance, dtype=np.float64),
            prediction_variance=doc.prediction_variance,
            target_mean=doc.target_mean,
        )


def load_profile(version: Version, model: LinearModel) -> Profile:
    """The profile ``version`` stores for ``model`` (its float model), checked."""
    if not version.has(store.DRIFT_PROFILE_JSON):
        raise ArtifactError(
            f"{version} has no drift profile ({store.DRIFT_PROFILE_JSON}: it was published "
            "before linreg-ops kept one): retrain (linreg-ops train) to monitor drift"
        )
    source = str(version.path / store.DRIFT_PROFILE_JSON)
    doc = codecs.decode_drift_profile(
        store.read_artifact(version, store.DRIFT_PROFILE_JSON), source
    )
    if tuple(doc.features) != model.feature_names:
        raise ArtifactError(f"{source} profiles other features than the model's")
    if len({tuple(c.psi_cuts) for c in doc.columns}) != 1:
        raise ArtifactError(f"{source}: every column must have the same psi_cuts")
    return Profile.of(doc)
