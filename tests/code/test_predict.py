"""Batch prediction from the JSON artifacts: file formats, column order, bad rows, evaluation."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from helpers import write_csv
from linreg_ops import artifacts, predict
from linreg_ops.errors import InputError


@pytest.fixture(scope="module")
def rows(trained_dir):
    test = artifacts.load_test_split(trained_dir)
    return test.columns, test.values


def test_csv_in_csv_out_with_shuffled_and_extra_columns(trained_dir, rows, tmp_path):
    columns, values = rows
    order = [7, 2, 0, 8, 1, 3, 4, 6, 5]  # includes the target column, which is ignored
    path = write_csv(tmp_path / "in.csv", [columns[i] for i in order], values[:25, order].tolist())
    done = predict.predict_file(trained_dir, path, tmp_path / "out.csv", chunk_rows=7)
    assert done.rows == 25
    expected = artifacts.load_model(trained_dir).predict(values[:25, :-1])
    written = np.loadtxt(tmp_path / "out.csv", delimiter=",", skiprows=1)
    np.testing.assert_array_equal(written, expected)


def test_parquet_in_parquet_out_quantized(trained_dir, rows, tmp_path):
    columns, values = rows
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({name: values[:40, i] for i, name in enumerate(columns[:-1])}), path)
    done = predict.predict_file(trained_dir, path, tmp_path / "out.parquet", "quantized", 16)
    assert done.rows == 40
    expected = artifacts.load_quantized_model(trained_dir).predict(values[:40, :-1])
    assert (
        pq.read_table(tmp_path / "out.parquet").column("prediction").to_numpy().tolist()
        == expected.tolist()
    )


def test_integer_only_file_output_flags_clipped_rows(trained_dir, rows, tmp_path):
    columns, values = rows
    data = values[:5, :-1].copy()
    data[3, columns.index("Population")] = 1e7  # far beyond the training range
    path = write_csv(tmp_path / "in.csv", list(columns[:-1]), data.tolist())
    done = predict.predict_file(trained_dir, path, tmp_path / "out.csv", "integer", chunk_rows=2)
    assert (done.rows, done.clipped_rows, done.first_clipped) == (5, 1, [4])
    written = np.loadtxt(tmp_path / "out.csv", delimiter=",", skiprows=1)
    np.testing.assert_array_equal(written[:, 1], [0, 0, 0, 1, 0])
    expected, _ = predict.predict_rows(artifacts.load_integer_model(trained_dir), data)
    np.testing.assert_array_equal(written[:, 0], expected)


def test_missing_feature_column_is_named(trained_dir, tmp_path):
    path = write_csv(tmp_path / "in.csv", ["MedInc", "HouseAge"], [[1, 2]])
    with pytest.raises(InputError, match="column 'AveRooms' not found"):
        predict.predict_file(trained_dir, path, tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()


def test_nan_in_input_is_named(trained_dir, rows, tmp_path):
    columns, values = rows
    data = values[:3, :-1].tolist()
    data[1][4] = "nan"
    path = write_csv(tmp_path / "in.csv", list(columns[:-1]), data)
    with pytest.raises(InputError, match="column 'Population' row 2 is NaN"):
        predict.predict_file(trained_dir, path, tmp_path / "out.csv")


def test_unknown_model_kind(trained_dir):
    with pytest.raises(InputError, match="unknown model kind 'float16'"):
        predict.load_predictor(trained_dir, "float16")


def test_evaluate_matches_metrics_json(models_copy):
    summary = predict.evaluate(models_copy)
    stored = artifacts.load_metrics(models_copy)
    assert summary["float"] == stored["float"]
    assert summary["quantized"] == stored["quantized"]
    assert summary["n_rows"] == stored["n_test"] == 4128


def test_evaluate_on_a_labelled_file(trained_dir, rows, tmp_path):
    columns, values = rows
    path = write_csv(tmp_path / "labelled.csv", list(columns), values[:100].tolist())
    summary = predict.evaluate(trained_dir, path, "MedHouseVal")
    assert summary["n_rows"] == 100
    assert summary["quantized"]["dtype"] == "int8"
    with pytest.raises(InputError, match="--data needs --target"):
        predict.evaluate(trained_dir, path, None)
