"""Memory is bounded in bytes, not rows: a wide table (10,001 columns) is read in blocks of a
few megabytes, and too few rows for its features are refused before any d×d statistic.

The report: a 17 MB CSV of 300 rows × 10,001 columns took 3.3 GB of RSS and 17 s before it
was refused for too few rows; under ``ulimit -v`` 8 GB it was a traceback allocating 9.77 GiB
for a 131,072 × 10,001 block.
"""

import contextlib
import resource
import socket
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from linreg_ops.config import BLOCK_BYTES, TrainConfig
from linreg_ops.moments import MomentStats, block_rows
from linreg_ops.storage import tables
from linreg_ops.training import engines, sources, summary

ROWS, COLUMNS = 300, 10_001


@pytest.fixture(scope="module")
def wide_files(tmp_path_factory) -> dict[str, Path]:
    """The reported shape: 300 rows × 10,000 features and a target, as CSV and Parquet."""
    folder = tmp_path_factory.mktemp("wide")
    values = np.random.default_rng(0).random((ROWS, COLUMNS)).round(2)
    names = [f"x{j}" for j in range(COLUMNS - 1)] + ["y"]
    csv = folder / "wide.csv"
    np.savetxt(csv, values, fmt="%.2f", delimiter=",", header=",".join(names), comments="")
    parquet = folder / "wide.parquet"
    pq.write_table(pa.table(dict(zip(names, values.T, strict=True))), parquet)
    return {"csv": csv, "parquet": parquet}


def run_limited(args: list[str], limit_bytes: int, cwd: Path) -> subprocess.CompletedProcess:
    """The real console script in a process whose address space is capped (``ulimit -v``)."""
    executable = Path(sys.executable).with_name("linreg-ops")

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))

    return subprocess.run(
        [str(executable), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=cap,
        check=False,
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "engine", "limit_gb"),
    [
        ("csv", "streaming", 2),
        ("csv", "sklearn", 2),
        ("parquet", "streaming", 2),
        ("csv", "dask", 3),  # a LocalCluster's processes and threads need more address space
    ],
)
def test_too_few_rows_of_a_wide_table_are_refused_within_bounded_memory(
    wide_files, kind, engine, limit_gb, tmp_path
):
    """Also with port 8787 taken, as by another Dask cluster on the machine: the engine's
    LocalCluster printed "Port 8787 is already in use" (three more lines) over the error."""
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        with contextlib.suppress(OSError):  # already taken: the case holds anyway
            stack.enter_context(socket.create_server(("", 8787)))
        result = run_limited(
            ["train", "--data", str(wide_files[kind]), "--target", "y", "--engine", engine,
             "--models-dir", str(tmp_path / "models")],
            int(limit_gb * 1e9),
            tmp_path,
        )  # fmt: skip
    elapsed = time.monotonic() - started
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr[-2000:]
    assert "300 rows is too few to fit 10000 features (need at least 10002)" in lines[0]
    assert elapsed < 30


def test_blocks_of_a_wide_file_hold_at_most_block_bytes(wide_files):
    """The default block adapts to the width; a --chunk-rows given is an upper bound."""
    names = [f"x{j}" for j in range(COLUMNS - 1)]
    for path in wide_files.values():
        blocks = list(tables.iter_blocks(path, names))
        assert max(block.values.nbytes for block in blocks) <= BLOCK_BYTES
        assert len(blocks[0].values) == BLOCK_BYTES // (8 * len(names))
        assert sum(len(block.values) for block in blocks) == ROWS
        small = [len(block.values) for block in tables.iter_blocks(path, names, 100)]
        assert small == [100, 100, 100]
        assert sum(small) == ROWS


@pytest.mark.parametrize("columns", [1, 9, 10, 1000, 10**6])
@pytest.mark.parametrize("chunk_rows", [1, 500, 131_072, 10**9])
def test_rows_per_block_bounds_bytes_and_never_exceeds_the_rows_asked(columns, chunk_rows):
    rows = tables.rows_per_block(chunk_rows, columns)
    assert 1 <= rows <= chunk_rows
    assert rows * 8 * columns <= BLOCK_BYTES or rows == 1
    if columns <= 9 and chunk_rows <= 131_072:  # narrow tables keep the blocks they had
        assert rows == chunk_rows


def test_a_header_of_many_names_is_checked_in_linear_time():
    """Every selected column was counted in the whole header: 10,001 columns took 6 s."""
    header = [f"column {j}" for j in range(30_000)]
    started = time.monotonic()
    tables.check_columns("wide.csv", header, header)
    assert time.monotonic() - started < 2


def test_statistics_of_wide_rows_hold_few_d_by_d_matrices():
    """``MomentStats.of`` on wide rows: buffers of a block, and the pending partial results
    of the merge (log₂ of the blocks), not one d×d matrix per block nor a 16,384-row copy."""
    rng = np.random.default_rng(1)
    d, n = 400, 8_000
    X, y = rng.normal(size=(n, d)), rng.normal(size=n)
    assert block_rows(d) == d  # a cache-sized block would hold fewer rows than columns
    tracemalloc.start()
    try:
        stats = MomentStats.of(X, y)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 12 * d * d * 8  # the blocks' statistics held at once would be 20 of them
    np.testing.assert_allclose(stats.cxx, np.cov(X, rowvar=False, bias=True) * n, atol=1e-8)


def test_the_sample_and_the_stored_test_rows_are_bounded_in_bytes(tmp_path, monkeypatch):
    """A wide table's calibration sample and stored test rows were capped at 100,000 rows
    each, whatever their width (10,001 columns: 8 GB each)."""
    monkeypatch.setattr(summary, "KEPT_BYTES", 4800)  # 120 sample rows, 100 test rows (+ y)
    rng = np.random.default_rng(2)
    X = rng.normal(size=(3000, 4))
    y = X @ np.array([1.0, 2.0, -1.0, 0.5]) + rng.normal(size=3000)
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"a": X[:, 0], "b": X[:, 1], "c": X[:, 2], "d": X[:, 3], "y": y}), path)
    from_file = engines.fit(sources.file_source(path, "y"), TrainConfig(chunk_rows=256))
    assert 60 < len(from_file.sample) <= 120  # halved by row hash until within the cap
    arrays = sources.ArraySource(X, y, ("a", "b", "c", "d"), "y", "arrays", "0" * 64)
    from_arrays = engines.fit(arrays, TrainConfig())
    assert 80 < len(from_arrays.sample) < 160  # each row kept with probability 120 / rows
    for fit in (from_file, from_arrays):
        assert len(fit.stored_test) == 100 < fit.test.n
        assert not fit.test_complete  # metrics come from the test rows' moments
