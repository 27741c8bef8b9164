"""Every engine gives scikit-learn's coefficients, on arrays and on files, on one machine or a
2-worker Dask LocalCluster on loopback; bad files are named."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LinearRegression

from helpers import write_csv
from linreg_ops import artifacts, engines, predict
from linreg_ops.data import split
from linreg_ops.errors import InputError
from linreg_ops.quantize import quantize
from linreg_ops.stats import held_out_rows
from linreg_ops.train import fit_in_memory, train_files

pytestmark = pytest.mark.slow
FEATURES = [f"x{i}" for i in range(5)]


@pytest.fixture(scope="module")
def scheduler():
    """One 2-worker LocalCluster on 127.0.0.1 for the module (start-up costs seconds)."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        yield cluster.scheduler_address


def synthetic(seed: int, n: int, scales=None):
    rng = np.random.default_rng(seed)
    scales = np.ones(5) if scales is None else np.asarray(scales)
    Z = rng.normal(size=(n, 5))
    coef = np.array([1.5, -2.0, 0.5, 3.0, -1.0])
    y = Z @ coef + 4.0 + rng.normal(scale=0.5, size=n)
    return Z * scales, y, coef / scales


def write_parquet_parts(folder, X, y, parts: int):
    folder.mkdir()
    for i, rows in enumerate(np.array_split(np.arange(len(y)), parts)):
        table = pa.table({**{name: X[rows, j] for j, name in enumerate(FEATURES)}, "y": y[rows]})
        pq.write_table(table, folder / f"part-{i:02d}.parquet", row_group_size=700)
    return folder


@pytest.mark.parametrize("engine", ["sklearn", "streaming", "dask"])
def test_california_every_engine_matches_scikit_learn(california, engine, scheduler):
    data = split(california)
    reference = LinearRegression().fit(data.X_train, data.y_train)
    fitted = fit_in_memory(
        data.X_train, data.y_train, california.feature_names, engine, 3001, scheduler
    )
    np.testing.assert_allclose(fitted.coef_, reference.coef_, rtol=1e-7)
    assert fitted.intercept_ == pytest.approx(reference.intercept_, rel=1e-7)


@pytest.fixture(scope="module")
def parquet_folder(tmp_path_factory):
    X, y, _ = synthetic(1, 20_000)
    return write_parquet_parts(tmp_path_factory.mktemp("pq") / "data", X, y, parts=3), X, y


@pytest.mark.parametrize("engine", ["sklearn", "streaming", "dask"])
def test_file_engines_agree_with_scikit_learn_on_the_row_hash_split(
    parquet_folder, engine, scheduler, tmp_path
):
    folder, X, y = parquet_folder
    train_mask = ~held_out_rows(np.arange(len(y)), 42, 0.2)
    reference = LinearRegression().fit(X[train_mask], y[train_mask])
    result = train_files(
        folder, "y", None, tmp_path / "models", engine=engine, chunk_rows=1234, scheduler=scheduler
    )
    np.testing.assert_allclose(result.model.coef, reference.coef_, rtol=1e-9)
    assert result.n_train == int(train_mask.sum())
    assert result.n_test == len(y) - int(train_mask.sum())
    held = ~train_mask
    expected_mse = np.mean((y[held] - reference.predict(X[held])) ** 2)
    assert result.metrics["mse"] == pytest.approx(expected_mse, rel=1e-9)
    stored = artifacts.load_test_split(tmp_path / "models")
    np.testing.assert_array_equal(stored.values[:, -1], y[held][: len(stored.values)])


@pytest.mark.parametrize("engine", ["sklearn", "streaming", "dask"])
def test_every_engine_recovers_coefficients_across_1e6_scales(engine, scheduler, tmp_path):
    X, y, true_coef = synthetic(2, 6000, scales=[1e-6, 1e-3, 1.0, 1e3, 1e6])
    y = y - np.random.default_rng(2).normal(scale=0.5, size=6000) * 0  # keep the noise
    path = tmp_path / "wide.parquet"
    pq.write_table(pa.table({**{n: X[:, j] for j, n in enumerate(FEATURES)}, "y": y}), path)
    result = train_files(
        path, "y", None, tmp_path / "models", engine=engine, chunk_rows=999, scheduler=scheduler
    )
    np.testing.assert_allclose(result.model.coef, true_coef, rtol=0.05)
    # ... and plain LinearRegression() does not: its tol truncates the 1e-6 feature.
    plain = LinearRegression().fit(X, y).coef_
    assert abs(plain[0] - true_coef[0]) > 0.5 * abs(true_coef[0])


def test_streaming_csv_equals_parquet(parquet_folder, tmp_path):
    folder, X, y = parquet_folder
    path = write_csv(tmp_path / "all.csv", [*FEATURES, "y"], np.column_stack([X, y]).tolist())
    from_csv = train_files(path, "y", None, tmp_path / "a", engine="streaming", chunk_rows=777)
    from_parquet = train_files(
        folder, "y", None, tmp_path / "b", engine="streaming", chunk_rows=5000
    )
    np.testing.assert_allclose(from_csv.model.coef, from_parquet.model.coef, rtol=1e-9)


def test_dask_names_the_file_missing_the_target(parquet_folder, scheduler, tmp_path):
    folder, X, _y = parquet_folder
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for part in sorted(folder.iterdir()):
        (mixed / part.name).write_bytes(part.read_bytes())
    pq.write_table(
        pa.table({name: X[:10, j] for j, name in enumerate(FEATURES)}), mixed / "part-09.parquet"
    )
    with pytest.raises(InputError, match=r"target column 'y' not found in .*part-09\.parquet"):
        train_files(mixed, "y", None, tmp_path / "models", engine="dask", scheduler=scheduler)


def test_dask_names_the_file_and_row_of_a_non_numeric_value(scheduler, tmp_path):
    folder = tmp_path / "csvs"
    folder.mkdir()
    X, y, _ = synthetic(3, 400)
    rows = np.column_stack([X, y]).tolist()
    write_csv(folder / "a.csv", [*FEATURES, "y"], rows[:200])
    bad = [list(r) for r in rows[200:]]
    bad[57][2] = "oops"
    write_csv(folder / "b.csv", [*FEATURES, "y"], bad)
    with pytest.raises(InputError, match=r"b\.csv column 'x2' row 258: non-numeric value 'oops'"):
        train_files(folder, "y", None, tmp_path / "models", engine="dask", scheduler=scheduler)


def test_out_of_core_prediction_equals_in_memory(parquet_folder, tmp_path):
    folder, _X, _y = parquet_folder
    train_files(folder, "y", None, tmp_path / "models", chunk_rows=5000)
    source = sorted(folder.iterdir())[0]
    done = predict.predict_file(tmp_path / "models", source, tmp_path / "p.parquet", chunk_rows=333)
    written = pq.read_table(tmp_path / "p.parquet").column("prediction").to_numpy()
    values = pq.read_table(source).to_pandas()[FEATURES].to_numpy()
    np.testing.assert_array_equal(
        written, artifacts.load_model(tmp_path / "models").predict(values)
    )
    assert done.rows == len(values)


def test_dask_prediction_writes_the_same_numbers(parquet_folder, scheduler, tmp_path):
    folder, _X, _y = parquet_folder
    train_files(folder, "y", None, tmp_path / "models", chunk_rows=5000)
    quantize(tmp_path / "models")
    source = sorted(folder.iterdir())[1]
    rows = engines.dask_predict(
        tmp_path / "models", source, tmp_path / "out", "quantized", scheduler
    )
    written = pq.read_table(tmp_path / "out").column("prediction").to_numpy()
    values = pq.read_table(source).to_pandas()[FEATURES].to_numpy()
    assert rows == len(values)
    np.testing.assert_array_equal(
        written, artifacts.load_quantized_model(tmp_path / "models").predict(values)
    )
