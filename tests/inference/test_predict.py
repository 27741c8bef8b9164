"""Loading a version and predicting from it: file formats, folders, column order, bad rows,
known answers, and an evaluation that agrees with what was published."""

import csv
import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import write_csv
from linreg_ops.errors import ArtifactError, InputError
from linreg_ops.inference import evaluate, loading, predict
from linreg_ops.storage import codecs, store
from linreg_ops.storage.digests import sha256_bytes


def test_csv_in_csv_out_with_shuffled_and_extra_columns(models, test_rows, tmp_path):
    columns, values = test_rows
    order = [7, 2, 0, 8, 1, 3, 4, 6, 5]  # includes the target column, which is ignored
    path = write_csv(tmp_path / "in.csv", [columns[i] for i in order], values[:25, order].tolist())
    done = predict.predict_file(models, "float", path, tmp_path / "out.csv", chunk_rows=7)
    assert done.rows == 25
    written = np.loadtxt(tmp_path / "out.csv", delimiter=",", skiprows=1)
    np.testing.assert_array_equal(written, models.float.predict(values[:25, :-1]))


def test_parquet_in_parquet_out_quantized(models, test_rows, tmp_path):
    columns, values = test_rows
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({name: values[:40, i] for i, name in enumerate(columns[:-1])}), path)
    done = predict.predict_file(models, "quantized", path, tmp_path / "out.parquet", 16)
    assert done.rows == 40
    written = pq.read_table(tmp_path / "out.parquet").column("prediction").to_numpy()
    np.testing.assert_array_equal(written, models.quantized.predict(values[:40, :-1]))


def test_a_folder_of_mixed_files_is_predicted_in_file_order(models, test_rows, tmp_path):
    columns, values = test_rows
    folder = tmp_path / "parts"
    folder.mkdir()
    write_csv(folder / "a.csv", list(columns), values[:30].tolist())
    pq.write_table(
        pa.table({name: values[30:50, i] for i, name in enumerate(columns)}), folder / "b.parquet"
    )
    done = predict.predict_file(models, "integer", folder, tmp_path / "out.csv", chunk_rows=8)
    assert done.rows == 50
    written = np.loadtxt(tmp_path / "out.csv", delimiter=",", skiprows=1)
    expected, clipped = predict.predict_rows(models.integer, values[:50, :-1])
    np.testing.assert_array_equal(written[:, 0], expected)
    np.testing.assert_array_equal(written[:, 1], clipped)


def test_integer_only_file_output_flags_clipped_rows(models, test_rows, tmp_path):
    columns, values = test_rows
    data = values[:5, :-1].copy()
    data[3, columns.index("Population")] = 1e7  # far beyond the training range
    path = write_csv(tmp_path / "in.csv", list(columns[:-1]), data.tolist())
    done = predict.predict_file(models, "integer", path, tmp_path / "out.csv", chunk_rows=2)
    assert (done.rows, done.clipped_rows, done.first_clipped) == (5, 1, [4])
    written = np.loadtxt(tmp_path / "out.csv", delimiter=",", skiprows=1)
    np.testing.assert_array_equal(written[:, 1], [0, 0, 0, 1, 0])
    expected, _ = predict.predict_rows(models.integer, data)
    np.testing.assert_array_equal(written[:, 0], expected)


def test_missing_feature_column_is_named_and_nothing_is_written(models, tmp_path):
    path = write_csv(tmp_path / "in.csv", ["MedInc", "HouseAge"], [[1, 2]])
    with pytest.raises(InputError, match="column 'AveRooms' not found"):
        predict.predict_file(models, "float", path, tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()


def test_nan_in_input_is_named(models, test_rows, tmp_path):
    columns, values = test_rows
    data = values[:3, :-1].tolist()
    data[1][4] = "nan"
    path = write_csv(tmp_path / "in.csv", list(columns[:-1]), data)
    with pytest.raises(InputError, match="column 'Population' row 2 is NaN"):
        predict.predict_file(models, "float", path, tmp_path / "out.csv")
    assert list(tmp_path.iterdir()) == [path], "no output and no temporary file"


def test_evaluate_reproduces_the_published_metrics(trained_dir, models):
    """Computed afresh from the stored rows, equal to what metrics.json recorded at publication
    (metrics.json is never rewritten: the version is immutable)."""
    before = (trained_dir / "versions" / "2" / "metrics.json").read_bytes()
    X, y, source = evaluate.labelled_rows(models)
    evaluation = evaluate.evaluate(models, X, y, source)
    stored = json.loads(before)
    for key in ("r2", "mse"):
        assert evaluation.figures["float"][key] == stored["float"][key]
    for key in ("r2", "mse", "delta_r2", "max_abs_diff", "mean_abs_diff", "clipped_rows"):
        assert evaluation.figures["quantized"][key] == stored["quantized"][key]
        assert evaluation.figures["integer"][key] == stored["integer_only"][key]
    assert evaluation.n_rows == stored["n_test"] == 4128
    assert (trained_dir / "versions" / "2" / "metrics.json").read_bytes() == before


def test_evaluate_on_labelled_files(models, test_rows, tmp_path):
    columns, values = test_rows
    path = write_csv(tmp_path / "labelled.csv", list(columns), values[:100].tolist())
    X, y, source = evaluate.labelled_rows(models, path, "MedHouseVal")
    evaluation = evaluate.evaluate(models, X, y, source)
    assert evaluation.n_rows == 100
    assert set(evaluation.figures) == {"float", "quantized", "integer"}
    with pytest.raises(InputError, match="--data needs --target"):
        evaluate.labelled_rows(models, path, None)


def _rewrite(models_copy, name, edit):
    """Edit an artifact of the current version and rewrite its SHA-256 in the manifest."""
    version = store.open_version(models_copy)
    path = version.path / name
    data = edit(path.read_bytes())
    manifest = json.loads((version.path / "manifest.json").read_bytes())
    manifest["artifacts"][name] = {"sha256": sha256_bytes(data), "bytes": len(data)}
    for target, content in (
        (path, data),
        (version.path / "manifest.json", json.dumps(manifest).encode()),
    ):
        target.chmod(0o644)
        target.write_bytes(content)


def test_a_valid_but_different_model_fails_its_known_answers(models_copy):
    def nudge(data: bytes) -> bytes:
        payload = json.loads(data)
        payload["coef"][0] *= 1.001
        return codecs.json_bytes(payload)

    _rewrite(models_copy, "model.json", nudge)
    with pytest.raises(ArtifactError, match="float model does not reproduce the predictions"):
        loading.load(models_copy)


def test_an_edit_that_keeps_every_prediction_loads(models_copy, models, test_rows):
    def cosmetic(data: bytes) -> bytes:  # key order and spacing only
        return json.dumps(json.loads(data), indent=None).encode()

    _rewrite(models_copy, "integer_model.json", cosmetic)
    loaded = loading.load(models_copy)
    X = test_rows[1][:, :-1]
    np.testing.assert_array_equal(
        loaded.integer.predict_codes(X)[0], models.integer.predict_codes(X)[0]
    )


def test_models_from_two_runs_cannot_be_mixed(models_copy, tmp_path, regression_csv):
    """A quantized model copied in from another version (SHA rewritten) is refused."""
    from linreg_ops import pipeline
    from linreg_ops.config import GateConfig, IntegerConfig, QuantConfig, TrainConfig
    from linreg_ops.training import sources

    other = tmp_path / "other"
    source = sources.file_source(regression_csv, "y")
    no_gate = GateConfig(max_r2_drop=None)
    pipeline.run(
        source, other, tmp_path / "r", TrainConfig(), QuantConfig(), IntegerConfig(), no_gate
    )
    foreign = (store.open_version(other).path / "integer_model.json").read_bytes()
    _rewrite(models_copy, "integer_model.json", lambda _: foreign)
    with pytest.raises(ArtifactError):
        loading.load(models_copy)
    shutil.rmtree(other)


# ------------------------------------------------------------------ the attack's findings


def test_a_prediction_that_overflows_names_its_row(models, tmp_path):
    """Attack A4: finite inputs of 1e308 gave inf predictions, written to the output file
    (and served as null); now the row is refused by number, and nothing is written."""
    row = np.sign(models.float.coef) * 1.7e308  # every term of one sign: the sum overflows
    values = np.vstack([np.ones((5, models.float.n_features)), row])
    path = write_csv(tmp_path / "in.csv", list(models.float.feature_names), values.tolist())
    overflow = r"row 6: column 'MedInc' holds 1\.7e\+308, beyond ±[0-9.e+]+, where the prediction could overflow float64"
    for kind in ("float", "quantized"):
        with pytest.raises(InputError, match=rf"in\.csv {overflow}"):
            predict.predict_file(models, kind, path, tmp_path / "out.csv", chunk_rows=4)
        assert not (tmp_path / "out.csv").exists()
    done = predict.predict_file(models, "integer", path, tmp_path / "out.csv")  # clips: finite
    assert done.rows == 6
    assert 6 in done.first_clipped
    with pytest.raises(InputError, match=f"labelled {overflow}"):
        evaluate.evaluate(models, values, np.ones(6), "labelled")


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_every_model_refuses_a_non_finite_input_with_one_message(models, value):
    """Issue 13: the integer model answered NaN with a finite code (46.24 through MLflow),
    the float one raised scikit-learn's error, the quantized one said it overflowed."""
    X = np.ones((3, models.float.n_features))
    X[2, 3] = value
    what = "NaN" if np.isnan(value) else "an infinite value"
    messages = set()
    for kind in models.kinds():
        with pytest.raises(InputError) as refusal:
            predict.predict_rows(models.get(kind), X, first_row=10, source="batch")
        messages.add(str(refusal.value))
    assert messages == {
        f"batch row 13: column 'AveBedrms' holds {what}: linreg-ops predicts from finite "
        "numbers only"
    }


def test_an_output_inside_the_models_folder_or_onto_its_input_is_refused(models_copy, tmp_path):
    """Attacks B1/B2: ``--output models/model.json.csv`` wrote into the models folder, and
    ``--output`` equal to ``--input`` replaced the input."""
    models = loading.load(models_copy)
    rows = np.ones((3, models.float.n_features))
    path = write_csv(tmp_path / "in.csv", list(models.float.feature_names), rows.tolist())
    before = path.read_bytes()
    with pytest.raises(InputError, match="is the input file"):
        predict.predict_file(models, "float", path, path)
    assert path.read_bytes() == before
    for inside in ("predictions.csv", "versions/1/p.csv", "current/p.csv"):
        with pytest.raises(InputError, match="is inside the models folder"):
            predict.predict_file(models, "float", path, models_copy / inside)
    (tmp_path / "link").symlink_to(models_copy)
    with pytest.raises(InputError, match="is inside the models folder"):
        predict.predict_file(models, "float", path, tmp_path / "link" / "p.csv")


def test_known_answers_name_the_features(models_copy):
    """Attack A7: two features' names swapped in model.json (SHA rewritten) answered the
    positional probe rows the same, and loaded: every request then mixed the columns."""

    def swap(data: bytes) -> bytes:
        payload = json.loads(data)
        names = payload["features"]
        names[0], names[1] = names[1], names[0]
        return codecs.json_bytes(payload)

    for name in ("model.json", "quantized_model.json", "integer_model.json"):
        _rewrite(models_copy, name, swap)
    with pytest.raises(ArtifactError, match=r"recorded .* when the version was published"):
        loading.load(models_copy)


def test_every_kind_answers_as_a_predictor(models, test_rows):
    """The protocol the callers use instead of asking which kind a model is."""
    X = test_rows[1][:50, :-1]
    labels = set()
    for kind in models.kinds():
        model = models.get(kind)
        predictions, clipped = model.predict_clipped(X)
        np.testing.assert_array_equal(predictions, model.predict(X))
        assert clipped.shape == (50,)
        assert clipped.dtype == bool
        answers = model.answers(X[:5])
        assert model.reproduces(X[:5], answers)
        assert not model.reproduces(X[:5], answers + 1)  # one code, or far beyond 1e-9
        labels.add(model.label)
    assert len(labels) == 3
    assert models.integer.answers(X).dtype.kind == "i"  # codes: recognized bit for bit


# --------------------------------------------------------------------------- --keep-columns


def _table_with_ids(columns, values, ids, path):
    """The test rows with an ``id`` column in the middle, as CSV (text) or Parquet."""
    features = list(columns[:-1])
    if path.suffix == ".parquet":
        data = {name: values[:, i] for i, name in enumerate(features[:4])}
        data["id"] = pa.array(ids)
        data |= {name: values[:, i + 4] for i, name in enumerate(features[4:])}
        pq.write_table(pa.table(data), path, row_group_size=7)
    else:
        header = [*features[:4], "id", *features[4:]]
        rows = [
            [*map(repr, row[:4]), key, *map(repr, row[4:-1])]
            for row, key in zip(values.tolist(), ids, strict=True)
        ]
        with open(path, "w", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerows([header, *rows])
    return path


@settings(max_examples=15, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n=st.integers(1, 40),
    chunk_rows=st.integers(1, 16),
    kind=st.sampled_from(["float", "quantized", "integer"]),
    suffixes=st.tuples(
        st.sampled_from([".csv", ".parquet"]), st.sampled_from([".csv", ".parquet"])
    ),
    data=st.data(),
)
def test_kept_ids_equal_the_input_ids_and_predictions_do_not_change(
    models, test_rows, tmp_path, n, chunk_rows, kind, suffixes, data
):
    """Any table with an id column: the output's ids are the input's, row for row, and its
    predictions are those written without --keep-columns, bit for bit."""
    columns, values = test_rows
    text = st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\0\r")
    )
    ids = data.draw(st.lists(text, min_size=n, max_size=n, unique=True))
    source = _table_with_ids(columns, values[:n], ids, tmp_path / f"in{suffixes[0]}")
    kept, plain = tmp_path / f"kept{suffixes[1]}", tmp_path / f"plain{suffixes[1]}"
    predict.predict_file(models, kind, source, kept, chunk_rows, keep=["id", "MedInc"])
    predict.predict_file(models, kind, source, plain, chunk_rows)
    with_ids, without = _read(kept), _read(plain)
    assert with_ids.column_names[:2] == ["id", "MedInc"]
    assert with_ids.column("id").to_pylist() == ids
    for name in without.column_names:  # prediction (and clipped)
        expected = without.column(name).to_numpy()
        assert with_ids.column(name).to_numpy().tobytes() == expected.tobytes()


def _read(path):
    if path.suffix == ".parquet":
        return pq.read_table(path)
    import pyarrow.csv as pacsv

    # ids are text: read them back as written (an id "1" must not become the number 1)
    return pacsv.read_csv(
        path,
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types={"id": pa.string()}, strings_can_be_null=False
        ),
    )


def test_keep_columns_refuses_clashes_twice_named_and_unknown_columns(models, test_rows, tmp_path):
    columns, values = test_rows
    source = _table_with_ids(columns, values[:3], ["a", "b", "c"], tmp_path / "in.csv")
    out = tmp_path / "out.csv"
    with pytest.raises(InputError, match="the output has its own 'clipped' column"):
        predict.predict_file(models, "integer", source, out, keep=["clipped"])
    with pytest.raises(InputError, match="names 'id' twice"):
        predict.predict_file(models, "float", source, out, keep=["id", "id"])
    with pytest.raises(InputError, match=r"--keep-columns: column 'idd' not found .*'id'\?"):
        predict.predict_file(models, "float", source, out, keep=["idd"])
    assert not out.exists()


def test_kept_columns_of_two_types_in_one_parquet_output_are_named(models, test_rows, tmp_path):
    """A folder whose files type the kept column differently: cast when it can be (int32
    then int64), one line naming the file and the column when not."""
    columns, values = test_rows
    folder = tmp_path / "parts"
    folder.mkdir()
    features = {name: values[:4, i] for i, name in enumerate(columns[:-1])}
    pq.write_table(
        pa.table({**features, "id": pa.array([1, 2, 3, 4], pa.int32())}), folder / "a.parquet"
    )
    pq.write_table(
        pa.table({**features, "id": pa.array([5, 6, 7, 8], pa.int64())}), folder / "b.parquet"
    )
    out = tmp_path / "out.parquet"
    predict.predict_file(models, "float", folder, out, keep=["id"])
    assert pq.read_table(out).column("id").to_pylist() == [1, 2, 3, 4, 5, 6, 7, 8]
    pq.write_table(pa.table({**features, "id": ["x"] * 4}), folder / "c.parquet")
    with pytest.raises(InputError, match=r"c\.parquet: column 'id' is string here but int32"):
        predict.predict_file(models, "float", folder, tmp_path / "out2.parquet", keep=["id"])
    assert not (tmp_path / "out2.parquet").exists()
