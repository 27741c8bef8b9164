"""Fitting engines: one least-squares solution, from rows in memory, streamed files or Dask.

Every engine reduces its rows to the mergeable statistics of ``linreg_ops.stats`` (row
count, means, centred co-moments), split into training and test rows, and every engine's
result passes the same check (``check_trainable``) before anything is solved. They differ
only in how the rows arrive: scikit-learn fits the training rows in memory (the seed's
path), ``streaming`` reads blocks of constant memory in one process, and ``dask`` reads
partitions of each file — byte ranges of a CSV, row groups of a Parquet file — on the
workers of a cluster, all through the one reader in ``tables``. Files are split by a hash
of each row's index, so every engine, block size and partitioning holds out the same rows.
"""

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from linreg_ops.config import IN_MEMORY_ROWS, TrainConfig
from linreg_ops.data import ArraySource, FileSource, Source
from linreg_ops.errors import InputError
from linreg_ops.stats import (
    MomentStats,
    constant_features,
    held_out_rows,
    merge_all,
    row_uniforms,
    solve,
)
from linreg_ops.storage import tables
from linreg_ops.storage.cluster import (
    DaskSession,
    Piece,
    checked_headers,
    count_pieces,
    read_in_order,
    tree,
)
from linreg_ops.storage.joblib_codec import estimator_from

if TYPE_CHECKING:
    from sklearn.linear_model import LinearRegression

SAMPLE_ROWS = 100_000  # training rows kept for the calibration quantiles
STORED_TEST_ROWS = 100_000  # test rows written to test_split.csv
KEPT_BYTES = 64 << 20  # ... and at most this much of each (all those rows up to 79 features)
HASH_SPLIT = "row hash: splitmix64(row index, random_state) < test_size"
SEED_SPLIT = "sklearn.model_selection.train_test_split"


@dataclass(frozen=True)
class Fit:
    """What every engine returns; the pipeline turns it into artifacts."""

    coef: np.ndarray
    intercept: float
    estimator: "LinearRegression"  # the seed-compatible estimator, raw-feature coefficients
    train: MomentStats
    test: MomentStats
    sample: np.ndarray  # training feature rows (at most SAMPLE_ROWS) for quantiles
    stored_test: np.ndarray  # test rows (x..., y) to store, in row order
    engine: str
    split: dict[str, Any]

    @property
    def test_complete(self) -> bool:
        """Whether ``stored_test`` holds every test row (so metrics can use predictions)."""
        return len(self.stored_test) == self.test.n


def fit(source: Source, config: TrainConfig) -> Fit:
    """Split, check and fit ``source`` with ``config.engine``."""
    if isinstance(source, ArraySource):
        return _fit_arrays(source, config)
    return _fit_files(source, config)


# --------------------------------------------------------------------------- the check


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


# --------------------------------------------------------------------------- scikit-learn


def fit_linear_regression(X: np.ndarray, y: np.ndarray) -> "LinearRegression":
    """A fitted ``LinearRegression`` whose ``coef_``/``intercept_`` are in raw feature units.

    scikit-learn passes ``tol=1e-6`` to ``lstsq`` as its relative rank cutoff, so when
    feature scales differ by ~1e6 the small-scale column is silently zeroed. The fit runs on
    standardized features and maps the coefficients back; the estimator is then the ordinary
    one the seed saved (``predict`` works on raw X).

    The columns are measured from the first row before their mean is taken, as the streaming
    statistics are (``stats``): exact for values within a factor of two of it, so a common
    offset (1e15 + x) does not round the variation away. A constant column (one value) is
    then exactly zero and its coefficient 0.
    """
    from sklearn.linear_model import LinearRegression

    shift = np.array(X[0], dtype=np.float64)
    centred = np.asarray(X, dtype=np.float64) - shift
    constant = ~centred.any(axis=0)
    mean, std = centred.mean(axis=0), centred.std(axis=0)
    std = np.where(std > 0.0, std, 1.0)
    centred -= mean
    centred /= std
    estimator = LinearRegression().fit(centred, y)
    coef = estimator.coef_ / std
    coef[constant] = 0.0
    estimator.coef_ = coef
    estimator.intercept_ = float((estimator.intercept_ - coef @ mean) - coef @ shift)
    return estimator


# --------------------------------------------------------------------------- in memory


def _fit_arrays(source: ArraySource, config: TrainConfig) -> Fit:
    """The seed's path: ``train_test_split``, then the chosen engine on the training rows."""
    from sklearn.model_selection import train_test_split

    names, target = source.feature_names, source.target_name
    tables.check_finite(np.column_stack([source.X, source.y]), (*names, target), source.description)
    n, d = source.X.shape
    n_test = math.ceil(config.test_size * n)
    if n < d + 2 or n_test < 2 or n - n_test < d + 2:
        raise InputError(
            f"{source.description}: a {config.test_size:g} test split of {n} rows leaves "
            f"{n - n_test} training and {n_test} test rows; need at least {d + 2} training "
            "rows and 2 test rows"
        )
    X_train, X_test, y_train, y_test = train_test_split(
        source.X, source.y, test_size=config.test_size, random_state=config.random_state
    )
    train = stream_arrays(X_train, y_train, config.chunk_rows)
    test = MomentStats.of(X_test, y_test)
    check_trainable(train, test, names, target, source.description)
    engine = config.engine
    if engine == "auto":
        engine = "sklearn" if len(y_train) < IN_MEMORY_ROWS else "streaming"
    if engine == "sklearn":
        constant_features(train, names)  # warned by name, as the other engines do
        estimator = fit_linear_regression(X_train, y_train)
        coef, intercept = np.asarray(estimator.coef_), float(estimator.intercept_)
    else:
        if engine == "dask":
            stats = dask_arrays(X_train, y_train, config.chunk_rows, config.scheduler)
        else:
            stats = train
        coef, intercept = solve(stats, names)
        estimator = estimator_from(coef, intercept)
    _check_solution(coef, intercept, source.description)
    return Fit(
        coef=coef,
        intercept=intercept,
        estimator=estimator,
        train=train,
        test=test,
        sample=_sample(X_train, config.random_state),
        stored_test=np.column_stack([X_test, y_test])[: kept_rows(STORED_TEST_ROWS, d + 1)],
        engine=engine,
        split={
            "method": SEED_SPLIT,
            "test_size": config.test_size,
            "random_state": config.random_state,
        },
    )


def kept_rows(rows: int, columns: int) -> int:
    """``rows``, or fewer for a wide table: what the fit keeps in memory is bounded in bytes."""
    return max(1, min(rows, KEPT_BYTES // (8 * (columns + 1))))


def _sample(X: np.ndarray, random_state: int) -> np.ndarray:
    """At most about SAMPLE_ROWS rows (fewer when wide), chosen by row hash (all of them
    when fewer)."""
    cap = kept_rows(SAMPLE_ROWS, X.shape[1])
    if len(X) <= cap:
        return X
    keys = row_uniforms(np.arange(len(X), dtype=np.uint64), random_state + 1)
    return X[keys < cap / len(X)]


def _check_solution(coef: np.ndarray, intercept: float, source: str) -> None:
    if not (np.isfinite(coef).all() and math.isfinite(intercept)):
        raise InputError(
            f"{source}: the least-squares solution is not finite; rescale the features"
        )


def stream_arrays(X: np.ndarray, y: np.ndarray, chunk_rows: int) -> MomentStats:
    """The streaming engine on in-memory arrays: statistics block by block, merged."""
    return merge_all(
        MomentStats.of(X[start : start + chunk_rows], y[start : start + chunk_rows])
        for start in range(0, max(len(y), 1), chunk_rows)
    )


# --------------------------------------------------------------------------- files


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


def _fit_files(source: FileSource, config: TrainConfig) -> Fit:
    engine = "streaming" if config.engine == "auto" else config.engine
    columns = [*source.feature_names, source.target_name]
    summary = _dask_summary(source, config) if engine == "dask" else _stream_summary(source, config)
    check_trainable(
        summary.train, summary.test, source.feature_names, source.target_name, source.description
    )
    if engine == "sklearn":  # every row in memory, the same row-hash split
        rows = np.vstack([block for _, block in _file_blocks(source, columns, config.chunk_rows)])
        held = (
            row_uniforms(np.arange(len(rows), dtype=np.uint64), config.random_state)
            < config.test_size
        )
        constant_features(summary.train, source.feature_names)
        estimator = fit_linear_regression(rows[~held, :-1], rows[~held, -1])
        coef, intercept = np.asarray(estimator.coef_), float(estimator.intercept_)
    else:
        coef, intercept = solve(summary.train, source.feature_names)
        estimator = estimator_from(coef, intercept)
    _check_solution(coef, intercept, source.description)
    stored = np.vstack(summary.stored_test)
    stored = stored[np.argsort(stored[:, 0], kind="stable")][:, 1:]
    return Fit(
        coef=coef,
        intercept=intercept,
        estimator=estimator,
        train=summary.train,
        test=summary.test,
        sample=np.vstack(summary.sample)[:, 1:],
        stored_test=stored,
        engine=engine,
        split={
            "method": HASH_SPLIT,
            "test_size": config.test_size,
            "random_state": config.random_state,
        },
    )


def _stream_summary(source: FileSource, config: TrainConfig) -> Summary:
    """One pass over the files in blocks: memory is one block, whatever their size.

    BLAS runs on one thread here: the statistics are small products on cache-sized blocks,
    and the cores are busy parsing (pyarrow's threads); a second BLAS thread only contends.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return _stream_pass(source, config)


def _stream_pass(source: FileSource, config: TrainConfig) -> Summary:
    """The blocks' summaries, merged in order. The first blocks are held (raw rows) until
    there are enough rows to fit: too few rows of a wide table are refused before any of
    its d×d statistics is computed."""
    columns = [*source.feature_names, source.target_name]
    d = len(source.feature_names)
    summary: Summary | None = None
    held: list[tuple[int, np.ndarray]] | None = []  # None once there are enough rows
    for first_row, block in _file_blocks(source, columns, config.chunk_rows):
        if held is not None:
            held.append((first_row, block))
            if first_row + len(block) < d + 2:
                continue
            ready, held = held, None
        else:
            ready = [(first_row, block)]
        for first, values in ready:
            rate = 1.0 if summary is None else summary.sample_rate
            part = summarize(
                values[:, :-1], values[:, -1], first, config.test_size, config.random_state, rate
            )
            summary = part if summary is None else summary.merge(part)
    if held:
        first_row, block = held[-1]
        check_rows(first_row + len(block), d, source.description)
    assert summary is not None  # tables refuses a file without data rows
    return summary


def _file_blocks(
    source: FileSource, columns: list[str], chunk_rows: int
) -> Iterator[tuple[int, np.ndarray]]:
    """(first row in the whole input, block) over every file in order."""
    offset = 0
    for path in source.files:
        rows = 0
        for block in tables.iter_blocks(path, columns, chunk_rows, hint=source.hint):
            yield offset + block.offset, block.values
            rows = block.offset + len(block.values)
        offset += rows


def _piece_summary(
    piece: Piece, columns: list[str], chunk_rows: int, test_size: float, random_state: int
) -> Summary | None:
    """Runs on a worker: one partition → its summary (None for a partition with no rows)."""
    summary: Summary | None = None
    seen = 0
    blocks = tables.partition_blocks(piece.part, columns, piece.header, piece.first_row, chunk_rows)
    for block in blocks:
        rate = 1.0 if summary is None else summary.sample_rate
        values = block.values
        part = summarize(values[:, :-1], values[:, -1], block.offset, test_size, random_state, rate)
        summary = part if summary is None else summary.merge(part)
        seen += len(values)
    if seen != piece.rows:
        raise RuntimeError(
            f"{piece.part.path} bytes {piece.part.start}-{piece.part.stop}: counted "
            f"{piece.rows} rows, read {seen}"
        )
    return summary


def _merge_moments(a: MomentStats, b: MomentStats) -> MomentStats:
    return a.merge(b)


def _merge_optional(a: Summary | None, b: Summary | None) -> Summary | None:
    if a is None:
        return b
    return a if b is None else a.merge(b)


def _dask_summary(source: FileSource, config: TrainConfig) -> Summary:
    """Partition summaries tree-reduced on the cluster; the client only solves."""
    from dask.delayed import delayed

    columns = [*source.feature_names, source.target_name]
    headers = checked_headers(source.files, columns)
    with DaskSession(config.scheduler) as client:  # a bad address is not a data error
        try:
            pieces = count_pieces(headers, columns, client, source.hint)
            # before any d×d statistic (a bad value is still named first, below)
            check_rows(sum(p.rows for p in pieces), len(source.feature_names), source.description)
            tasks = [
                delayed(_piece_summary, pure=True)(
                    piece, columns, config.chunk_rows, config.test_size, config.random_state
                )
                for piece in pieces
            ]
            summary: Summary | None = client.compute(tree(tasks, _merge_optional)).result()
        except InputError:
            # the same message, for the first bad row, as streaming gives
            read_in_order(source.files, columns, source.hint)
            raise
    if summary is None:
        raise InputError(f"{source.description} has no data rows")
    return summary


def dask_arrays(
    X: np.ndarray, y: np.ndarray, chunk_rows: int, scheduler: str | None = None
) -> MomentStats:
    """The Dask engine on in-memory arrays: row blocks scattered to the workers."""
    from dask.delayed import delayed

    with DaskSession(scheduler) as client:
        tasks = [
            delayed(MomentStats.of, pure=True)(
                client.scatter(X[start : start + chunk_rows]),
                client.scatter(y[start : start + chunk_rows]),
            )
            for start in range(0, len(y), chunk_rows)
        ]
        result: MomentStats = client.compute(tree(tasks, _merge_moments)).result()
        return result
