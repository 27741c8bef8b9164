"""Rows per second of float, dequantized and integer-only prediction, in one run.

    python benchmarks/bench_quantized_predict.py [--models-dir models] [--rows 10000000]

Uses the artifacts of ``make run``. The rows are drawn (with replacement) from the stored
test split, so every method sees the same realistic inputs. Each method runs --repeats
times on the whole array; the best time counts. Ratios are against the float model.
"""

import argparse
import platform
from pathlib import Path

import numpy as np

from linreg_ops.inference import loading
from linreg_ops.model import IntegerLinearModel, QuantizedLinearModel
from timing import best_time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    models = loading.load(args.models_dir)
    model, quantized, integer = models.float, models.get("quantized"), models.get("integer")
    assert isinstance(quantized, QuantizedLinearModel)
    assert isinstance(integer, IntegerLinearModel)
    test = loading.stored_test_rows(models).values[:, :-1]
    rng = np.random.default_rng(0)
    X = np.ascontiguousarray(test[rng.integers(0, len(test), args.rows)])

    methods = {
        "float64 (row-wise dot, feature order)": model.predict,
        f"dequantized {quantized.dtype} (weights folded once, dot)": quantized.predict,
        f"integer-only {integer.weight_dtype}×int{integer.input_bits} (codes in, codes out)": (
            lambda rows: integer.predict_codes(rows)[0]
        ),
    }
    print(
        f"{args.rows:,} rows × {model.n_features} features; numpy {np.__version__}, "
        f"Python {platform.python_version()}, best of {args.repeats}"
    )
    print("| method | seconds | rows/s | vs float |")
    print("|---|---:|---:|---:|")
    reference = None
    outputs = {}
    for name, method in methods.items():
        seconds, outputs[name] = best_time(lambda method=method: method(X), args.repeats)
        rate = args.rows / seconds
        reference = reference or rate
        print(f"| {name} | {seconds:.3f} | {rate:,.0f} | {rate / reference:.2f}× |")
    float_pred, dequant_pred, integer_codes = outputs.values()
    integer_pred = integer_codes * np.float64(integer.output_scale)
    print(
        f"mean |Δŷ| vs float: dequantized {np.abs(dequant_pred - float_pred).mean():.6f}, "
        f"integer-only {np.abs(integer_pred - float_pred).mean():.6f}"
    )


if __name__ == "__main__":
    main()
