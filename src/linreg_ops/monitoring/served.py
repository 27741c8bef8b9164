"""The statistics of the rows a service scored: one small file per worker process in a run
directory, merged when read.

Each worker memory-maps its own file (``worker-<pid>.stats``) and writes to it in place: no
write system call on the request path. A request's rows are copied into a buffer of
``BUFFER_ROWS`` rows in the file; only when it is full are they folded into the statistics
(``record_into``: a few numpy calls for thousands of rows), so a request pays one copy. A
reader folds the pending rows into what it reads, so it sees every row scored.

The file holds two copies of the statistics and one 8-byte word naming the complete copy and
the number of pending rows. A fold writes the other copy (the complete one plus the buffer),
then stores the word — one aligned store — so a worker killed at any instant leaves the
statistics it had, or the new ones, never half. An ``flock`` held while the file changes, and
taken by readers, keeps a reader from copying it halfway.

A restarted worker opens a new file: the rows its predecessor scored were scored, and stay
counted.
"""

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Any

import numpy as np

from linreg_ops.errors import ArtifactError
from linreg_ops.model import LinearModel
from linreg_ops.monitoring.drift import drift_report
from linreg_ops.monitoring.profile import Profile, load_profile
from linreg_ops.monitoring.stats import (
    Accumulator,
    DriftStats,
    merge,
    monitorable,
    record_into,
)
from linreg_ops.storage.store import Version

__all__ = ["BUFFER_ROWS", "FILE_GLOB", "MAGIC", "Monitor", "ServedStats", "read_served"]

MAGIC = 16.6  # the first number of a worker's file: this format
FILE_GLOB = "worker-*.stats"
BUFFER_ROWS = 4096  # rows kept raw until they are folded into the statistics (256 KiB)
_HEADER = 4  # magic, size of one copy, features, state (complete copy + 2 × pending rows)


class ServedStats:
    """One worker's statistics, in its file in ``run_dir``."""

    def __init__(self, run_dir: Path, accumulator: Accumulator) -> None:
        self.accumulator = accumulator
        size, d = accumulator.size, len(accumulator.coef)
        path = Path(run_dir) / f"worker-{os.getpid()}.stats"
        initial = np.concatenate(
            [[MAGIC, size, d, 0.0], accumulator.empty(), accumulator.empty(),
             np.zeros(BUFFER_ROWS * d)]
        )  # fmt: skip
        flags = os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
        self._fd = os.open(path, flags, 0o600)
        os.write(self._fd, initial.tobytes())
        self._map = np.memmap(path, dtype=np.float64, mode="r+", shape=initial.shape)
        self._copies = (
            self._map[_HEADER : _HEADER + size],
            self._map[_HEADER + size : _HEADER + 2 * size],
        )
        self._buffer = self._map[_HEADER + 2 * size :].reshape(BUFFER_ROWS, d)
        self.path = path

    def record(self, matrix: np.ndarray) -> None:
        """Add one request's rows: a copy into the buffer (a fold when it is full)."""
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            state = int(self._map[3])
            complete, pending = state & 1, state >> 1
            n = len(matrix)
            if pending + n <= BUFFER_ROWS:
                self._buffer[pending : pending + n] = matrix
                self._map[3] = complete + 2 * (pending + n)
                return
            # fold the pending rows (and this request's, when they could not wait in the
            # buffer) into the other copy; publish it with one store; then let this
            # request's rows wait in the emptied buffer (a kill in between loses only them)
            target = self._copies[1 - complete]
            target[:] = self._copies[complete]
            record_into(self.accumulator, target, self._buffer[:pending])
            if n > BUFFER_ROWS:
                record_into(self.accumulator, target, matrix)
                self._map[3] = 1 - complete  # the one store that publishes the fold
                return
            self._map[3] = 1 - complete
            self._buffer[:n] = matrix
            self._map[3] = 1 - complete + 2 * n
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._map.flush()
        del self._map, self._copies, self._buffer
        os.close(self._fd)


def read_served(run_dir: Path, accumulator: Accumulator) -> DriftStats:
    """Every worker's statistics in ``run_dir``, their pending rows included, merged."""
    total = DriftStats.empty(accumulator)
    for path in sorted(Path(run_dir).glob(FILE_GLOB)):
        data = _read_worker(path, accumulator)
        if data is not None:
            total = merge(total, DriftStats(accumulator, data))
    return total


def _read_worker(path: Path, accumulator: Accumulator) -> np.ndarray | None:
    """A worker's complete statistics with its pending rows folded in (None for a file gone
    or not yet written whole)."""
    size, d = accumulator.size, len(accumulator.coef)
    length = _HEADER + 2 * size + BUFFER_ROWS * d
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        raw = os.pread(fd, 8 * length, 0)
    finally:
        os.close(fd)
    values = np.frombuffer(raw, dtype=np.float64)
    if len(values) != length:
        return None  # a worker still creating its file
    state = int(values[3]) if values[3] >= 0 else -1
    if values[0] != MAGIC or values[1] != size or values[2] != d or state < 0:
        raise ArtifactError(f"{path} is not a linreg-ops worker statistics file of this model")
    complete, pending = state & 1, state >> 1
    start = _HEADER + complete * size
    data = values[start : start + size].copy()
    buffer = values[_HEADER + 2 * size :].reshape(BUFFER_ROWS, d)
    record_into(accumulator, data, buffer[: min(pending, BUFFER_ROWS)])
    return data


class Monitor:
    """What a service worker needs: record the rows it scores, report the drift of every
    worker's rows. A version published without a profile is served, but not monitored."""

    def __init__(self, version: Version, model: LinearModel, run_dir: Path) -> None:
        self.version, self.model, self.run_dir = version, model, Path(run_dir)
        self.unavailable: str | None = None
        self._stats: ServedStats | None = None
        try:
            self.profile: Profile | None = load_profile(version, model)
        except ArtifactError as exc:
            self.profile, self.unavailable = None, str(exc)
            return
        self.accumulator = Accumulator.of(self.profile, model)
        self._stats = ServedStats(self.run_dir, self.accumulator)

    def record(self, matrix: np.ndarray) -> None:
        """Add a request's scored rows; a row too far from the training mean for the sums
        (beyond MAX_DEVIATION, served all the same) is left out rather than poison them."""
        if self._stats is not None:
            ok = monitorable(self.accumulator, matrix)
            self._stats.record(matrix if ok.all() else matrix[ok])

    def report(self, metrics: dict[str, Any] | None = None) -> dict[str, Any]:
        """The same JSON as ``linreg-ops monitor --json``, of every row served so far."""
        assert self.profile is not None
        stats = read_served(self.run_dir, self.accumulator)
        return drift_report(
            self.profile,
            stats,
            self.model.coef,
            source=f"rows served by version {self.version.number}",
            version=self.version.number,
            training=(metrics or {}).get("float"),
        )

    def close(self) -> None:
        if self._stats is not None:
            self._stats.close()
            self._stats = None
