"""Mergeable statistics of new rows, in constant memory: what drift is computed from.

One flat float64 vector per accumulator (so a worker can keep it in a memory-mapped file):
the row count; per column (each feature, then the float model's prediction) the sum and the
cross products of its difference from the *training mean* (the shifted-data algorithm: the
shift is the reference the drift is measured against, so the mean shift is read directly,
with no cancellation), the minimum and maximum, and the count in each bin of the profile's
grid; with a target, the sums of the target and of the squared residuals. Merging adds the
sums and counts and takes the extremes: the statistics of two blocks merged are those of the
blocks concatenated (counts and extremes exactly; sums up to the order of addition).

``record`` is the hot path of the service: O(rows × columns) numpy, no Python loop per row.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from linreg_ops.config import DEFAULT_CHUNK_ROWS
from linreg_ops.errors import InputError
from linreg_ops.model import LinearModel, domain_error, outside_domain
from linreg_ops.monitoring.profile import Profile
from linreg_ops.storage import tables

__all__ = [
    "BROADCAST_CELLS",
    "MAX_DEVIATION",
    "Accumulator",
    "DriftStats",
    "merge",
    "monitorable",
    "record",
    "record_into",
    "scan",
]

BROADCAST_CELLS = 1 << 16  # up to this many (row, column, edge) comparisons, bin by broadcast
# Beyond this distance from the training mean a value's square, summed over 1e8 rows, would
# overflow float64 (1e150² × 1e8 = 1e308): such a row cannot be part of the statistics.
MAX_DEVIATION = 1e150


@dataclass(frozen=True)
class Accumulator:
    """What every vector of one profile and model shares: the layout and the constants."""

    coef: np.ndarray
    intercept: float
    shift: np.ndarray  # the training mean of each column
    target_shift: float
    edges: np.ndarray  # (columns, edges)
    bin_offsets: np.ndarray  # where each column's bins start in the counts
    columns: int
    bins: int
    feature_reach: float  # the largest |training mean| of a feature
    prediction_reach: tuple[float, float]  # Σ|coef|, |intercept| + |the prediction's mean|

    @classmethod
    def of(cls, profile: Profile, model: LinearModel) -> "Accumulator":
        k, e = profile.edges.shape
        return cls(
            coef=np.asarray(model.coef, dtype=np.float64),
            intercept=float(model.intercept),
            shift=profile.mean.copy(),
            target_shift=profile.target_mean,
            edges=profile.edges,
            bin_offsets=np.arange(k, dtype=np.int64) * (e + 1),
            columns=k,
            bins=e + 1,
            feature_reach=float(np.abs(profile.mean[:-1]).max(initial=0.0)),
            prediction_reach=(
                float(np.abs(model.coef).sum()),
                abs(float(model.intercept)) + abs(float(profile.mean[-1])),
            ),
        )

    # The vector's layout: n, n_target, sum, cross, min, max, counts, bin sums, target sums.
    @property
    def size(self) -> int:
        k = self.columns
        return 2 + k + k * k + 2 * k + 2 * k * self.bins + 3

    def parts(self, data: np.ndarray) -> dict[str, np.ndarray]:
        """Named views into ``data``."""
        k, b = self.columns, self.bins
        at = 2
        views = {"count": data[0:1], "target_count": data[1:2]}
        for name, length in (
            ("sum", k), ("cross", k * k), ("min", k), ("max", k), ("counts", k * b),
            ("bin_sums", k * b), ("target", 3),
        ):  # fmt: skip
            views[name] = data[at : at + length]
            at += length
        views["cross"] = views["cross"].reshape(k, k)
        views["counts"] = views["counts"].reshape(k, b)
        views["bin_sums"] = views["bin_sums"].reshape(k, b)
        return views

    def empty(self) -> np.ndarray:
        data = np.zeros(self.size)
        views = self.parts(data)
        views["min"][:] = np.inf
        views["max"][:] = -np.inf
        return data


@dataclass(frozen=True)
class DriftStats:
    """An accumulator's constants and one vector of statistics."""

    accumulator: Accumulator
    data: np.ndarray

    @classmethod
    def empty(cls, accumulator: Accumulator) -> "DriftStats":
        return cls(accumulator, accumulator.empty())

    @property
    def n(self) -> int:
        return int(self.data[0])

    def parts(self) -> dict[str, np.ndarray]:
        return self.accumulator.parts(self.data)


def record(stats: DriftStats, matrix: np.ndarray, target: np.ndarray | None = None) -> None:
    """Add rows (``matrix``: rows × features, finite, inside the model's domain) to ``stats``
    in place; with ``target``, their true values too."""
    record_into(stats.accumulator, stats.data, matrix, target)


def record_into(
    acc: Accumulator, data: np.ndarray, matrix: np.ndarray, target: np.ndarray | None = None
) -> None:
    """``record`` on a bare vector (a slot of a worker's memory-mapped file)."""
    X = np.asarray(matrix, dtype=np.float64)
    n, d = X.shape
    if n == 0:
        return
    views = acc.parts(data)
    # one row per column (features, then the prediction), each contiguous: numpy reduces a
    # contiguous row fast, and a column of an (n, 9) array 20× slower
    Z = np.empty((acc.columns, n))
    Z[:d] = X.T
    np.matmul(X, acc.coef, out=Z[d])
    Z[d] += acc.intercept
    np.minimum(views["min"], Z.min(axis=1), out=views["min"])
    np.maximum(views["max"], Z.max(axis=1), out=views["max"])
    if target is not None:
        y = np.asarray(target, dtype=np.float64)
        residual = y - Z[d]
        dy = y - acc.target_shift
        views["target"][:] += (dy.sum(), dy @ dy, residual @ residual)
        views["target_count"][0] += n
    counts, bin_sums = _binned(Z, acc)
    views["counts"] += counts
    views["bin_sums"] += bin_sums
    Z -= acc.shift[:, None]
    views["sum"][:] += Z.sum(axis=1)
    views["cross"][:] += Z @ Z.T
    views["count"][0] += n


def _binned(Z: np.ndarray, acc: Accumulator) -> tuple[np.ndarray, np.ndarray]:
    """Per column (``Z``: one row per column), how many values fall in each bin and the sum
    of their differences from the training mean. A value's bin is how many of its column's
    edges lie below it.

    A request's few rows: one broadcast comparison and two bincounts. A block: each column
    sorted once, the edges looked up in it (a bin is a run of the sorted column) and each run
    summed — a binary search per edge instead of per value, 4-6× faster on a 1,000-row
    batch, and the counts are the same integers."""
    k, n = Z.shape
    edges, bins = acc.edges, acc.bins
    if n * edges.size <= BROADCAST_CELLS:
        index = (Z[:, :, None] > edges[:, None, :]).sum(axis=2) + acc.bin_offsets[:, None]
        flat = index.ravel()
        counts = np.bincount(flat, minlength=k * bins)
        shifted = (Z - acc.shift[:, None]).ravel()
        sums = np.bincount(flat, weights=shifted, minlength=k * bins)
        return counts.reshape(k, bins), sums.reshape(k, bins)
    ordered = np.sort(Z, axis=1)
    # values with a bin ≤ i are those ≤ edges[i]: the run ends of each bin, then n
    ends = np.empty((k, bins), dtype=np.int64)
    for j in range(k):
        ends[j, :-1] = np.searchsorted(ordered[j], edges[j], side="right")
    ends[:, -1] = n
    counts = np.diff(ends, axis=1, prepend=0)
    # one reduceat over every column's runs: the non-empty runs' starts strictly increase,
    # and each one runs to the next (an empty bin has no width), the last to the column's end
    starts = (ends - counts + np.arange(k)[:, None] * n).ravel()
    filled = counts.ravel() > 0
    ordered -= acc.shift[:, None]
    sums = np.zeros(k * bins)
    sums[filled] = np.add.reduceat(ordered.ravel(), starts[filled])
    return counts.reshape(k, bins), sums.reshape(k, bins)


def monitorable(acc: Accumulator, matrix: np.ndarray) -> np.ndarray:
    """Which rows the statistics can hold: every value within MAX_DEVIATION of its training
    mean, and the prediction too. Decided for all rows at once from the largest value when
    even it is far inside (every row the service scores, in practice); row by row else."""
    X = np.asarray(matrix, dtype=np.float64)
    largest = float(np.abs(X).max(initial=0.0))  # NaN: the comparisons below are False
    # |x − mean| ≤ |x| + max|mean|;  |x·c + b − mean_y| ≤ max|x|·Σ|c| + |b| + |mean_y|
    slope, offset = acc.prediction_reach
    if largest + acc.feature_reach < MAX_DEVIATION and largest * slope + offset < MAX_DEVIATION:
        return np.ones(len(X), dtype=bool)
    with np.errstate(over="ignore", invalid="ignore"):
        deviation = np.abs(X - acc.shift[: X.shape[1]])
        prediction = np.abs(X @ acc.coef + acc.intercept - acc.shift[-1])
    ok: np.ndarray = (deviation < MAX_DEVIATION).all(axis=1) & (prediction < MAX_DEVIATION)
    return ok


def merge(a: DriftStats, b: DriftStats) -> DriftStats:
    """The statistics of ``a``'s rows and ``b``'s together."""
    data = a.data + b.data
    merged = DriftStats(a.accumulator, data)
    views, va, vb = merged.parts(), a.parts(), b.parts()
    np.minimum(va["min"], vb["min"], out=views["min"])
    np.maximum(va["max"], vb["max"], out=views["max"])
    return merged


def scan(
    spec: str | Path,
    acc: Accumulator,
    model: LinearModel,
    target: str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> DriftStats:
    """The statistics of every row of a file, folder or glob, read block by block with the
    project's one table reader: memory is one block, whatever the input's size."""
    stats = DriftStats.empty(acc)
    names = [*model.feature_names, "the prediction"]
    for path, first_row, X, y in _blocks(spec, model, target, chunk_rows):
        ok = monitorable(acc, X)
        if y is not None:
            with np.errstate(over="ignore", invalid="ignore"):
                ok &= np.abs(y - acc.target_shift) < MAX_DEVIATION
        if not ok.all():
            index = int(np.flatnonzero(~ok)[0])
            raise InputError(
                f"{path} column {_far_column(acc, X[index], names, target)!r} "
                f"row {first_row + index + 1}: a value more than {MAX_DEVIATION:g} from "
                "the training mean cannot be monitored (its square overflows)"
            )
        record(stats, X, y)
    return stats


def _far_column(acc: Accumulator, row: np.ndarray, names: list[str], target: str | None) -> str:
    """The first column of a refused row whose value is too far from its training mean: a
    feature, the prediction, or the target — so the refusal names what to look at."""
    with np.errstate(over="ignore", invalid="ignore"):
        values = np.append(row, row @ acc.coef + acc.intercept)
        far = ~(np.abs(values - acc.shift) < MAX_DEVIATION)
    if far.any():
        return names[int(np.flatnonzero(far)[0])]
    return target or "the target"  # only the target is left to be too far


def _blocks(
    spec: str | Path, model: LinearModel, target: str | None, chunk_rows: int
) -> Iterator[tuple[Path, int, np.ndarray, np.ndarray | None]]:
    files = tables.table_files(spec)
    names = list(model.feature_names)
    if target is not None and target in names:
        raise InputError(f"--target {target} is one of the model's features")
    columns = [*names, target] if target is not None else names
    for path in files:  # every header first: a missing column fails before any work
        tables.check_columns(str(path), tables.read_header(path), columns)
    d = len(names)
    for path in files:
        for block in tables.iter_blocks(path, columns, chunk_rows):
            X = block.values[:, :d]
            outside = outside_domain(model, X)
            if outside.any():
                index = int(np.flatnonzero(outside)[0])
                raise InputError(
                    f"{path} row {block.offset + index + 1}: {domain_error(model, X[index])}"
                )
            yield path, block.offset, X, (block.values[:, d] if target is not None else None)
