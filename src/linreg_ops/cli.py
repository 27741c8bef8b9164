"""``linreg-ops``: parse the command line, call one stage function, print what it returned.

Exit codes: 0 success, 2 bad input or usage (one line on stderr, no traceback), 3 a
quantized model missed the quality gate (nothing written), 1 anything unexpected (with the
traceback, because that is a bug worth reporting). Every default comes from
``linreg_ops.config``.
"""

import argparse
import contextlib
import math
import os
import shlex
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import numpy as np

from linreg_ops import __version__
from linreg_ops.config import (
    CALIBRATIONS,
    DEFAULT_LOCK_TIMEOUT,
    DEFAULT_MODELS_DIR,
    DEFAULT_REPORTS_DIR,
    ENGINES,
    GRANULARITIES,
    INPUT_BITS,
    LOG_LEVELS,
    MODEL_KINDS,
    MODELS_DIR_ENV,
    PREDICT_ENGINES,
    ROUNDINGS,
    SERVE_DEFAULTS,
    GateConfig,
    IntegerConfig,
    ModelKind,
    QuantConfig,
    TrainConfig,
    models_dir_default,
)
from linreg_ops.errors import InputError, QualityGateError
from linreg_ops.exports.onnx import INPUT_TYPES as ONNX_INPUT_TYPES

if TYPE_CHECKING:
    from linreg_ops.pipeline import QuantizeResult, TrainResult
    from linreg_ops.training.sources import Source

EXIT_OK, EXIT_UNEXPECTED, EXIT_BAD_INPUT, EXIT_GATE = 0, 1, 2, 3
FIRST_ROWS = 10
TRAIN, QUANT, GATE = TrainConfig(), QuantConfig(), GateConfig()


# --------------------------------------------------------------------------- commands


def cmd_train(args: argparse.Namespace) -> int:
    from linreg_ops import pipeline

    source = _announce_training(args)
    result = pipeline.train(
        source, args.models_dir, _train_config(args), command=args.command_line,
        lock_timeout=args.lock_timeout,
    )  # fmt: skip
    _print_training(args.models_dir, result)
    return EXIT_OK


def cmd_quantize(args: argparse.Namespace) -> int:
    if args.sweep:
        return _sweep(args)
    from linreg_ops import pipeline

    print("Loading trained model.")
    result = pipeline.quantize(
        args.models_dir, _quant_config(args), _integer_config(args), _gate_config(args),
        command=args.command_line, lock_timeout=args.lock_timeout,
    )  # fmt: skip
    _print_quantization(args.models_dir, result)
    if args.data is not None:
        _print_evaluation(args.models_dir, args.data, args.target)
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from linreg_ops import pipeline, report

    source = _announce_training(args)
    result = pipeline.run(
        source, args.models_dir, args.reports_dir, _train_config(args), _quant_config(args),
        _integer_config(args), _gate_config(args), command=args.command_line,
        lock_timeout=args.lock_timeout,
    )  # fmt: skip
    _print_training(args.models_dir, result.train)
    print()
    print("Loading trained model.")
    _print_quantization(args.models_dir, result.quantize)
    print()
    evaluation = result.evaluation
    print(f"Evaluated on {evaluation.n_rows} rows from {evaluation.source}")
    print(report.comparison_table(report.comparison_rows(result.models, evaluation)))
    print()
    print("Report: " + ", ".join(str(path) for path in result.reports))
    for problem in result.unwritten:  # the version is published: say so, and what is missing
        print(
            f"linreg-ops run: warning: version {result.train.version.number} is published, "
            f"but {problem}",
            file=sys.stderr,
        )
    return EXIT_OK


def cmd_predict(args: argparse.Namespace) -> int:
    from linreg_ops.inference import dask_scoring, loading, predict
    from linreg_ops.inference.evaluate import labelled_rows
    from linreg_ops.metrics import regression_metrics
    from linreg_ops.storage import tables

    kind = _model_kind(args)
    models = loading.load(args.models_dir)
    if args.input is not None:
        if args.output is None:
            raise InputError("--input needs --output PATH (.csv or .parquet, or - for stdout)")
        if args.engine == "dask":
            if args.output == tables.STDOUT:
                raise InputError("--engine dask writes a Parquet dataset (a folder), not -")
            rows = dask_scoring.dask_predict(models, kind, args.input, args.output, args.scheduler)
            print(f"Wrote {rows} {kind} predictions to {args.output} (a Parquet dataset)")
            return EXIT_OK
        # the predictions may be standard output: then what is said goes to stderr
        said = sys.stderr if tables.is_stdout(args.output) else sys.stdout
        with _progress_bar("rows") as progress:
            done = predict.predict_file(
                models, kind, args.input, args.output, args.chunk_rows, progress
            )
        where = "standard output" if args.output == tables.STDOUT else args.output
        print(f"Wrote {done.rows} {kind} predictions to {where}", file=said)
        if kind == "integer":
            _print_clipped(done.rows, done.clipped_rows, done.first_clipped, said)
        return EXIT_OK
    if args.output is not None:
        raise InputError("--output needs --input PATH (the rows to predict)")
    model = models.get(kind)
    X, y, source = labelled_rows(models, args.data, args.target)
    predictions, clipped = predict.predict_rows(model, X, source=source)
    metrics = regression_metrics(y, predictions)
    print(f"Model: {kind} (version {models.version.number} of {args.models_dir})")
    print(f"Rows: {y.size} from {source}")
    print(f"R² Score: {metrics['r2']:.4f}")
    print(f"Mean Squared Error: {metrics['mse']:.4f}")
    if kind == "integer":
        clipped_rows = np.flatnonzero(clipped) + 1
        _print_clipped(clipped.size, clipped_rows.size, clipped_rows[:FIRST_ROWS].tolist())
    print(f"First {min(FIRST_ROWS, y.size)} predictions:")
    for true, predicted in zip(y[:FIRST_ROWS], predictions[:FIRST_ROWS], strict=True):
        print(f"True: {true:.4f} | Predicted: {predicted:.4f} | Diff: {abs(true - predicted):.4f}")
    return EXIT_OK


def cmd_evaluate(args: argparse.Namespace) -> int:
    _print_evaluation(args.models_dir, args.data, args.target)
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from linreg_ops import pipeline

    result = pipeline.export(
        args.models_dir, args.format, args.model, args.output, command=args.command_line,
        lock_timeout=args.lock_timeout, onnx_input=args.onnx_input,
    )  # fmt: skip
    print(
        f"Exported the {result.kind} model of version {result.version.number} as {result.format} "
        f"to {result.path} ({result.bytes:,} bytes, sha256 {result.sha256})"
    )
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    """Check the version, bind the port (errors are exit 2), then hand over to uvicorn."""
    from linreg_ops.extras import require
    from linreg_ops.inference import loading

    require("fastapi", "serve", "linreg-ops serve")
    require("uvicorn", "serve", "linreg-ops serve")
    from linreg_ops.inference import serve

    settings = serve.serve_settings(
        models_dir=args.models_dir, host=args.host, port=args.port, workers=args.workers,
        max_batch=args.max_batch, max_body_bytes=args.max_body_bytes, log_level=args.log_level,
        drain_seconds=args.drain_seconds,
    )  # fmt: skip
    # fail fast, with a clear message, before binding
    models = loading.load(settings.models_dir, settings.model_version)
    return serve.run(models.version, settings)


# --------------------------------------------------------------------------- helpers


def _announce_training(args: argparse.Namespace) -> "Source":
    """The data source, with the seed's first three lines."""
    from linreg_ops.training import sources

    if args.data is None:
        print("Loading California Housing dataset.")
        source: Source = sources.california_source()
    else:
        source = sources.file_source(args.data, args.target, args.features)
        print(f"Loading {args.data} (target {args.target!r}).")
    engine = "" if args.engine == "auto" else f" (engine: {args.engine})"
    print(f"Creating LinearRegression model{engine}.")
    print("Training model.")
    return source


def _print_training(models_dir: Path, result: "TrainResult") -> None:
    from linreg_ops.storage import store

    print(f"R² Score: {result.metrics['r2']:.4f}")
    print(f"Mean Squared Error (Loss): {result.metrics['mse']:.4f}")
    print(f"Model saved to {models_dir / store.ESTIMATOR_JOBLIB}")
    print(
        f"Pickle-free model saved to {models_dir / store.MODEL_JSON} "
        f"(version {result.version.number})"
    )


def _print_quantization(models_dir: Path, result: "QuantizeResult") -> None:
    from linreg_ops import pipeline
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
    print(f"Quantized parameters saved to {models_dir / store.QUANT_PARAMS_JOBLIB}")
    for name in (store.QUANTIZED_MODEL_JSON, store.INTEGER_MODEL_JSON):
        print(f"Pickle-free model saved to {models_dir / name} (version {result.version.number})")
    check = pipeline.seed_check(result)
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


def _print_evaluation(models_dir: Path, data: Path | None, target: str | None) -> None:
    from linreg_ops import report
    from linreg_ops.inference import loading
    from linreg_ops.inference.evaluate import evaluate, labelled_rows

    models = loading.load(models_dir)
    X, y, source = labelled_rows(models, data, target)
    evaluation = evaluate(models, X, y, source)
    print(f"Evaluated version {models.version.number} on {evaluation.n_rows} rows from {source}")
    print(report.comparison_table(report.comparison_rows(models, evaluation)))


def _sweep(args: argparse.Namespace) -> int:
    from linreg_ops import pipeline

    result = pipeline.sweep(args.models_dir, args.reports_dir, args.data, args.target)
    print(f"Quantization sweep on {result.n_rows} rows from {result.source}")
    print(result.table)
    print("Report: " + ", ".join(str(path) for path in result.reports))
    return EXIT_OK


def _join(values: np.ndarray) -> str:
    return ", ".join(f"{value:.8g}" for value in np.asarray(values).tolist())


def _print_clipped(total: int, clipped: int, first: list[int], file: TextIO | None = None) -> None:
    """Which rows the integer model clipped: an input outside its codes, or an output beyond
    the output codes (their prediction is the end of the model's range, not their own)."""
    share = 100.0 * clipped / max(total, 1)
    what = "Rows clipped to the model's range (input or output)"
    print(f"{what}: {clipped} of {total} ({share:.2f}%)", file=file)
    if clipped:
        shown = ", ".join(str(row) for row in first[:FIRST_ROWS])
        more = f" and {clipped - FIRST_ROWS} more" if clipped > FIRST_ROWS else ""
        print(f"Clipped rows (1-based): {shown}{more}", file=file)


@contextlib.contextmanager
def _progress_bar(unit: str) -> Iterator[Callable[[int], None] | None]:
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


def _model_kind(args: argparse.Namespace) -> ModelKind:
    """``--model``, with ``--integer-only`` as the alias of ``--model integer``."""
    if args.integer_only:
        if args.model not in (None, "integer"):
            raise InputError(
                f"--integer-only means --model integer; it conflicts with --model {args.model}"
            )
        return "integer"
    kind: ModelKind = args.model or "float"
    return kind


def _check_labelled(args: argparse.Namespace) -> None:
    """``--target`` and ``--features`` describe the ``--data`` file: alone they mean nothing,
    and silently ignoring them would hide a forgotten ``--data``."""
    if getattr(args, "data", None) is not None:
        return
    given = [
        flag
        for flag, name in (("--target", "target"), ("--features", "features"))
        if getattr(args, name, None) is not None
    ]
    if given:
        raise InputError(f"{' and '.join(given)} need{'s' if len(given) == 1 else ''} --data PATH")


def _train_config(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        args.test_size, args.random_state, args.engine, args.chunk_rows, args.scheduler
    )


def _quant_config(args: argparse.Namespace) -> QuantConfig:
    return QuantConfig(args.dtype, args.granularity, args.rounding)


def _integer_config(args: argparse.Namespace) -> IntegerConfig:
    return IntegerConfig(args.input_dtype, args.calibration)


def _gate_config(args: argparse.Namespace) -> GateConfig:
    return GateConfig(args.max_r2_drop, args.max_abs_diff)


# --------------------------------------------------------------------------- argument types


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be ≥ 1, got {text}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be from 0 (any free port) to 65535, got {text}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be ≥ 0 seconds, got {text}")
    return value


def _feature_list(text: str) -> list[str]:
    """Column names between commas, taken exactly as written: a column may be named
    " HouseAge " (spaces are part of a CSV header's names)."""
    names = text.split(",")
    if any(name == "" for name in names):
        raise argparse.ArgumentTypeError(f"an empty column name in {text!r}")
    return names


def _test_size(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _limit(text: str) -> float | None:
    """A non-negative limit; ``none`` switches the check off."""
    if text.lower() == "none":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'none', got {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number ≥ 0 or 'none', got {text}")
    return value


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--models-dir",
        type=Path,
        default=models_dir_default(),
        help=f"models folder (default: ${MODELS_DIR_ENV}, else {DEFAULT_MODELS_DIR})",
    )
    writing = argparse.ArgumentParser(add_help=False)
    writing.add_argument(
        "--lock-timeout",
        type=_seconds,
        default=DEFAULT_LOCK_TIMEOUT,
        help=f"seconds to wait for another writer (default {DEFAULT_LOCK_TIMEOUT:g})",
    )
    labelled = argparse.ArgumentParser(add_help=False)
    labelled.add_argument("--data", help="a CSV or Parquet file, a folder or a glob of them")
    labelled.add_argument("--target", help="the column holding the value to predict")
    training = argparse.ArgumentParser(add_help=False)
    training.add_argument(
        "--features",
        type=_feature_list,
        help="comma-separated feature columns (default: every other column)",
    )
    training.add_argument(
        "--test-size", type=_test_size, default=TRAIN.test_size, help=f"default: {TRAIN.test_size}"
    )
    training.add_argument(
        "--random-state",
        type=int,
        default=TRAIN.random_state,
        help=f"default: {TRAIN.random_state}",
    )
    training.add_argument(
        "--engine",
        choices=ENGINES,
        default=TRAIN.engine,
        help="auto: scikit-learn in memory under 1M rows, streaming above it and for files",
    )
    quantizing = argparse.ArgumentParser(add_help=False)
    quantizing.add_argument(
        "--dtype",
        default=QUANT.dtype,
        help=f"weights: intN symmetric or uintN asymmetric, N in 2..16 (default: {QUANT.dtype})",
    )
    quantizing.add_argument("--granularity", choices=GRANULARITIES, default=QUANT.granularity)
    quantizing.add_argument(
        "--rounding",
        choices=ROUNDINGS,
        default=QUANT.rounding,
        help="nearest, hessian (GPTQ-style, default) or optimal (exact, up to 32 features)",
    )
    quantizing.add_argument(
        "--input-dtype",
        choices=tuple(INPUT_BITS),
        default=IntegerConfig().input_dtype,
        help="integer-only inputs (default: int16)",
    )
    quantizing.add_argument(
        "--calibration",
        choices=CALIBRATIONS,
        default=IntegerConfig().calibration,
        help="integer-only input ranges: training min/max or 0.1%%/99.9%% quantiles",
    )
    quantizing.add_argument(
        "--max-r2-drop",
        type=_limit,
        default=GATE.max_r2_drop,
        help="gate for every quantized model: exit 3 if R² falls more (default 0.001; 'none')",
    )
    quantizing.add_argument(
        "--max-abs-diff",
        type=_limit,
        default=GATE.max_abs_diff,
        help="gate for every quantized model: exit 3 if a prediction moves more (default: none)",
    )
    scaling = argparse.ArgumentParser(add_help=False)
    scaling.add_argument(
        "--chunk-rows",
        type=_positive,
        default=TRAIN.chunk_rows,
        help=f"rows per block (default {TRAIN.chunk_rows})",
    )
    scaling.add_argument(
        "--scheduler",
        help="tcp://HOST:PORT of a dask.distributed scheduler (default: a local 2-worker cluster)",
    )
    reporting = argparse.ArgumentParser(add_help=False)
    reporting.add_argument(
        "--reports-dir",
        type=Path,
        default=DEFAULT_REPORTS_DIR,
        help=f"default: {DEFAULT_REPORTS_DIR}",
    )

    parser = argparse.ArgumentParser(
        prog="linreg-ops",
        description="Train, quantize, evaluate, predict and serve a linear regression model.",
        epilog="Exit codes: 0 ok, 1 a bug, 2 bad input or usage, 3 quality gate failed.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub = commands.add_parser(
        "train",
        parents=[common, writing, labelled, training, scaling],
        help="fit on California Housing (default) or --data/--target; publish a version",
    )
    sub.set_defaults(handler=cmd_train)
    sub = commands.add_parser(
        "quantize",
        parents=[common, writing, labelled, quantizing, reporting],
        help="quantize the current model (gated) into a new version; --sweep compares schemes",
    )
    sub.add_argument(
        "--sweep",
        action="store_true",
        help="compare bits 2–16 × rounding × granularity; write reports/quantization.{md,png}",
    )
    sub.set_defaults(handler=cmd_quantize)
    sub = commands.add_parser(
        "predict",
        parents=[common, labelled, scaling],
        help="predict --input rows to --output, or score the stored test split",
    )
    sub.add_argument("--input", help="rows to predict: a .csv/.parquet file, folder or glob")
    sub.add_argument(
        "--output",
        type=Path,
        help="where to write predictions: .csv or .parquet, or - for CSV on standard output",
    )
    sub.add_argument(
        "--model",
        choices=MODEL_KINDS,
        help="float (default), quantized (int weights) or integer (integer-only inference)",
    )
    sub.add_argument(
        "--integer-only",
        action="store_true",
        help="the same as --model integer: quantized inputs, integer accumulation and output",
    )
    sub.add_argument(
        "--engine",
        choices=PREDICT_ENGINES,
        default="streaming",
        help="--input scoring: blocks in this process, or partitions on a Dask cluster",
    )
    sub.set_defaults(handler=cmd_predict)
    sub = commands.add_parser(
        "evaluate",
        parents=[common, labelled],
        help="float vs quantized vs integer-only on the stored test split or --data/--target",
    )
    sub.set_defaults(handler=cmd_evaluate)
    sub = commands.add_parser(
        "run",
        parents=[common, writing, labelled, training, scaling, quantizing, reporting],
        help="train → quantize → evaluate → publish one version → reports/",
    )
    sub.set_defaults(handler=cmd_run)
    sub = commands.add_parser(
        "export",
        parents=[common, writing],
        help="write the model as ONNX, a C99 header or an MLflow model; record its SHA-256",
    )
    sub.add_argument("--format", required=True, choices=("onnx", "c", "mlflow"))
    sub.add_argument("--model", choices=MODEL_KINDS, default="float")
    sub.add_argument(
        "--output", required=True, type=Path, help="a file (onnx, c) or a new folder (mlflow)"
    )
    sub.add_argument(
        "--onnx-input",
        choices=ONNX_INPUT_TYPES,
        default=None,
        help=f"the ONNX graph's input type (default {ONNX_INPUT_TYPES[0]}, predict's numbers; "
        "float32 rounds the inputs first)",
    )
    sub.set_defaults(handler=cmd_export)
    sub = commands.add_parser(
        "serve",
        parents=[common],
        help="serve /predict, /invocations (MLflow protocol), /health, /ready, /metadata",
    )
    serving = SERVE_DEFAULTS  # each default below can also come from LINREG_OPS_<FLAG>
    sub.add_argument("--host", help=f"address to listen on (default: {serving.host})")
    sub.add_argument("--port", type=_port, help=f"default: {serving.port}; 0: any free port")
    sub.add_argument("--workers", type=_positive, help=f"processes (default: {serving.workers})")
    sub.add_argument(
        "--max-batch", type=_positive, help=f"rows per request (default: {serving.max_batch})"
    )
    sub.add_argument(
        "--max-body-bytes",
        type=_positive,
        help=f"bytes per request body (default: {serving.max_body_bytes})",
    )
    sub.add_argument("--log-level", choices=LOG_LEVELS, help=f"default: {serving.log_level}")
    sub.add_argument(
        "--drain-seconds",
        type=_seconds,
        help="after SIGTERM, keep serving until requests stop, at most this long "
        f"(default: {serving.drain_seconds:g})",
    )
    sub.set_defaults(handler=cmd_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``linreg-ops`` console script."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(arguments)
    args.command_line = shlex.join(["linreg-ops", *arguments])
    try:
        _check_labelled(args)
        status: int = args.handler(args)
        return status
    except QualityGateError as exc:
        print(f"linreg-ops {args.command}: {exc}", file=sys.stderr)
        return EXIT_GATE
    except InputError as exc:
        print(f"linreg-ops {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly, as Unix tools do.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - stdout must stay open until exit
        return EXIT_OK
    except Exception:
        traceback.print_exc()
        print(
            f"linreg-ops {args.command}: unexpected error (a bug; please report it)",
            file=sys.stderr,
        )
        return EXIT_UNEXPECTED
