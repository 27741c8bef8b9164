"""CSV on pyarrow's reader: the fast path straight to float64, and the slow path that names
the first bad cell when pyarrow refuses.

CSV follows RFC 4180 as pyarrow parses it: quoted fields may hold commas, doubled quotes and
newlines; a UTF-8 BOM, CRLF or LF, and quoted numbers are fine; columns are selected by name
in any order and the others may hold anything; a row with more or fewer fields than the
header is an error, never a shift. Only when pyarrow refuses a block (or a value is NaN,
infinite or overflows) does a second, slower pass find the first bad cell, so that every
error names the file, the column and the 1-based data row.
"""

import csv
import io
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from linreg_ops.errors import InputError
from linreg_ops.storage.tables._common import (
    SHOWN_TEXT,
    Block,
    Opener,
    Rows,
    Table,
    arrow_buffer,
    as_rows,
    check_block,
    fields,
    quote,
    rebuffer_rows,
    short,
)
from linreg_ops.storage.tables.discovery import check_columns, csv_header

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "CSV_BLOCK_BYTES",
    "MAX_CSV_BLOCK_BYTES",
    "CsvSource",
    "batches",
    "count_csv_rows",
    "csv_blocks",
    "csv_reader",
    "parse_csv",
    "read_columns",
]

CSV_BLOCK_BYTES = 4 << 20  # pyarrow's parse unit; memory is a few of these whatever the file
MAX_CSV_BLOCK_BYTES = 1 << 30  # a record (one huge field) longer than this is refused

_CONVERSION = re.compile(r"In CSV column #(\d+): (?:Row #\d+: )?CSV conversion error to double")
_FIELD_COUNT = re.compile(r"Expected (\d+) columns, got (\d+)")


@dataclass(frozen=True)
class CsvSource:
    """CSV bytes to read (opened afresh by ``opener`` for each pass, as a pyarrow stream over
    Arrow's own memory: see ``open_native``) and how to name them.

    ``names`` given: the source has no header row (a byte range of a file, whose header is
    ``names``); ``first_row`` numbers its first data row in the whole file, for messages.
    """

    opener: Opener
    label: str
    names: tuple[str, ...] | None = None
    first_row: int = 0

    def cell_text(self, column: str, row: int) -> str:
        """The raw text of one cell (``row``: 0-based data row in the whole file)."""
        seen, row = 0, row - self.first_row
        for batch in batches(self, [column], text=True):
            if row < seen + batch.num_rows:
                return bytes(batch.column(0)[row - seen].as_py()).decode("utf-8", "replace")
            seen += batch.num_rows
        return ""


def parse_csv(data: bytes, columns: Sequence[str], *, label: str) -> Table:
    """CSV held in memory (an HTTP body, the stored test split), by the same reader."""
    handle = io.BytesIO(data)
    header = csv_header(label, handle)
    check_columns(label, header, columns)
    source = CsvSource(lambda: arrow_buffer(data), label)
    blocks = list(csv_blocks(source, list(columns), 1 << 62, ""))
    if not blocks:
        raise InputError(f"{label} has a header but no data rows")
    return Table(
        label,
        tuple(columns),
        blocks[0].values if len(blocks) == 1 else np.vstack([b.values for b in blocks]),
    )


def count_csv_rows(data: bytes) -> int:
    """Data rows of CSV held in memory, as the reader counts them, without converting any
    value (cheap: it lets a caller refuse too many rows before validating one)."""
    import pyarrow as pa

    try:
        header = csv_header("CSV", io.BytesIO(data))
        source = CsvSource(lambda: arrow_buffer(data), "CSV")
        return sum(batch.num_rows for batch in batches(source, [header[0]], text=True))
    except (InputError, pa.ArrowException):
        return 0  # unreadable: the full parse names the problem


def csv_blocks(
    source: CsvSource,
    columns: list[str],
    block_rows: int,
    hint: str,
    keep: Sequence[str] = (),
) -> Iterator[Block]:
    """The fast path: pyarrow parses straight to float64, in blocks of ``block_rows`` rows.
    ``hint`` is added to a non-numeric error. ``keep``: columns carried along as text
    (``Block.kept``), read in the same pass."""
    import pyarrow as pa

    try:
        pieces = (
            Rows(as_rows(batch.select(columns)), tuple(batch.column(k) for k in keep), at)
            for batch, at in _batches_at(source, columns, text=False, keep=keep)
        )
        for block in rebuffer_rows(pieces, block_rows, source.first_row):
            check_block(block, columns, source.label, source.cell_text)
            yield block
    except pa.ArrowInvalid as exc:
        raise _locate_csv_error(source, columns, exc, hint) from None
    except pa.ArrowException as exc:
        raise InputError(f"cannot read {source.label} as CSV: {short(exc)}") from None


def read_columns(columns: Sequence[str], keep: Sequence[str]) -> list[str]:
    """The columns a pass reads: the features, then the kept columns that are not one."""
    return list(dict.fromkeys([*columns, *keep]))


def batches(source: CsvSource, columns: list[str], *, text: bool) -> Iterator["pa.RecordBatch"]:
    """The source's record batches (see ``_batches_at``)."""
    for batch, _ in _batches_at(source, columns, text=text):
        yield batch


def _batches_at(
    source: CsvSource, columns: list[str], *, text: bool, keep: Sequence[str] = ()
) -> Iterator[tuple["pa.RecordBatch", int]]:
    """The source's record batches (the columns, then the ``keep`` columns that are not one),
    each with the byte position the stream has reached. A
    record longer than pyarrow's parse block (one field of megabytes) makes it refuse the
    block: the read restarts with blocks four times larger, skipping the rows already
    given, up to MAX_CSV_BLOCK_BYTES."""
    import pyarrow as pa

    block_bytes, given = CSV_BLOCK_BYTES, 0
    while True:
        try:
            with source.opener() as handle:
                skip = given
                for batch in csv_reader(
                    handle, columns, source.names, text=text, block=block_bytes, keep=keep
                ):
                    if skip >= batch.num_rows:
                        skip -= batch.num_rows
                        continue
                    batch, skip = batch.slice(skip), 0
                    given += batch.num_rows
                    yield batch, handle.tell()
            return
        except pa.ArrowInvalid as exc:
            # a record longer than the block: "straddling object", or, when the first
            # block holds no whole line (a header of megabytes), "Empty CSV file or block"
            retry = "straddl" in str(exc) or "Empty CSV" in str(exc)
            if not retry or block_bytes >= MAX_CSV_BLOCK_BYTES:
                raise
            block_bytes *= 4


def csv_reader(
    handle: Any,
    columns: list[str],
    names: Sequence[str] | None,
    *,
    text: bool,
    block: int = CSV_BLOCK_BYTES,
    keep: Sequence[str] = (),
) -> Any:
    """pyarrow's streaming reader of the selected columns: as float64, or as raw bytes
    (``text``) for counting rows and locating errors. A ``keep`` column that is not a
    feature is read as text (UTF-8), exactly as written: an id ``007`` stays ``007``, and
    a type guessed from the first block cannot fail on a later one."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    kind = pa.binary() if text else pa.float64()
    types = {name: pa.string() for name in keep} | dict.fromkeys(columns, kind)
    return pacsv.open_csv(
        handle,
        read_options=pacsv.ReadOptions(
            block_size=block,
            use_threads=False,
            column_names=None if names is None else list(names),
        ),
        # RFC 4180: a quoted field may hold newlines, so a block never ends inside one.
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            include_columns=read_columns(columns, keep),
            column_types=types,
            null_values=[],
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )


# --------------------------------------------------------------------------- error location


def _locate_csv_error(
    source: CsvSource, columns: list[str], error: Exception, hint: str
) -> InputError:
    """The slow path: which cell (or row) made pyarrow refuse the source."""
    import pyarrow as pa

    label, message = source.label, str(error)
    if _CONVERSION.search(message):
        try:
            found = _first_bad_number(source, columns)
        except pa.ArrowInvalid as again:  # a field-count error further on: report that
            message = str(again)
        else:
            if found is not None:
                column, row, text = found
                shown = "an empty value" if not text.strip() else f"non-numeric value {quote(text)}"
                suffix = f"; {hint}" if hint else ""
                return InputError(
                    f"{label} column {column!r} row {source.first_row + row + 1}: {shown}{suffix}"
                )
    if _FIELD_COUNT.search(message):
        return _field_count_error(source, message)
    if "Empty CSV file" in message:  # a header row without a line end, and nothing else
        return InputError(f"{label} has a header but no data rows")
    if "UTF8" in message or "UTF-8" in message:
        return InputError(f"cannot read {label}: not UTF-8 text ({short(error)})")
    return InputError(f"cannot read {label} as CSV: {short(error)}")


def _first_bad_number(source: CsvSource, columns: list[str]) -> tuple[str, int, str] | None:
    """(column, 0-based row, text) of the first cell that does not parse as a number, by
    the same Arrow parser as the fast path (whitespace trimmed as the CSV reader trims it)."""
    seen = 0
    for batch in batches(source, columns, text=True):
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


def _field_count_error(source: CsvSource, message: str) -> InputError:
    """Walk the records with the standard library's csv module to number the bad row."""
    label, names = source.label, source.names
    limit = csv.field_size_limit(MAX_CSV_BLOCK_BYTES)  # data fields may be of any size
    with source.opener() as handle:
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
                        f"{label} row {source.first_row + row}{line} has {fields(len(record))}, "
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
