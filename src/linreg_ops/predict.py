"""Batch prediction and evaluation from the pickle-free JSON artifacts, with numpy only.

Nothing here imports scikit-learn or unpickles anything: this is the path the container and
the HTTP service run, and it must stay small, fast to import and safe to point at a file.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from linreg_ops import artifacts
from linreg_ops.data import check_finite
from linreg_ops.errors import InputError
from linreg_ops.metrics import quantized_fidelity, regression_metrics
from linreg_ops.model import IntegerLinearModel, LinearModel, QuantizedLinearModel

ModelKind = Literal["float", "quantized", "integer"]
MODEL_KINDS: tuple[ModelKind, ...] = ("float", "quantized", "integer")
AnyModel = LinearModel | QuantizedLinearModel | IntegerLinearModel
LOADERS = {
    "float": artifacts.load_model,
    "quantized": artifacts.load_quantized_model,
    "integer": artifacts.load_integer_model,
}


def load_predictor(models_dir: Path, kind: ModelKind = "float") -> AnyModel:
    """The float, quantized or integer-only model, verified against the manifest's SHA-256."""
    if kind not in LOADERS:
        raise InputError(f"unknown model kind {kind!r}: expected one of {', '.join(MODEL_KINDS)}")
    return LOADERS[kind](models_dir)


def predict_rows(model: AnyModel, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Predictions, and which rows had inputs clipped to an integer model's calibrated range."""
    if isinstance(model, IntegerLinearModel):
        codes, clipped = model.predict_codes(X)
        return codes * np.float64(model.output_scale), clipped
    return model.predict(X), np.zeros(len(X), dtype=bool)


@dataclass(frozen=True)
class FilePrediction:
    """What a file prediction did: rows written, and which rows had clipped inputs."""

    rows: int
    clipped_rows: int
    first_clipped: list[int]  # 1-based row numbers, at most SHOWN_CLIPPED


SHOWN_CLIPPED = 10


def predict_file(
    models_dir: Path,
    input_path: Path,
    output_path: Path,
    kind: ModelKind = "float",
    chunk_rows: int = artifacts.DEFAULT_CHUNK_ROWS,
    progress: Callable[[int], None] | None = None,
) -> FilePrediction:
    """Predict every row of ``input_path`` into ``output_path``, block by block.

    Memory stays at one block of ``chunk_rows`` rows whatever the file's size. The output has
    a ``prediction`` column, and for the integer-only model a ``clipped`` column (1 where an
    input was outside the calibrated range). Nothing is left behind if a block is bad.
    """
    model = load_predictor(models_dir, kind)
    names, chunks = artifacts.iter_table_chunks(input_path, model.feature_names, chunk_rows)
    columns = ["prediction", "clipped"] if kind == "integer" else ["prediction"]
    rows = clipped_rows = 0
    first_clipped: list[int] = []
    with artifacts.prediction_writer(output_path, columns) as write:
        for chunk in chunks:
            check_finite(chunk.values, names, str(input_path), chunk.offset)
            predictions, clipped = predict_rows(model, chunk.values)
            if kind == "integer":
                write(predictions, clipped.astype(np.int64))
            else:
                write(predictions)
            rows += len(predictions)
            clipped_rows += int(clipped.sum())
            if len(first_clipped) < SHOWN_CLIPPED:
                first_clipped += (
                    np.flatnonzero(clipped)[:SHOWN_CLIPPED] + chunk.offset + 1
                ).tolist()
            if progress:
                progress(len(predictions))
    return FilePrediction(rows, clipped_rows, first_clipped[:SHOWN_CLIPPED])


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


def fidelity(model: LinearModel, other: AnyModel, X: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """How far ``other`` (quantized or integer-only) is from the float ``model`` on these rows."""
    predictions, clipped = predict_rows(other, X)
    return quantized_fidelity(y, model.predict(X), predictions, clipped)


def evaluate(models_dir: Path, data: Path | None = None, target: str | None = None) -> dict:
    """Float, quantized and integer-only metrics on the same rows.

    Refreshes ``metrics.json`` when scoring the stored test split. The quantized blocks are
    ``None`` until ``quantize`` has run.
    """
    model = artifacts.load_model(models_dir)
    X, y, source = load_labelled(models_dir, data, target)
    summary: dict = {
        "float": regression_metrics(y, model.predict(X)),
        "quantized": None,
        "integer_only": None,
        "n_rows": int(y.size),
        "source": source,
    }
    listed = artifacts.load_manifest(models_dir)["artifacts"]
    if artifacts.QUANTIZED_MODEL_JSON in listed:
        quantized = artifacts.load_quantized_model(models_dir)
        summary["quantized"] = {
            "dtype": quantized.dtype,
            "granularity": quantized.granularity,
            "rounding": quantized.rounding,
            **fidelity(model, quantized, X, y),
        }
    if artifacts.INTEGER_MODEL_JSON in listed:
        integer = artifacts.load_integer_model(models_dir)
        summary["integer_only"] = {
            "weight_dtype": integer.weight_dtype,
            "input_dtype": f"int{integer.input_bits}",
            "calibration": integer.calibration,
            **fidelity(model, integer, X, y),
        }
    if data is None:
        stored = artifacts.load_metrics(models_dir)
        for key in ("float", "quantized", "integer_only"):
            stored[key] = summary[key]
        artifacts.write_artifacts(
            models_dir, {artifacts.METRICS_JSON: artifacts.json_bytes(stored)}
        )
    return summary
