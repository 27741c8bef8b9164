"""Every line the CLI prints about results, the seed's own lines included.

Rendering only: each function takes what a stage returned and prints it. None of them calls
a stage or reads a file (``quantization`` is given the seed's check, it does not run it).

Prose goes where ``configure`` says: standard output by default, standard error under
``--json`` (whose object is then the only thing on standard output), nowhere under ``-q``.
Warnings go to standard error whatever the mode.
"""

import contextlib
import json
import math
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from linreg_ops.config import ModelKind

if TYPE_CHECKING:
    import tqdm.std

    from linreg_ops.exports.tracking import TrackedRun
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
    from linreg_ops.storage.store import Version

__all__ = [
    "FIRST_ROWS",
    "Prose",
    "clipped",
    "configure",
    "dask_predictions",
    "evaluation",
    "evaluation_facts",
    "export",
    "export_facts",
    "fetched",
    "file_facts",
    "file_predictions",
    "json_object",
    "labelled_facts",
    "labelled_predictions",
    "loading",
    "loading_trained_model",
    "progress_bar",
    "quantization",
    "quantization_facts",
    "reading_bar",
    "run",
    "run_facts",
    "say",
    "sweep",
    "sweep_facts",
    "tracked",
    "training",
    "training_facts",
    "training_started",
    "warn",
]

FIRST_ROWS = 10  # the seed prints its first 10 predictions; so many clipped rows are named

Prose = Literal["stdout", "stderr", "quiet"]
_mode: list[Prose] = ["stdout"]


def configure(mode: Prose) -> None:
    """Where prose goes from now on (the CLI sets it once per command)."""
    _mode[0] = mode


def say(*values: object, aside: bool = False) -> None:
    """One line of prose; ``aside`` when standard output carries data (``--output -``)."""
    mode = _mode[0]
    if mode == "quiet":
        return
    print(*values, file=sys.stderr if aside or mode == "stderr" else sys.stdout)


def warn(text: str) -> None:
    """A warning: on standard error, even under ``-q``."""
    print(text, file=sys.stderr)


def json_object(value: dict[str, Any]) -> None:
    """``--json``: one object, one line, on standard output (NaN and ∞ become null)."""
    print(json.dumps(_plain(value), ensure_ascii=False, allow_nan=False), flush=True)


def _plain(value: Any) -> Any:
    """JSON's own types from numpy's and pathlib's."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return _plain(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def loading(what: str) -> None:
    say(f"Loading {what}.")


def training_started(engine: str, *, seed: bool) -> None:
    """Before a fit: the seed's own two lines when this is the seed's run (California
    Housing in memory), else what fits and how."""
    if seed:
        say("Creating LinearRegression model.")
        say("Training model.")
    else:
        say(f"Training LinearRegression (engine: {engine}).")


def training(models_dir: Path, result: "TrainResult") -> None:
    from linreg_ops.storage import store

    say(f"R² Score: {result.metrics['r2']:.4f}")
    say(f"Mean Squared Error (Loss): {result.metrics['mse']:.4f}")
    if result.joblib:
        say(f"Model saved to {models_dir / store.ESTIMATOR_JOBLIB}")
    say(
        f"Pickle-free model saved to {models_dir / store.MODEL_JSON} "
        f"(version {result.version.number})"
    )


def loading_trained_model() -> None:
    say("Loading trained model.")


def quantization(models_dir: Path, result: "QuantizeResult", check: "SeedCheck | None") -> None:
    """The seed's quantization printout (its 10-row inference test only when ``check`` is
    given: for the seed's data), then the test-split figures of both integer models."""
    from linreg_ops.storage import store

    model, quantized, integer = result.model, result.quantized, result.integer
    if result.note:
        say(f"Note: {result.note}")
    say(f"Original coefficients shape is : {model.coef.shape}")
    say(f"Original intercept is : {model.intercept:.12f}")
    say(f"Original coef values is : {model.coef}")
    scales = "one scale for all" if quantized.scale.size == 1 else "one scale for each of the"
    say(
        f"Quantizing to {quantized.dtype} "
        f"({'symmetric' if quantized.symmetric else 'asymmetric'}, {scales} "
        f"{quantized.n_features} weights, {quantized.rounding} rounding, "
        "in standardized feature space)."
    )
    say(f"Weight scale: {_join(quantized.scale)}  zero point: {_join(quantized.zero_point)}")
    say(f"Integer weights: {quantized.weights.tolist()}")
    say(f"Intercept value: {model.intercept:.8f}")
    say(f"Intercept as int32: {quantized.bias} at scale {quantized.bias_scale:.8g}")
    if result.joblib:
        say(f"Quantized parameters saved to {models_dir / store.QUANT_PARAMS_JOBLIB}")
    for name in (store.QUANTIZED_MODEL_JSON, store.INTEGER_MODEL_JSON):
        say(f"Pickle-free model saved to {models_dir / name} (version {result.version.number})")
    if check is not None:
        _seed_check(check)
    figures, integer_figures = result.figures, result.integer_figures
    say(
        f"Test split, {quantized.label}: "
        f"R² {figures['r2']:.4f} (ΔR² {figures['delta_r2']:+.6f}), "
        f"max |Δŷ| {figures['max_abs_diff']:.6f}, mean |Δŷ| {figures['mean_abs_diff']:.6f}"
    )
    say(
        f"Test split, integer-only ({integer.weight_dtype} weights, "
        f"int{integer.input_bits} inputs, {integer.calibration} calibration): "
        f"R² {integer_figures['r2']:.4f} (ΔR² {integer_figures['delta_r2']:+.6f}), "
        f"max |Δŷ| {integer_figures['max_abs_diff']:.6f}, "
        f"mean |Δŷ| {integer_figures['mean_abs_diff']:.6f} "
        f"({integer_figures['mean_abs_diff_inside']:.6f} on rows inside the calibrated range), "
        f"{int(integer_figures['clipped_rows'])} rows clipped"
    )


def _seed_check(check: "SeedCheck") -> None:
    say(f"Max coefficient error: {check.max_coef_error:.8f}")
    say(f"Intercept error: {check.intercept_error:.8f}")
    difference = np.abs(check.manual - check.dequantized)
    say(f"Inference Test (the first {len(check.sklearn)} samples):")
    say(f"Original predictions (sklearn): {check.sklearn}")
    say(f"Manual original predictions:    {check.manual}")
    say(f"Manual dequant predictions:     {check.dequantized}")
    say("Differences:")
    say(f"Sklearn vs manual original: {np.abs(check.sklearn - check.manual)}")
    say(f"Original vs dequant manual:  {difference}")
    say(f"Max difference: {difference.max()}")
    say(f"Mean difference: {difference.mean()}")


def evaluation(models: "Models", result: "Evaluation") -> None:
    from linreg_ops import report

    say(f"Evaluated version {models.version.number} on {result.n_rows} rows from {result.source}")
    say(report.comparison_table(report.comparison_rows(models, result)))


def run(models_dir: Path, result: "RunResult", check: "SeedCheck | None") -> None:
    """``run``: training, quantization and evaluation as their commands print them, the
    reports written, and (on stderr) any report the published version is missing."""
    from linreg_ops import report

    training(models_dir, result.train)
    say()
    loading_trained_model()
    quantization(models_dir, result.quantize, check)
    say()
    evaluated = result.evaluation
    say(f"Evaluated on {evaluated.n_rows} rows from {evaluated.source}")
    say(report.comparison_table(report.comparison_rows(result.models, evaluated)))
    say()
    say("Report: " + ", ".join(str(path) for path in result.reports))
    for problem in result.unwritten:  # the version is published: say so, and what is missing
        warn(
            f"linreg-ops run: warning: version {result.train.version.number} is published, "
            f"but {problem}"
        )


def tracked(run: "TrackedRun") -> None:
    """``run --tracking-uri``: where the run is, and the registered version it became."""
    say("")
    say(f"MLflow run {run.run_id} (experiment {run.experiment_id}) at {run.tracking_uri}")
    say(
        f"Registered {run.model_uri} (models_version {run.tags['models_version']}, "
        f"dtype {run.tags.get('dtype')}, rounding {run.tags.get('rounding')}, "
        f"ΔR² {float(run.tags.get('delta_r2', 'nan')):+.6f})"
    )


def fetched(model_uri: str, resolved: str, version: "Version") -> None:
    """``serve --model-uri``: which registered version the URI named, and where it is."""
    say(f"{model_uri} is {resolved}: version {version.number}, verified, in {version.path}")


def sweep(result: "SweepResult") -> None:
    say(f"Quantization sweep on {result.n_rows} rows from {result.source}")
    say(result.table)
    say("Report: " + ", ".join(str(path) for path in result.reports))


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
    say(f"Model: {kind} (version {version} of {models_dir})")
    say(f"Rows: {y.size} from {source}")
    say(f"R² Score: {metrics['r2']:.4f}")
    say(f"Mean Squared Error: {metrics['mse']:.4f}")
    if kind == "integer":
        numbers = np.flatnonzero(clipped_rows) + 1
        clipped(clipped_rows.size, numbers.size, numbers[:FIRST_ROWS].tolist())
    say(f"First {min(FIRST_ROWS, y.size)} predictions:")
    for true, predicted in zip(y[:FIRST_ROWS], predictions[:FIRST_ROWS], strict=True):
        say(f"True: {true:.4f} | Predicted: {predicted:.4f} | Diff: {abs(true - predicted):.4f}")


def file_predictions(
    done: "FilePrediction", kind: ModelKind, output: Path, *, to_stdout: bool
) -> None:
    """What a file prediction wrote; on stderr when the predictions went to standard output."""
    from linreg_ops.storage import tables

    where = "standard output" if output == tables.STDOUT else output
    say(f"Wrote {done.rows} {kind} predictions to {where}", aside=to_stdout)
    if kind == "integer":
        clipped(done.rows, done.clipped_rows, done.first_clipped, aside=to_stdout)


def dask_predictions(rows: int, kind: ModelKind, output: Path) -> None:
    say(f"Wrote {rows} {kind} predictions to {output} (a Parquet dataset)")


def export(result: "ExportResult") -> None:
    say(
        f"Exported the {result.kind} model of version {result.version.number} as {result.format} "
        f"to {result.path} ({result.bytes:,} bytes, sha256 {result.sha256})"
    )


def clipped(total: int, count: int, first: list[int], *, aside: bool = False) -> None:
    """Which rows the integer model clipped: an input outside its codes, or an output beyond
    the output codes (their prediction is the end of the model's range, not their own)."""
    share = 100.0 * count / max(total, 1)
    what = "Rows clipped to the model's range (input or output)"
    say(f"{what}: {count} of {total} ({share:.2f}%)", aside=aside)
    if count:
        shown = ", ".join(str(row) for row in first[:FIRST_ROWS])
        more = f" and {count - FIRST_ROWS} more" if count > FIRST_ROWS else ""
        say(f"Clipped rows (1-based): {shown}{more}", aside=aside)


@contextlib.contextmanager
def progress_bar(
    unit: str, total: int | None = None, *, enabled: bool = True
) -> Iterator[Callable[[int], None] | None]:
    """A tqdm bar on a terminal (done, rate, and with a ``total`` the share and an ETA);
    nothing when standard error is piped, under ``-q``, or when tqdm is missing."""
    bar_type = _terminal_tqdm(enabled)
    if bar_type is None:
        yield None
        return
    with bar_type(total=total, unit=unit, unit_scale=total is None, file=sys.stderr) as bar:

        def advance(done: int) -> None:
            bar.update(done)

        yield advance


@contextlib.contextmanager
def reading_bar(total_bytes: int | None) -> Iterator[Callable[[int, int], None] | None]:
    """A tqdm bar of the bytes read out of ``total_bytes`` (so a share and an ETA, which a
    row count cannot give: a CSV's rows are not known before it is read), with the rows
    read beside it; ``advance(rows, bytes)`` after each block. Silent as ``progress_bar``,
    and without a total (data read in memory, or on a cluster)."""
    bar_type = _terminal_tqdm(total_bytes is not None)
    if bar_type is None:
        yield None
        return
    # drawn at the first block read: a command refused before (a missing column) shows
    # its one line of error, not an empty bar above it
    bars: list[Any] = []
    rows = 0

    def advance(done_rows: int, done_bytes: int) -> None:
        nonlocal rows
        if not bars:
            bars.append(
                bar_type(total=total_bytes, unit="B", unit_scale=True, unit_divisor=1024,
                     file=sys.stderr)
            )  # fmt: skip
        rows += done_rows
        bars[0].set_postfix_str(f"{rows:,} rows", refresh=False)
        bars[0].update(done_bytes)

    try:
        yield advance
    finally:
        if bars:
            bars[0].close()


def _terminal_tqdm(enabled: bool) -> "type[tqdm.std.tqdm[Any]] | None":
    """tqdm's bar class when a bar may be drawn (asked for, standard error a terminal, not
    ``-q``, tqdm installed); None otherwise. The one rule both bars follow."""
    if not (enabled and sys.stderr.isatty()) or _mode[0] == "quiet":
        return None
    try:
        from tqdm import tqdm as bar_type
    except ImportError:
        return None
    return bar_type


# --------------------------------------------------------------------------- --json objects
# Each takes what a stage returned, as its prose function does, and returns plain data.


def training_facts(models_dir: Path, result: "TrainResult") -> dict[str, Any]:
    return {
        "version": result.version.number,
        "models_dir": models_dir,
        "engine": result.engine,
        "target": result.model.target_name,
        "features": list(result.model.feature_names),
        "n_train": result.n_train,
        "n_test": result.n_test,
        "metrics": dict(result.metrics),
    }


def quantization_facts(models_dir: Path, result: "QuantizeResult") -> dict[str, Any]:
    quantized, integer = result.quantized, result.integer
    return {
        "version": result.version.number,
        "models_dir": models_dir,
        "note": result.note,
        "quantized": {
            "label": quantized.label,
            "dtype": quantized.dtype,
            "rounding": quantized.rounding,
            "scale": quantized.scale,
            "zero_point": quantized.zero_point,
            "weights": quantized.weights,
            "bias": quantized.bias,
            "test": dict(result.figures),
        },
        "integer": {
            "label": integer.label,
            "weight_dtype": integer.weight_dtype,
            "input_bits": integer.input_bits,
            "calibration": integer.calibration,
            "test": dict(result.integer_figures),
        },
    }


def evaluation_facts(models: "Models", result: "Evaluation") -> dict[str, Any]:
    from linreg_ops import report

    rows = report.comparison_rows(models, result)
    return {
        "version": models.version.number,
        "source": result.source,
        "n_rows": result.n_rows,
        "models": {
            kind: {
                "label": row.label,
                **row.figures,
                "artifact": row.artifact_name,
                "artifact_bytes": row.artifact_bytes,
                "parameter_bytes": row.parameter_bytes,
            }
            for kind, row in zip(result.figures, rows, strict=True)
        },
    }


def run_facts(models_dir: Path, result: "RunResult") -> dict[str, Any]:
    return {
        "version": result.train.version.number,
        "train": training_facts(models_dir, result.train),
        "quantize": quantization_facts(models_dir, result.quantize),
        "evaluation": evaluation_facts(result.models, result.evaluation),
        "reports": result.reports,
        "unwritten": result.unwritten,
    }


def sweep_facts(result: "SweepResult") -> dict[str, Any]:
    return {
        "source": result.source,
        "n_rows": result.n_rows,
        "rows": result.rows,
        "reports": result.reports,
    }


def labelled_facts(
    kind: ModelKind,
    version: int,
    source: str,
    predictions: np.ndarray,
    clipped_rows: np.ndarray,
    metrics: dict[str, float],
) -> dict[str, Any]:
    return {
        "model": kind,
        "version": version,
        "source": source,
        "rows": int(predictions.size),
        "metrics": dict(metrics),
        "clipped_rows": int(np.count_nonzero(clipped_rows)),
        "first_predictions": predictions[:FIRST_ROWS],
    }


def file_facts(
    done: "FilePrediction", kind: ModelKind, version: int, output: Path
) -> dict[str, Any]:
    return {
        "model": kind,
        "version": version,
        "output": output,
        "rows": done.rows,
        "clipped_rows": done.clipped_rows,
        "first_clipped": done.first_clipped,
    }


def export_facts(result: "ExportResult") -> dict[str, Any]:
    return {
        "version": result.version.number,
        "model": result.kind,
        "format": result.format,
        "path": result.path,
        "bytes": result.bytes,
        "sha256": result.sha256,
    }


def _join(values: np.ndarray) -> str:
    return ", ".join(f"{value:.8g}" for value in np.asarray(values).tolist())
