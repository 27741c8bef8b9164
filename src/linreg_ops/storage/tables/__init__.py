"""Every table the project reads or writes, on pyarrow's CSV and Parquet readers.

One reader for every path — the training engines (Dask partitions included), ``predict
--input``, ``evaluate --data``, the stored test split and the service's ``text/csv`` body —
so every path sees the same numbers. Selected columns must hold finite numbers; every error
names the file, the column and the 1-based data row.

- ``discovery``: which files an input names, their headers, the selected columns.
- ``csv_reading``: CSV straight to float64, and the slow path that names a bad cell.
- ``parquet``: Parquet row blocks.
- ``reading``: any table file in blocks of constant memory (parallel for large CSV).
- ``partitions``: byte ranges and row groups that parallel readers read alone.
- ``writing``: CSV bytes and prediction files, written atomically or streamed.

The names below are what the rest of linreg-ops uses.
"""

from linreg_ops.storage.tables._common import (
    Block,
    Table,
    check_finite,
    rows_per_block,
)
from linreg_ops.storage.tables.csv_reading import count_csv_rows, parse_csv
from linreg_ops.storage.tables.discovery import (
    check_columns,
    csv_header_of,
    read_header,
    table_files,
    total_bytes,
)
from linreg_ops.storage.tables.partitions import (
    Partition,
    check_rows_per_file,
    partition_blocks,
    partition_rows,
    partitions,
    splittable,
)
from linreg_ops.storage.tables.reading import iter_blocks, read_table
from linreg_ops.storage.tables.writing import STDOUT, csv_bytes, is_stdout, prediction_writer

__all__ = [
    "STDOUT",
    "Block",
    "Partition",
    "Table",
    "check_columns",
    "check_finite",
    "check_rows_per_file",
    "count_csv_rows",
    "csv_bytes",
    "csv_header_of",
    "is_stdout",
    "iter_blocks",
    "parse_csv",
    "partition_blocks",
    "partition_rows",
    "partitions",
    "prediction_writer",
    "read_header",
    "read_table",
    "rows_per_block",
    "splittable",
    "table_files",
    "total_bytes",
]
