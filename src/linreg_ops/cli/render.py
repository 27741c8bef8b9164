"""Every line the CLI prints about results, the seed's own lines included.

Rendering only: each function takes what a stage returned and prints it. None of them calls
a stage or reads a file (``quantization`` is given the seed's check, it does not run it).
"""

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import numpy as np

from linreg_ops.config import ModelKind

if TYPE_CHECKING:
    from linreg_ops.inference.evaluate import Evaluation
    from linreg_ops.inference.loading import Models
    from linreg_ops.inference.predict import FilePrediction
    from linreg_ops.pipeline import (
        ExportResult,
        QuantizeResult,
        RunResult,
        SeedCheck,
        SweepResult,
        TrainResult,
    )

__all__ = [
    "FIRST_ROWS",
    "clipped",
    "dask_predictions",
    "evaluation",
    "export",
    "file_predictions",
    "labelled_predictions",
    "loading",
    "loading_trained_model",
    "progress_bar",
    "quantization",
    "run",
    "sweep",
    "training",
    "training_started",
]

FIRST_ROWS = 10  # the seed prints its first 10 predictions; so many clipped rows are named


def loading(what: str) -> None:
    print(f"Loading {what}.")


def training_started(engine: str) -> None:
    """The seed's lines before a fit (the engine named when the user chose one)."""
    chosen = "" if engine == "auto" else f" (engine: {engine})"
    print(f"Creating LinearRegression model{chosen}.")
    print("Training model.")


def training(models_dir: Path, result: "TrainResult") -> None:
    from linreg_ops.storage import store

    print(f"R² Score: {result.metrics['r2']:.4f}")
    print(f"Mean Squared Error (Loss): {result.metrics['mse']:.4f}")
    if result.joblib:
        print(f"Model saved to {models_dir / store.ESTIMATOR_JOBLIB}")
    print(
        f"Pickle-free model saved to {models_dir / store.MODEL_JSON} "
        f"(version {result.version.number})"
    )


def loading_trained_model() -> None:
    print("Loading trained model.")


def quantization(models_dir: Path, result: "QuantizeResult", check: "SeedCheck") -> None:
    """The seed's quantization printout, then the test-split figures of both integer models."""
    from linreg_ops.storage import store

    model, quantized, integer = result.model, result.quantized, result.integer
    if result.note:
        print(f"Note: {result.note}")
    print(f"Original coefficients shape is : {model.coef.shape}")
    print(f"Original intercept is : {model.intercept:.12f}")
    print(f"Original coef values is : {model.coef}")
    scales = "one scale for all" if quantized.scale.size == 1 else "one scale for each of the"
    print(
        f"Quantizing to {quantized.dtype} "
        f"({'symmetric' if quantized.symmetric else 'asymmetric'}, {scales} "
        f"{quantized.n_features} weights, {quantized.rounding} rounding, "
        "in standardized feature space)."
    )
    print(f"Weight scale: {_join(quantized.scale)}  zero point: {_join(quantized.zero_point)}")
    print(f"Integer weights: {quantized.weights.tolist()}")
    print(f"Intercept value: {model.intercept:.8f}")
    print(f"Intercept as int32: {quantized.bias} at scale {quantized.bias_scale:.8g}")
    if result.joblib:
        print(f"Quantized parameters saved to {models_dir / store.QUANT_PARAMS_JOBLIB}")
    for name in (store.QUANTIZED_MODEL_JSON, store.INTEGER_MODEL_JSON):
        print(f"Pickle-free model saved to {models_dir / name} (version {result.version.number})")
    print(f"Max coefficient error: {check.max_coef_error:.8f}")
    print(f"Intercept error: {check.intercept_error:.8f}")
    difference = np.abs(check.manual - check.dequantized)
    print(f"Inference Test (the first {len(check.sklearn)} samples):")
    print(f"Original predictions (sklearn): {check.sklearn}")
    print(f"Manual original predictions:    {check.manual}")
    print(f"Manual dequant predictions:     {check.dequantized}")
    print("Differences:")
    print(f"Sklearn vs manual original: {np.abs(check.sklearn - check.manual)}")
    print(f"Original vs dequant manual:  {difference}")
    print(f"Max difference: {difference.max()}")
    print(f"Mean difference: {difference.mean()}")
    figures, integer_figures = result.figures, result.integer_figures
    print(
        f"Test split, {quantized.label}: "
        f"R² {figures['r2']:.4f} (ΔR² {figures['delta_r2']:+.6f}), "
        f"max |Δŷ| {figures['max_abs_diff']:.6f}, mean |Δŷ| {figures['mean_abs_diff']:.6f}"
    )
    print(
        f"Test split, integer-only ({integer.weight_dtype} weights, "
        f"int{integer.input_bits} inputs, {integer.calibration} calibration): "
        f"R² {integer_figures['r2']:.4f} (ΔR² {integer_figures['delta_r2']:+.6f}), "
        f"max |Δŷ| {integer_figures['max_abs_diff']:.6f}, "
        f"mean |Δŷ| {integer_figures['mean_abs_diff']:.6f} "
        f"({integer_figures['mean_abs_diff_inside']:.6f} on rows inside the calibrated range), "
        f"{int(integer_figures['clipped_rows'])} rows clipped"
    )


def evaluation(models: "Models", result: "Evaluation") -> None:
    from linreg_ops import report

    print(f"Evaluated version {models.version.number} on {result.n_rows} rows from {result.source}")
    print(report.comparison_table(report.comparison_rows(models, result)))


def run(models_dir: Path, result: "RunResult", check: "SeedCheck") -> None:
    """``run``: training, quantization and evaluation as their commands print them, the
    reports written, and (on stderr) any report the published version is missing."""
    from linreg_ops import report

    training(models_dir, result.train)
    print()
    loading_trained_model()
    quantization(models_dir, result.quantize, check)
    print()
    evaluated = result.evaluation
    print(f"Evaluated on {evaluated.n_rows} rows from {evaluated.source}")
    print(report.comparison_table(report.comparison_rows(result.models, evaluated)))
    print()
    print("Report: " + ", ".join(str(path) for path in result.reports))
    for problem in result.unwritten:  # the version is published: say so, and what is missing
        print(
            f"linreg-ops run: warning: version {result.train.version.number} is published, "
            f"but {problem}",
            file=sys.stderr,
        )


def sweep(result: "SweepResult") -> None:
    print(f"Quantization sweep on {result.n_rows} rows from {result.source}")
    print(result.table)
    print("Report: " + ", ".join(str(path) for path in result.reports))


def labelled_predictions(
    kind: ModelKind,
    version: int,
    models_dir: Path,
    source: str,
    y: np.ndarray,
    predictions: np.ndarray,
    clipped_rows: np.ndarray,
    metrics: dict[str, float],
) -> None:
    """``predict`` on labelled rows: the figures, then the first predictions beside the truth."""
    print(f"Model: {kind} (version {version} of {models_dir})")
    print(f"Rows: {y.size} from {source}")
    print(f"R² Score: {metrics['r2']:.4f}")
    print(f"Mean Squared Error: {metrics['mse']:.4f}")
    if kind == "integer":
        numbers = np.flatnonzero(clipped_rows) + 1
        clipped(clipped_rows.size, numbers.size, numbers[:FIRST_ROWS].tolist())
    print(f"First {min(FIRST_ROWS, y.size)} predictions:")
    for true, predicted in zip(y[:FIRST_ROWS], predictions[:FIRST_ROWS], strict=True):
        print(f"True: {true:.4f} | Predicted: {predicted:.4f} | Diff: {abs(true - predicted):.4f}")


def file_predictions(
    done: "FilePrediction", kind: ModelKind, output: Path, *, to_stdout: bool
) -> None:
    """What a file prediction wrote; on stderr when the predictions went to standard output."""
    from linreg_ops.storage import tables

    said = sys.stderr if to_stdout else sys.stdout
    where = "standard output" if output == tables.STDOUT else output
    print(f"Wrote {done.rows} {kind} predictions to {where}", file=said)
    if kind == "integer":
        clipped(done.rows, done.clipped_rows, done.first_clipped, said)


def dask_predictions(rows: int, kind: ModelKind, output: Path) -> None:
    print(f"Wrote {rows} {kind} predictions to {output} (a Parquet dataset)")


def export(result: "ExportResult") -> None:
    print(
        f"Exported the {result.kind} model of version {result.version.number} as {result.format} "
        f"to {result.path} ({result.bytes:,} bytes, sha256 {result.sha256})"
    )


def clipped(total: int, count: int, first: list[int], file: TextIO | None = None) -> None:
    """Which rows the integer model clipped: an input outside its codes, or an output beyond
    the output codes (their prediction is the end of the model's range, not their own)."""
    share = 100.0 * count / max(total, 1)
    what = "Rows clipped to the model's range (input or output)"
    print(f"{what}: {count} of {total} ({share:.2f}%)", file=file)
    if count:
        shown = ", ".join(str(row) for row in first[:FIRST_ROWS])
        more = f" and {count - FIRST_ROWS} more" if count > FIRST_ROWS else ""
        print(f"Clipped rows (1-based): {shown}{more}", file=file)


@contextlib.contextmanager
def progress_bar(unit: str) -> Iterator[Callable[[int], None] | None]:
    """A tqdm bar on a terminal; nothing when the output is piped or tqdm is missing."""
    if not sys.stderr.isatty():
        yield None
        return
    try:
        from tqdm import tqdm
    except ImportError:
        yield None
        return
    with tqdm(unit=unit, unit_scale=True, file=sys.stderr) as bar:

        def advance(rows: int) -> None:
            bar.update(rows)

        yield advance


def _join(values: np.ndarray) -> str:
    return ", ".join(f"{value:.8g}" for value in np.asarray(values).tolist())
