"""``train`` as a user runs it: the streaming engine never imports scikit-learn (seconds of
import) unless the seed's joblib files are asked for, and then they hold the same model."""

import json
import subprocess
import sys

import joblib
import numpy as np
import pytest

from helpers import write_csv
from linreg_ops.inference import loading

pytestmark = pytest.mark.slow


def _imported(stderr: str) -> set[str]:
    return {line.split("|")[-1].strip() for line in stderr.splitlines() if "import time:" in line}


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 3))
    y = X @ [1.0, -2.0, 0.5] + 4.0 + rng.normal(scale=0.1, size=300)
    folder = tmp_path_factory.mktemp("train-process")
    return write_csv(folder / "data.csv", ["a", "b", "c", "y"], np.column_stack([X, y]).tolist())


def _train(tmp_path, data_file, *extra):
    models = tmp_path / "models"
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "linreg_ops", "train", "--data",
         str(data_file), "--target", "y", "--models-dir", str(models), *extra],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return models, result


def test_streaming_train_imports_no_scikit_learn_and_writes_no_pickle(tmp_path, data_file):
    models, result = _train(tmp_path, data_file)
    imported = _imported(result.stderr)
    assert "linreg_ops.training.engines" in imported
    for heavy in ("sklearn", "joblib", "scipy", "pandas"):
        assert heavy not in imported, f"train imported {heavy}"
    assert not (models / "linear_regression_model.joblib").exists()
    assert ".joblib" not in result.stdout
    manifest = json.loads((models / "current" / "manifest.json").read_text())
    assert not [name for name in manifest["artifacts"] if name.endswith(".joblib")]


def test_joblib_asked_writes_the_seed_estimator_with_the_same_model(tmp_path, data_file):
    models, result = _train(tmp_path, data_file, "--joblib")
    assert f"Model saved to {models / 'linear_regression_model.joblib'}" in result.stdout
    estimator = joblib.load(models / "linear_regression_model.joblib")
    model = loading.load(models).float
    np.testing.assert_array_equal(estimator.coef_, model.coef)
    assert estimator.intercept_ == model.intercept


@pytest.mark.parametrize("output", ["p.parquet", "p.csv"])
def test_predict_into_a_file_imports_no_pandas(tmp_path, data_file, output):
    """pyarrow's ``pa.array``/``pa.table`` on numpy import pandas (a second of start-up);
    the prediction writers build their Arrow arrays without them."""
    models, _ = _train(tmp_path, data_file)
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "linreg_ops", "predict", "--models-dir",
         str(models), "--input", str(data_file), "--output", str(tmp_path / output)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    imported = _imported(result.stderr)
    assert "linreg_ops.inference.predict" in imported
    for heavy in ("pandas", "sklearn", "scipy"):
        assert heavy not in imported, f"predict --output {output} imported {heavy}"
    assert (tmp_path / output).stat().st_size > 0
