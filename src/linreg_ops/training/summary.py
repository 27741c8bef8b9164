"""What a block of training rows contributes, mergeable: the moments of its training and test
rows (split by row hash), a bounded sample of training rows for the calibration quantiles,
and the test rows to store — both capped in rows and bytes, deterministically."""

from dataclasses import dataclass, field

import numpy as np

from linreg_ops.moments import MomentStats
from linreg_ops.training.split import held_out_rows, row_uniforms

__all__ = ["KEPT_BYTES", "SAMPLE_ROWS", "STORED_TEST_ROWS", "Summary", "kept_rows", "summarize"]

SAMPLE_ROWS = 100_000  # training rows kept for the calibration quantiles
STORED_TEST_ROWS = 100_000  # test rows written to test_split.csv
KEPT_BYTES = 64 << 20  # ... and at most this much of each (all those rows up to 79 features)


def kept_rows(rows: int, columns: int) -> int:
    """``rows``, or fewer for a wide table: what the fit keeps in memory is bounded in bytes."""
    return max(1, min(rows, KEPT_BYTES // (8 * (columns + 1))))


@dataclass
class Summary:
    """What one block (or a merge of blocks) of rows contributes. Mergeable."""

    train: MomentStats
    test: MomentStats
    sample_rate: float = 1.0
    sample: list[np.ndarray] = field(default_factory=list)  # rows of [key, x...]
    stored_test: list[np.ndarray] = field(default_factory=list)  # rows of [index, x..., y]

    def merge(self, other: "Summary") -> "Summary":
        rate = min(self.sample_rate, other.sample_rate)
        sample = [
            rows if part.sample_rate == rate else rows[rows[:, 0] < rate]  # only if rate fell
            for part in (self, other)
            for rows in part.sample
        ]
        merged = Summary(
            self.train.merge(other.train),
            self.test.merge(other.test),
            rate,
            sample,
            [*self.stored_test, *other.stored_test],
        )
        merged.bound()
        return merged

    def bound(self) -> None:
        """Keep the sample and the stored test rows within their caps, deterministically."""
        sample_cap = kept_rows(SAMPLE_ROWS, self.sample[0].shape[1] - 1)
        while sum(len(rows) for rows in self.sample) > sample_cap:
            self.sample_rate /= 2
            self.sample = [rows[rows[:, 0] < self.sample_rate] for rows in self.sample]
        stored_cap = kept_rows(STORED_TEST_ROWS, self.stored_test[0].shape[1] - 1)
        if sum(len(rows) for rows in self.stored_test) > stored_cap:
            rows = np.vstack(self.stored_test)
            self.stored_test = [rows[np.argsort(rows[:, 0], kind="stable")[:stored_cap]]]


def summarize(
    X: np.ndarray,
    y: np.ndarray,
    first_row: int,
    test_size: float,
    random_state: int,
    sample_rate: float = 1.0,
) -> Summary:
    """Split a block by row hash and summarize both sides. ``sample_rate`` is the rate of the
    summary this block will be merged into: rows it would drop are not copied at all."""
    index = np.arange(first_row, first_row + len(y), dtype=np.uint64)
    test = held_out_rows(index, random_state, test_size)
    if test.any():
        train = ~test
        X_train, y_train, train_index = X[train], y[train], index[train]
    else:  # no copy of a block without test rows
        X_train, y_train, train_index = X, y, index
    keys = row_uniforms(train_index, random_state + 1)
    kept = keys < sample_rate
    summary = Summary(
        MomentStats.of(X_train, y_train),
        MomentStats.of(X[test], y[test]),
        sample_rate,
        [np.column_stack([keys[kept], X_train[kept]])],
        [np.column_stack([index[test].astype(np.float64), X[test], y[test]])],
    )
    summary.bound()
    return summary
