"""What a least-squares fit can use, checked once on every engine's statistics: enough
rows on each side of the split, values whose squares stay inside float64, a target that
varies, and a finite solution."""

import math
from collections.abc import Sequence

import numpy as np

from linreg_ops.errors import InputError
from linreg_ops.moments import MomentStats

__all__ = ["SMALLEST_SPREAD", "check_counts", "check_rows", "check_solution", "check_trainable"]

# Below this, squared deviations fall among float64's subnormals (2.2e-308) and lose digits.
SMALLEST_SPREAD = 1e-150


def check_rows(n: int, d: int, source: str) -> None:
    """Enough rows for ``d`` features: checked as soon as the count is known, before any
    statistic of a wide table (d×d per block) is computed."""
    if n < d + 2:
        raise InputError(
            f"{source}: {n} rows is too few to fit {d} features (need at least {d + 2})"
        )


def check_counts(n: int, n_train: int, n_test: int, d: int, source: str) -> None:
    """Enough rows, and enough on each side of the split, for ``d`` features."""
    check_rows(n, d, source)
    if n_train < d + 2 or n_test < 2:
        raise InputError(
            f"{source}: the split leaves {n_train} training and {n_test} test rows; "
            f"need at least {d + 2} training rows and 2 test rows (change --test-size)"
        )


def check_trainable(
    train: MomentStats, test: MomentStats, features: Sequence[str], target: str, source: str
) -> None:
    """The one check of what a least-squares fit can use, on every engine's statistics.

    Constant means one value in every row (minimum = maximum), decided exactly, so a target
    of 4.2 everywhere is refused like 5.0, and ``1e15 + x`` is not constant.
    """
    total = train.merge(test)
    check_counts(total.n, train.n, test.n, len(features), source)
    for part in (total, train):
        diagonal = np.diag(part.cxx)
        if not (np.isfinite(diagonal).all() and math.isfinite(part.cyy)):
            overflowing = [
                name for name, v in zip(features, diagonal, strict=True) if not np.isfinite(v)
            ]
            column = overflowing[0] if overflowing else target
            raise InputError(
                f"{source}: column {column!r} holds values so large that their squares "
                "overflow float64; rescale it (e.g. to thousands or millions)"
            )
        spread = part.max_x - part.min_x
        for name, width in zip(features, spread, strict=True):
            if 0.0 < width < SMALLEST_SPREAD:
                raise InputError(
                    f"{source}: column {name!r} varies by only {width:.3g}, so little that the "
                    "squares of its deviations underflow float64; rescale it (e.g. to millionths)"
                )
        if 0.0 < part.max_y - part.min_y < SMALLEST_SPREAD:
            raise InputError(
                f"{source}: target column {target!r} holds values so small (varying by "
                f"{part.max_y - part.min_y:.3g}) that the squares of its deviations underflow "
                "float64; rescale it"
            )
    if total.constant_y:
        raise InputError(
            f"{source}: target column {target!r} is constant (every row is "
            f"{total.min_y!r}); there is nothing to learn"
        )
    if train.constant_y:
        raise InputError(
            f"{source}: the target is constant on the training rows; "
            "use more rows or another --random-state"
        )


def check_solution(coef: np.ndarray, intercept: float, source: str) -> None:
    """A solution every runtime can predict with: finite coefficients and intercept."""
    if not (np.isfinite(coef).all() and math.isfinite(intercept)):
        raise InputError(
            f"{source}: the least-squares solution is not finite; rescale the features"
        )
