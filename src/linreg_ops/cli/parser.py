"""The command line's grammar: every command, flag, default and argument type.

Every default comes from ``linreg_ops.config``; each command's handler is in
``commands``.
"""

import argparse
import math
from pathlib import Path

from linreg_ops._version import __version__
from linreg_ops.cli import commands, lifecycle
from linreg_ops.config import (
    CALIBRATIONS,
    DEFAULT_LOCK_TIMEOUT,
    DEFAULT_MODELS_DIR,
    DEFAULT_REPORTS_DIR,
    ENGINES,
    EXPORT_FORMATS,
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
    QuantConfig,
    TrainConfig,
    models_dir_default,
)
from linreg_ops.errors import InputError
from linreg_ops.exports.onnx import INPUT_TYPES as ONNX_INPUT_TYPES

__all__ = ["build_parser", "check_labelled"]

_TRAIN, _QUANT, _GATE = TrainConfig(), QuantConfig(), GateConfig()


def check_labelled(args: argparse.Namespace) -> None:
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
        "--test-size",
        type=_test_size,
        default=_TRAIN.test_size,
        help=f"default: {_TRAIN.test_size}",
    )
    training.add_argument(
        "--random-state",
        type=int,
        default=_TRAIN.random_state,
        help=f"default: {_TRAIN.random_state}",
    )
    training.add_argument(
        "--engine",
        choices=ENGINES,
        default=_TRAIN.engine,
        help="auto: scikit-learn in memory under 1M rows, streaming above it and for files",
    )
    quantizing = argparse.ArgumentParser(add_help=False)
    quantizing.add_argument(
        "--dtype",
        default=_QUANT.dtype,
        help=f"weights: intN symmetric or uintN asymmetric, N in 2..16 (default: {_QUANT.dtype})",
    )
    quantizing.add_argument("--granularity", choices=GRANULARITIES, default=_QUANT.granularity)
    quantizing.add_argument(
        "--rounding",
        choices=ROUNDINGS,
        default=_QUANT.rounding,
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
        default=_GATE.max_r2_drop,
        help="gate for every quantized model: exit 3 if R² falls more (default 0.001; 'none')",
    )
    quantizing.add_argument(
        "--max-abs-diff",
        type=_limit,
        default=_GATE.max_abs_diff,
        help="gate for every quantized model: exit 3 if a prediction moves more (default: none)",
    )
    scaling = argparse.ArgumentParser(add_help=False)
    scaling.add_argument(
        "--chunk-rows",
        type=_positive,
        default=_TRAIN.chunk_rows,
        help=f"rows per block (default {_TRAIN.chunk_rows})",
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

    selecting = lifecycle.selecting()  # --version N | --alias NAME

    parser = argparse.ArgumentParser(
        prog="linreg-ops",
        description="Train, quantize, evaluate, predict and serve a linear regression model.",
        epilog="Exit codes: 0 ok, 1 a bug, 2 bad input or usage, 3 quality gate failed.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub = subcommands.add_parser(
        "train",
        parents=[common, writing, labelled, training, scaling],
        help="fit on California Housing (default) or --data/--target; publish a version",
    )
    sub.set_defaults(handler=commands.cmd_train)
    sub = subcommands.add_parser(
        "quantize",
        parents=[common, writing, labelled, quantizing, reporting],
        help="quantize the current model (gated) into a new version; --sweep compares schemes",
    )
    sub.add_argument(
        "--sweep",
        action="store_true",
        help="compare bits 2–16 × rounding × granularity; write reports/quantization.{md,png}",
    )
    sub.set_defaults(handler=commands.cmd_quantize)
    sub = subcommands.add_parser(
        "sweep",
        parents=[common, labelled, reporting],
        help="compare bits 2–16 × rounding × granularity on the current model (writes only "
        "reports/quantization.{md,png}; the same as quantize --sweep)",
    )
    sub.set_defaults(handler=commands.cmd_sweep)
    sub = subcommands.add_parser(
        "predict",
        parents=[common, labelled, scaling, selecting],
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
    sub.set_defaults(handler=commands.cmd_predict)
    sub = subcommands.add_parser(
        "evaluate",
        parents=[common, labelled, selecting],
        help="float vs quantized vs integer-only on the stored test split or --data/--target",
    )
    sub.set_defaults(handler=commands.cmd_evaluate)
    sub = subcommands.add_parser(
        "run",
        parents=[common, writing, labelled, training, scaling, quantizing, reporting],
        help="train → quantize → evaluate → publish one version → reports/",
    )
    sub.set_defaults(handler=commands.cmd_run)
    sub = subcommands.add_parser(
        "export",
        parents=[common, writing, selecting],
        help="write the model as ONNX, a C99 header or an MLflow model; record its SHA-256",
    )
    sub.add_argument("--format", required=True, choices=EXPORT_FORMATS)
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
    sub.set_defaults(handler=commands.cmd_export)
    sub = subcommands.add_parser(
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
    sub.add_argument(
        "--alias",
        help="serve the version this alias names and follow its moves (hot reload); "
        "without it, the current version at start-up, pinned",
    )
    sub.set_defaults(handler=commands.cmd_serve)
    lifecycle.add_versions(subcommands, common)
    lifecycle.add_show(subcommands, common)
    lifecycle.add_diff(subcommands, common)
    lifecycle.add_promote(subcommands, common, writing)
    lifecycle.add_rollback(subcommands, common, writing)
    lifecycle.add_history(subcommands, common)
    lifecycle.add_gc(subcommands, common, writing)
    lifecycle.add_baseline(subcommands, common)
    return parser
