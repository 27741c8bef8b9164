"""The least-squares solve from mergeable moments: on the correlation matrix (standardized
features), so a feature scale of 1e-6 next to 1e6 does not fall under ``lstsq``'s rank
cutoff; minimum-norm, with a warning naming the features, when a column is constant or
collinear."""

import warnings
from collections.abc import Sequence

import numpy as np

from linreg_ops.moments import MomentStats

__all__ = ["RankWarning", "constant_features", "intercept_of", "solve"]


class RankWarning(UserWarning):
    """A feature is constant or a linear combination of others: the solution is min-norm."""


def constant_features(stats: MomentStats, feature_names: Sequence[str]) -> np.ndarray:
    """The constant features (minimum = maximum), each named in a warning: their coefficient
    is 0 on every engine. The warning is attributed to the caller's caller (the line that
    asked for the fit), like every RankWarning."""
    constant = stats.constant_x
    for name in [str(n) for n, flag in zip(feature_names, constant, strict=True) if flag]:
        warnings.warn(
            f"feature {name!r} is constant: its coefficient is 0", RankWarning, stacklevel=3
        )
    return constant


def solve(stats: MomentStats, feature_names: Sequence[str]) -> tuple[np.ndarray, float]:
    """Least-squares coefficients and intercept from the statistics, minimum-norm like
    scikit-learn when a column is constant or collinear (with a warning naming it)."""
    constant = constant_features(stats, feature_names)
    std = stats.std_x
    safe = np.where(constant, 1.0, std)
    correlation = stats.cxx / np.outer(safe, safe)
    correlation[constant, :] = 0.0
    correlation[:, constant] = 0.0
    target = stats.cxy / safe
    target[constant] = 0.0
    beta, _, rank, _ = np.linalg.lstsq(correlation, target, rcond=None)
    active = int((~constant).sum())
    if rank < active:
        # Among the non-constant columns only: a constant column's zeroed row has eigenvalue 0
        # too, and its eigenvector would name it instead of the collinear ones.
        kept = np.flatnonzero(~constant)
        _, vectors = np.linalg.eigh(correlation[np.ix_(kept, kept)])
        involved = kept[np.argsort(-np.abs(vectors[:, 0]))[:2]]
        names = ", ".join(repr(feature_names[i]) for i in sorted(involved))
        warnings.warn(
            f"features {names} are collinear: the minimum-norm solution is used",
            RankWarning,
            stacklevel=2,
        )
    coef = beta / safe
    coef[constant] = 0.0
    return coef, intercept_of(stats, coef)


def intercept_of(stats: MomentStats, coef: np.ndarray) -> float:
    """ȳ − x̄·coef, the shifts and the small means apart (the small part keeps its digits)."""
    return float((stats.shift_y - stats.shift_x @ coef) + (stats.mean_dy - stats.mean_dx @ coef))
