"""Training engines beyond memory and one machine: streaming and Dask.

They differ only in how rows reach the statistics of ``linreg_ops.stats``: the streaming
engine reads a file (or an array) in blocks in one process, the Dask engine reduces
partitions on a cluster; both split rows by the same row hash, merge the same statistics and
solve the same d×d system, so their coefficients agree with scikit-learn's to rounding.
One pass over the data gives everything: the training statistics, the test split's metrics
(from its own moments), a bounded sample of training rows for calibration quantiles, and the
first test rows to store for evaluation.
"""

import glob
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from linreg_ops import artifacts
from linreg_ops.data import check_finite
from linreg_ops.errors import InputError
from linreg_ops.stats import MomentStats, merge_all, row_uniforms, solve

ENGINES = ("auto", "sklearn", "streaming", "dask")
IN_MEMORY_ROWS = 1_000_000  # auto: scikit-learn below, streaming above
SAMPLE_ROWS = 100_000  # training rows kept for calibration quantiles
STORED_TEST_ROWS = 100_000  # test rows written to test_split.csv


@dataclass
class Summary:
    """What one block (or a merge of blocks) of rows contributes. Mergeable."""

    train: MomentStats
    test: MomentStats
    sample_rate: float = 1.0
    sample: list[np.ndarray] = field(default_factory=list)  # rows of [keys, x..., y]
    stored_test: list[np.ndarray] = field(default_factory=list)  # rows of [index, x..., y]

    def merge(self, other: "Summary") -> "Summary":
        rate = min(self.sample_rate, other.sample_rate)
        merged = Summary(
            self.train.merge(other.train),
            self.test.merge(other.test),
            rate,
            [rows[rows[:, 0] < rate] for rows in (*self.sample, *other.sample)],
            [*self.stored_test, *other.stored_test],
        )
        merged.bound()
        return merged

    def bound(self) -> None:
        """Keep the sample and the stored test rows within their caps, deterministically."""
        while sum(len(rows) for rows in self.sample) > SAMPLE_ROWS:
            self.sample_rate /= 2
            self.sample = [rows[rows[:, 0] < self.sample_rate] for rows in self.sample]
        stored = sum(len(rows) for rows in self.stored_test)
        if stored > STORED_TEST_ROWS:
            rows = np.vstack(self.stored_test)
            self.stored_test = [rows[np.argsort(rows[:, 0], kind="stable")[:STORED_TEST_ROWS]]]


def summarize(
    X: np.ndarray, y: np.ndarray, first_row: int, test_size: float, random_state: int
) -> Summary:
    """Split a block by row hash and summarize both sides."""
    index = np.arange(first_row, first_row + len(y), dtype=np.uint64)
    test = (
        row_uniforms(index, random_state) < test_size if test_size > 0 else np.zeros(len(y), bool)
    )
    train = ~test
    keys = row_uniforms(index[train], random_state + 1)
    summary = Summary(
        MomentStats.of(X[train], y[train]),
        MomentStats.of(X[test], y[test]),
        1.0,
        [np.column_stack([keys, X[train], y[train]])],
        [np.column_stack([index[test].astype(np.float64), X[test], y[test]])],
    )
    summary.bound()
    return summary


@dataclass(frozen=True)
class EngineFit:
    """The result every engine returns; ``train.publish`` turns it into artifacts."""

    coef: np.ndarray
    intercept: float
    train: MomentStats
    test: MomentStats
    sample: np.ndarray  # training rows (x..., y), at most SAMPLE_ROWS
    stored_test: np.ndarray  # the first test rows (x..., y), at most STORED_TEST_ROWS


def finish(summary: Summary, feature_names: Sequence[str], target: str, source: str) -> EngineFit:
    """Check what only the whole data can tell, then solve."""
    d = len(feature_names)
    total = summary.train.merge(summary.test)
    if total.n < d + 2:
        raise InputError(
            f"{source}: {total.n} rows is too few to fit {d} features (need at least {d + 2})"
        )
    if total.cyy == 0.0:
        raise InputError(
            f"{source}: target column {target!r} is constant (every row is "
            f"{total.mean_y:g}); there is nothing to learn"
        )
    # test_size 0 (benchmarks, refits on all rows) needs no test rows
    if summary.train.n < d + 2 or (summary.test.n < 2 and summary.test.n != 0):
        raise InputError(
            f"{source}: the row-hash split leaves {summary.train.n} training and "
            f"{summary.test.n} test rows; need at least {d + 2} training rows and 2 test rows"
        )
    if summary.train.cyy == 0.0:
        raise InputError(f"{source}: the target is constant on the training split")
    coef, intercept = solve(summary.train, feature_names)
    sample = np.vstack(summary.sample)[:, 1:]
    stored = np.vstack(summary.stored_test)
    stored = stored[np.argsort(stored[:, 0], kind="stable")][:, 1:]
    return EngineFit(coef, intercept, summary.train, summary.test, sample, stored)


# --------------------------------------------------------------------------- inputs


def data_files(data: Path) -> list[Path]:
    """A file, a folder of .csv/.parquet files, or a glob pattern → the files, sorted."""
    text = str(data)
    if any(char in text for char in "*?["):
        files = sorted(Path(p) for p in glob.glob(text))
    elif Path(data).is_dir():
        files = sorted(
            p for p in Path(data).iterdir() if p.suffix.lower() in artifacts.TABLE_SUFFIXES
        )
    else:
        return [Path(data)]
    if not files:
        raise InputError(f"no .csv or .parquet files in {data}")
    return files


# --------------------------------------------------------------------------- streaming


def stream_arrays(X: np.ndarray, y: np.ndarray, chunk_rows: int) -> MomentStats:
    """The streaming engine on in-memory arrays: statistics block by block, merged."""
    return merge_all(
        MomentStats.of(X[start : start + chunk_rows], y[start : start + chunk_rows])
        for start in range(0, len(y), chunk_rows)
    )


def stream_files(
    files: Sequence[Path],
    target: str,
    features: Sequence[str],
    test_size: float,
    random_state: int,
    chunk_rows: int = artifacts.DEFAULT_CHUNK_ROWS,
    progress: Callable[[int], None] | None = None,
) -> EngineFit:
    """One pass over the files in blocks of ``chunk_rows``: memory is one block, whatever n."""
    columns = [*features, target]
    summary, offset = None, 0
    for path in files:
        _, chunks = artifacts.iter_table_chunks(path, columns, chunk_rows)
        for chunk in chunks:
            check_finite(chunk.values, columns, str(path), chunk.offset)
            part = summarize(
                chunk.values[:, :-1],
                chunk.values[:, -1],
                offset + chunk.offset,
                test_size,
                random_state,
            )
            summary = part if summary is None else summary.merge(part)
            if progress:
                progress(len(chunk.values))
        offset = summary.train.n + summary.test.n if summary else 0
    return finish(summary, features, target, describe(files))


def describe(files: Sequence[Path]) -> str:
    return str(files[0]) if len(files) == 1 else f"{len(files)} files in {files[0].parent}"


# --------------------------------------------------------------------------- dask


class DaskSession:
    """A client on ``scheduler`` (tcp://HOST:PORT), or on a fresh 2-worker LocalCluster."""

    def __init__(self, scheduler: str | None = None) -> None:
        self.scheduler, self.client, self.cluster = scheduler, None, None

    def __enter__(self):
        from distributed import Client, LocalCluster

        if self.scheduler:
            try:
                self.client = Client(self.scheduler, timeout="10s")
            except OSError as exc:
                raise InputError(
                    f"cannot reach the Dask scheduler {self.scheduler}: {exc}"
                ) from exc
        else:
            self.cluster = LocalCluster(
                n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None
            )
            self.client = Client(self.cluster)
        return self.client

    def __exit__(self, *exc_info: object) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def _tree(tasks: list, combine: Callable) -> object:
    """Pairwise reduction of delayed values."""
    import dask

    merge = dask.delayed(combine, pure=True)
    while len(tasks) > 1:
        tasks = [
            merge(tasks[i], tasks[i + 1]) if i + 1 < len(tasks) else tasks[i]
            for i in range(0, len(tasks), 2)
        ]
    return tasks[0]


def _merge_summaries(a: Summary, b: Summary) -> Summary:
    return a.merge(b)


def _merge_moments(a: MomentStats, b: MomentStats) -> MomentStats:
    return a.merge(b)


def _partition_summary(
    frame: object,
    first_row: int,
    path: str,
    columns: list[str],
    test_size: float,
    random_state: int,
) -> Summary:
    """Runs on a worker: one partition → its summary, with errors naming file, column, row."""
    import pandas as pd

    values = np.empty((len(frame), len(columns)))
    for j, name in enumerate(columns):
        column = frame[name]
        if not pd.api.types.is_numeric_dtype(column):
            text = column.astype(object).astype(str)
            numbers = pd.to_numeric(text, errors="coerce")
            bad = numbers.isna().to_numpy() & ~text.str.strip().str.lower().isin(["nan"]).to_numpy()
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                cell = text.iloc[i].strip()
                shown = "an empty value" if cell == "" else f"non-numeric value {cell!r}"
                raise InputError(f"{path} column {name!r} row {first_row + i + 1}: {shown}")
            column = numbers
        values[:, j] = column.to_numpy(dtype=np.float64, na_value=np.nan)
    check_finite(values, columns, path, first_row)
    return summarize(values[:, :-1], values[:, -1], first_row, test_size, random_state)


def dask_files(
    files: Sequence[Path],
    target: str,
    features: Sequence[str],
    test_size: float,
    random_state: int,
    scheduler: str | None = None,
) -> EngineFit:
    """Per-partition summaries (``dask.dataframe.read_parquet/read_csv``), tree-reduced on the
    cluster; the client only solves the d×d system."""
    import dask
    import dask.dataframe as dd

    columns = [*features, target]
    for path in files:  # schema and types, file by file, so an error can name its file
        artifacts.iter_table_chunks(path, columns)
    with DaskSession(scheduler) as client:
        tasks, offset = [], 0
        for path in files:
            if path.suffix.lower() == ".csv":
                frame = dd.read_csv(
                    str(path), usecols=columns, dtype=str, keep_default_na=False, blocksize="64MB"
                )
            else:
                frame = dd.read_parquet(str(path), columns=columns)
            lengths = client.compute(frame.map_partitions(len)).result().tolist()
            for part, length in zip(frame.to_delayed(), lengths, strict=True):
                tasks.append(
                    dask.delayed(_partition_summary, pure=True)(
                        part, offset, str(path), columns, test_size, random_state
                    )
                )
                offset += length
        if not tasks:
            raise InputError(f"{describe(files)} has no data rows")
        summary = client.compute(_tree(tasks, _merge_summaries)).result()
    return finish(summary, features, target, describe(files))


def dask_arrays(
    X: np.ndarray, y: np.ndarray, chunk_rows: int, scheduler: str | None = None
) -> MomentStats:
    """The Dask engine on in-memory arrays: row blocks scattered to the workers."""
    import dask

    with DaskSession(scheduler) as client:
        tasks = [
            dask.delayed(MomentStats.of, pure=True)(
                client.scatter(X[start : start + chunk_rows]),
                client.scatter(y[start : start + chunk_rows]),
            )
            for start in range(0, len(y), chunk_rows)
        ]
        return client.compute(_tree(tasks, _merge_moments)).result()


def _score_partition(frame: object, first_row: int, path: str, model: object, kind: str) -> object:
    """Runs on a worker: predictions for one partition (and clipped flags for integer-only)."""
    import pandas as pd

    from linreg_ops.predict import predict_rows

    names = list(model.feature_names)
    values = frame[names].to_numpy(dtype=np.float64, na_value=np.nan)
    check_finite(values, names, path, first_row)
    predictions, clipped = predict_rows(model, values)
    columns = {"prediction": predictions}
    if kind == "integer":
        columns["clipped"] = clipped.astype(np.int64)
    return pd.DataFrame(columns)


def dask_predict(
    models_dir: Path, input_path: Path, output_path: Path, kind: str, scheduler: str | None = None
) -> int:
    """Score the partitions of a Parquet/CSV input on the cluster; write a Parquet dataset
    (a folder of part files, one per partition) at ``output_path``. Returns the row count."""
    import dask
    import dask.dataframe as dd

    from linreg_ops.predict import load_predictor

    model = load_predictor(models_dir, kind)
    names = list(model.feature_names)
    artifacts.iter_table_chunks(input_path, names)  # schema and types, before any work
    with DaskSession(scheduler) as client:
        if Path(input_path).suffix.lower() == ".csv":
            frame = dd.read_csv(str(input_path), usecols=names, dtype="float64")
        else:
            frame = dd.read_parquet(str(input_path), columns=names)
        lengths = client.compute(frame.map_partitions(len)).result().tolist()
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(int).tolist()
        parts = [
            dask.delayed(_score_partition, pure=True)(part, offset, str(input_path), model, kind)
            for part, offset in zip(frame.to_delayed(), offsets, strict=True)
        ]
        meta = {"prediction": "f8", **({"clipped": "i8"} if kind == "integer" else {})}
        scored = dd.from_delayed(parts, meta=meta)
        client.compute(
            scored.to_parquet(str(output_path), write_index=False, compute=False)
        ).result()
    return int(sum(lengths))
