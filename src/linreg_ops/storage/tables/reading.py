"""Reading a table file in blocks of constant memory, whatever its format and size.

One reader for every path — the training engines, ``predict --input``, ``evaluate --data``
— so every path sees the same numbers. A large CSV file that can be cut between records is
parsed in byte ranges on a few threads (pyarrow releases the GIL), its blocks given in file
order exactly as the one-thread reader gives them.
"""

import itertools
import os
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from linreg_ops.config import DEFAULT_CHUNK_ROWS
from linreg_ops.storage.tables._common import (
    Block,
    Rows,
    Table,
    as_rows,
    check_block,
    is_csv,
    no_rows_error,
    open_native,
    rebuffer_rows,
    rows_per_block,
)
from linreg_ops.storage.tables.csv_reading import CsvSource, csv_blocks, csv_reader
from linreg_ops.storage.tables.discovery import check_columns, check_table_path, read_header
from linreg_ops.storage.tables.parquet import parquet_blocks
from linreg_ops.storage.tables.partitions import Partition, arrow_range, csv_ranges, splittable

__all__ = ["PARSE_BYTES", "PARSE_THREADS", "iter_blocks", "parallel_csv_blocks", "read_table"]

PARSE_BYTES = 16 << 20  # a large CSV file is parsed in ranges of this size, in parallel
PARSE_THREADS = 4


def iter_blocks(
    path: Path,
    columns: Sequence[str],
    block_rows: int = DEFAULT_CHUNK_ROWS,
    *,
    hint: str = "",
    keep: Sequence[str] = (),
) -> Iterator[Block]:
    """Blocks of exactly ``rows_per_block(block_rows, len(columns))`` rows (the last may be
    shorter) of the selected columns, in file order, in constant memory. ``hint`` is added to
    a non-numeric error (e.g. "pass --features" when the columns were not chosen by the
    user). ``keep``: columns each block carries along, row for row (``Block.kept``: a CSV
    column as text, a Parquet column in its own type), read in the same pass."""
    path = check_table_path(Path(path))
    header = read_header(path)
    check_columns(str(path), header, [*columns, *keep])
    block_rows = rows_per_block(block_rows, len(columns) + len(keep))
    if is_csv(path):
        yield from _csv_file_blocks(path, list(columns), block_rows, hint, keep)
    else:
        yield from parquet_blocks(path, list(columns), block_rows, None, 0, hint, keep)


def read_table(path: Path, columns: Sequence[str], *, hint: str = "") -> Table:
    """A whole file's selected columns in memory (for data that fits, e.g. ``evaluate``)."""
    blocks = [block.values for block in iter_blocks(path, columns, hint=hint)]
    values = np.vstack(blocks) if blocks else np.empty((0, len(columns)))
    return Table(str(path), tuple(columns), values)


def _csv_file_blocks(
    path: Path, columns: list[str], block_rows: int, hint: str, keep: Sequence[str]
) -> Iterator[Block]:
    threads = min(os.cpu_count() or 1, PARSE_THREADS)
    if threads > 1 and path.stat().st_size >= 4 * PARSE_BYTES and splittable(path):
        blocks = parallel_csv_blocks(path, columns, block_rows, hint, threads, keep)
    else:
        blocks = csv_blocks(
            CsvSource(lambda: open_native(path), str(path)), columns, block_rows, hint, keep
        )
    seen = False
    for block in blocks:
        seen = True
        yield block
    if not seen:
        raise no_rows_error(path)


def parallel_csv_blocks(
    path: Path,
    columns: list[str],
    block_rows: int,
    hint: str,
    threads: int,
    keep: Sequence[str] = (),
) -> Iterator[Block]:
    """The same blocks as the one-thread reader, from byte ranges parsed by ``threads``
    threads (pyarrow releases the GIL) and consumed in file order, a few ranges in flight.

    Only a ``splittable`` file comes here: its ranges are cut at newlines. On any parse error
    the file is read again in order by the one-thread reader, which names the first bad cell
    exactly as it always does.
    """
    import pyarrow as pa

    header = read_header(path)
    ranges = csv_ranges(path, PARSE_BYTES)

    def parse(part: Partition) -> list[Rows]:
        # pyarrow reads the range and parses it without the GIL (a Python file object would
        # take it for each read); the rows are converted in this thread too
        handle = pa.BufferReader(arrow_range(part))
        reader = csv_reader(handle, columns, header, text=False, keep=keep)
        return [
            Rows(as_rows(batch.select(columns)), tuple(batch.column(k) for k in keep), part.stop)
            for batch in reader
        ]

    def parsed_rows() -> Iterator[Rows]:
        with ThreadPoolExecutor(threads) as pool:
            first = itertools.islice(ranges, threads + 1)
            pending = deque(pool.submit(parse, part) for part in first)
            while pending:
                parsed = pending.popleft().result()
                pending.extend(pool.submit(parse, part) for part in itertools.islice(ranges, 1))
                yield from parsed

    source = CsvSource(lambda: open_native(path), str(path))
    given = 0  # rows yielded
    try:
        for block in rebuffer_rows(parsed_rows(), block_rows, 0):
            check_block(block, columns, str(path), source.cell_text)
            yield block
            given += len(block.values)
    except pa.ArrowInvalid:
        # Read in order from the start: the same blocks, so the error (if it is one) is
        # raised for the same row as ever, and a range pyarrow could not parse alone (a
        # field larger than a parse block) is read; rows already given are skipped.
        for block in csv_blocks(source, columns, block_rows, hint, keep):
            if block.offset >= given:
                yield block
