"""Which files an input names, and which columns they hold.

A file, a folder of .csv/.parquet files or a glob pattern becomes a sorted list of readable
table files; a header is read without reading a row, and the selected columns are checked
against it, so a missing column is named (with its file) before any work starts.
"""

import collections
import contextlib
import csv
import glob
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from linreg_ops.errors import InputError, did_you_mean
from linreg_ops.storage.tables._common import TABLE_SUFFIXES, is_csv, open_binary, quote, short

__all__ = [
    "check_columns",
    "check_table_path",
    "csv_header",
    "csv_header_of",
    "read_header",
    "table_files",
    "total_bytes",
]


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


def total_bytes(spec: str | Path | Sequence[Path]) -> int:
    """The size of every file an input names (or of the files given): a reading progress
    bar's total, known before a row is read."""
    files = table_files(spec) if isinstance(spec, str | Path) else spec
    total = 0
    for path in files:
        with contextlib.suppress(OSError):
            total += path.stat().st_size
    return total


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


def read_header(path: Path) -> list[str]:
    """Column names of a CSV or Parquet file, without reading its rows."""
    import pyarrow as pa

    if not is_csv(path):
        import pyarrow.parquet as pq

        try:
            return list(pq.read_schema(path).names)
        except (OSError, pa.ArrowException) as exc:
            raise InputError(f"cannot read {path} as Parquet: {short(exc)}") from None
    with open_binary(path) as handle:
        return csv_header(str(path), handle)


def csv_header(label: str, handle: BinaryIO) -> list[str]:
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
            raise InputError(f"cannot read {label}: the header is not UTF-8 text: {quote(shown)}")
    return header


def csv_header_of(data: bytes, label: str) -> list[str]:
    """The header of CSV held in memory."""
    return csv_header(label, io.BytesIO(data))


def check_columns(label: str, header: Sequence[str], columns: Sequence[str]) -> None:
    """Every selected column exists exactly once in the header (counted once: a header of
    10,000 names is checked in linear time)."""
    counts = collections.Counter(header)
    for name in columns:
        count = counts[name]
        if count == 0:
            raise InputError(
                f"column {name!r} not found in {label}{did_you_mean(name, header)} "
                f"(columns are: {', '.join(header)})"
            )
        if count > 1:
            raise InputError(f"{label} has {count} columns named {name!r}")
