"""Parquet on pyarrow's reader: numeric columns in row blocks, nulls named by row."""

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from linreg_ops.errors import InputError
from linreg_ops.storage.tables._common import (
    Block,
    Rows,
    as_rows,
    check_block,
    no_rows_error,
    rebuffer_rows,
    short,
)

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["parquet_blocks"]


def parquet_blocks(
    path: Path,
    columns: list[str],
    block_rows: int,
    row_groups: list[int] | None,
    first_row: int,
    hint: str,
    keep: Sequence[str] = (),
) -> Iterator[Block]:
    """Blocks of ``block_rows`` rows of the selected columns (of ``row_groups`` only, when
    given, whose first row is ``first_row`` of the file). ``hint`` is added to a
    non-numeric error. ``keep``: columns carried along in their own Arrow type
    (``Block.kept``), read in the same pass; a block's ``position`` is the file's size times
    the share of its rows read (the metadata knows the total)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
        for name in columns:
            kind = schema.field(name).type
            if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
                suffix = f"; {hint}" if hint else ""
                raise InputError(
                    f"{path} column {name!r} has type {kind}, expected a numeric type{suffix}"
                )
        # No pre-buffering: it reads whole row groups ahead and multiplies the memory by the
        # number of columns in flight.
        with pq.ParquetFile(path, pre_buffer=False) as parquet:
            if row_groups is None and parquet.metadata.num_rows == 0:
                raise no_rows_error(path)
            total, size = max(parquet.metadata.num_rows, 1), path.stat().st_size
            read = list(dict.fromkeys([*columns, *keep]))
            batches = parquet.iter_batches(
                batch_size=min(block_rows, 1 << 20), columns=read, row_groups=row_groups
            )
            done = first_row
            checked = _no_nulls(batches, path, columns, first_row)

            def rows() -> Iterator[Rows]:
                nonlocal done
                for batch in checked:
                    done += batch.num_rows
                    kept = tuple(batch.column(name) for name in keep)
                    yield Rows(as_rows(batch.select(columns)), kept, size * done // total)

            for block in rebuffer_rows(rows(), block_rows, first_row):
                check_block(block, columns, str(path))
                yield block
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"cannot read {path} as Parquet: {short(exc)}") from None


def _no_nulls(
    batches: Iterable["pa.RecordBatch"], path: Path, columns: list[str], first_row: int
) -> Iterator["pa.RecordBatch"]:
    offset = first_row
    for batch in batches:
        for name in columns:
            column = batch.column(name)
            if column.null_count:
                nulls = column.is_null().to_numpy(zero_copy_only=False)
                row = offset + int(np.flatnonzero(nulls)[0])
                raise InputError(f"{path} column {name!r} row {row + 1}: missing value (null)")
        offset += batch.num_rows
        yield batch
