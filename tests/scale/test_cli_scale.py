"""The scaling options through the real console script."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from linreg_ops import predict

pytestmark = pytest.mark.slow


@pytest.fixture
def parquet_files(tmp_path):
    rng = np.random.default_rng(9)
    folder = tmp_path / "data"
    folder.mkdir()
    for i in range(3):
        X = rng.normal(size=(3000, 3))
        y = X @ np.array([1.0, -2.0, 0.5]) + rng.normal(scale=0.1, size=3000)
        pq.write_table(
            pa.table({"a": X[:, 0], "b": X[:, 1], "c": X[:, 2], "y": y}), folder / f"{i}.parquet"
        )
    return folder


def test_streaming_train_and_out_of_core_predict(run_cli, parquet_files, tmp_path):
    models = tmp_path / "models"
    result = run_cli(
        "train",
        "--data",
        parquet_files,
        "--target",
        "y",
        "--engine",
        "streaming",
        "--chunk-rows",
        "1000",
        "--models-dir",
        models,
        check=True,
    )
    assert "(engine: streaming)" in result.stdout
    loaded = predict.load(models)
    np.testing.assert_allclose(loaded.float.coef, [1.0, -2.0, 0.5], atol=0.01)
    assert loaded.version.manifest.split["method"].startswith("row hash")
    result = run_cli(
        "predict",
        "--input",
        parquet_files / "1.parquet",
        "--output",
        tmp_path / "p.parquet",
        "--chunk-rows",
        "500",
        "--models-dir",
        models,
        check=True,
    )
    assert "Wrote 3000 float predictions" in result.stdout
    assert "rows/s" not in result.stderr, "no progress bar when the output is not a terminal"
    assert pq.read_table(tmp_path / "p.parquet").num_rows == 3000


def test_bad_engine_options_exit_2(run_cli, parquet_files, tmp_path):
    assert run_cli("train", "--engine", "spark").returncode == 2
    assert run_cli("train", "--chunk-rows", "0").returncode == 2
    result = run_cli("train", "--data", tmp_path / "nothing-*.parquet", "--target", "y")
    assert result.returncode == 2
    assert "no .csv or .parquet files" in result.stderr
    result = run_cli(
        "train", "--data", parquet_files, "--target", "z", "--models-dir", tmp_path / "m"
    )
    assert result.returncode == 2
    assert "target column 'z' not found in" in result.stderr
    assert "0.parquet" in result.stderr


def test_constant_column_warns_by_name_and_still_trains(run_cli, tmp_path):
    from helpers import write_csv

    rng = np.random.default_rng(4)
    x = rng.normal(size=300)
    path = write_csv(
        tmp_path / "c.csv", ["a", "b", "y"], [[v, 5.0, 2 * v + 0.1 * rng.normal()] for v in x]
    )
    result = run_cli(
        "train", "--data", path, "--target", "y", "--models-dir", tmp_path / "m", check=True
    )
    assert "RankWarning: feature 'b' is constant" in result.stderr
    assert predict.load(tmp_path / "m").float.coef[1] == 0.0
