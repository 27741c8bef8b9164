"""Every engine gives scikit-learn's coefficients, on arrays and on files, on one machine or a
2-worker Dask LocalCluster on loopback; Dask splits one file across its workers (byte
ranges of a CSV, row groups of a Parquet file); bad files are named."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import train_test_split

from helpers import write_csv
from linreg_ops import pipeline
from linreg_ops.config import GateConfig, IntegerConfig, QuantConfig, TrainConfig
from linreg_ops.errors import InputError
from linreg_ops.inference import dask_scoring, loading, predict
from linreg_ops.storage import cluster, tables
from linreg_ops.storage.tables import reading
from linreg_ops.training import engines, sources
from linreg_ops.training.split import held_out_rows

pytestmark = pytest.mark.slow
FEATURES = [f"x{i}" for i in range(5)]


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


def train_files(spec, models_dir, **config):
    return pipeline.train(sources.file_source(spec, "y"), models_dir, TrainConfig(**config))


@pytest.mark.parametrize("engine", ["sklearn", "streaming", "dask"])
def test_california_every_engine_matches_scikit_learn(california, engine, scheduler):
    X_train, _, y_train, _ = train_test_split(
        california.X, california.y, test_size=0.2, random_state=42
    )
    reference = LinearRegression().fit(X_train, y_train)
    fitted = engines.fit(
        california, TrainConfig(engine=engine, chunk_rows=3001, scheduler=scheduler)
    )
    np.testing.assert_allclose(fitted.coef, reference.coef_, rtol=1e-7)
    assert fitted.intercept == pytest.approx(reference.intercept_, rel=1e-7)


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
        folder, tmp_path / "models", engine=engine, chunk_rows=1234, scheduler=scheduler
    )
    np.testing.assert_allclose(result.model.coef, reference.coef_, rtol=1e-9)
    assert result.n_train == int(train_mask.sum())
    assert result.n_test == len(y) - int(train_mask.sum())
    held = ~train_mask
    expected_mse = np.mean((y[held] - reference.predict(X[held])) ** 2)
    assert result.metrics["mse"] == pytest.approx(expected_mse, rel=1e-9)
    stored = loading.stored_test_rows(loading.load(tmp_path / "models"))
    np.testing.assert_array_equal(stored.values[:, -1], y[held][: len(stored.values)])


@pytest.mark.parametrize("engine", ["sklearn", "streaming", "dask"])
def test_every_engine_recovers_coefficients_across_1e6_scales(engine, scheduler, tmp_path):
    X, y, true_coef = synthetic(2, 6000, scales=[1e-6, 1e-3, 1.0, 1e3, 1e6])
    path = tmp_path / "wide.parquet"
    pq.write_table(pa.table({**{n: X[:, j] for j, n in enumerate(FEATURES)}, "y": y}), path)
    result = train_files(
        path, tmp_path / "models", engine=engine, chunk_rows=999, scheduler=scheduler
    )
    np.testing.assert_allclose(result.model.coef, true_coef, rtol=0.05)
    # ... and plain LinearRegression() does not: its tol truncates the 1e-6 feature.
    plain = LinearRegression().fit(X, y).coef_
    assert abs(plain[0] - true_coef[0]) > 0.5 * abs(true_coef[0])


@pytest.fixture(scope="module")
def messy_csv(tmp_path_factory):
    """One CSV with quoted free text (commas, doubled quotes, newlines) between the numbers,
    CRLF line ends and a BOM: the shape that used to shift columns."""
    X, y, _ = synthetic(4, 3000)
    folder = tmp_path_factory.mktemp("messy")
    lines = ['"x0","note",x1,x2,x3,x4,"y"']
    for i, (row, target) in enumerate(zip(X.tolist(), y.tolist(), strict=True)):
        note = f'"row {i}, ""quoted""\nsecond line"' if i % 3 else "plain"
        lines.append(",".join([repr(row[0]), note, *map(repr, row[1:]), f'"{target!r}"']))
    path = folder / "messy.csv"
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n")
    clean = write_csv(folder / "clean.csv", [*FEATURES, "y"], np.column_stack([X, y]).tolist())
    return path, clean, X, y


@pytest.mark.parametrize("engine", ["sklearn", "streaming", "dask"])
def test_every_engine_reads_a_messy_csv_as_the_clean_one(
    messy_csv, engine, scheduler, tmp_path, monkeypatch
):
    messy, clean, _X, _y = messy_csv
    monkeypatch.setattr(cluster, "PARTITION_BYTES", 40_000)  # several byte ranges per file
    config = TrainConfig(engine=engine, chunk_rows=500, scheduler=scheduler)
    from_messy = engines.fit(sources.file_source(messy, "y", FEATURES), config)
    from_clean = engines.fit(sources.file_source(clean, "y", FEATURES), config)
    np.testing.assert_allclose(from_messy.coef, from_clean.coef, rtol=1e-12)
    assert from_messy.train.n == from_clean.train.n
    np.testing.assert_array_equal(from_messy.stored_test, from_clean.stored_test)


def test_a_csv_with_quotes_is_one_partition_and_a_plain_one_is_cut_at_newlines(messy_csv, tmp_path):
    messy, clean, _, y = messy_csv
    (whole,) = tables.partitions(messy, 20_000)
    assert (whole.start, whole.stop, whole.header) == (0, messy.stat().st_size, True)
    header = tables.read_header(messy)
    assert tables.partition_rows(whole, header) == len(y)

    plain = tmp_path / "plain.csv"
    plain.write_bytes(clean.read_bytes().replace(b"\n", b"\r\n"))
    parts = tables.partitions(plain, 20_000)
    assert len(parts) > 5
    data_bytes = plain.read_bytes()
    assert parts[0].start == data_bytes.index(b"\r\n") + 2  # right after the header
    for part in parts[1:]:
        assert data_bytes[part.start - 2 : part.start] == b"\r\n"


def _hostile(kind: str, X: np.ndarray, y: np.ndarray) -> bytes:
    """A file whose newlines (or quotes) fool a reader that cuts it by counting quotes or
    splitting at newlines; the attack that found each is in the name."""
    names = ["x0", "note", "x1", "x2", "x3", "x4", "y"]
    if kind == "quote in the header":
        names[1] = 'no"te'
    rows = []
    for i, (row, target) in enumerate(zip(X.tolist(), y.tolist(), strict=True)):
        note = "plain"
        if kind == "bare quote in a field" and i % 7 == 0:
            note = 'say "hi'  # a literal quote: the field does not start with one
        elif kind == "bare quote in a field" and i % 11 == 5:
            note = '"two\nlines"'  # so a quote count takes this newline for a record end
        rows.append(",".join([repr(row[0]), note, *map(repr, row[1:]), repr(target)]))
    newline = "\r" if kind == "lone carriage returns" else "\n"
    return newline.join([",".join(names), *rows]).encode() + newline.encode()


@pytest.mark.parametrize(
    "kind", ["bare quote in a field", "quote in the header", "lone carriage returns"]
)
@pytest.mark.parametrize("engine", ["sklearn", "streaming", "dask"])
def test_every_engine_reads_a_file_no_cut_can_split_like_pandas(
    kind, engine, scheduler, tmp_path, monkeypatch
):
    import pandas as pd

    X, y, _ = synthetic(4, 3000)
    path = tmp_path / "hostile.csv"
    path.write_bytes(_hostile(kind, X, y))
    frame = pd.read_csv(path, dtype=dict.fromkeys(FEATURES, "float64"))
    np.testing.assert_array_equal(frame[FEATURES].to_numpy(), X)  # the file is what we think
    monkeypatch.setattr(cluster, "PARTITION_BYTES", 2000)  # many ranges, if it were cut
    monkeypatch.setattr(reading, "PARSE_BYTES", 2000)  # the parallel reader, if it were cut
    config = TrainConfig(engine=engine, chunk_rows=500, scheduler=scheduler)
    fit = engines.fit(sources.file_source(path, "y", FEATURES), config)
    clean = write_csv(tmp_path / "clean.csv", [*FEATURES, "y"], np.column_stack([X, y]).tolist())
    expected = engines.fit(sources.file_source(clean, "y", FEATURES), config)
    np.testing.assert_allclose(fit.coef, expected.coef, rtol=1e-12)
    assert fit.train.n == expected.train.n


def test_dask_uses_every_worker_on_one_parquet_file(scheduler, tmp_path, monkeypatch):
    from distributed import Client, get_task_stream

    X, y, _ = synthetic(5, 30_000)
    path = tmp_path / "one.parquet"
    table = pa.table({**{n: X[:, j] for j, n in enumerate(FEATURES)}, "y": y})
    pq.write_table(table, path, row_group_size=2000)
    monkeypatch.setattr(cluster, "PARTITION_BYTES", 1)  # a partition per row group
    assert len(tables.partitions(path, 1)) == 15
    with Client(scheduler), get_task_stream() as stream:
        fit = engines.fit(
            sources.file_source(path, "y"), TrainConfig(engine="dask", scheduler=scheduler)
        )
    workers = {task["worker"] for task in stream.data if "_piece_summary" in str(task["key"])}
    assert len(workers) == 2
    streaming = engines.fit(sources.file_source(path, "y"), TrainConfig(engine="streaming"))
    np.testing.assert_allclose(fit.coef, streaming.coef, rtol=1e-12)


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
        train_files(mixed, tmp_path / "models", engine="dask", scheduler=scheduler)


@pytest.mark.parametrize("engine", ["streaming", "dask"])
def test_the_first_bad_value_is_named_the_same_way_by_every_engine(
    scheduler, tmp_path, engine, monkeypatch
):
    monkeypatch.setattr(cluster, "PARTITION_BYTES", 5_000)
    folder = tmp_path / "csvs"
    folder.mkdir()
    X, y, _ = synthetic(3, 400)
    rows = np.column_stack([X, y]).tolist()
    write_csv(folder / "a.csv", [*FEATURES, "y"], rows[:200])
    bad = [list(r) for r in rows[200:]]
    bad[57][2] = "oops"
    bad[150][1] = "later"
    write_csv(folder / "b.csv", [*FEATURES, "y"], bad)
    with pytest.raises(InputError, match=r"b\.csv column 'x2' row 58: non-numeric value 'oops'"):
        train_files(folder, tmp_path / "models", engine=engine, scheduler=scheduler)


def test_out_of_core_prediction_equals_in_memory(parquet_folder, tmp_path):
    folder, _X, _y = parquet_folder
    train_files(folder, tmp_path / "models", chunk_rows=5000)
    models = loading.load(tmp_path / "models")
    source = sorted(folder.iterdir())[0]
    done = predict.predict_file(models, "float", source, tmp_path / "p.parquet", chunk_rows=333)
    written = pq.read_table(tmp_path / "p.parquet").column("prediction").to_numpy()
    values = pq.read_table(source).to_pandas()[FEATURES].to_numpy()
    np.testing.assert_array_equal(written, models.float.predict(values))
    assert done.rows == len(values)


def test_dask_prediction_writes_the_same_numbers(parquet_folder, scheduler, tmp_path, monkeypatch):
    folder, _X, _y = parquet_folder
    monkeypatch.setattr(cluster, "PARTITION_BYTES", 1)
    source = sources.file_source(folder, "y")
    pipeline.run(source, tmp_path / "models", tmp_path / "r", TrainConfig(chunk_rows=5000),
                 QuantConfig(), IntegerConfig(), GateConfig(None, None))  # fmt: skip
    models = loading.load(tmp_path / "models")
    path = sorted(folder.iterdir())[1]
    rows = dask_scoring.dask_predict(models, "quantized", path, tmp_path / "out", scheduler)
    written = pq.read_table(tmp_path / "out").column("prediction").to_numpy()
    values = pq.read_table(path).to_pandas()[FEATURES].to_numpy()
    assert rows == len(values)
    np.testing.assert_array_equal(written, models.quantized.predict(values))

    # Attack A3/C3: a second run into the same folder added its part files to the first's
    with pytest.raises(InputError, match="out already exists"):
        dask_scoring.dask_predict(models, "quantized", path, tmp_path / "out", scheduler)
    assert pq.read_table(tmp_path / "out").num_rows == len(values)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")], "staging left"


def test_dask_prediction_names_a_bad_row_within_its_own_file(scheduler, tmp_path, monkeypatch):
    """Attack D7: rows were numbered across every file of a folder, so an error in the
    second file named a row number its own file does not have."""
    monkeypatch.setattr(cluster, "PARTITION_BYTES", 2_000)
    X, y, _ = synthetic(6, 600)
    folder = tmp_path / "in"
    folder.mkdir()
    rows = np.column_stack([X, y]).tolist()
    write_csv(folder / "a.csv", [*FEATURES, "y"], rows[:300])
    bad = [list(r) for r in rows[300:]]
    bad[250][2] = "oops"
    write_csv(folder / "b.csv", [*FEATURES, "y"], bad)
    pipeline.train(sources.file_source(folder / "a.csv", "y"), tmp_path / "models")
    models = loading.load(tmp_path / "models")
    with pytest.raises(InputError, match=r"b\.csv column 'x2' row 251: non-numeric value 'oops'"):
        dask_scoring.dask_predict(models, "float", folder, tmp_path / "out", scheduler)
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")], "staging left"


def test_a_constant_target_is_refused_by_the_dask_engine_too(scheduler, tmp_path):
    path = write_csv(tmp_path / "c.csv", ["a", "y"], [[i, 7.0] for i in range(50)])
    with pytest.raises(InputError, match="target column 'y' is constant"):
        engines.fit(sources.file_source(path, "y"), TrainConfig(engine="dask", scheduler=scheduler))


def test_a_blank_line_before_a_numeric_header_is_no_data_row_on_any_path(
    scheduler, tmp_path, monkeypatch
):
    """Second attack: the first byte range began after the first newline, so with a blank
    line first the header ``2019,2020,2021`` was read as a data row by Dask (and by the
    parallel reader of a large file): one prediction too many, a fake training row."""
    monkeypatch.setattr(cluster, "PARTITION_BYTES", 3_000)
    monkeypatch.setattr(reading, "PARSE_BYTES", 3_000)
    X, y, _ = synthetic(8, 600)
    names = ["2019", "2020", "2021", "2022", "2023"]
    clean = write_csv(tmp_path / "clean.csv", [*names, "2024"], np.column_stack([X, y]).tolist())
    path = tmp_path / "blank-first.csv"
    path.write_bytes(b"\xef\xbb\xbf\r\n\n" + clean.read_bytes())
    assert tables.partitions(path, 3_000)[0].start == path.read_bytes().index(b"2024\n") + 5
    blocks = list(tables.iter_blocks(path, names, 100))  # the parallel reader
    np.testing.assert_array_equal(np.vstack([b.values for b in blocks]), X)
    expected = engines.fit(sources.file_source(clean, "2024"), TrainConfig(engine="streaming"))
    config = TrainConfig(engine="dask", scheduler=scheduler)
    fit = engines.fit(sources.file_source(path, "2024"), config)
    np.testing.assert_allclose(fit.coef, expected.coef, rtol=1e-12)
    pipeline.train(sources.file_source(clean, "2024"), tmp_path / "models")
    models = loading.load(tmp_path / "models")
    assert dask_scoring.dask_predict(models, "float", path, tmp_path / "out", scheduler) == 600


@pytest.mark.parametrize(
    "content", [b"a,b,y\n", b"a,b,y", b"a,b,y\n\n\n", b"\xef\xbb\xbfa,b,y\r\n"]
)
def test_dask_refuses_a_file_of_only_a_header_as_streaming_does(scheduler, tmp_path, content):
    """Second attack: a header-only file was a traceback on Dask (train and predict), or
    0 predictions with exit 0; one among good files was skipped where streaming refuses."""
    folder = tmp_path / "in"
    folder.mkdir()
    good = [[i, (i * 7) % 5, 2 * i - (i * 7) % 5 + 0.1 * (i % 3)] for i in range(40)]
    write_csv(folder / "a.csv", ["a", "b", "y"], good)
    (folder / "b.csv").write_bytes(content)
    message = r"b\.csv has a header but no data rows"
    for engine in ("streaming", "dask"):
        with pytest.raises(InputError, match=message):
            engines.fit(
                sources.file_source(folder, "y"), TrainConfig(engine=engine, scheduler=scheduler)
            )
        with pytest.raises(InputError, match=message):
            engines.fit(
                sources.file_source(folder / "b.csv", "y"),
                TrainConfig(engine=engine, scheduler=scheduler),
            )
    pipeline.train(sources.file_source(folder / "a.csv", "y"), tmp_path / "models")
    models = loading.load(tmp_path / "models")
    with pytest.raises(InputError, match=message):
        dask_scoring.dask_predict(models, "float", folder / "b.csv", tmp_path / "out", scheduler)
    assert not (tmp_path / "out").exists()


def test_dask_refuses_an_empty_parquet_file(scheduler, tmp_path):
    path = tmp_path / "empty.parquet"
    pq.write_table(
        pa.table({"a": pa.array([], pa.float64()), "y": pa.array([], pa.float64())}), path
    )
    with pytest.raises(InputError, match=r"empty\.parquet has no data rows"):
        engines.fit(sources.file_source(path, "y"), TrainConfig(engine="dask", scheduler=scheduler))


@pytest.mark.parametrize("joblib", [False, True])
def test_the_seed_joblib_files_are_written_when_asked_and_quantize_follows(tmp_path, joblib):
    """The streaming engine writes no pickle unless asked; a quantized version has the
    seed's joblib files exactly when the version it quantizes has them."""
    rng = np.random.default_rng(11)
    X = rng.normal(size=(200, 2))
    y = X @ [1.5, -0.5] + 2.0 + rng.normal(scale=0.05, size=200)
    path = write_csv(tmp_path / "d.csv", ["a", "b", "y"], np.column_stack([X, y]).tolist())
    models = tmp_path / "models"
    trained = pipeline.train(
        sources.file_source(path, "y"), models, TrainConfig(engine="streaming"), joblib=joblib
    )
    assert trained.joblib is joblib
    quantized = pipeline.quantize(models, gate=GateConfig(max_r2_drop=None))
    assert quantized.joblib is joblib
    pickles = {"linear_regression_model.joblib", "unquant_params.joblib", "quant_params.joblib"}
    held = set(quantized.version.manifest.artifacts)
    assert (pickles <= held) if joblib else not (pickles & held)
    assert (models / "linear_regression_model.joblib").exists() is joblib


def test_the_in_memory_engine_shares_chunks_between_threads_and_keeps_their_merge_order(
    monkeypatch,
):
    """One thread per core, each chunk's statistics merged in the chunks' order: the same bits
    as one thread reducing them in turn."""
    import threading

    from linreg_ops.moments import MomentStats, merge_all

    rng = np.random.default_rng(11)
    X = 1e6 + rng.normal(size=(5_000, 3)) * [1.0, 10.0, 0.1]
    y = X @ [1.0, -2.0, 3.0] + rng.normal(size=5_000)
    chunk = 317  # 16 chunks of different sizes' merges
    sequential = merge_all(
        MomentStats.of(X[a : a + chunk], y[a : a + chunk]) for a in range(0, 5_000, chunk)
    )
    threads: set[int] = set()
    of = MomentStats.of.__func__

    def recording(cls, X_part, y_part):
        threads.add(threading.get_ident())
        return of(cls, X_part, y_part)

    monkeypatch.setattr(MomentStats, "of", classmethod(recording))
    threaded = engines.stream_arrays(X, y, chunk)
    for field in ("mean_dx", "cxx", "cxy", "min_x", "max_x"):
        np.testing.assert_array_equal(getattr(threaded, field), getattr(sequential, field))
    assert (threaded.mean_dy, threaded.cyy) == (sequential.mean_dy, sequential.cyy)
    assert threads  # the chunks went through ``MomentStats.of``, on the pool's threads
