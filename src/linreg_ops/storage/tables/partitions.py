"""Pieces of one file that parallel readers (Dask workers, reader threads) read alone: byte
ranges of a CSV file cut between records, or runs of a Parquet file's row groups."""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from linreg_ops.errors import InputError
from linreg_ops.storage.tables._common import (
    Block,
    arrow_buffer,
    is_csv,
    no_rows_error,
    open_binary,
    open_native,
    rows_per_block,
    short,
)
from linreg_ops.storage.tables.csv_reading import CsvSource, batches, csv_blocks
from linreg_ops.storage.tables.discovery import check_table_path
from linreg_ops.storage.tables.parquet import parquet_blocks

__all__ = [
    "Partition",
    "arrow_range",
    "check_rows_per_file",
    "csv_ranges",
    "partition_blocks",
    "partition_rows",
    "partitions",
    "splittable",
]


@dataclass(frozen=True)
class Partition:
    """A piece of one file that a worker reads alone: a byte range of a CSV file (starting at
    a record boundary; with the header row when ``header`` is true) or a run of Parquet row
    groups."""

    path: Path
    start: int  # CSV: byte offset; Parquet: first row group
    stop: int  # CSV: byte offset (exclusive); Parquet: row group (exclusive)
    rows: int | None  # known for Parquet (metadata); counted for CSV
    header: bool = False  # CSV: the range is the whole file, header row included


def partitions(path: Path, target_bytes: int = 64 << 20) -> list[Partition]:
    """Split one file for parallel readers: row groups of a Parquet file, byte ranges of a CSV.

    A CSV is cut only where a cut is certain to fall between records: at a newline, in a
    file with no quote character (a quoted field may hold newlines, and a quote inside an
    unquoted field is literal, so no count of quotes can place a cut safely) and no lone
    carriage return (which also ends a record). Any other CSV is one partition.
    """
    path = check_table_path(path)
    if not is_csv(path):
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            metadata = pq.read_metadata(path)
        except (OSError, pa.ArrowException) as exc:
            raise InputError(f"cannot read {path} as Parquet: {short(exc)}") from None
        parts, start, rows, size = [], 0, 0, 0
        for group in range(metadata.num_row_groups):
            rows += metadata.row_group(group).num_rows
            size += metadata.row_group(group).total_byte_size
            if size >= target_bytes or group == metadata.num_row_groups - 1:
                parts.append(Partition(path, start, group + 1, rows))
                start, rows, size = group + 1, 0, 0
        return parts
    if not splittable(path):
        return [Partition(path, 0, path.stat().st_size, None, header=True)]
    return list(csv_ranges(path, target_bytes))


def splittable(path: Path) -> bool:
    """Whether every newline of a CSV file ends a record and nothing else does: no quote
    character, no carriage return outside CRLF (memchr searches: fast on common files)."""
    with open_binary(path) as handle:
        pending_cr = False  # the previous chunk ended with a CR: is it a CRLF?
        while chunk := handle.read(1 << 22):
            if chunk.find(b'"') >= 0 or (pending_cr and not chunk.startswith(b"\n")):
                return False
            pending_cr = chunk.endswith(b"\r")
            if chunk.find(b"\r") >= 0:
                body = chunk[:-1] if pending_cr else chunk
                if body.count(b"\r") != body.count(b"\r\n"):
                    return False
    return True


def csv_ranges(path: Path, target_bytes: int) -> Iterator[Partition]:
    """Byte ranges of a splittable CSV file, each found as the scan reaches it: the first
    starts after the header line (blank lines before it skipped, as every reader skips
    them), each ends after a newline."""
    end = path.stat().st_size
    previous = None
    with open_binary(path) as handle:
        first = handle.readline()
        line = first.removeprefix(b"\xef\xbb\xbf")
        while line in (b"\n", b"\r\n"):
            line = handle.readline()
        if not line.endswith(b"\n"):
            return  # a header and nothing after it
        previous = position = handle.tell()
        wanted = position + target_bytes  # the next cut: the first newline at or after this
        while chunk := handle.read(1 << 22):
            start = max(0, wanted - position)
            while start < len(chunk) and (newline := chunk.find(b"\n", start)) >= 0:
                cut = position + newline + 1
                yield Partition(path, previous, cut, None)
                previous, wanted = cut, cut + target_bytes
                start = max(newline + 1, wanted - position)
            position += len(chunk)
    if end > previous:
        yield Partition(path, previous, end, None)


def check_rows_per_file(paths: Sequence[Path], counts: Sequence[int]) -> None:
    """Every file of an input holds data rows (partition ``counts`` by file, in order), as
    the one-pass reader demands: a file of only a header is a mistake, not an empty part."""
    totals = dict.fromkeys(paths, 0)
    for path, count in zip(paths, counts, strict=True):
        totals[path] += count
    for path, total in totals.items():
        if total == 0:
            raise no_rows_error(path)


def partition_rows(part: Partition, header: list[str]) -> int:
    """The number of data rows in a partition, as the reader will count them."""
    if part.rows is not None:
        return part.rows
    import pyarrow as pa

    if part.header:  # a whole file that could not be cut: stream it, never hold it all
        source = CsvSource(lambda: open_native(part.path), str(part.path))
    else:
        data = _read_range(part)
        # Without quotes, blank lines or carriage returns a row is a line: count the
        # newlines. (find() is a memchr; each test fails fast on the common file.)
        simple = (
            data.find(b'"') < 0
            and data.find(b"\r") < 0
            and not data.startswith(b"\n")
            and b"\n\n" not in data
        )
        if simple:
            return data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
        source = CsvSource(lambda: arrow_buffer(data), str(part.path), tuple(header))
    try:
        return sum(batch.num_rows for batch in batches(source, [header[0]], text=True))
    except pa.ArrowException:
        return -1  # unreadable: the worker that parses it names the problem


def partition_blocks(
    part: Partition, columns: list[str], header: list[str], first_row: int, block_rows: int
) -> Iterator[Block]:
    """A partition's blocks (of ``rows_per_block`` rows); rows are numbered from
    ``first_row`` in the whole file."""
    block_rows = rows_per_block(block_rows, len(columns))
    if not is_csv(part.path):
        yield from parquet_blocks(
            part.path, columns, block_rows, list(range(part.start, part.stop)), first_row, ""
        )
        return
    import pyarrow as pa

    label = str(part.path)
    if part.header:  # a whole file that could not be cut: stream it, never hold it all
        source = CsvSource(lambda: open_native(part.path), label, first_row=first_row)
    else:
        data = arrow_range(part)
        source = CsvSource(lambda: pa.BufferReader(data), label, tuple(header), first_row)
    yield from csv_blocks(source, columns, block_rows, "")


def arrow_range(part: Partition) -> Any:
    """A CSV range in Arrow's own memory (see ``open_native``), read without the GIL."""
    import pyarrow as pa

    with pa.OSFile(str(part.path)) as handle:
        handle.seek(part.start)
        return handle.read_buffer(part.stop - part.start)


def _read_range(part: Partition) -> bytes:
    """The bytes of a CSV partition."""
    with open_binary(part.path) as handle:
        handle.seek(part.start)
        return handle.read(part.stop - part.start)
