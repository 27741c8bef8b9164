"""Fitting engines: one least-squares solution, from rows in memory, streamed files or Dask.

``fit`` splits the rows into training and test rows and reduces both to the mergeable
statistics of ``linreg_ops.moments`` (in memory with the seed's ``train_test_split``; for
files by a hash of each row's index, so every engine, block size and partitioning holds out
the same rows, read in blocks or, for ``dask``, in partitions on the workers of a cluster),
checks them once (``check_trainable``), then solves with the engine chosen once: one
``_fit_<engine>`` each, as scikit-learn's ridge has one ``_solve_<solver>`` per solver.
scikit-learn fits the training rows in memory (the seed's path); ``streaming`` and ``dask``
solve from the statistics.
"""

import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from linreg_ops.config import IN_MEMORY_ROWS, FitEngine, TrainConfig
from linreg_ops.errors import InputError
from linreg_ops.moments import MomentStats, merge_all
from linreg_ops.storage import tables
from linreg_ops.storage.cluster import (
    DaskSession,
    Piece,
    checked_headers,
    count_pieces,
    read_in_order,
    tree,
)
from linreg_ops.training.checks import check_rows, check_solution, check_trainable
from linreg_ops.training.solve import constant_features, solve
from linreg_ops.training.sources import ArraySource, FileSource, Source
from linreg_ops.training.split import row_uniforms
from linreg_ops.training.summary import (
    SAMPLE_ROWS,
    STORED_TEST_ROWS,
    Summary,
    kept_rows,
    summarize,
)

if TYPE_CHECKING:
    from sklearn.linear_model import LinearRegression

__all__ = [
    "HASH_SPLIT",
    "SEED_SPLIT",
    "Fit",
    "chosen_engine",
    "dask_arrays",
    "fit",
    "fit_linear_regression",
    "stream_arrays",
]

HASH_SPLIT = "row hash: splitmix64(row index, random_state) < test_size"
SEED_SPLIT = "sklearn.model_selection.train_test_split"
_Progress = Callable[[int, int], None]  # called with the rows and bytes of each block read


@dataclass(frozen=True)
class Fit:
    """What every engine returns; the pipeline turns it into artifacts."""

    coef: np.ndarray
    intercept: float
    # scikit-learn's fitted estimator (raw-feature coefficients) when it fitted; None for
    # the engines that solve from statistics, which never import scikit-learn
    estimator: "LinearRegression | None"
    train: MomentStats
    test: MomentStats
    sample: np.ndarray  # training feature rows (at most SAMPLE_ROWS) for quantiles
    stored_test: np.ndarray  # test rows (x..., y) to store, in row order
    engine: FitEngine
    split: dict[str, Any]

    @property
    def test_complete(self) -> bool:
        """Whether ``stored_test`` holds every test row (so metrics can use predictions)."""
        return len(self.stored_test) == self.test.n


@dataclass(frozen=True)
class _Split:
    """The split rows, summarized: what every engine starts from."""

    train: MomentStats
    test: MomentStats
    sample: np.ndarray
    stored_test: np.ndarray
    method: str
    training_rows: Callable[[], tuple[np.ndarray, np.ndarray]]  # (X, y), read when asked


_Solution = tuple[np.ndarray, float, "LinearRegression | None"]  # coef, intercept, estimator


def fit(source: Source, config: TrainConfig, progress: _Progress | None = None) -> Fit:
    """Split, check and fit ``source`` with the engine ``config.engine`` names (or chooses);
    ``progress(rows, bytes)`` after each block a file source streams (the CLI's bar)."""
    engine = chosen_engine(source, config)
    if isinstance(source, ArraySource):
        split = _split_arrays(source, config)
    else:
        split = _split_files(source, config, on_dask=engine == "dask", progress=progress)
    check_trainable(
        split.train, split.test, source.feature_names, source.target_name, source.description
    )
    coef, intercept, estimator = _ENGINES[engine](source, config, split)
    check_solution(coef, intercept, source.description)
    return Fit(
        coef=coef,
        intercept=intercept,
        estimator=estimator,
        train=split.train,
        test=split.test,
        sample=split.sample,
        stored_test=split.stored_test,
        engine=engine,
        split={
            "method": split.method,
            "test_size": config.test_size,
            "random_state": config.random_state,
        },
    )


def chosen_engine(source: Source, config: TrainConfig) -> FitEngine:
    """``config.engine``; for ``auto``, scikit-learn in memory below IN_MEMORY_ROWS training
    rows, streaming above it and for files."""
    if config.engine != "auto":
        return config.engine
    if isinstance(source, FileSource):
        return "streaming"
    n = len(source.y)
    return "sklearn" if n - math.ceil(config.test_size * n) < IN_MEMORY_ROWS else "streaming"


# --------------------------------------------------------------------------- the engines


def _fit_sklearn(source: Source, config: TrainConfig, split: _Split) -> _Solution:
    """scikit-learn's ``LinearRegression`` on the training rows in memory (the seed's path)."""
    constant_features(split.train, source.feature_names)  # warned by name, as elsewhere
    estimator = fit_linear_regression(*split.training_rows())
    return np.asarray(estimator.coef_), float(estimator.intercept_), estimator


def _fit_streaming(source: Source, config: TrainConfig, split: _Split) -> _Solution:
    """The solve from the training statistics, gathered block by block."""
    coef, intercept = solve(split.train, source.feature_names)
    return coef, intercept, None


def _fit_dask(source: Source, config: TrainConfig, split: _Split) -> _Solution:
    """The solve from training statistics gathered on a Dask cluster: a file's were (its
    partitions summarized on the workers); rows in memory are scattered to the workers."""
    stats = split.train
    if isinstance(source, ArraySource):
        stats = dask_arrays(*split.training_rows(), config.chunk_rows, config.scheduler)
    coef, intercept = solve(stats, source.feature_names)
    return coef, intercept, None


_ENGINES: dict[FitEngine, Callable[[Source, TrainConfig, _Split], _Solution]] = {
    "sklearn": _fit_sklearn,
    "streaming": _fit_streaming,
    "dask": _fit_dask,
}


def fit_linear_regression(X: np.ndarray, y: np.ndarray) -> "LinearRegression":
    """A fitted ``LinearRegression`` whose ``coef_``/``intercept_`` are in raw feature units.

    scikit-learn passes ``tol=1e-6`` to ``lstsq`` as its relative rank cutoff, so when
    feature scales differ by ~1e6 the small-scale column is silently zeroed. The fit runs on
    standardized features and maps the coefficients back; the estimator is then the ordinary
    one the seed saved (``predict`` works on raw X).

    The columns are measured from the first row before their mean is taken, as the streaming
    statistics are (``moments``): exact for values within a factor of two of it, so a common
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


def _split_arrays(source: ArraySource, config: TrainConfig) -> _Split:
    """The seed's split: ``train_test_split``, the training statistics streamed."""
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
    return _Split(
        train=stream_arrays(X_train, y_train, config.chunk_rows),
        test=MomentStats.of(X_test, y_test),
        sample=_sample(X_train, config.random_state),
        stored_test=np.column_stack([X_test, y_test])[: kept_rows(STORED_TEST_ROWS, d + 1)],
        method=SEED_SPLIT,
        training_rows=lambda: (X_train, y_train),
    )


def _sample(X: np.ndarray, random_state: int) -> np.ndarray:
    """At most about SAMPLE_ROWS rows (fewer when wide), chosen by row hash (all of them
    when fewer)."""
    cap = kept_rows(SAMPLE_ROWS, X.shape[1])
    if len(X) <= cap:
        return X
    keys = row_uniforms(np.arange(len(X), dtype=np.uint64), random_state + 1)
    return X[keys < cap / len(X)]


def stream_arrays(X: np.ndarray, y: np.ndarray, chunk_rows: int) -> MomentStats:
    """The streaming engine on in-memory arrays: statistics block by block, merged.

    On one BLAS thread, as the file engine: the products are d×d over cache-sized blocks,
    too small to share, and a second OpenBLAS thread spinning for work made the fit of
    10M × 8 rows 8–15× slower on a busy 2-core machine (1.1 s → 12–16 s). Instead the
    chunks are shared between one thread per core (numpy releases the GIL in each pass),
    and merged in their order: the same bits whatever the number of threads."""
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    starts = range(0, max(len(y), 1), chunk_rows)

    def chunk(start: int) -> MomentStats:
        return MomentStats.of(X[start : start + chunk_rows], y[start : start + chunk_rows])

    threads = min(len(os.sched_getaffinity(0)), len(starts))
    with threadpool_limits(limits=1, user_api="blas"):
        if threads <= 1:
            return merge_all(map(chunk, starts))
        with ThreadPoolExecutor(threads) as pool:
            return merge_all(pool.map(chunk, starts))


# --------------------------------------------------------------------------- files


def _split_files(
    source: FileSource, config: TrainConfig, *, on_dask: bool, progress: _Progress | None = None
) -> _Split:
    """The row-hash split of every file, summarized in one pass (or on a Dask cluster)."""
    summary = (
        _dask_summary(source, config) if on_dask else _stream_summary(source, config, progress)
    )
    stored = np.vstack(summary.stored_test)
    stored = stored[np.argsort(stored[:, 0], kind="stable")][:, 1:]

    def training_rows() -> tuple[np.ndarray, np.ndarray]:
        """Every row in memory, the training rows chosen by the same row hash."""
        columns = [*source.feature_names, source.target_name]
        rows = np.vstack([block for _, block in _file_blocks(source, columns, config.chunk_rows)])
        held = (
            row_uniforms(np.arange(len(rows), dtype=np.uint64), config.random_state)
            < config.test_size
        )
        return rows[~held, :-1], rows[~held, -1]

    return _Split(
        train=summary.train,
        test=summary.test,
        sample=np.vstack(summary.sample)[:, 1:],
        stored_test=stored,
        method=HASH_SPLIT,
        training_rows=training_rows,
    )


def _stream_summary(
    source: FileSource, config: TrainConfig, progress: _Progress | None = None
) -> Summary:
    """One pass over the files in blocks: memory is one block, whatever their size.

    BLAS runs on one thread here: the statistics are small products on cache-sized blocks,
    and the cores are busy parsing (pyarrow's threads); a second BLAS thread only contends.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return _stream_pass(source, config, progress)


def _stream_pass(
    source: FileSource, config: TrainConfig, progress: _Progress | None = None
) -> Summary:
    """The blocks' summaries, merged in order. The first blocks are held (raw rows) until
    there are enough rows to fit: too few rows of a wide table are refused before any of
    its d×d statistics is computed."""
    columns = [*source.feature_names, source.target_name]
    d = len(source.feature_names)
    summary: Summary | None = None
    held: list[tuple[int, np.ndarray]] | None = []  # None once there are enough rows
    for first_row, block in _file_blocks(source, columns, config.chunk_rows, progress):
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
    source: FileSource, columns: list[str], chunk_rows: int, progress: _Progress | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """(first row in the whole input, block) over every file in order; ``progress(rows,
    bytes)`` as each block is read (and the rest of a file's bytes at its end)."""
    offset = 0
    for path in source.files:
        rows = read = 0
        for block in tables.iter_blocks(path, columns, chunk_rows, hint=source.hint):
            if progress:
                progress(len(block.values), max(block.position - read, 0))
                read = max(read, block.position)
            yield offset + block.offset, block.values
            rows = block.offset + len(block.values)
        if progress:
            progress(0, max(path.stat().st_size - read, 0))
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
