"""Mergeable sufficient statistics for least squares: row count, means, centred co-moments and
column ranges of (X, y), exact under merging.

Any engine (one process reading chunks, or Dask partitions on many machines) reduces its rows
to the same small summary and merges summaries with Chan et al.'s pairwise update
(numerically stable: never the raw uncentred XᵀX, whose entries can be 1e12 times larger than
the quantities that matter). Training solves from them; monitoring (drift) compares them, and
must not import training: so they live at the root.

A large common offset (a column ``1e15 + x``, an int64 id beyond 2⁵³) must not round the
variation away: each block measures its values from one of its own rows (``shift``), a
subtraction that is exact for values within a factor of two of it (Sterbenz's lemma), and
means are carried as that shift plus the small mean of the differences, so the merge works
on differences of the size of the spread, never on the offset. A column is constant exactly
when its minimum equals its maximum; nothing is decided from rounded moments.
"""

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

__all__ = ["BLOCK_BYTES", "BLOCK_ROWS", "MomentStats", "block_rows", "merge_all"]

BLOCK_BYTES = 1 << 20  # a centred copy of this size stays in cache (16,384 rows of 8 features)
BLOCK_ROWS = 16_384  # and more rows than this gain nothing


@dataclass(frozen=True)
class MomentStats:
    """n, means, centred co-moments and ranges of (X, y): everything least squares needs.

    Means are ``shift + mean_d…``: a row of the data plus the mean difference from it, so
    that neither rounds away what a common offset leaves of the spread.
    """

    n: int
    shift_x: np.ndarray  # a row of these rows: the origin the means are measured from
    shift_y: float
    mean_dx: np.ndarray  # mean(x) − shift_x
    mean_dy: float  # mean(y) − shift_y
    cxx: np.ndarray  # Σ (x − x̄)(x − x̄)ᵀ
    cxy: np.ndarray  # Σ (x − x̄)(y − ȳ)
    cyy: float  # Σ (y − ȳ)²
    min_x: np.ndarray
    max_x: np.ndarray
    min_y: float
    max_y: float

    @classmethod
    def empty(cls, d: int) -> "MomentStats":
        return cls(
            0, np.zeros(d), 0.0, np.zeros(d), 0.0, np.zeros((d, d)), np.zeros(d), 0.0,
            np.full(d, np.inf), np.full(d, -np.inf), np.inf, -np.inf,
        )  # fmt: skip

    @classmethod
    def of(cls, X: np.ndarray, y: np.ndarray) -> "MomentStats":
        """The statistics of a block of rows.

        Large blocks are cut into cache-sized ones (``block_rows``) whose centred copies are
        written into one reused buffer, then merged: the data crosses main memory once, and
        the arithmetic runs from cache (about 4× faster than whole-array numpy on 10M rows).
        The buffer holds the columns contiguously (d × rows): subtracting a row of d values
        then runs over long contiguous columns, not over d values at a time.
        """
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        n, d = X.shape
        if n == 0:
            return cls.empty(d)
        rows = min(n, block_rows(d))
        buffers = (np.empty((d, rows)), np.empty(rows), np.ones(rows))
        # Values near the float64 limit overflow here; the caller checks the statistics are
        # finite (training.checks.check_trainable) and names the column, so no warning is needed.
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
        xt = x_buffer[:, :n]  # the block's columns, each contiguous, in cache
        np.copyto(xt, X.T)
        low, high = xt.min(axis=1), xt.max(axis=1)
        shift_x = xt[:, 0].copy()
        np.subtract(xt, shift_x[:, None], out=xt)  # exact within a factor 2 of it (Sterbenz)
        mean_dx = xt @ ones[:n] / n
        np.subtract(xt, mean_dx[:, None], out=xt)
        shift_y = float(y[0])
        yc = np.subtract(y, shift_y, out=y_buffer[:n])
        mean_dy = float(yc.sum()) / n
        np.subtract(yc, mean_dy, out=yc)
        return cls(
            n, shift_x, shift_y, mean_dx, mean_dy, xt @ xt.T, xt @ yc, float(yc @ yc),
            low, high, float(y.min()), float(y.max()),
        )  # fmt: skip

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
        # The difference of the means, shifts first: two rows near a common offset subtract
        # exactly, and what is left is of the size of the spread.
        dx = (other.shift_x - self.shift_x) + (other.mean_dx - self.mean_dx)
        dy = (other.shift_y - self.shift_y) + (other.mean_dy - self.mean_dy)
        return MomentStats(
            n,
            self.shift_x,
            self.shift_y,
            self.mean_dx + dx * (other.n / n),
            self.mean_dy + dy * (other.n / n),
            self.cxx + other.cxx + np.outer(dx, dx) * weight,
            self.cxy + other.cxy + dx * dy * weight,
            self.cyy + other.cyy + dy * dy * weight,
            np.minimum(self.min_x, other.min_x),
            np.maximum(self.max_x, other.max_x),
            min(self.min_y, other.min_y),
            max(self.max_y, other.max_y),
        )

    @property
    def mean_x(self) -> np.ndarray:
        mean: np.ndarray = self.shift_x + self.mean_dx
        return mean

    @property
    def mean_y(self) -> float:
        return self.shift_y + self.mean_dy

    @property
    def constant_x(self) -> np.ndarray:
        """The columns that hold one value (and only those: a spread of one ulp is a spread)."""
        constant: np.ndarray = self.min_x == self.max_x
        return constant

    @property
    def constant_y(self) -> bool:
        return self.min_y == self.max_y

    @property
    def std_x(self) -> np.ndarray:
        return np.sqrt(np.maximum(np.diag(self.cxx), 0.0) / max(self.n, 1))

    def squared_error(self, coef: np.ndarray, intercept: float) -> float:
        """Σ (y − x·coef − intercept)² over these rows, from the moments alone."""
        offset = (self.shift_y - self.shift_x @ coef - intercept) + (
            self.mean_dy - self.mean_dx @ coef
        )
        quadratic = self.cyy - 2.0 * coef @ self.cxy + coef @ self.cxx @ coef
        return max(float(quadratic), 0.0) + self.n * float(offset) ** 2


def block_rows(d: int) -> int:
    """Rows of ``d`` columns that ``MomentStats.of`` centres at a time: a cache-sized block
    (``BLOCK_BYTES``, at most ``BLOCK_ROWS``), but never fewer rows than columns — for a
    wide table the d×d products and merges of many thin blocks would cost more than the
    rows themselves, and d rows take no more memory than one co-moment matrix."""
    return max(min(BLOCK_ROWS, BLOCK_BYTES // (8 * max(d, 1))), d, 1)


def merge_all(parts: Iterable[MomentStats]) -> MomentStats:
    """Pairwise tree reduction (balanced, so rounding errors grow like log n, not n).

    Built as the parts arrive, like a binary counter: at most log₂ n partial results are held
    at once (each a d×d matrix), never the whole list. The tree is the one level-by-level
    pairing builds: full power-of-two groups from the left, the rest merged from the right.
    """
    pending: list[tuple[int, MomentStats]] = []  # (parts merged, their statistics)
    for part in parts:
        size, merged = 1, part
        while pending and pending[-1][0] == size:
            below = pending.pop()[1]
            size, merged = 2 * size, below.merge(merged)
        pending.append((size, merged))
    if not pending:
        raise ValueError("no statistics to merge")
    result = pending.pop()[1]
    while pending:
        result = pending.pop()[1].merge(result)
    return result
