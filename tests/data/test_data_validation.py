"""Every way a user's table can be unusable gets one clear error naming the column and row."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from helpers import write_csv
from linreg_ops.data import load_dataset, split
from linreg_ops.errors import InputError

GOOD_ROWS = [[1, 2, 3.5], [2, 1, 4.0], [3, 5, 9.5], [4, 3, 8.0], [5, 8, 14.5], [6, 2, 8.0]]


def csv_file(tmp_path, header=("a", "b", "y"), rows=GOOD_ROWS, name="data.csv"):
    return write_csv(tmp_path / name, list(header), rows)


def test_good_csv_loads(tmp_path):
    dataset = load_dataset(csv_file(tmp_path), "y")
    assert dataset.feature_names == ("a", "b")
    assert dataset.X.shape == (6, 2)
    np.testing.assert_array_equal(dataset.y, [3.5, 4.0, 9.5, 8.0, 14.5, 8.0])
    assert len(dataset.sha256) == 64


def test_features_select_and_order_columns(tmp_path):
    path = csv_file(tmp_path, header=("a", "b", "y"))
    dataset = load_dataset(path, "y", ["b", "a"])
    assert dataset.feature_names == ("b", "a")
    np.testing.assert_array_equal(dataset.X[0], [2, 1])


def test_unused_text_column_is_ignored_with_features(tmp_path):
    rows = [[*row, "north"] for row in GOOD_ROWS]
    dataset = load_dataset(csv_file(tmp_path, ("a", "b", "y", "region"), rows), "y", ["a", "b"])
    assert dataset.X.shape == (6, 2)


def directory_named_csv(folder):
    (folder / "dir.csv").mkdir()
    return folder / "dir.csv"


def empty_file(folder):
    (folder / "empty.csv").write_text("")
    return folder / "empty.csv"


@pytest.mark.parametrize(
    ("make", "target", "features", "message"),
    [
        (lambda p: p / "absent.csv", "y", None, "data file not found"),
        (lambda p: p, "y", None, "unsupported data format"),  # a directory, no suffix
        (directory_named_csv, "y", None, "not a regular file"),
        (lambda p: p / "data.txt", "y", None, "unsupported data format '.txt'"),
        (empty_file, "y", None, "is empty"),
        (lambda p: write_csv(p / "h.csv", ["a", "y"], []), "y", None, "no data rows"),
        (lambda p: csv_file(p), "price", None, "target column 'price' not found"),
        (lambda p: csv_file(p), "y", ["a", "zz"], "column 'zz' not found"),
        (lambda p: csv_file(p), "y", ["a", "y"], "also listed in --features"),
        (lambda p: csv_file(p, ("a", "a", "y")), "y", None, "duplicate column names: a"),
        (lambda p: write_csv(p / "y.csv", ["y"], [[1], [2], [3]]), "y", None, "no feature columns"),
    ],
)
def test_file_and_column_errors(tmp_path, make, target, features, message):
    path = make(tmp_path)
    with pytest.raises(InputError, match=message):
        load_dataset(path, target, features)


def test_non_numeric_value_names_column_and_row(tmp_path):
    rows = [row.copy() for row in GOOD_ROWS]
    rows[2][1] = "NEAR BAY"
    with pytest.raises(
        InputError, match=r"column 'b' row 3 \(line 4\): non-numeric value 'NEAR BAY'"
    ):
        load_dataset(csv_file(tmp_path, rows=rows), "y")


def test_empty_cell_names_column_and_row(tmp_path):
    rows = [row.copy() for row in GOOD_ROWS]
    rows[4][2] = ""
    with pytest.raises(InputError, match=r"column 'y' row 5 \(line 6\): an empty value"):
        load_dataset(csv_file(tmp_path, rows=rows), "y")


def test_ragged_row_is_named(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("a,b,y\n1,2,3\n4,5\n")
    with pytest.raises(InputError, match=r"row 2 \(line 3\) has 2 fields, the header has 3"):
        load_dataset(path, "y")


@pytest.mark.parametrize(
    ("value", "kind"), [("nan", "NaN"), ("inf", "an infinite value"), ("-inf", "an infinite value")]
)
def test_nan_and_inf_are_refused(tmp_path, value, kind):
    rows = [row.copy() for row in GOOD_ROWS]
    rows[1][0] = value
    with pytest.raises(InputError, match=rf"column 'a' row 2 is {kind}"):
        load_dataset(csv_file(tmp_path, rows=rows), "y")


def test_too_few_rows(tmp_path):
    with pytest.raises(InputError, match="3 rows is too few to fit 2 features"):
        load_dataset(csv_file(tmp_path, rows=GOOD_ROWS[:3]), "y")


def test_constant_target(tmp_path):
    rows = [[*row[:2], 5] for row in GOOD_ROWS]
    with pytest.raises(InputError, match="target column 'y' is constant"):
        load_dataset(csv_file(tmp_path, rows=rows), "y")


def test_split_too_small_for_the_features(tmp_path):
    dataset = load_dataset(csv_file(tmp_path), "y")
    with pytest.raises(InputError, match="need at least 4 training rows and 2 test rows"):
        split(dataset, test_size=0.5)


def test_test_size_out_of_range(tmp_path, regression_csv):
    dataset = load_dataset(regression_csv, "y")
    with pytest.raises(InputError, match="--test-size must be between 0 and 1"):
        split(dataset, test_size=1.5)


def test_split_is_deterministic(regression_csv):
    dataset = load_dataset(regression_csv, "y")
    first, second = split(dataset, 0.25, 3), split(dataset, 0.25, 3)
    np.testing.assert_array_equal(first.X_test, second.X_test)
    assert first.X_test.shape == (50, 3)
    assert not np.array_equal(first.X_test, split(dataset, 0.25, 4).X_test)


def test_data_without_target_and_target_without_data():
    with pytest.raises(InputError, match="--data needs --target"):
        load_dataset("x.csv", None)
    with pytest.raises(InputError, match="need --data"):
        load_dataset(None, "y")


def parquet_file(tmp_path, columns: dict) -> object:
    path = tmp_path / "data.parquet"
    pq.write_table(pa.table(columns), path)
    return path


def test_parquet_loads_integers_and_floats(tmp_path):
    path = parquet_file(tmp_path, {"a": [1, 2, 3, 4, 5, 6], "y": [1.0, 3.0, 2.0, 5.0, 4.0, 6.5]})
    dataset = load_dataset(path, "y")
    assert dataset.X.dtype == np.float64
    assert dataset.X.shape == (6, 1)


def test_parquet_text_column_is_refused(tmp_path):
    path = parquet_file(tmp_path, {"a": ["x"] * 6, "y": [1.0, 3.0, 2.0, 5.0, 4.0, 6.5]})
    with pytest.raises(InputError, match="column 'a' has type string, expected a numeric type"):
        load_dataset(path, "y")


def test_parquet_null_names_the_row(tmp_path):
    path = parquet_file(
        tmp_path, {"a": [1.0, 2.0, None, 4.0, 5.0, 6.0], "y": [1.0, 3.0, 2.0, 5.0, 4.0, 6.5]}
    )
    with pytest.raises(InputError, match=r"column 'a' row 3: missing value"):
        load_dataset(path, "y")


def test_corrupt_parquet_is_unreadable(tmp_path):
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"not a parquet file at all")
    with pytest.raises(InputError, match="cannot read"):
        load_dataset(path, "y")


def test_csv_that_is_not_text_is_unreadable(tmp_path):
    path = tmp_path / "binary.csv"
    path.write_bytes(b"a,y\n\xff\xfe\x00\x81,1\n")
    with pytest.raises(InputError, match="cannot read"):
        load_dataset(path, "y")


def test_csv_the_csv_module_refuses_is_a_clear_error(tmp_path):
    path = tmp_path / "huge-field.csv"
    path.write_text("a" * 200_000 + ",y\n1,2\n3,4\n5,6\n7,8\n")
    with pytest.raises(InputError, match="not valid CSV: field larger than field limit"):
        load_dataset(path, "y")
