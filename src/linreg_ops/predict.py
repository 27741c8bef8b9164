"""Batch prediction and evaluation from the pickle-free JSON artifacts, with numpy only.

Nothing here imports scikit-learn or unpickles anything: this is the path the container and
the HTTP service run, and it must stay small, fast to import and safe to point at a file.
"""

from pathlib import Path
from typing import Literal

import numpy as np

from linreg_ops import artifacts
from linreg_ops.data import check_finite
from linreg_ops.errors import InputError
from linreg_ops.metrics import quantized_fidelity, regression_metrics
from linreg_ops.model import LinearModel, QuantizedLinearModel

ModelKind = Literal["float", "quantized"]
MODEL_KINDS: tuple[ModelKind, ...] = ("float", "quantized")


def load_predictor(
    models_dir: Path, kind: ModelKind = "float"
) -> LinearModel | QuantizedLinearModel:
    """The float or the quantized model, each verified against the manifest's SHA-256."""
    if kind == "float":
        return artifacts.load_model(models_dir)
    if kind == "quantized":
        return artifacts.load_quantized_model(models_dir)
    raise InputError(f"unknown model kind {kind!r}: expected one of {', '.join(MODEL_KINDS)}")


def read_features(path: Path, feature_names: tuple[str, ...]) -> np.ndarray:
    """The model's feature columns of a CSV/Parquet file, in model order; others are ignored."""
    table = artifacts.read_table(path, feature_names)
    check_finite(table.values, table.columns, str(path))
    return table.values


def predict_file(
    models_dir: Path, input_path: Path, output_path: Path, kind: ModelKind = "float"
) -> np.ndarray:
    """Predict every row of ``input_path``; write one ``prediction`` column to ``output_path``."""
    model = load_predictor(models_dir, kind)
    predictions = model.predict(read_features(input_path, model.feature_names))
    artifacts.write_predictions(output_path, predictions)
    return predictions


def load_labelled(
    models_dir: Path, data: Path | None = None, target: str | None = None
) -> tuple[np.ndarray, np.ndarray, str]:
    """Rows to score: the stored test split, or a labelled file given with ``--data/--target``."""
    if data is None:
        test = artifacts.load_test_split(models_dir)
        return (
            test.values[:, :-1],
            test.values[:, -1],
            f"stored test split ({artifacts.TEST_SPLIT_CSV})",
        )
    if not target:
        raise InputError("--data needs --target COLUMN (the column holding the true values)")
    model = artifacts.load_model(models_dir)
    table = artifacts.read_table(data, [*model.feature_names, target])
    check_finite(table.values, table.columns, str(data))
    return table.values[:, :-1], table.values[:, -1], str(data)


def evaluate(models_dir: Path, data: Path | None = None, target: str | None = None) -> dict:
    """Float and quantized metrics on the same rows; refreshes ``metrics.json`` for the test split.

    The quantized block is ``None`` until ``quantize`` has run.
    """
    model = artifacts.load_model(models_dir)
    X, y, source = load_labelled(models_dir, data, target)
    float_predictions = model.predict(X)
    summary: dict = {
        "float": regression_metrics(y, float_predictions),
        "quantized": None,
        "n_rows": int(y.size),
        "source": source,
    }
    manifest = artifacts.load_manifest(models_dir)
    if artifacts.QUANTIZED_MODEL_JSON in manifest["artifacts"]:
        quantized = artifacts.load_quantized_model(models_dir)
        summary["quantized"] = {
            "dtype": quantized.dtype,
            **quantized_fidelity(y, float_predictions, quantized.predict(X)),
        }
    if data is None:
        stored = artifacts.load_metrics(models_dir)
        stored.update(float=summary["float"], quantized=summary["quantized"])
        artifacts.write_artifacts(
            models_dir, {artifacts.METRICS_JSON: artifacts.json_bytes(stored)}
        )
    return summary
