"""Every table the project reads or writes, on pyarrow's CSV and Parquet readers.

One reader for every path — the training engines (Dask partitions included), ``predict
--input``, ``evaluate --data``, the stored test split and the service's ``text/csv`` body —
so every path sees the same numbers. CSV follows RFC 4180 as pyarrow parses it: quoted
fields may hold commas, doubled quotes and newlines; a UTF-8 BOM, CRLF or LF, and quoted
numbers are fine; columns are selected by name in any order and the others may hold
anything; a row with more or fewer fields than the header is an error, never a shift.

Selected columns must hold finite numbers. The fast path parses straight to float64 in
blocks of constant memory; only when pyarrow refuses a block (or a value is NaN, infinite
or overflows) does a second, slower pass find the first bad cell, so that every error names
the file, the column and the 1-based data row.
"""

import collections
import contextlib
import csv
import glob
import io
import itertools
import os
import re
import sys
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from linreg_ops.config import BLOCK_BYTES, DEFAULT_CHUNK_ROWS
from linreg_ops.errors import InputError

if TYPE_CHECKING:
    import pyarrow as pa

TABLE_SUFFIXES = (".csv", ".parquet", ".pq")
CSV_BLOCK_BYTES = 4 << 20  # pyarrow's parse unit; memory is a few of these whatever the file
MAX_CSV_BLOCK_BYTES = 1 << 30  # a record (one huge field) longer than this is refused
PARSE_BYTES = 16 << 20  # a large CSV file is parsed in ranges of this size, in parallel
PARSE_THREADS = 4
SHOWN_TEXT = 40  # characters of a bad cell quoted in a message

_CONVERSION = re.compile(r"In CSV column #(\d+): (?:Row #\d+: )?CSV conversion error to double")
_FIELD_COUNT = re.compile(r"Expected (\d+) columns, got (\d+)")
_NAN_TEXTS = {"nan", "-nan", "+nan"}
_INF_TEXTS = {"inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"}


@dataclass(frozen=True)
class Block:
    """Rows of the selected columns; ``offset`` is the 0-based index of its first data row."""

    offset: int
    values: np.ndarray  # float64, (rows, columns), every value finite


@dataclass(frozen=True)
class Table:
    """Named float64 columns read whole (small inputs: a request body, a test split)."""

    source: str
    columns: tuple[str, ...]
    values: np.ndarray

    def column(self, name: str) -> np.ndarray:
        return self.values[:, self.columns.index(name)]


# --------------------------------------------------------------------------- files


def table_files(spec: str | Path) -> list[Path]:
    """A file, a folder of .csv/.parquet files, or a glob pattern → the files, sorted.

    A path that exists is taken literally (``runs[1].csv`` is a file name, not a pattern).
    Hidden files are skipped, in a folder as by a glob: ``._part.csv`` (macOS metadata) or
    a writer's ``.part.csv.tmp`` is not data.
    """
    text = str(spec)
    if any(char in text for char in "*?[") and not os.path.lexists(text):
        files = sorted(Path(p) for p in glob.glob(_literal_prefix(text)) if Path(p).is_file())
    elif Path(spec).is_dir():
        files = sorted(
            p
            for p in Path(spec).iterdir()
            if p.suffix.lower() in TABLE_SUFFIXES and not p.name.startswith(".") and p.is_file()
        )
    else:
        return [check_table_path(Path(spec))]
    if not files:
        raise InputError(f"no .csv or .parquet files in {spec}")
    return [check_table_path(path) for path in files]


def _literal_prefix(pattern: str) -> str:
    """The pattern with its longest existing folder prefix escaped: in ``g[1]/*.csv`` with a
    folder ``g[1]``, the brackets are that folder's name, not a character class."""
    parts = Path(pattern).parts
    known = 0
    while known < len(parts) - 1 and os.path.isdir(os.path.join(*parts[: known + 1])):
        known += 1
    if known == 0:
        return pattern
    return os.path.join(glob.escape(os.path.join(*parts[:known])), *parts[known:])


def check_table_path(path: Path) -> Path:
    """``path`` if it is a readable regular file of a known table format."""
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise InputError(
            f"unsupported data format {suffix or '(no extension)'!r} for {path}: "
            "expected .csv or .parquet, or a folder or glob of them"
        )
    if not path.exists():
        raise InputError(f"data file not found: {path}")
    if not path.is_file():
        raise InputError(f"cannot read {path}: not a regular file")
    if not os.access(path, os.R_OK):
        raise InputError(f"cannot read {path}: permission denied")
    return path


def is_csv(path: Path) -> bool:
    return path.suffix.lower() == ".csv"


def read_header(path: Path) -> list[str]:
    """Column names of a CSV or Parquet file, without reading its rows."""
    import pyarrow as pa

    if not is_csv(path):
        import pyarrow.parquet as pq

        try:
            return list(pq.read_schema(path).names)
        except (OSError, pa.ArrowException) as exc:
            raise InputError(f"cannot read {path} as Parquet: {_short(exc)}") from None
    with _open_binary(path) as handle:
        return _csv_header(str(path), handle)


def _csv_header(label: str, handle: BinaryIO) -> list[str]:
    """The first record, by the standard library's RFC 4180 reader: a quoted header may hold
    commas or newlines, and a malformed data row further on must not hide the header.

    Blank lines before it are skipped (as pyarrow skips them). Only the header must be
    UTF-8: bytes of another encoding in the rows read ahead belong to columns the caller
    may not select, and the row reader judges those.
    """
    text = io.TextIOWrapper(handle, encoding="utf-8-sig", errors="surrogateescape", newline="")
    try:
        header = next((record for record in csv.reader(text) if record), None)
    except csv.Error as exc:
        raise InputError(f"cannot read {label} as CSV: {exc}") from None
    finally:
        text.detach()
    if not header:
        raise InputError(f"{label} is empty: expected a header row and data rows")
    for name in header:
        if any("\udc80" <= char <= "\udcff" for char in name):
            shown = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
            raise InputError(f"cannot read {label}: the header is not UTF-8 text: {_quote(shown)}")
    return header


def check_columns(label: str, header: Sequence[str], columns: Sequence[str]) -> None:
    """Every selected column exists exactly once in the header (counted once: a header of
    10,000 names is checked in linear time)."""
    counts = collections.Counter(header)
    for name in columns:
        count = counts[name]
        if count == 0:
            raise InputError(
                f"column {name!r} not found in {label}; columns are: {', '.join(header)}"
            )
        if count > 1:
            raise InputError(f"{label} has {count} columns named {name!r}")


# --------------------------------------------------------------------------- reading


def iter_blocks(
    path: Path,
    columns: Sequence[str],
    block_rows: int = DEFAULT_CHUNK_ROWS,
    *,
    hint: str = "",
) -> Iterator[Block]:
    """Blocks of exactly ``rows_per_block(block_rows, len(columns))`` rows (the last may be
    shorter) of the selected columns, in file order, in constant memory. ``hint`` is added to
    a non-numeric error (e.g. "pass --features" when the columns were not chosen by the
    user)."""
    path = check_table_path(Path(path))
    header = read_header(path)
    check_columns(str(path), header, columns)
    block_rows = rows_per_block(block_rows, len(columns))
    if is_csv(path):
        yield from _csv_file_blocks(path, list(columns), block_rows, hint)
    else:
        yield from _parquet_blocks(path, list(columns), block_rows, None, 0, hint)


def rows_per_block(block_rows: int, columns: int) -> int:
    """``block_rows``, or fewer for a wide table: a block holds at most BLOCK_BYTES (10,001
    columns of 131,072 rows would be 10 GB; the first rows of a file must not cost that)."""
    return max(1, min(block_rows, BLOCK_BYTES // (8 * max(columns, 1))))


def read_table(path: Path, columns: Sequence[str], *, hint: str = "") -> Table:
    """A whole file's selected columns in memory (for data that fits, e.g. ``evaluate``)."""
    blocks = [block.values for block in iter_blocks(path, columns, hint=hint)]
    values = np.vstack(blocks) if blocks else np.empty((0, len(columns)))
    return Table(str(path), tuple(columns), values)


def parse_csv(data: bytes, columns: Sequence[str], *, label: str) -> Table:
    """CSV held in memory (an HTTP body, the stored test split), by the same reader."""
    handle = io.BytesIO(data)
    header = _csv_header(label, handle)
    check_columns(label, header, columns)
    blocks = list(_csv_blocks(lambda: _buffer(data), label, list(columns), 1 << 62, "", None, 0))
    if not blocks:
        raise InputError(f"{label} has a header but no data rows")
    return Table(
        label,
        tuple(columns),
        blocks[0].values if len(blocks) == 1 else np.vstack([b.values for b in blocks]),
    )


def csv_header_of(data: bytes, label: str) -> list[str]:
    """The header of CSV held in memory."""
    return _csv_header(label, io.BytesIO(data))


def count_csv_rows(data: bytes) -> int:
    """Data rows of CSV held in memory, as the reader counts them, without converting any
    value (cheap: it lets a caller refuse too many rows before validating one)."""
    import pyarrow as pa

    try:
        header = _csv_header("CSV", io.BytesIO(data))
        batches = _batches(lambda: _buffer(data), [header[0]], None, text=True)
        return sum(batch.num_rows for batch in batches)
    except (InputError, pa.ArrowException):
        return 0  # unreadable: the full parse names the problem


def _open_binary(path: Path) -> BinaryIO:
    try:
        return open(path, "rb")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None


Opener = Callable[[], Any]  # a fresh pyarrow NativeFile over the same bytes at each call


def _buffer(data: bytes) -> Any:
    """Bytes in memory as a pyarrow stream over a copy in Arrow's own memory (see
    ``_open_native``): a buffer wrapping the Python ``bytes`` would be released by whichever
    reader thread drops it last, which must take the GIL — and aborts the process if the
    interpreter is exiting."""
    import pyarrow as pa

    copy = pa.allocate_buffer(len(data))
    np.frombuffer(copy, dtype=np.uint8)[:] = np.frombuffer(data, dtype=np.uint8)
    return pa.BufferReader(copy)


def _open_native(path: Path) -> Any:
    """A file as pyarrow's own stream, for its CSV reader. Never a Python file object: the
    streaming reader reads ahead on its own threads, and one still reading a Python object
    when the interpreter exits must take the GIL, is stopped with pthread_exit, and aborts
    the process ("terminate called without an active exception") — seen in 1 run in 30."""
    import pyarrow as pa

    try:
        return pa.OSFile(str(path))
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None


def _csv_file_blocks(path: Path, columns: list[str], block_rows: int, hint: str) -> Iterator[Block]:
    threads = min(os.cpu_count() or 1, PARSE_THREADS)
    if threads > 1 and path.stat().st_size >= 4 * PARSE_BYTES and splittable(path):
        blocks = _parallel_csv_blocks(path, columns, block_rows, hint, threads)
    else:
        opener = lambda: _open_native(path)  # noqa: E731
        blocks = _csv_blocks(opener, str(path), columns, block_rows, hint, None, 0)
    seen = False
    for block in blocks:
        seen = True
        yield block
    if not seen:
        raise no_rows_error(path)


def _parallel_csv_blocks(
    path: Path, columns: list[str], block_rows: int, hint: str, threads: int
) -> Iterator[Block]:
    """The same blocks as the one-thread reader, from byte ranges parsed by ``threads``
    threads (pyarrow releases the GIL) and consumed in file order, a few ranges in flight.

    Only a ``splittable`` file comes here: its ranges are cut at newlines. On any parse error
    the file is read again in order by the one-thread reader, which names the first bad cell
    exactly as it always does.
    """
    import pyarrow as pa

    header = read_header(path)
    ranges = _csv_ranges(path, PARSE_BYTES)

    def parse(part: Partition) -> list[np.ndarray]:
        # pyarrow reads the range and parses it without the GIL (a Python file object would
        # take it for each read); the rows are converted in this thread too
        reader = _csv_reader(pa.BufferReader(_arrow_range(part)), columns, header, text=False)
        return [_as_rows(batch) for batch in reader]

    def batches() -> Iterator[np.ndarray]:
        with ThreadPoolExecutor(threads) as pool:
            first = itertools.islice(ranges, threads + 1)
            pending = deque(pool.submit(parse, part) for part in first)
            while pending:
                parsed = pending.popleft().result()
                pending.extend(pool.submit(parse, part) for part in itertools.islice(ranges, 1))
                yield from parsed

    opener = lambda: _open_native(path)  # noqa: E731
    given = 0  # rows yielded
    try:
        for block in _rebuffer(batches(), block_rows, 0):
            _check_block(block, columns, str(path), hint, opener, None, 0)
            yield block
            given += len(block.values)
    except pa.ArrowInvalid:
        # Read in order from the start: the same blocks, so the error (if it is one) is
        # raised for the same row as ever, and a range pyarrow could not parse alone (a
        # field larger than a parse block) is read; rows already given are skipped.
        for block in _csv_blocks(opener, str(path), columns, block_rows, hint, None, 0):
            if block.offset >= given:
                yield block


def _csv_blocks(
    opener: Opener,
    label: str,
    columns: list[str],
    block_rows: int,
    hint: str,
    names: list[str] | None,
    first_row: int,
) -> Iterator[Block]:
    """The fast path: pyarrow parses straight to float64. ``names`` given: the source has no
    header row (a byte range of a file); ``first_row`` numbers its rows in the whole file."""
    import pyarrow as pa

    try:
        batches = _batches(opener, columns, names, text=False)
        for block in _rebuffer(map(_as_rows, batches), block_rows, first_row):
            _check_block(block, columns, label, hint, opener, names, first_row)
            yield block
    except pa.ArrowInvalid as exc:
        raise _locate_csv_error(opener, label, columns, names, first_row, exc, hint) from None
    except pa.ArrowException as exc:
        raise InputError(f"cannot read {label} as CSV: {_short(exc)}") from None


def _batches(
    opener: Opener, columns: list[str], names: list[str] | None, *, text: bool
) -> Iterator["pa.RecordBatch"]:
    """The source's record batches. A record longer than pyarrow's parse block (one field of
    megabytes) makes it refuse the block: the read restarts with blocks four times larger,
    skipping the rows already given, up to MAX_CSV_BLOCK_BYTES."""
    import pyarrow as pa

    block_bytes, given = CSV_BLOCK_BYTES, 0
    while True:
        try:
            with opener() as handle:
                skip = given
                for batch in _csv_reader(handle, columns, names, text=text, block=block_bytes):
                    if skip >= batch.num_rows:
                        skip -= batch.num_rows
                        continue
                    batch, skip = batch.slice(skip), 0
                    given += batch.num_rows
                    yield batch
            return
        except pa.ArrowInvalid as exc:
            # a record longer than the block: "straddling object", or, when the first
            # block holds no whole line (a header of megabytes), "Empty CSV file or block"
            retry = "straddl" in str(exc) or "Empty CSV" in str(exc)
            if not retry or block_bytes >= MAX_CSV_BLOCK_BYTES:
                raise
            block_bytes *= 4


def _csv_reader(
    handle: BinaryIO,
    columns: list[str],
    names: list[str] | None,
    *,
    text: bool,
    block: int = CSV_BLOCK_BYTES,
) -> Any:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    kind = pa.binary() if text else pa.float64()
    return pacsv.open_csv(
        handle,
        read_options=pacsv.ReadOptions(block_size=block, use_threads=False, column_names=names),
        # RFC 4180: a quoted field may hold newlines, so a block never ends inside one.
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            include_columns=columns,
            column_types=dict.fromkeys(columns, kind),
            null_values=[],
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )


def _rebuffer(arrays: Iterable[np.ndarray], block_rows: int, first_row: int) -> Iterator[Block]:
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


def _as_rows(batch: "pa.RecordBatch") -> np.ndarray:
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


def _check_block(
    block: Block,
    columns: list[str],
    label: str,
    hint: str,
    opener: Opener | None,
    names: list[str] | None,
    first_row: int,
) -> None:
    """Refuse NaN, infinity and overflow, naming the first such cell (rows count from 1)."""
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
        if opener is not None:
            text = _csv_cell_text(opener, columns[col], names, number - 1 - first_row)
            if text.strip().lower() not in _INF_TEXTS:
                what = f"{_quote(text)}, which overflows float64"
    raise InputError(f"{label} column {columns[col]!r} row {number} is {what}; remove or impute it")


def check_finite(
    values: np.ndarray, columns: Sequence[str], label: str, first_row: int = 0
) -> None:
    """The same refusal for rows that did not come from a file (arrays, JSON requests)."""
    _check_block(Block(first_row, values), list(columns), label, "", None, None, first_row)


def _csv_cell_text(
    opener: Opener, column: str, names: list[str] | None, row: int
) -> str:
    """The raw text of one cell (0-based data row within the source)."""
    seen = 0
    for batch in _batches(opener, [column], names, text=True):
        if row < seen + batch.num_rows:
            return bytes(batch.column(0)[row - seen].as_py()).decode("utf-8", "replace")
        seen += batch.num_rows
    return ""


def _locate_csv_error(
    opener: Opener,
    label: str,
    columns: list[str],
    names: list[str] | None,
    first_row: int,
    error: Exception,
    hint: str,
) -> InputError:
    """The slow path: which cell (or row) made pyarrow refuse the source."""
    import pyarrow as pa

    message = str(error)
    if _CONVERSION.search(message):
        try:
            found = _first_bad_number(opener, columns, names)
        except pa.ArrowInvalid as again:  # a field-count error further on: report that
            message = str(again)
        else:
            if found is not None:
                column, row, text = found
                shown = (
                    "an empty value" if not text.strip() else f"non-numeric value {_quote(text)}"
                )
                suffix = f"; {hint}" if hint else ""
                return InputError(
                    f"{label} column {column!r} row {first_row + row + 1}: {shown}{suffix}"
                )
    if _FIELD_COUNT.search(message):
        return _field_count_error(opener, label, names, first_row, message)
    if "Empty CSV file" in message:  # a header row without a line end, and nothing else
        return InputError(f"{label} has a header but no data rows")
    if "UTF8" in message or "UTF-8" in message:
        return InputError(f"cannot read {label}: not UTF-8 text ({_short(error)})")
    return InputError(f"cannot read {label} as CSV: {_short(error)}")


def _first_bad_number(
    opener: Opener, columns: list[str], names: list[str] | None
) -> tuple[str, int, str] | None:
    """(column, 0-based row, text) of the first cell that does not parse as a number, by
    the same Arrow parser as the fast path (whitespace trimmed as the CSV reader trims it)."""
    seen = 0
    for batch in _batches(opener, columns, names, text=True):
        bad: list[tuple[int, str, str]] = []
        for j, name in enumerate(columns):
            index = _first_unparsable(batch.column(j))
            if index is not None:
                text = bytes(batch.column(j)[index].as_py()).decode("utf-8", "replace")
                bad.append((index, name, text))
        if bad:
            index, name, text = min(bad, key=lambda item: (item[0], columns.index(item[1])))
            return name, seen + index, text
        seen += batch.num_rows
    return None


def _parses(values: "pa.Array") -> bool:
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        pc.cast(pc.utf8_trim(values.cast(pa.string()), characters=" \t"), pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False
    return True


def _first_unparsable(values: "pa.Array") -> int | None:
    """Bisection with whole-slice casts: O(log n) Arrow calls, no Python loop over cells."""
    if _parses(values):
        return None
    low, high = 0, len(values)  # the first bad index lies in [low, high)
    while high - low > 1:
        middle = (low + high) // 2
        if _parses(values.slice(low, middle - low)):
            low = middle
        else:
            high = middle
    return low


def _field_count_error(
    opener: Opener,
    label: str,
    names: list[str] | None,
    first_row: int,
    message: str,
) -> InputError:
    """Walk the records with the standard library's csv module to number the bad row."""
    limit = csv.field_size_limit(MAX_CSV_BLOCK_BYTES)  # data fields may be of any size
    with opener() as handle:
        text = io.TextIOWrapper(handle, encoding="utf-8-sig", errors="replace", newline="")
        reader = csv.reader(text)
        try:
            header = names if names is not None else next((r for r in reader if r), [])
            row = 0
            for record in reader:
                if not record:  # a blank line: pyarrow skips it too
                    continue
                row += 1
                if len(record) != len(header):
                    line = f" (line {reader.line_num})" if names is None else ""
                    return InputError(
                        f"{label} row {first_row + row}{line} has {_fields(len(record))}, "
                        f"the header has {len(header)}: every row needs one value per column "
                        "(quote a field that holds a comma)"
                    )
        except csv.Error:
            pass
        finally:
            text.detach()
            csv.field_size_limit(limit)
    match = _FIELD_COUNT.search(message)
    assert match is not None
    return InputError(
        f"{label}: a row has {match.group(2)} fields, the header has {match.group(1)}: "
        f"{message[match.end() :].strip(': ')[:SHOWN_TEXT]!r}"
    )


def _parquet_blocks(
    path: Path,
    columns: list[str],
    block_rows: int,
    row_groups: list[int] | None,
    first_row: int,
    hint: str,
) -> Iterator[Block]:
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
            batches = parquet.iter_batches(
                batch_size=min(block_rows, 1 << 20), columns=columns, row_groups=row_groups
            )
            checked = _no_nulls(batches, path, columns, first_row)
            for block in _rebuffer(map(_as_rows, checked), block_rows, first_row):
                _check_block(block, columns, str(path), hint, None, None, first_row)
                yield block
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"cannot read {path} as Parquet: {_short(exc)}") from None


def _no_nulls(
    batches: Iterable["pa.RecordBatch"], path: Path, columns: list[str], first_row: int
) -> Iterator["pa.RecordBatch"]:
    offset = first_row
    for batch in batches:
        for name, column in zip(columns, batch.columns, strict=True):
            if column.null_count:
                nulls = column.is_null().to_numpy(zero_copy_only=False)
                row = offset + int(np.flatnonzero(nulls)[0])
                raise InputError(f"{path} column {name!r} row {row + 1}: missing value (null)")
        offset += batch.num_rows
        yield batch


def _fields(count: int) -> str:
    return "1 field" if count == 1 else f"{count} fields"


def _short(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text[:200]


def _quote(text: str) -> str:
    return repr(text if len(text) <= SHOWN_TEXT else text[:SHOWN_TEXT] + "…")


# --------------------------------------------------------------------------- partitions


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
            raise InputError(f"cannot read {path} as Parquet: {_short(exc)}") from None
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
    return list(_csv_ranges(path, target_bytes))


def splittable(path: Path) -> bool:
    """Whether every newline of a CSV file ends a record and nothing else does: no quote
    character, no carriage return outside CRLF (memchr searches: fast on common files)."""
    with _open_binary(path) as handle:
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


def _csv_ranges(path: Path, target_bytes: int) -> Iterator[Partition]:
    """Byte ranges of a splittable CSV file, each found as the scan reaches it: the first
    starts after the header line (blank lines before it skipped, as every reader skips
    them), each ends after a newline."""
    end = path.stat().st_size
    previous = None
    with _open_binary(path) as handle:
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


def no_rows_error(path: Path) -> InputError:
    what = "a header but no data rows" if is_csv(path) else "no data rows"
    return InputError(f"{path} has {what}")


def partition_rows(part: Partition, header: list[str]) -> int:
    """The number of data rows in a partition, as the reader will count them."""
    if part.rows is not None:
        return part.rows
    import pyarrow as pa

    if part.header:  # a whole file that could not be cut: stream it, never hold it all
        opener: Opener = lambda: _open_native(part.path)  # noqa: E731
        names = None
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
        opener, names = (lambda: _buffer(data)), header
    try:
        return sum(batch.num_rows for batch in _batches(opener, [header[0]], names, text=True))
    except pa.ArrowException:
        return -1  # unreadable: the worker that parses it names the problem


def partition_blocks(
    part: Partition, columns: list[str], header: list[str], first_row: int, block_rows: int
) -> Iterator[Block]:
    """A partition's blocks (of ``rows_per_block`` rows); rows are numbered from
    ``first_row`` in the whole file."""
    block_rows = rows_per_block(block_rows, len(columns))
    if not is_csv(part.path):
        yield from _parquet_blocks(
            part.path, columns, block_rows, list(range(part.start, part.stop)), first_row, ""
        )
        return
    import pyarrow as pa

    if part.header:  # a whole file that could not be cut: stream it, never hold it all
        opener: Opener = lambda: _open_native(part.path)  # noqa: E731
        yield from _csv_blocks(opener, str(part.path), columns, block_rows, "", None, first_row)
        return
    data = _arrow_range(part)
    yield from _csv_blocks(
        lambda: pa.BufferReader(data), str(part.path), columns, block_rows, "", header, first_row
    )


def _arrow_range(part: Partition) -> Any:
    """A CSV range in Arrow's own memory (see ``_open_native``), read without the GIL."""
    import pyarrow as pa

    with pa.OSFile(str(part.path)) as handle:
        handle.seek(part.start)
        return handle.read_buffer(part.stop - part.start)


def _read_range(part: Partition) -> bytes:
    with _open_binary(part.path) as handle:
        handle.seek(part.start)
        return handle.read(part.stop - part.start)


# --------------------------------------------------------------------------- writing


def csv_bytes(columns: Sequence[str], values: np.ndarray) -> bytes:
    """CSV with a header and 17 significant digits, so floats survive the round trip exactly."""
    buffer = io.StringIO()
    # The writer quotes the terminator's characters only: a name holding a lone CR (a line
    # end to every reader) must be quoted too, so such a header is quoted whole.
    if any("\r" in name for name in columns):
        csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_ALL).writerow(columns)
    else:
        csv.writer(buffer, lineterminator="\n").writerow(columns)
    np.savetxt(buffer, np.asarray(values, dtype=np.float64), delimiter=",", fmt="%.17g")
    return buffer.getvalue().encode("utf-8")


STDOUT = Path("-")  # ``--output -``: predictions as CSV on standard output


def is_stdout(path: Path) -> bool:
    """Whether writing ``path`` writes this process's standard output (``-``, or a name for
    it such as ``/dev/stdout``): then nothing else may be printed there."""
    if Path(path) == STDOUT:
        return True
    try:
        return os.path.samestat(os.stat(path), os.fstat(sys.stdout.fileno()))
    except (OSError, ValueError):
        return False


@contextlib.contextmanager
def prediction_writer(path: Path, columns: Sequence[str]) -> Iterator[Callable[..., None]]:
    """Append prediction blocks to ``path`` (CSV, or Parquet for ``.parquet``) in constant
    memory.

    A file is written atomically: blocks go to a temporary file that replaces ``path`` only
    when every block is written. ``-`` (standard output), a FIFO or a character device
    (``/dev/null``) takes the blocks as they come, as a shell's ``>`` would — it is never
    replaced by a file; an error stops the stream where it is. Without a ``.parquet`` or
    ``.csv`` suffix, a stream gets CSV.
    """
    from linreg_ops import store

    path = Path(path)
    suffix = path.suffix.lower()
    if is_stdout(path):  # ``-``, ``/dev/stdout`` or the file standard output goes to
        with os.fdopen(os.dup(sys.stdout.fileno()), "wb") as handle:
            yield from _table_writer(handle, columns, parquet=suffix == ".parquet")
        return
    target, kind = store.output_target(path)
    if kind in store.STREAMS:
        try:
            fd = os.open(target, os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC)
        except OSError as exc:
            raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
        with os.fdopen(fd, "wb") as handle:
            yield from _table_writer(handle, columns, parquet=suffix == ".parquet")
        return
    if kind is not None:
        raise InputError(f"cannot write {path}: it is {kind}, not a file")
    if suffix not in TABLE_SUFFIXES:
        raise InputError(
            f"unsupported output format {suffix or '(no extension)'!r} for {path}: "
            "expected .csv or .parquet (or - for CSV on standard output)"
        )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as handle:
            yield from _table_writer(handle, columns, parquet=suffix == ".parquet")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise


def _table_writer(
    handle: BinaryIO, columns: Sequence[str], *, parquet: bool
) -> Iterator[Callable[..., None]]:
    """The block writer, then (after the last block) the end of the table."""
    if parquet:
        yield from _parquet_writer(handle, columns)
        return
    handle.write((",".join(columns) + "\n").encode("utf-8"))

    def write_csv(*arrays: np.ndarray) -> None:
        block = np.column_stack([np.asarray(a, dtype=np.float64) for a in arrays])
        np.savetxt(handle, block, delimiter=",", fmt="%.17g")

    yield write_csv


def _parquet_writer(handle: BinaryIO, columns: Sequence[str]) -> Iterator[Callable[..., None]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer: pq.ParquetWriter | None = None

    def write_parquet(*arrays: np.ndarray) -> None:
        nonlocal writer
        table = pa.table({name: np.asarray(a) for name, a in zip(columns, arrays, strict=True)})
        if writer is None:
            writer = pq.ParquetWriter(handle, table.schema)
        writer.write_table(table)

    try:
        yield write_parquet
        if writer is None:  # no rows: still a valid, empty file
            pq.write_table(pa.table({name: pa.array([], pa.float64()) for name in columns}), handle)
    finally:
        if writer is not None:
            writer.close()
