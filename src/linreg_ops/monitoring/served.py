"""The statistics of the rows a service scored: one small file per worker process in a run
directory, merged when read.

Each worker memory-maps its own file (``worker-<pid>.stats``) and adds every request's rows to
it in place — no write system call on the request path. The file holds two copies of the
statistics and the index of the complete one: a request updates the other copy (a copy of
the complete one plus its rows) and then switches the index, one aligned 8-byte store, so a
worker killed at any instant leaves a complete copy behind. An ``flock`` held while a copy is
updated, and taken by readers, keeps a reader from copying one halfway.

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
from linreg_ops.monitoring.stats import Accumulator, DriftStats, merge, record_into
from linreg_ops.storage.store import Version

__all__ = ["FILE_GLOB", "MAGIC", "Monitor", "ServedStats", "read_served"]

MAGIC = 16.6  # the first number of a worker's file: this format
FILE_GLOB = "worker-*.stats"
_HEADER = 3  # magic, size of one copy, index of the complete copy


class ServedStats:
    """One worker's statistics, in its file in ``run_dir``."""

    def __init__(self, run_dir: Path, accumulator: Accumulator) -> None:
        self.accumulator = accumulator
        size = accumulator.size
        path = Path(run_dir) / f"worker-{os.getpid()}.stats"
        initial = np.concatenate([[MAGIC, size, 0.0], accumulator.empty(), accumulator.empty()])
        flags = os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
        self._fd = os.open(path, flags, 0o600)
        os.write(self._fd, initial.tobytes())
        self._map = np.memmap(path, dtype=np.float64, mode="r+", shape=(_HEADER + 2 * size,))
        self._copies = (
            self._map[_HEADER : _HEADER + size],
            self._map[_HEADER + size : _HEADER + 2 * size],
        )
        self.path = path

    def record(self, matrix: np.ndarray) -> None:
        """Add one request's rows (cheap: a few numpy operations and two ``flock`` calls)."""
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            complete = int(self._map[2])
            target = self._copies[1 - complete]
            target[:] = self._copies[complete]
            record_into(self.accumulator, target, matrix)
            self._map[2] = 1 - complete
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._map.flush()
        del self._map, self._copies
        os.close(self._fd)


def read_served(run_dir: Path, accumulator: Accumulator) -> DriftStats:
    """Every worker's statistics in ``run_dir``, merged."""
    total = DriftStats.empty(accumulator)
    for path in sorted(Path(run_dir).glob(FILE_GLOB)):
        data = _read_copy(path, accumulator.size)
        if data is not None:
            total = merge(total, DriftStats(accumulator, data))
    return total


def _read_copy(path: Path, size: int) -> np.ndarray | None:
    """A worker file's complete copy (None for a file gone or not yet written whole)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        raw = os.pread(fd, 8 * (_HEADER + 2 * size), 0)
    finally:
        os.close(fd)
    values = np.frombuffer(raw, dtype=np.float64)
    if len(values) != _HEADER + 2 * size:
        return None  # a worker still creating its file
    if values[0] != MAGIC or values[1] != size or values[2] not in (0.0, 1.0):
        raise ArtifactError(f"{path} is not a linreg-ops worker statistics file of this model")
    start = _HEADER + int(values[2]) * size
    return values[start : start + size].copy()


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
        if self._stats is not None:
            self._stats.record(matrix)

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
