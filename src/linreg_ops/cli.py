"""``linreg-ops``: a thin argparse layer that parses, calls the stage functions, and prints.

Exit codes: 0 success, 2 bad input or usage (one line on stderr, no traceback), 1 anything
unexpected (with the traceback, because that is a bug worth reporting).
"""

import argparse
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from linreg_ops import artifacts
from linreg_ops.errors import InputError
from linreg_ops.model import LinearModel, QuantizedLinearModel

EXIT_OK, EXIT_UNEXPECTED, EXIT_BAD_INPUT = 0, 1, 2
FIRST_ROWS = 10


# --------------------------------------------------------------------------- commands


def cmd_train(args: argparse.Namespace) -> int:
    from linreg_ops.data import load_dataset
    from linreg_ops.train import train

    if args.data is None:
        print("Loading California Housing dataset.")
    else:
        print(f"Loading {args.data} (target {args.target!r}).")
    dataset = load_dataset(args.data, args.target, args.features)
    print("Creating LinearRegression model.")
    print("Training model.")
    result = train(dataset, args.models_dir, args.test_size, args.random_state)
    print(f"R² Score: {result.metrics['r2']:.4f}")
    print(f"Mean Squared Error (Loss): {result.metrics['mse']:.4f}")
    print(f"Model saved to {args.models_dir / artifacts.ESTIMATOR_JOBLIB}")
    print(f"Pickle-free model saved to {args.models_dir / artifacts.MODEL_JSON}")
    return EXIT_OK


def cmd_quantize(args: argparse.Namespace) -> int:
    from linreg_ops.quantize import quantize

    print("Loading trained model.")
    result = quantize(args.models_dir, args.dtype)
    model, quantized = result.model, result.quantized
    print(f"Original coefficients shape is : {model.coef.shape}")
    print(f"Original intercept is : {model.intercept:.12f}")
    print(f"Original coef values is : {model.coef}")
    print(
        f"Quantizing to {quantized.dtype} ({'symmetric' if quantized.symmetric else 'asymmetric'}, "
        f"one scale for all {quantized.n_features} weights, in standardized feature space)."
    )
    print(f"Weight scale: {quantized.scale[0]:.8g}  zero point: {quantized.zero_point[0]}")
    print(f"Integer weights: {quantized.weights.tolist()}")
    print(f"Intercept value: {model.intercept:.8f}")
    print(f"Intercept as int32 at the weight scale: {quantized.bias}")
    coef, intercept = quantized.to_raw_space()
    print(f"Quantized parameters saved to {args.models_dir / artifacts.QUANT_PARAMS_JOBLIB}")
    print(
        f"Pickle-free quantized model saved to {args.models_dir / artifacts.QUANTIZED_MODEL_JSON}"
    )
    print(f"Max coefficient error: {np.max(np.abs(coef - model.coef)):.8f}")
    print(f"Intercept error: {abs(intercept - model.intercept):.8f}")
    _print_sample_comparison(args.models_dir, model, quantized)
    metrics = result.metrics
    print(
        f"Test split: R² float {_float_r2(args.models_dir):.4f}, "
        f"{quantized.dtype} {metrics['r2']:.4f}; "
        f"max |Δŷ| {metrics['max_abs_diff']:.6f}, mean |Δŷ| {metrics['mean_abs_diff']:.6f}"
    )
    if args.data is not None:
        _print_evaluation(args.models_dir, args.data, args.target)
    return EXIT_OK


def _float_r2(models_dir: Path) -> float:
    return float(artifacts.load_metrics(models_dir)["float"]["r2"])


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


def cmd_predict(args: argparse.Namespace) -> int:
    from linreg_ops import predict

    if args.input is not None:
        if args.output is None:
            raise InputError("--input needs --output PATH (.csv or .parquet)")
        predictions = predict.predict_file(args.models_dir, args.input, args.output, args.model)
        print(f"Wrote {predictions.size} {args.model} predictions to {args.output}")
        return EXIT_OK
    if args.output is not None:
        raise InputError("--output needs --input PATH (the rows to predict)")
    model = predict.load_predictor(args.models_dir, args.model)
    X, y, source = predict.load_labelled(args.models_dir, args.data, args.target)
    predictions = model.predict(X)
    from linreg_ops.metrics import regression_metrics

    metrics = regression_metrics(y, predictions)
    print(f"Model: {args.model} ({args.models_dir})")
    print(f"Rows: {y.size} from {source}")
    print(f"R² Score: {metrics['r2']:.4f}")
    print(f"Mean Squared Error: {metrics['mse']:.4f}")
    print(f"First {min(FIRST_ROWS, y.size)} predictions:")
    for true, predicted in zip(y[:FIRST_ROWS], predictions[:FIRST_ROWS], strict=True):
        print(f"True: {true:.4f} | Predicted: {predicted:.4f} | Diff: {abs(true - predicted):.4f}")
    return EXIT_OK


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

    model = artifacts.load_model(models_dir)
    rows = [
        report.ModelRow(
            label="float64",
            r2=summary["float"]["r2"],
            mse=summary["float"]["mse"],
            max_abs_diff=0.0,
            mean_abs_diff=0.0,
            artifact_name=artifacts.MODEL_JSON,
            artifact_bytes=artifacts.artifact_size(models_dir, artifacts.MODEL_JSON),
            parameter_bytes=report.float_parameter_bytes(model.n_features),
        )
    ]
    if summary["quantized"] is not None:
        quantized = artifacts.load_quantized_model(models_dir)
        q = summary["quantized"]
        rows.append(
            report.ModelRow(
                label=f"{quantized.dtype} {quantized.granularity}",
                r2=q["r2"],
                mse=q["mse"],
                max_abs_diff=q["max_abs_diff"],
                mean_abs_diff=q["mean_abs_diff"],
                artifact_name=artifacts.QUANTIZED_MODEL_JSON,
                artifact_bytes=artifacts.artifact_size(models_dir, artifacts.QUANTIZED_MODEL_JSON),
                parameter_bytes=report.quantized_parameter_bytes(
                    quantized.n_features, quantized.bits, quantized.scale.size
                ),
            )
        )
    return report.comparison_table(rows)


def cmd_run(args: argparse.Namespace) -> int:
    from linreg_ops import predict, report

    cmd_train(args)
    print()
    # In ``run``, --data/--target name the training data, not extra rows to score.
    cmd_quantize(argparse.Namespace(**{**vars(args), "data": None, "target": None}))
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
        f"quantization: {quantized.dtype}, {quantized.granularity}, scale "
        f"{quantized.scale[0]:.6g}, zero point {quantized.zero_point[0]}",
    ]
    paths = report.write_report(
        args.reports_dir, table, context, y, model.predict(X), quantized.predict(X), quantized.dtype
    )
    print()
    print("Report: " + ", ".join(str(path) for path in paths))
    return EXIT_OK


# --------------------------------------------------------------------------- parser


def _feature_list(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _test_size(text: str) -> float:
    value = float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
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
    quantizing = argparse.ArgumentParser(add_help=False)
    quantizing.add_argument(
        "--dtype",
        default="int8",
        help="int8 (symmetric, default) or uint8 (asymmetric); intN/uintN for N in 2..16",
    )

    parser = argparse.ArgumentParser(
        prog="linreg-ops",
        description="Train, quantize, evaluate and predict with a linear regression model.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub = commands.add_parser(
        "train",
        parents=[common, labelled, training],
        help="fit on California Housing (default) or --data/--target; write artifacts",
    )
    sub.set_defaults(handler=cmd_train)
    sub = commands.add_parser(
        "quantize",
        parents=[common, labelled, quantizing],
        help="quantize the trained model; --data/--target also scores a labelled file",
    )
    sub.set_defaults(handler=cmd_quantize)
    sub = commands.add_parser(
        "predict",
        parents=[common, labelled],
        help="predict --input rows to --output, or score the stored test split",
    )
    sub.add_argument("--input", type=Path, help="rows to predict (.csv or .parquet)")
    sub.add_argument("--output", type=Path, help="where to write predictions (.csv or .parquet)")
    sub.add_argument("--model", choices=("float", "quantized"), default="float")
    sub.set_defaults(handler=cmd_predict)
    sub = commands.add_parser(
        "evaluate",
        parents=[common, labelled],
        help="float vs quantized metrics on the stored test split or --data/--target",
    )
    sub.set_defaults(handler=cmd_evaluate)
    sub = commands.add_parser(
        "run",
        parents=[common, labelled, training, quantizing],
        help="train → quantize → evaluate → reports/report.md and plots",
    )
    sub.add_argument("--reports-dir", type=Path, default=Path("reports"), help="default: reports")
    sub.set_defaults(handler=cmd_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``linreg-ops`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except InputError as exc:
        print(f"linreg-ops {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130
    except Exception:
        traceback.print_exc()
        print(
            f"linreg-ops {args.command}: unexpected error (a bug; please report it)",
            file=sys.stderr,
        )
        return EXIT_UNEXPECTED
