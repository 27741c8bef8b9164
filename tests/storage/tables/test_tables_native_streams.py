"""pyarrow's CSV reader only ever gets pyarrow's own streams over Arrow-owned memory.

Its streaming reader reads ahead on its own threads. Given a Python file object or a buffer
wrapping Python ``bytes``, such a thread must take the GIL (to read, or to release the
buffer); when it does so while the interpreter exits it is stopped with ``pthread_exit`` and
the process aborts: ``linreg-ops predict`` died with "terminate called without an active
exception" (exit -6) in about 1 run in 30.
"""

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from helpers import write_csv
from linreg_ops.storage import tables


@pytest.fixture
def sources(monkeypatch):
    """Every source handed to pyarrow's CSV reader, and every BufferReader's argument."""
    seen: dict[str, list] = {"csv": [], "buffer": []}
    open_csv, buffer_reader = pacsv.open_csv, pa.BufferReader

    def recording_open_csv(source, *args, **kwargs):
        seen["csv"].append(source)
        return open_csv(source, *args, **kwargs)

    def recording_buffer_reader(data, *args, **kwargs):
        seen["buffer"].append(data)
        return buffer_reader(data, *args, **kwargs)

    monkeypatch.setattr(pacsv, "open_csv", recording_open_csv)
    monkeypatch.setattr(pa, "BufferReader", recording_buffer_reader)
    return seen


def check(seen: dict[str, list]) -> None:
    assert seen["csv"], "the reader was not used"
    for source in seen["csv"]:
        assert isinstance(source, pa.NativeFile), type(source)
    for data in seen["buffer"]:
        assert isinstance(data, pa.Buffer), f"a BufferReader over Python memory: {type(data)}"


def test_files_are_read_through_native_streams(sources, tmp_path):
    path = write_csv(tmp_path / "t.csv", ["a", "b"], [[1, 2], [3, 4]])
    assert tables.read_table(path, ["a", "b"]).values.tolist() == [[1, 2], [3, 4]]
    check(sources)


def test_bytes_in_memory_are_copied_into_arrow_memory(sources):
    data = b"a,b\n1,2\n3,4\n"
    assert tables.parse_csv(data, ["b"], label="body").values.tolist() == [[2], [4]]
    assert tables.count_csv_rows(data) == 2
    check(sources)


def test_partitions_are_read_through_native_streams(sources, tmp_path):
    path = write_csv(tmp_path / "t.csv", ["a", "b"], [[i, 2 * i] for i in range(1000)])
    header = tables.read_header(path)
    parts = tables.partitions(path, 2000)
    assert len(parts) > 1
    values = [b.values for p in parts for b in tables.partition_blocks(p, ["b"], header, 0, 100)]
    assert sum(len(v) for v in values) == 1000
    quoted = tmp_path / "q.csv"
    quoted.write_text('a,b\n"1",2\n3,"4"\n')
    (whole,) = tables.partitions(quoted)
    assert [b.values.tolist() for b in tables.partition_blocks(whole, ["a"], ["a", "b"], 0, 9)]
    check(sources)
