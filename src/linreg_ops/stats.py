"""Mergeable sufficient statistics for least squares, and the row-hash split.

Any engine (one process reading chunks, or Dask partitions on many machines) reduces its rows
to the same small summary — row count, means, the *centred* co-moment matrices — merges
summaries with Chan et al.'s pairwise update (numerically stable: never the raw uncentred
XᵀX, whose entries can be 1e12 times larger than the quantities that matter), and solves the
d×d system once. The solve runs on the correlation matrix (standardized features), so a
feature scale of 1e-6 next to 1e6 does not fall under ``lstsq``'s rank cutoff.
"""

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
BLOCK_ROWS = 16_384  # rows whose centred copy (d × 8 bytes each) stays in cache


def _column_range(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column minima and maxima. Rows are regrouped 16 at a time so numpy's inner loop runs
    over 16·d contiguous values instead of d (several times faster for narrow tables)."""
    n, d = X.shape
    whole = (n // 16) * 16
    if whole and X.flags.c_contiguous:
        wide = X[:whole].reshape(-1, 16 * d)
        low = wide.min(axis=0).reshape(16, d).min(axis=0)
        high = wide.max(axis=0).reshape(16, d).max(axis=0)
        if whole < n:
            low = np.minimum(low, X[whole:].min(axis=0))
            high = np.maximum(high, X[whole:].max(axis=0))
        return low, high
    return X.min(axis=0), X.max(axis=0)


def row_uniforms(row_index: np.ndarray, random_state: int) -> np.ndarray:
    """A uniform number in [0, 1) per row, from (row index, seed) alone (splitmix64).

    Every engine, chunking and partitioning gives a row the same number, so the split below
    is the same everywhere.
    """
    with np.errstate(over="ignore"):
        z = np.asarray(row_index, dtype=np.uint64) + np.uint64(random_state % 2**64) * GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / 2.0**53


def held_out_rows(row_index: np.ndarray, random_state: int, test_size: float) -> np.ndarray:
    """The held-out rows of the deterministic row-hash split."""
    return row_uniforms(row_index, random_state) < test_size


@dataclass(frozen=True)
class MomentStats:
    """n, means, centred co-moments and ranges of (X, y): everything least squares needs."""

    n: int
    mean_x: np.ndarray
    mean_y: float
    cxx: np.ndarray  # Σ (x − x̄)(x − x̄)ᵀ
    cxy: np.ndarray  # Σ (x − x̄)(y − ȳ)
    cyy: float  # Σ (y − ȳ)²
    min_x: np.ndarray
    max_x: np.ndarray

    @classmethod
    def empty(cls, d: int) -> "MomentStats":
        return cls(
            0, np.zeros(d), 0.0, np.zeros((d, d)), np.zeros(d), 0.0,
            np.full(d, np.inf), np.full(d, -np.inf),
        )  # fmt: skip

    @classmethod
    def of(cls, X: np.ndarray, y: np.ndarray) -> "MomentStats":
        """The statistics of a block of rows.

        Large blocks are cut into cache-sized ones (``BLOCK_ROWS``) whose centred copies are
        written into one reused buffer, then merged: the data crosses main memory once, and
        the arithmetic runs from cache (about 4× faster than whole-array numpy on 10M rows).
        """
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        n, d = X.shape
        if n == 0:
            return cls.empty(d)
        rows = min(n, BLOCK_ROWS)
        buffers = (np.empty((rows, d)), np.empty(rows), np.ones(rows))
        # Values near the float64 limit overflow here; the caller checks the statistics are
        # finite (engines.check_trainable) and names the column, so no warning is needed.
        with np.errstate(over="ignore", invalid="ignore"):
            return merge_all(
                cls._block(X[start : start + rows], y[start : start + rows], *buffers)
                for start in range(0, n, rows)
            )

    @classmethod
    def _block(
        cls,
        X: np.ndarray,
        y: np.ndarray,
        x_buffer: np.ndarray,
        y_buffer: np.ndarray,
        ones: np.ndarray,
    ) -> "MomentStats":
        n = len(y)
        xc = x_buffer[:n]
        np.copyto(xc, X)  # a contiguous copy in cache, whatever X's layout (a column slice)
        low, high = _column_range(xc)
        mean_x = ones[:n] @ xc / n
        mean_y = float(y.sum()) / n
        np.subtract(xc, mean_x, out=xc)
        yc = np.subtract(y, mean_y, out=y_buffer[:n])
        return cls(n, mean_x, mean_y, xc.T @ xc, xc.T @ yc, float(yc @ yc), low, high)

    def merge(self, other: "MomentStats") -> "MomentStats":
        """Chan, Golub & LeVeque's pairwise update: exact, order-independent up to rounding."""
        if other.n == 0:
            return self
        if self.n == 0:
            return other
        n = self.n + other.n
        weight = self.n * other.n / n
        with np.errstate(over="ignore", invalid="ignore"):  # see ``of``
            return self._merged(other, n, weight)

    def _merged(self, other: "MomentStats", n: int, weight: float) -> "MomentStats":
        dx = other.mean_x - self.mean_x
        dy = other.mean_y - self.mean_y
        return MomentStats(
            n,
            self.mean_x + dx * (other.n / n),
            self.mean_y + dy * (other.n / n),
            self.cxx + other.cxx + np.outer(dx, dx) * weight,
            self.cxy + other.cxy + dx * dy * weight,
            self.cyy + other.cyy + dy * dy * weight,
            np.minimum(self.min_x, other.min_x),
            np.maximum(self.max_x, other.max_x),
        )

    @property
    def std_x(self) -> np.ndarray:
        return np.sqrt(np.maximum(np.diag(self.cxx), 0.0) / max(self.n, 1))

    def squared_error(self, coef: np.ndarray, intercept: float) -> float:
        """Σ (y − x·coef − intercept)² over these rows, from the moments alone."""
        offset = self.mean_y - self.mean_x @ coef - intercept
        quadratic = self.cyy - 2.0 * coef @ self.cxy + coef @ self.cxx @ coef
        return max(float(quadratic), 0.0) + self.n * float(offset) ** 2


def merge_all(parts: Iterable[MomentStats]) -> MomentStats:
    """Pairwise tree reduction (balanced, so rounding errors grow like log n, not n)."""
    level = list(parts)
    if not level:
        raise ValueError("no statistics to merge")
    while len(level) > 1:
        level = [
            level[i].merge(level[i + 1]) if i + 1 < len(level) else level[i]
            for i in range(0, len(level), 2)
        ]
    return level[0]


class RankWarning(UserWarning):
    """A feature is constant or a linear combination of others: the solution is min-norm."""


def solve(stats: MomentStats, feature_names: Sequence[str]) -> tuple[np.ndarray, float]:
    """Least-squares coefficients and intercept from the statistics, minimum-norm like
    scikit-learn when a column is constant or collinear (with a warning naming it)."""
    std = stats.std_x
    # Constant: no variation a float64 can resolve against the column's own magnitude (not
    # against other columns: a feature on a 1e-6 scale beside one on 1e6 is not constant).
    constant = std <= 1e-12 * np.maximum(np.abs(stats.mean_x), np.finfo(np.float64).tiny)
    for name in [str(n) for n, flag in zip(feature_names, constant, strict=True) if flag]:
        warnings.warn(
            f"feature {name!r} is constant: its coefficient is 0", RankWarning, stacklevel=2
        )
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
    return coef, float(stats.mean_y - stats.mean_x @ coef)
