"""The one table reader against pandas' ``read_csv``: random tables with wild numbers and
hostile text, written in random dialects, read whole, in blocks, in byte-range partitions
(as the Dask engine reads them) and by ``predict --input``, give exactly pandas' numbers."""

import csv
import io
import string
from unittest import mock

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from linreg_ops.errors import InputError
from linreg_ops.storage import tables
from linreg_ops.storage.tables import csv_reading, reading

NUMBERS = st.floats(allow_nan=False, allow_infinity=False, width=64).filter(
    lambda v: abs(v) < 1e300  # squares of larger values overflow; tables itself accepts them
)
TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=12,
) | st.sampled_from(["a, b", 'say "hi"', "two\nlines", "crlf\r\ninside", "ünï, cødé", "", " "])


@st.composite
def messy_tables(draw):
    n_numeric = draw(st.integers(1, 4))
    n_text = draw(st.integers(0, 3))
    n_rows = draw(st.integers(1, 40))
    names = draw(
        st.lists(
            st.text(string.ascii_letters, min_size=1, max_size=6),
            min_size=n_numeric + n_text,
            max_size=n_numeric + n_text,
            unique=True,
        )
    )
    kinds = draw(st.permutations(["number"] * n_numeric + ["text"] * n_text))
    columns = []
    for name, kind in zip(names, kinds, strict=True):
        strategy = NUMBERS if kind == "number" else TEXT
        columns.append((name, kind, draw(st.lists(strategy, min_size=n_rows, max_size=n_rows))))
    dialect = {
        "bom": draw(st.booleans()),
        "newline": draw(st.sampled_from(["\n", "\r\n"])),
        "quoting": draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC])),
    }
    numeric = [name for name, kind, _ in columns if kind == "number"]
    selected = draw(st.permutations(numeric).flatmap(lambda p: st.just(p[: max(1, len(p))])))
    return columns, dialect, list(selected)


def write(columns, dialect) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=dialect["newline"], quoting=dialect["quoting"])
    writer.writerow([name for name, _, _ in columns])
    for row in zip(*(values for _, _, values in columns), strict=True):
        if dialect["newline"] == "\n":
            # Python's writer quotes only the terminator's characters, so an unquoted lone CR
            # would end the row for every RFC 4180 reader: not a valid file to write.
            row = tuple(v.replace("\r", "") if isinstance(v, str) else v for v in row)
        writer.writerow([repr(v) if isinstance(v, float) else v for v in row])
    data = buffer.getvalue().encode("utf-8")
    return (b"\xef\xbb\xbf" if dialect["bom"] else b"") + data


def pandas_values(data: bytes, selected: list[str]) -> np.ndarray:
    frame = pd.read_csv(
        io.BytesIO(data), dtype=dict.fromkeys(selected, "float64"), keep_default_na=False
    )
    return frame[selected].to_numpy(dtype=np.float64)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(table=messy_tables(), block_rows=st.integers(1, 50), part_bytes=st.integers(1, 400))
def test_every_reading_path_gives_pandas_numbers(tmp_path_factory, table, block_rows, part_bytes):
    columns, dialect, selected = table
    data = write(columns, dialect)
    note(f"file: {data!r}; selected: {selected}")
    path = tmp_path_factory.mktemp("t") / "messy.csv"
    path.write_bytes(data)
    expected = pandas_values(data, selected)

    whole = tables.read_table(path, selected).values
    np.testing.assert_array_equal(whole, expected)

    blocks = list(tables.iter_blocks(path, selected, block_rows))
    assert [b.offset for b in blocks] == list(range(0, len(expected), block_rows))
    np.testing.assert_array_equal(np.vstack([b.values for b in blocks]), expected)

    in_memory = tables.parse_csv(data, selected, label="body").values
    np.testing.assert_array_equal(in_memory, expected)

    if tables.splittable(path):  # a big file's parallel reader (only a file cut safely)
        with mock.patch.object(reading, "PARSE_BYTES", part_bytes):
            parallel = list(reading.parallel_csv_blocks(path, selected, block_rows, "", 2))
        assert [b.offset for b in parallel] == [b.offset for b in blocks]
        np.testing.assert_array_equal(np.vstack([b.values for b in parallel]), expected)
    else:
        assert len(tables.partitions(path, part_bytes)) == 1

    header = tables.read_header(path)
    parts = tables.partitions(path, part_bytes)
    counts = [tables.partition_rows(part, header) for part in parts]
    assert sum(counts) == len(expected)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(int)
    read = [
        block
        for part, offset in zip(parts, offsets, strict=True)
        for block in tables.partition_blocks(part, selected, header, int(offset), block_rows)
    ]
    assert [b.offset for b in read][:1] == [0]
    np.testing.assert_array_equal(np.vstack([b.values for b in read]), expected)


def test_the_parallel_reader_raises_the_first_error_once_and_yields_nothing_twice(tmp_path):
    lines = ["a,b"] + [f"{i},{i}" for i in range(2000)]
    lines[1500] = "1500,oops"
    lines[1900] = "1900,later"
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(lines) + "\n")
    seen = []

    def read() -> None:
        for block in reading.parallel_csv_blocks(path, ["a", "b"], 100, "", threads=2):
            seen.append(block.offset)

    error = r"column 'b' row 1500: non-numeric value 'oops'"
    with (
        mock.patch.object(reading, "PARSE_BYTES", 1000),
        mock.patch.object(csv_reading, "CSV_BLOCK_BYTES", 1000),  # the re-read goes block by block
        pytest.raises(InputError, match=error),
    ):
        read()
    assert seen == sorted(set(seen)), "a block was yielded twice"
    assert seen[-1] < 1500


@settings(max_examples=25, deadline=None)
@given(table=messy_tables())
def test_predict_input_reads_the_same_numbers(tmp_path_factory, table):
    """``predict --input`` on the messy file writes what the model gives for pandas' rows."""
    from linreg_ops.inference.loading import Models
    from linreg_ops.inference.predict import predict_file
    from linreg_ops.model import FeatureStats, LinearModel
    from linreg_ops.storage.store import Version

    columns, dialect, selected = table
    data = write(columns, dialect)
    folder = tmp_path_factory.mktemp("p")
    (folder / "in.csv").write_bytes(data)
    d = len(selected)
    ones = np.ones(d)
    stats = FeatureStats(1, ones, ones, ones, ones, 0.001, ones, ones, np.eye(d))
    model = LinearModel(tuple(selected), "y", np.linspace(0.5, 2.0, d), 0.25, stats)
    version = Version(folder / "models", 1, folder / "models", manifest=None)  # type: ignore[arg-type]
    models = Models(version=version, float=model, quantized=None, integer=None)
    predict_file(models, "float", folder / "in.csv", folder / "out.csv", chunk_rows=7)
    written = np.loadtxt(folder / "out.csv", delimiter=",", skiprows=1, ndmin=1)
    np.testing.assert_array_equal(written, model.predict(pandas_values(data, selected)))
