"""``linreg-ops``: a thin argparse layer that parses, calls the stage functions, and prints.

Exit codes: 0 success, 2 bad input or usage (one line on stderr, no traceback), 3 the
quantization quality gate failed (nothing written), 1 anything unexpected (with the
traceback, because that is a bug worth reporting).
"""

import argparse
import contextlib
import math
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from linreg_ops import artifacts
from linreg_ops.errors import InputError
from linreg_ops.model import LinearModel, QuantizedLinearModel

if TYPE_CHECKING:
    from linreg_ops.quantize import Gate, IntegerConfig, QuantConfig

EXIT_OK, EXIT_UNEXPECTED, EXIT_BAD_INPUT, EXIT_GATE = 0, 1, 2, 3
FIRST_ROWS = 10
SHOWN_CLIPPED_ROWS = 10


# --------------------------------------------------------------------------- train


def cmd_train(args: argparse.Namespace) -> int:
    from linreg_ops import train

    if args.data is None:
        print("Loading California Housing dataset.")
    else:
        print(f"Loading {args.data} (target {args.target!r}).")
    engine = "" if args.engine == "auto" else f" (engine: {args.engine})"
    print(f"Creating LinearRegression model{engine}.")
    print("Training model.")
    if args.data is None:
        if args.target is not None or args.features is not None:
            raise InputError("--target and --features need --data PATH")
        from linreg_ops.data import load_california_housing, validate

        dataset = load_california_housing()
        validate(dataset)
        result = train.train(
            dataset, args.models_dir, args.test_size, args.random_state,
            args.engine, args.chunk_rows, args.scheduler,
        )  # fmt: skip
    else:
        if not args.target:
            raise InputError("--data needs --target COLUMN (the column to predict)")
        result = train.train_files(
            args.data, args.target, args.features, args.models_dir, args.test_size,
            args.random_state, args.engine, args.chunk_rows, args.scheduler,
        )  # fmt: skip
    print(f"R² Score: {result.metrics['r2']:.4f}")
    print(f"Mean Squared Error (Loss): {result.metrics['mse']:.4f}")
    print(f"Model saved to {args.models_dir / artifacts.ESTIMATOR_JOBLIB}")
    print(f"Pickle-free model saved to {args.models_dir / artifacts.MODEL_JSON}")
    return EXIT_OK


# --------------------------------------------------------------------------- quantize


def _quant_config(args: argparse.Namespace) -> "tuple[QuantConfig, IntegerConfig, Gate]":
    from linreg_ops.quantize import Gate, IntegerConfig, QuantConfig

    return (
        QuantConfig(args.dtype, args.granularity, args.rounding),
        IntegerConfig(args.input_dtype, args.calibration),
        Gate(args.max_r2_drop, args.max_abs_diff),
    )


def cmd_quantize(args: argparse.Namespace) -> int:
    if args.sweep:
        return _sweep(args)
    from linreg_ops.quantize import quantize, rounding_note

    config, integer, gate = _quant_config(args)
    print("Loading trained model.")
    result = quantize(args.models_dir, config, integer, gate)
    model, quantized = result.model, result.quantized
    note = rounding_note(config, model.n_features)
    if note:
        print(f"Note: {note}")
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
    coef, intercept = quantized.to_raw_space()
    print(f"Quantized parameters saved to {args.models_dir / artifacts.QUANT_PARAMS_JOBLIB}")
    for name in (artifacts.QUANTIZED_MODEL_JSON, artifacts.INTEGER_MODEL_JSON):
        print(f"Pickle-free model saved to {args.models_dir / name}")
    print(f"Max coefficient error: {np.max(np.abs(coef - model.coef)):.8f}")
    print(f"Intercept error: {abs(intercept - model.intercept):.8f}")
    _print_sample_comparison(args.models_dir, model, quantized)
    figures, integer_figures = result.metrics, result.integer_metrics
    print(
        f"Test split, {quantized.dtype} {quantized.granularity} {quantized.rounding}: "
        f"R² {figures['r2']:.4f} (ΔR² {figures['delta_r2']:+.6f}), "
        f"max |Δŷ| {figures['max_abs_diff']:.6f}, mean |Δŷ| {figures['mean_abs_diff']:.6f}"
    )
    print(
        f"Test split, integer-only ({result.integer.weight_dtype} weights, "
        f"{integer.input_dtype} inputs, {integer.calibration} calibration): "
        f"R² {integer_figures['r2']:.4f} (ΔR² {integer_figures['delta_r2']:+.6f}), "
        f"mean |Δŷ| {integer_figures['mean_abs_diff']:.6f} "
        f"({integer_figures['mean_abs_diff_inside']:.6f} on rows inside the calibrated range), "
        f"{integer_figures['clipped_rows']} rows clipped"
    )
    if args.data is not None:
        _print_evaluation(args.models_dir, args.data, args.target)
    return EXIT_OK


def _join(values: np.ndarray) -> str:
    return ", ".join(f"{value:.8g}" for value in np.asarray(values).tolist())


def _print_sample_comparison(
    models_dir: Path, model: LinearModel, quantized: QuantizedLinearModel
) -> None:
    """The seed's 10-row check: sklearn vs manual float vs manual dequantized predictions."""
    estimator = artifacts.load_joblib_artifact(models_dir, artifacts.ESTIMATOR_JOBLIB)
    rows = artifacts.load_test_split(models_dir).values[:FIRST_ROWS, :-1]
    sklearn_pred = estimator.predict(rows)
    manual_pred = rows @ model.coef + model.intercept
    coef, intercept = quantized.to_raw_space()
    dequant_pred = rows @ coef + intercept
    original_vs_dequant = np.abs(manual_pred - dequant_pred)
    print(f"Inference Test (the first {len(rows)} samples):")
    print(f"Original predictions (sklearn): {sklearn_pred}")
    print(f"Manual original predictions:    {manual_pred}")
    print(f"Manual dequant predictions:     {dequant_pred}")
    print("Differences:")
    print(f"Sklearn vs manual original: {np.abs(sklearn_pred - manual_pred)}")
    print(f"Original vs dequant manual:  {original_vs_dequant}")
    print(f"Max difference: {original_vs_dequant.max()}")
    print(f"Mean difference: {original_vs_dequant.mean()}")


def _sweep(args: argparse.Namespace) -> int:
    from linreg_ops import predict, quantize, report

    model = artifacts.load_model(args.models_dir)
    X, y, source = predict.load_labelled(args.models_dir, args.data, args.target)
    rows = quantize.sweep(model, X, y)
    table = report.sweep_table(rows)
    print(f"Quantization sweep on {y.size} rows from {source}")
    print(table)
    paths = report.write_sweep_report(args.reports_dir, table, source, model, X, y, rows)
    print("Report: " + ", ".join(str(path) for path in paths))
    return EXIT_OK


# --------------------------------------------------------------------------- predict/evaluate


def cmd_predict(args: argparse.Namespace) -> int:
    from linreg_ops import predict
    from linreg_ops.metrics import regression_metrics

    kind = "integer" if args.integer_only else args.model
    if args.input is not None:
        if args.output is None:
            raise InputError("--input needs --output PATH (.csv or .parquet)")
        if args.engine == "dask":
            from linreg_ops.engines import dask_predict

            rows = dask_predict(args.models_dir, args.input, args.output, kind, args.scheduler)
            print(f"Wrote {rows} {kind} predictions to {args.output} (a Parquet dataset)")
            return EXIT_OK
        with _progress_bar("rows") as progress:
            done = predict.predict_file(
                args.models_dir, args.input, args.output, kind, args.chunk_rows, progress
            )
        print(f"Wrote {done.rows} {kind} predictions to {args.output}")
        if kind == "integer":
            _print_clipped_rows(done.rows, done.clipped_rows, done.first_clipped)
        return EXIT_OK
    if args.output is not None:
        raise InputError("--output needs --input PATH (the rows to predict)")
    model = predict.load_predictor(args.models_dir, kind)
    X, y, source = predict.load_labelled(args.models_dir, args.data, args.target)
    predictions, clipped = predict.predict_rows(model, X)
    metrics = regression_metrics(y, predictions)
    print(f"Model: {kind} ({args.models_dir})")
    print(f"Rows: {y.size} from {source}")
    print(f"R² Score: {metrics['r2']:.4f}")
    print(f"Mean Squared Error: {metrics['mse']:.4f}")
    if kind == "integer":
        _print_clipped(clipped)
    print(f"First {min(FIRST_ROWS, y.size)} predictions:")
    for true, predicted in zip(y[:FIRST_ROWS], predictions[:FIRST_ROWS], strict=True):
        print(f"True: {true:.4f} | Predicted: {predicted:.4f} | Diff: {abs(true - predicted):.4f}")
    return EXIT_OK


def _print_clipped(clipped: np.ndarray) -> None:
    """Which rows had an input outside the calibrated range (their prediction is less exact)."""
    rows = np.flatnonzero(clipped) + 1
    _print_clipped_rows(clipped.size, rows.size, rows[:SHOWN_CLIPPED_ROWS].tolist())


def _print_clipped_rows(total: int, clipped: int, first: list[int]) -> None:
    share = 100.0 * clipped / max(total, 1)
    print(f"Rows with inputs clipped to the calibrated range: {clipped} of {total} ({share:.2f}%)")
    if clipped:
        shown = ", ".join(str(row) for row in first[:SHOWN_CLIPPED_ROWS])
        more = f" and {clipped - SHOWN_CLIPPED_ROWS} more" if clipped > SHOWN_CLIPPED_ROWS else ""
        print(f"Clipped rows (1-based): {shown}{more}")


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
        yield bar.update


def cmd_evaluate(args: argparse.Namespace) -> int:
    _print_evaluation(args.models_dir, args.data, args.target)
    return EXIT_OK


def _print_evaluation(models_dir: Path, data: Path | None, target: str | None) -> str:
    from linreg_ops import predict

    summary = predict.evaluate(models_dir, data, target)
    table = _comparison_table(models_dir, summary)
    print(f"Evaluated on {summary['n_rows']} rows from {summary['source']}")
    print(table)
    return table


def _comparison_table(models_dir: Path, summary: dict) -> str:
    from linreg_ops import report
    from linreg_ops.quantize import float_parameter_bytes, quantized_parameter_bytes

    model = artifacts.load_model(models_dir)
    rows = [
        report.ModelRow(
            label="float64",
            figures={**summary["float"], "max_abs_diff": 0.0, "mean_abs_diff": 0.0},
            artifact_name=artifacts.MODEL_JSON,
            artifact_bytes=artifacts.artifact_size(models_dir, artifacts.MODEL_JSON),
            parameter_bytes=float_parameter_bytes(model.n_features),
        )
    ]
    if summary["quantized"] is not None:
        quantized = artifacts.load_quantized_model(models_dir)
        rows.append(
            report.ModelRow(
                label=f"{quantized.dtype} {quantized.granularity} {quantized.rounding}",
                figures=summary["quantized"],
                artifact_name=artifacts.QUANTIZED_MODEL_JSON,
                artifact_bytes=artifacts.artifact_size(models_dir, artifacts.QUANTIZED_MODEL_JSON),
                parameter_bytes=quantized_parameter_bytes(
                    quantized.n_features, quantized.bits, quantized.scale.size
                ),
            )
        )
    if summary["integer_only"] is not None:
        integer = artifacts.load_integer_model(models_dir)
        bits = int(integer.weight_dtype.removeprefix("int"))
        rows.append(
            report.ModelRow(
                label=(
                    f"integer-only {integer.weight_dtype}×int{integer.input_bits} "
                    f"{integer.calibration}"
                ),
                figures=summary["integer_only"],
                artifact_name=artifacts.INTEGER_MODEL_JSON,
                artifact_bytes=artifacts.artifact_size(models_dir, artifacts.INTEGER_MODEL_JSON),
                parameter_bytes=quantized_parameter_bytes(integer.n_features, bits),
            )
        )
    return report.comparison_table(rows)


# --------------------------------------------------------------------------- run


def cmd_run(args: argparse.Namespace) -> int:
    from linreg_ops import predict, report

    cmd_train(args)
    print()
    # In ``run``, --data/--target name the training data, not extra rows to score.
    cmd_quantize(argparse.Namespace(**{**vars(args), "data": None, "target": None, "sweep": False}))
    print()
    table = _print_evaluation(args.models_dir, None, None)
    model = artifacts.load_model(args.models_dir)
    quantized = artifacts.load_quantized_model(args.models_dir)
    X, y, _ = predict.load_labelled(args.models_dir)
    manifest = artifacts.load_manifest(args.models_dir)
    context = [
        f"training data: {manifest['training_data']['source']} "
        f"(sha256 {manifest['training_data']['sha256'][:16]}…)",
        f"split: test_size={args.test_size}, random_state={args.random_state}, "
        f"{manifest['split']['n_train']} train / {manifest['split']['n_test']} test rows",
        f"features: {', '.join(model.feature_names)}; target: {model.target_name}",
        f"quantization: {quantized.dtype}, {quantized.granularity}, {quantized.rounding} "
        f"rounding, scale {_join(quantized.scale)}, zero point {_join(quantized.zero_point)}",
    ]
    paths = report.write_report(
        args.reports_dir, table, context, y, model.predict(X), quantized.predict(X), quantized.dtype
    )
    print()
    print("Report: " + ", ".join(str(path) for path in paths))
    return EXIT_OK


# --------------------------------------------------------------------------- serve


def cmd_serve(args: argparse.Namespace) -> int:
    """Check the artifacts, then hand over to uvicorn (which re-creates the app per worker)."""
    try:
        import uvicorn

        from linreg_ops import serve
    except ImportError as exc:
        raise InputError(
            f"serving needs the serve extra: pip install 'linreg-ops[serve]' ({exc})"
        ) from exc
    serve.load_served(args.models_dir)  # fail fast, with a clear message, before binding
    settings = {
        "LINREG_OPS_MODELS_DIR": str(args.models_dir.resolve()),
        "LINREG_OPS_MAX_BATCH": str(args.max_batch),
        "LINREG_OPS_MAX_BODY_BYTES": str(args.max_body_bytes),
    }
    os.environ.update(settings)  # workers read their settings from the environment
    print(f"Serving {args.models_dir} on http://{args.host}:{args.port} ({args.workers} worker(s))")
    uvicorn.run(
        "linreg_ops.serve:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        access_log=False,
    )
    return EXIT_OK


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be ≥ 1, got {text}")
    return value


# --------------------------------------------------------------------------- parser


def _feature_list(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _test_size(text: str) -> float:
    value = float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _limit(text: str) -> float | None:
    """A non-negative limit; ``none`` switches the check off."""
    if text.lower() == "none":
        return None
    value = float(text)
    if math.isnan(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a number ≥ 0 or 'none', got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from linreg_ops.quantize import CALIBRATIONS, GRANULARITIES, INPUT_DTYPES, ROUNDINGS

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--models-dir", type=Path, default=Path("models"), help="artifact folder (default: models)"
    )
    labelled = argparse.ArgumentParser(add_help=False)
    labelled.add_argument("--data", type=Path, help="a CSV or Parquet file")
    labelled.add_argument("--target", help="the column holding the value to predict")
    training = argparse.ArgumentParser(add_help=False)
    training.add_argument(
        "--features",
        type=_feature_list,
        help="comma-separated feature columns (default: all others)",
    )
    training.add_argument("--test-size", type=_test_size, default=0.2, help="default: 0.2")
    training.add_argument("--random-state", type=int, default=42, help="default: 42")
    training.add_argument(
        "--engine",
        choices=("auto", "sklearn", "streaming", "dask"),
        default="auto",
        help="auto: scikit-learn in memory under 1M rows, streaming above it and for files",
    )
    quantizing = argparse.ArgumentParser(add_help=False)
    quantizing.add_argument(
        "--dtype",
        default="int8",
        help="weights: intN symmetric or uintN asymmetric, N in 2..16 (default: int8)",
    )
    quantizing.add_argument("--granularity", choices=GRANULARITIES, default="per-tensor")
    quantizing.add_argument(
        "--rounding",
        choices=ROUNDINGS,
        default="hessian",
        help="nearest, hessian (GPTQ-style, default) or optimal (exact, up to 32 features)",
    )
    quantizing.add_argument(
        "--input-dtype",
        choices=tuple(INPUT_DTYPES),
        default="int16",
        help="integer-only inputs (default: int16)",
    )
    quantizing.add_argument(
        "--calibration",
        choices=CALIBRATIONS,
        default="minmax",
        help="integer-only input ranges: training min/max or 0.1%%/99.9%% quantiles",
    )
    quantizing.add_argument(
        "--max-r2-drop",
        type=_limit,
        default=0.001,
        help="quality gate on the test split: exit 3 if R² falls more (default 0.001; 'none')",
    )
    quantizing.add_argument(
        "--max-abs-diff",
        type=_limit,
        default=None,
        help="quality gate: exit 3 if a prediction moves more (default: none)",
    )
    scaling = argparse.ArgumentParser(add_help=False)
    scaling.add_argument(
        "--chunk-rows", type=_positive, default=131_072, help="rows per block (default 131072)"
    )
    scaling.add_argument(
        "--scheduler",
        help="tcp://HOST:PORT of a dask.distributed scheduler (default: LocalCluster)",
    )
    reporting = argparse.ArgumentParser(add_help=False)
    reporting.add_argument(
        "--reports-dir", type=Path, default=Path("reports"), help="default: reports"
    )

    parser = argparse.ArgumentParser(
        prog="linreg-ops",
        description="Train, quantize, evaluate and predict with a linear regression model.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub = commands.add_parser(
        "train",
        parents=[common, labelled, training, scaling],
        help="fit on California Housing (default) or --data/--target; write artifacts",
    )
    sub.set_defaults(handler=cmd_train)
    sub = commands.add_parser(
        "quantize",
        parents=[common, labelled, quantizing, reporting],
        help="quantize the trained model (gated); --sweep compares every scheme",
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
    sub.add_argument("--input", type=Path, help="rows to predict (.csv or .parquet)")
    sub.add_argument("--output", type=Path, help="where to write predictions (.csv or .parquet)")
    sub.add_argument("--model", choices=("float", "quantized"), default="float")
    sub.add_argument(
        "--integer-only",
        action="store_true",
        help="integer-only inference: quantized inputs, integer accumulation and output",
    )
    sub.add_argument(
        "--engine",
        choices=("streaming", "dask"),
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
        parents=[common, labelled, training, scaling, quantizing, reporting],
        help="train → quantize → evaluate → reports/report.md and plots",
    )
    sub.set_defaults(handler=cmd_run)
    sub = commands.add_parser(
        "serve",
        parents=[common],
        help="serve /predict, /invocations (MLflow protocol), /health, /ready, /metadata",
    )
    sub.add_argument("--host", default="127.0.0.1", help="default: 127.0.0.1")
    sub.add_argument("--port", type=_positive, default=8000, help="default: 8000")
    sub.add_argument("--workers", type=_positive, default=1, help="default: 1")
    sub.add_argument("--max-batch", type=_positive, default=10_000, help="rows (default 10000)")
    sub.add_argument(
        "--max-body-bytes", type=_positive, default=8 * 1024 * 1024, help="default: 8 MiB"
    )
    sub.add_argument(
        "--log-level", choices=("critical", "error", "warning", "info", "debug"), default="info"
    )
    sub.set_defaults(handler=cmd_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``linreg-ops`` console script."""
    from linreg_ops.quantize import QualityGateError

    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
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
