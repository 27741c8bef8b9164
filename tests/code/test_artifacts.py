"""Artifacts: atomic writes, SHA-256 verification, exact round trips, deterministic bytes."""

import json
import os

import numpy as np
import pyarrow.parquet as pq
import pytest

from linreg_ops import artifacts
from linreg_ops.errors import ArtifactError, InputError


def test_atomic_write_replaces_whole_file(tmp_path):
    path = tmp_path / "a.bin"
    artifacts.atomic_write_bytes(path, b"old")
    artifacts.atomic_write_bytes(path, b"new contents")
    assert path.read_bytes() == b"new contents"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_failed_write_leaves_previous_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "model.json"
    artifacts.atomic_write_bytes(path, b"previous")

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="No space left"):
        artifacts.atomic_write_bytes(path, b"half-written replacement")
    assert path.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["model.json"], "temporary file left behind"


def test_written_files_get_the_usual_mode(tmp_path):
    path = artifacts.atomic_write_bytes(tmp_path / "m.json", b"{}")
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_float_model_round_trip_gives_identical_predictions(trained_dir):
    model = artifacts.load_model(trained_dir)
    again = artifacts.model_from_dict(json.loads(artifacts.model_bytes(model)))
    X = artifacts.load_test_split(trained_dir).values[:, :-1]
    np.testing.assert_array_equal(again.predict(X), model.predict(X))
    assert artifacts.model_bytes(again) == artifacts.model_bytes(model)


def test_integer_model_round_trip_gives_identical_codes(trained_dir):
    integer = artifacts.load_integer_model(trained_dir)
    again = artifacts.integer_from_dict(json.loads(artifacts.integer_model_bytes(integer)))
    X = artifacts.load_test_split(trained_dir).values[:, :-1]
    np.testing.assert_array_equal(again.predict_codes(X)[0], integer.predict_codes(X)[0])
    assert artifacts.integer_model_bytes(again) == artifacts.integer_model_bytes(integer)


def test_quantized_model_round_trip_gives_identical_predictions(trained_dir):
    quantized = artifacts.load_quantized_model(trained_dir)
    again = artifacts.quantized_from_dict(json.loads(artifacts.quantized_model_bytes(quantized)))
    X = artifacts.load_test_split(trained_dir).values[:, :-1]
    np.testing.assert_array_equal(again.predict(X), quantized.predict(X))
    assert again.weights.dtype == np.int64
    assert again.feature_mean.dtype == np.float32


def test_joblib_estimator_round_trip(trained_dir):
    estimator = artifacts.load_joblib_artifact(trained_dir, artifacts.ESTIMATOR_JOBLIB)
    model = artifacts.load_model(trained_dir)
    np.testing.assert_array_equal(estimator.coef_, model.coef)
    assert estimator.intercept_ == model.intercept


def test_test_split_csv_is_exact_and_numpy_readable(trained_dir, california):
    from linreg_ops.data import split

    expected = split(california)
    with open(trained_dir / artifacts.TEST_SPLIT_CSV) as handle:
        header = handle.readline().strip().split(",")
    values = np.loadtxt(trained_dir / artifacts.TEST_SPLIT_CSV, delimiter=",", skiprows=1)
    assert header == [*california.feature_names, california.target_name]
    np.testing.assert_array_equal(values[:, :-1], expected.X_test)
    np.testing.assert_array_equal(values[:, -1], expected.y_test)


def test_manifest_records_every_artifact(trained_dir):
    manifest = artifacts.load_manifest(trained_dir)
    for name in artifacts.KNOWN_ARTIFACTS:
        entry = manifest["artifacts"][name]
        assert entry["sha256"] == artifacts.sha256_file(trained_dir / name)
        assert entry["bytes"] == (trained_dir / name).stat().st_size
    assert len(manifest["training_data"]["sha256"]) == 64
    assert manifest["split"]["random_state"] == 42
    assert manifest["split"]["test_size"] == 0.2
    assert set(manifest["versions"]) >= {"python", "numpy", "scikit-learn"}


@pytest.mark.parametrize(
    "name", [artifacts.MODEL_JSON, artifacts.QUANTIZED_MODEL_JSON, artifacts.ESTIMATOR_JOBLIB]
)
def test_tampered_artifact_is_refused(models_copy, name):
    path = models_copy / name
    path.write_bytes(path.read_bytes().replace(b"1", b"2", 1))
    with pytest.raises(ArtifactError, match=f"{name} does not match its SHA-256"):
        artifacts.read_artifact(models_copy, name)


def test_missing_manifest_says_train_first(tmp_path):
    with pytest.raises(ArtifactError, match=r"no manifest\.json .*linreg-ops train"):
        artifacts.load_model(tmp_path)


def test_unlisted_artifact_is_refused(models_copy):
    manifest = artifacts.load_manifest(models_copy)
    del manifest["artifacts"][artifacts.QUANTIZED_MODEL_JSON]
    artifacts.write_manifest(models_copy, manifest)
    with pytest.raises(ArtifactError, match=r"not recorded .* run linreg-ops quantize"):
        artifacts.load_quantized_model(models_copy)


def test_deleted_artifact_is_reported(models_copy):
    (models_copy / artifacts.MODEL_JSON).unlink()
    with pytest.raises(ArtifactError, match="cannot read"):
        artifacts.load_model(models_copy)


def test_wrong_schema_version_is_refused(models_copy):
    payload = json.loads((models_copy / artifacts.MODEL_JSON).read_text())
    payload["schema_version"] = 99
    artifacts.write_artifacts(models_copy, {artifacts.MODEL_JSON: artifacts.json_bytes(payload)})
    with pytest.raises(ArtifactError, match="schema_version 99"):
        artifacts.load_model(models_copy)


def test_json_is_deterministic_and_refuses_nan():
    payload = {"b": 0.1 + 0.2, "a": [1, 2]}
    assert artifacts.json_bytes(payload) == artifacts.json_bytes(dict(payload))
    with pytest.raises(ValueError, match="not JSON compliant"):
        artifacts.json_bytes({"x": float("nan")})


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_predictions_round_trip(tmp_path, suffix):
    predictions = np.array([0.1, 1 / 3, -2.5e-7])
    path = artifacts.write_predictions(tmp_path / f"out{suffix}", {"prediction": predictions})
    if suffix == ".csv":
        read = np.loadtxt(path, delimiter=",", skiprows=1)
    else:
        read = pq.read_table(path).column("prediction").to_numpy()
    np.testing.assert_array_equal(read, predictions)


def test_predictions_unknown_format(tmp_path):
    with pytest.raises(InputError, match=r"unsupported output format '\.xlsx'"):
        artifacts.write_predictions(tmp_path / "out.xlsx", {"prediction": np.zeros(2)})
