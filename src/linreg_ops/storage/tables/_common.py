"""What every table reader shares: the block and table types, the row-block arithmetic, the
check that values are finite, and the wording of messages.

A private module: its names are the package's own, re-exported by ``tables`` where the rest
of linreg-ops needs them.
"""

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, NamedTuple

import numpy as np

from linreg_ops.config import BLOCK_BYTES
from linreg_ops.errors import InputError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "SHOWN_TEXT",
    "TABLE_SUFFIXES",
    "Block",
    "Opener",
    "Rows",
    "Table",
    "arrow_buffer",
    "as_rows",
    "check_block",
    "check_finite",
    "fields",
    "is_csv",
    "no_rows_error",
    "open_binary",
    "open_native",
    "quote",
    "rebuffer",
    "rebuffer_rows",
    "rows_per_block",
    "short",
]

TABLE_SUFFIXES = (".csv", ".parquet", ".pq")
SHOWN_TEXT = 40  # characters of a bad cell quoted in a message
_INF_TEXTS = {"inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"}


@dataclass(frozen=True)
class Block:
    """Rows of the selected columns; ``offset`` is the 0-based index of its first data row.

    ``kept``: the columns a caller asked to pass through (``predict --keep-columns``), as
    Arrow arrays of their own type, row for row with ``values`` (read in the same pass, so
    they cannot drift out of alignment). ``position``: about how many bytes of the file are
    read once this block is given (for a progress bar's total and ETA).
    """

    offset: int
    values: np.ndarray  # float64, (rows, columns), every value finite
    kept: tuple["pa.Array", ...] = ()
    position: int = 0


class Rows(NamedTuple):
    """What a reader parsed at once: feature rows, the kept columns of the same rows, and
    the file's byte position reached."""

    values: np.ndarray
    kept: tuple["pa.Array", ...]
    position: int


@dataclass(frozen=True)
class Table:
    """Named float64 columns read whole (small inputs: a request body, a test split)."""

    source: str
    columns: tuple[str, ...]
    values: np.ndarray

    def column(self, name: str) -> np.ndarray:
        return self.values[:, self.columns.index(name)]


def is_csv(path: Path) -> bool:
    return path.suffix.lower() == ".csv"


def open_binary(path: Path) -> BinaryIO:
    try:
        return open(path, "rb")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None


Opener = Callable[[], Any]  # a fresh pyarrow NativeFile over the same bytes at each call


def open_native(path: Path) -> Any:
    """A file as pyarrow's own stream, for its CSV reader. Never a Python file object: the
    streaming reader reads ahead on its own threads, and one still reading a Python object
    when the interpreter exits must take the GIL, is stopped with pthread_exit, and aborts
    the process ("terminate called without an active exception") — seen in 1 run in 30."""
    import pyarrow as pa

    try:
        return pa.OSFile(str(path))
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None


def arrow_buffer(data: bytes) -> Any:
    """Bytes in memory as a pyarrow stream over a copy in Arrow's own memory (see
    ``open_native``): a buffer wrapping the Python ``bytes`` would be released by whichever
    reader thread drops it last, which must take the GIL — and aborts the process if the
    interpreter is exiting."""
    import pyarrow as pa

    copy = pa.allocate_buffer(len(data))
    np.frombuffer(copy, dtype=np.uint8)[:] = np.frombuffer(data, dtype=np.uint8)
    return pa.BufferReader(copy)


def no_rows_error(path: Path) -> InputError:
    what = "a header but no data rows" if is_csv(path) else "no data rows"
    return InputError(f"{path} has {what}")


def rows_per_block(block_rows: int, columns: int) -> int:
    """``block_rows``, or fewer for a wide table: a block holds at most BLOCK_BYTES (10,001
    columns of 131,072 rows would be 10 GB; the first rows of a file must not cost that)."""
    return max(1, min(block_rows, BLOCK_BYTES // (8 * max(columns, 1))))


def rebuffer(arrays: Iterable[np.ndarray], block_rows: int, first_row: int) -> Iterator[Block]:
    """Row arrays of any length → blocks of exactly ``block_rows`` rows (the last may be
    shorter); a run of rows that already is a whole block is passed on without a copy.

    Fixed row blocks make every statistic independent of the file's byte layout: the same
    numbers quoted or not, with CRLF or LF, give the same blocks and so the same bits.
    """
    buffer: np.ndarray | None = None
    filled, offset = 0, first_row
    for array in arrays:
        start, count = 0, len(array)
        while start < count:
            if buffer is None and count - start >= block_rows:
                yield Block(offset, array[start : start + block_rows])
                offset, start = offset + block_rows, start + block_rows
                continue
            if buffer is None:
                rows = block_rows if block_rows <= 1 << 20 else max(count - start, 1 << 16)
                buffer = np.empty((rows, array.shape[1]))
            elif filled == len(buffer):  # an unbounded block (text in memory) grows
                buffer = np.concatenate([buffer, np.empty_like(buffer)])
            take = min(len(buffer) - filled, count - start)
            buffer[filled : filled + take] = array[start : start + take]
            filled, start = filled + take, start + take
            if filled == block_rows:
                yield Block(offset, buffer)
                offset, buffer, filled = offset + filled, None, 0
    if buffer is not None and filled:
        yield Block(offset, buffer[:filled])


def rebuffer_rows(pieces: Iterable[Rows], block_rows: int, first_row: int) -> Iterator[Block]:
    """``rebuffer`` of parsed pieces that carries their kept columns along, sliced to the
    same row ranges, and the byte position reached when each block is complete."""
    pending: deque[tuple[pa.Array, ...]] = deque()
    position = 0

    def values() -> Iterator[np.ndarray]:
        nonlocal position
        for piece in pieces:
            if piece.kept:
                pending.append(piece.kept)
            position = piece.position
            yield piece.values

    for block in rebuffer(values(), block_rows, first_row):
        kept = _take(pending, len(block.values)) if pending else ()
        yield replace(block, kept=kept, position=position)


def _take(pending: "deque[tuple[pa.Array, ...]]", rows: int) -> tuple["pa.Array", ...]:
    """The first ``rows`` rows of the pending kept columns (zero-copy slices; concatenated
    only where a block spans two pieces), removed from ``pending``."""
    import pyarrow as pa

    parts: list[tuple[pa.Array, ...]] = []
    while rows > 0:
        first = pending[0]
        length = len(first[0])
        if length <= rows:
            parts.append(pending.popleft())
            rows -= length
        else:
            parts.append(tuple(column.slice(0, rows) for column in first))
            pending[0] = tuple(column.slice(rows) for column in first)
            rows = 0
    if len(parts) == 1:
        return parts[0]
    return tuple(pa.concat_arrays(list(columns)) for columns in zip(*parts, strict=True))


def as_rows(batch: "pa.RecordBatch") -> np.ndarray:
    """A record batch of numeric columns as one C-ordered float64 array."""
    return np.column_stack([_float64(column) for column in batch.columns])


def _float64(column: "pa.Array") -> np.ndarray:
    """A numeric Arrow array without nulls as float64, read from its data buffer (pyarrow's
    own ``to_numpy`` imports pandas, which the serving path must not pay for)."""
    import pyarrow as pa

    kind = column.type
    if pa.types.is_floating(kind):
        dtype = np.dtype(f"float{kind.bit_width}")
    elif pa.types.is_signed_integer(kind):
        dtype = np.dtype(f"int{kind.bit_width}")
    elif pa.types.is_unsigned_integer(kind):
        dtype = np.dtype(f"uint{kind.bit_width}")
    else:
        raise InputError(f"a column of type {kind} is not numeric")
    values = np.frombuffer(column.buffers()[1], dtype=dtype, count=column.offset + len(column))
    return values[column.offset :].astype(np.float64, copy=False)


def check_block(
    block: Block,
    columns: Sequence[str],
    label: str,
    cell_text: Callable[[str, int], str] | None = None,
) -> None:
    """Refuse NaN, infinity and overflow, naming the first such cell (rows count from 1).

    ``cell_text(column, row)`` gives a cell's text by its 0-based row in the whole input,
    when the values came from text: an infinite value that was not written as one is then
    named as the number that overflowed float64.
    """
    finite = np.isfinite(block.values)
    if finite.all():
        return
    row, col = (int(i) for i in np.argwhere(~finite)[0])
    value = block.values[row, col]
    number = block.offset + row + 1
    if np.isnan(value):
        what = "NaN"
    else:
        what = "an infinite value"
        if cell_text is not None:
            text = cell_text(columns[col], number - 1)
            if text.strip().lower() not in _INF_TEXTS:
                what = f"{quote(text)}, which overflows float64"
    raise InputError(f"{label} column {columns[col]!r} row {number} is {what}; remove or impute it")


def check_finite(
    values: np.ndarray, columns: Sequence[str], label: str, first_row: int = 0
) -> None:
    """The same refusal for rows that did not come from a file (arrays, JSON requests)."""
    check_block(Block(first_row, values), columns, label)


def fields(count: int) -> str:
    return "1 field" if count == 1 else f"{count} fields"


def short(error: BaseException) -> str:
    """An exception's first line, at most 200 characters: enough to say what went wrong."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text[:200]


def quote(text: str) -> str:
    return repr(text if len(text) <= SHOWN_TEXT else text[:SHOWN_TEXT] + "…")
