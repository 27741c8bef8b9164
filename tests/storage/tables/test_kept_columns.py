"""Kept columns (``predict --keep-columns``): read in the same pass as the features, they stay
row for row with them whatever the block size, the file's format or the parallel CSV path;
and each block says how far into the file it is (a progress bar's bytes)."""

import csv

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from linreg_ops.errors import InputError
from linreg_ops.storage import tables
from linreg_ops.storage.tables import reading

IDS = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r"),
    max_size=8,
) | st.sampled_from(["007", "a, b", 'say "hi"', "two\nlines", "", " 1 "])


def write_table(path, ids, values) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["a", "id", "b"])
        for key, (a, b) in zip(ids, values, strict=True):
            writer.writerow([repr(a), key, repr(b)])


def kept_and_values(path, keep, block_rows):
    blocks = list(tables.iter_blocks(path, ["a", "b"], block_rows, keep=keep))
    kept = [pa.concat_arrays([b.kept[i] for b in blocks]).to_pylist() for i in range(len(keep))]
    values = np.vstack([block.values for block in blocks])
    for block in blocks:
        assert all(len(column) == len(block.values) for column in block.kept)
    return kept, values


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    ids=st.lists(IDS, min_size=1, max_size=60, unique=True),  # a swap must show
    data=st.data(),
)
def test_csv_ids_come_back_row_for_row_as_written(tmp_path, ids, data):
    block_rows = data.draw(st.integers(1, len(ids)))  # blocks that cut pyarrow's batches
    values = data.draw(
        st.lists(
            st.tuples(st.floats(-1e6, 1e6), st.floats(-1e6, 1e6)),
            min_size=len(ids),
            max_size=len(ids),
        )
    )
    path = tmp_path / "t.csv"
    write_table(path, ids, values)
    (kept, also_a), with_keep = kept_and_values(path, ["id", "a"], block_rows)
    without = np.vstack([b.values for b in tables.iter_blocks(path, ["a", "b"], block_rows)])
    assert kept == ids  # text exactly as written: "007" stays "007"
    assert also_a == [a for a, _ in values]  # a kept feature is its float64 values
    assert with_keep.tobytes() == without.tobytes()


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    ids=st.lists(
        st.integers(-(2**63), 2**63 - 1) | st.none(), min_size=1, max_size=50, unique=True
    ),
    block_rows=st.integers(1, 20),
    group_rows=st.integers(1, 20),
)
def test_parquet_ids_keep_their_type_and_nulls(tmp_path, ids, block_rows, group_rows):
    """Row groups and blocks of different sizes: a block spans row groups, or cuts one."""
    path = tmp_path / "t.parquet"
    n = len(ids)
    table = pa.table(
        {
            "a": np.arange(n, dtype=np.float64),
            "id": pa.array(ids, pa.int64()),
            "day": pa.array(list(range(n)), pa.int32()).cast(pa.date32()),
            "b": np.arange(n, dtype=np.int32),
        }
    )
    pq.write_table(table, path, row_group_size=group_rows)
    blocks = list(tables.iter_blocks(path, ["a", "b"], block_rows, keep=["id", "day"]))
    assert pa.concat_arrays([b.kept[0] for b in blocks]).equals(table.column("id").combine_chunks())
    days = pa.concat_arrays([b.kept[1] for b in blocks])
    assert days.type == pa.date32()
    assert days.equals(table.column("day").combine_chunks())
    assert np.vstack([b.values for b in blocks])[:, 0].tolist() == list(range(n))
    positions = [b.position for b in blocks]
    assert positions == sorted(positions)
    assert positions[-1] == path.stat().st_size
    if len(blocks) > 1 and group_rows >= block_rows:
        assert positions[0] < path.stat().st_size  # a share, not the end at once


def test_the_parallel_csv_path_keeps_the_same_ids(tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    ids = [f"id-{i:05d}" for i in range(3000)]
    values = rng.normal(size=(3000, 2)).tolist()
    path = tmp_path / "t.csv"
    write_table(path, ids, values)
    monkeypatch.setattr(reading, "PARSE_BYTES", 4096)  # ranges of 4 KB: many of them
    blocks = list(reading.parallel_csv_blocks(path, ["a", "b"], 257, "", 3, ["id"]))
    assert pa.concat_arrays([b.kept[0] for b in blocks]).to_pylist() == ids
    _, one_thread = kept_and_values(path, ["id"], 257)
    assert np.vstack([b.values for b in blocks]).tobytes() == one_thread.tobytes()
    positions = [b.position for b in blocks]
    assert positions == sorted(positions)
    assert positions[0] < positions[-1] == path.stat().st_size


def test_csv_positions_reach_the_file_size(tmp_path):
    path = tmp_path / "t.csv"
    write_table(path, [str(i) for i in range(50)], [(1.0, 2.0)] * 50)
    positions = [b.position for b in tables.iter_blocks(path, ["a", "b"], 7)]
    assert positions == sorted(positions)
    assert positions[-1] == path.stat().st_size


def test_an_unknown_kept_column_is_named(tmp_path):
    path = tmp_path / "t.csv"
    write_table(path, ["x"], [(1.0, 2.0)])
    with pytest.raises(InputError, match=r"column 'idd' not found .*did you mean 'id'\?"):
        list(tables.iter_blocks(path, ["a", "b"], keep=["idd"]))


def test_a_kept_column_of_bad_utf8_is_named_by_file(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(b"a,id,b\n1,\xff\xfe,2\n")
    with pytest.raises(InputError, match=r"t\.csv.*not UTF-8"):
        list(tables.iter_blocks(path, ["a", "b"], keep=["id"]))
