"""The Dask plumbing every distributed path shares: a session on a cluster (a scheduler's
address checked and reached within a deadline, or a fresh local cluster), a pairwise tree of
delayed values, and an input cut into partitions whose rows are counted on the workers.

Training (``training.engines``) and scoring (``inference.dask_scoring``) both stand on it;
neither knows the other.
"""

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from linreg_ops.errors import InputError
from linreg_ops.extras import require
from linreg_ops.storage import tables

if TYPE_CHECKING:
    from distributed import Client

__all__ = [
    "CONNECT_TIMEOUT",
    "PARTITION_BYTES",
    "DaskSession",
    "Piece",
    "checked_headers",
    "checked_scheduler",
    "count_pieces",
    "handshake",
    "read_in_order",
    "tree",
]

PARTITION_BYTES = 64 << 20  # a Dask task reads this much of a file (or whole row groups)
CONNECT_TIMEOUT = 10.0  # seconds to reach a scheduler and complete the handshake


class DaskSession:
    """A client on ``scheduler`` (tcp://HOST:PORT), or on a fresh 2-worker LocalCluster in
    this process (threads)."""

    def __init__(self, scheduler: str | None = None) -> None:
        self.scheduler = scheduler
        self.client: Client | None = None
        self.cluster: Any = None

    def __enter__(self) -> "Client":
        # distributed only: importing dask.dataframe (pandas) cost a training run 0.8 s, and
        # only scoring (inference.dask_scoring) uses it
        distributed = require("distributed", "scale", "the dask engine")
        if self.scheduler is not None:
            address = checked_scheduler(self.scheduler)
            handshake(address)
            try:
                self.client = distributed.Client(address, timeout=f"{CONNECT_TIMEOUT}s")
            except OSError as exc:
                raise InputError(f"cannot reach the Dask scheduler {address}: {exc}") from None
        else:
            # Two workers as threads of this process, talking in memory: a cluster of
            # worker processes took 2-3 s to start and stop on every run (1.4× streaming on
            # 10M rows), and the tasks (pyarrow reads, numpy reductions) release the GIL. A
            # user who wants worker processes starts a cluster and passes --scheduler.
            # The scheduler's HTTP port is one the system picks: 8787, the default, may be
            # another cluster's, and the warning would break "one line on error".
            self.cluster = distributed.LocalCluster(
                n_workers=2,
                threads_per_worker=1,
                processes=False,
                dashboard_address="127.0.0.1:0",
                scheduler_kwargs={"dashboard": False},
                # the cluster's own log lines would break "one line on error" too: errors
                # that matter reach the client as exceptions
                silence_logs=logging.CRITICAL,
            )
            self.client = distributed.Client(self.cluster)
        return self.client

    def __exit__(self, *exc_info: object) -> None:
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def checked_scheduler(address: str) -> str:
    """``address`` if distributed parses it as tcp://HOST:PORT (a bare HOST:PORT is tcp): the
    only protocol the engine connects with (no TLS settings are passed)."""
    from distributed.comm.addressing import get_address_host_port, parse_address

    expected = f"--scheduler {address!r} is not a Dask scheduler address (tcp://HOST:PORT)"
    try:
        scheme, _ = parse_address(address)
        host, port = get_address_host_port(address)
    except ValueError as exc:
        raise InputError(f"{expected}: {exc}") from None
    if scheme != "tcp" or not host or not 0 < port < 65536:
        raise InputError(expected)
    return address


def handshake(address: str) -> None:
    """Connect to ``address`` and complete distributed's handshake within CONNECT_TIMEOUT.

    distributed's client waits for the handshake without a deadline (a listener that never
    answers hangs it for good), and a server of another protocol makes it fail in any way (an
    HTTP reply read as a frame length is a MemoryError). Any failure here means there is no
    scheduler at that address. Runs on a thread of its own: the caller may have an event
    loop running (a notebook).
    """
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from distributed.comm.core import connect

    async def attempt() -> None:
        comm = await asyncio.wait_for(connect(address, timeout=CONNECT_TIMEOUT), CONNECT_TIMEOUT)
        await comm.close()

    try:
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, attempt()).result()
    except TimeoutError:
        raise InputError(
            f"cannot reach the Dask scheduler {address}: no answer within {CONNECT_TIMEOUT:g} s"
        ) from None
    except OSError as exc:
        raise InputError(f"cannot reach the Dask scheduler {address}: {exc}") from None
    except Exception as exc:  # whatever another protocol's reply makes the handshake raise
        raise InputError(
            f"{address} does not answer as a Dask scheduler "
            f"({type(exc).__name__}: {str(exc)[:200]})"
        ) from None


def tree(tasks: list[Any], combine: Callable[[Any, Any], Any]) -> Any:
    """Pairwise reduction of delayed values: ``combine`` applied level by level on the cluster."""
    from dask.delayed import delayed

    merge = delayed(combine, pure=True)
    while len(tasks) > 1:
        tasks = [
            merge(tasks[i], tasks[i + 1]) if i + 1 < len(tasks) else tasks[i]
            for i in range(0, len(tasks), 2)
        ]
    return tasks[0]


@dataclass(frozen=True)
class Piece:
    """A partition with its place in the whole input."""

    part: tables.Partition
    header: list[str]
    first_row: int
    rows: int


def checked_headers(files: Sequence[Path], columns: list[str]) -> list[tuple[Path, list[str]]]:
    """Every file's header, with the selected columns checked: before any cluster starts, so
    a missing column names its file at once."""
    headers = [(path, tables.read_header(path)) for path in files]
    for path, header in headers:
        tables.check_columns(str(path), header, columns)
    return headers


def count_pieces(
    headers: list[tuple[Path, list[str]]],
    columns: list[str],
    client: "Client",
    hint: str = "",
) -> list[Piece]:
    """Every file's partitions, their rows counted on the workers, numbered in input order.
    A partition pyarrow cannot parse is named by reading the input in order."""
    from dask.delayed import delayed

    found = [
        (part, header)
        for path, header in headers
        for part in tables.partitions(path, PARTITION_BYTES)
    ]
    counts: list[int] = client.gather(
        client.compute(
            [delayed(tables.partition_rows, pure=True)(part, header) for part, header in found]
        )
    )
    files = [path for path, _ in headers]
    if min(counts, default=0) < 0:  # unreadable: the sequential reader names the problem
        read_in_order(files, columns, hint)
        raise RuntimeError("a partition failed to parse, the whole input did not")
    # a file without data rows may have no partition at all: count every file
    tables.check_rows_per_file(
        [*files, *(part.path for part, _ in found)], [0] * len(files) + counts
    )
    pieces, offset = [], 0
    for (part, header), rows in zip(found, counts, strict=True):
        pieces.append(Piece(part, header, offset, rows))
        offset += rows
    return pieces


def read_in_order(files: Sequence[Path], columns: list[str], hint: str = "") -> None:
    """Read the input in order with the streaming reader: it raises the first data error."""
    for path in files:
        for _ in tables.iter_blocks(path, columns, 1 << 16, hint=hint):
            pass
