"""linreg-ops's ONNX graphs against the usual skl2onnx + ONNX Runtime quantization routes.

    python benchmarks/bench_export.py [--rows 1000000] [--repeats 3] [--threads 1]

Independent of any models folder: everything is built in memory from California Housing
(scikit-learn's cache; set SCIKIT_LEARN_DATA for an offline copy), split as the seed does
(train_test_split, 80/20, random_state 42). The ORT routes are what a user would try:
skl2onnx converts scikit-learn's LinearRegression, ONNX Runtime quantizes it, static
quantization calibrated on the training split through a CalibrationDataReader in batches
of --calibration-batch rows. Every figure below comes from this run.

Table 1: R² on the test split, mean / max |Δŷ| against the float model, file bytes.
Table 2: rows per second on --rows rows drawn from the test split (best of --repeats),
numpy paths next to the linreg-ops ONNX graphs in onnxruntime.
"""

import argparse
import contextlib
import io
import logging
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from timing import best_time


def load_split():
    from sklearn.datasets import fetch_california_housing
    from sklearn.model_selection import train_test_split

    from linreg_ops.training.sources import use_shared_cache

    use_shared_cache(Path(__file__).parents[1])  # offline, as make run
    bunch = fetch_california_housing()
    X = np.ascontiguousarray(bunch.data, dtype=np.float64)
    parts = train_test_split(X, bunch.target, test_size=0.2, random_state=42)
    return bunch, *parts


def linreg_ops_models(bunch, X_train, y_train):
    """The float, int8 per-tensor quantized and int8×int16 integer-only models."""
    from linreg_ops.config import IntegerConfig, QuantConfig
    from linreg_ops.model import LinearModel
    from linreg_ops.moments import MomentStats
    from linreg_ops.quantization.quantize import build_integer_model, quantize_model
    from linreg_ops.training.engines import fit_linear_regression
    from linreg_ops.training.features import feature_statistics

    estimator = fit_linear_regression(X_train, y_train)
    model = LinearModel(
        feature_names=tuple(bunch.feature_names),
        target_name=bunch.target_names[0],
        coef=np.asarray(estimator.coef_, dtype=np.float64),
        intercept=float(estimator.intercept_),
        stats=feature_statistics(MomentStats.of(X_train, y_train), X_train),
    )
    quantized = quantize_model(model, QuantConfig("int8"))
    integer = build_integer_model(model, QuantConfig("int8"), IntegerConfig("int16"))
    return model, quantized, integer


class Reader:
    """Calibration batches of the training split, as onnxruntime's CalibrationDataReader wants."""

    def __init__(self, X: np.ndarray, input_name: str, batch: int):
        self.batches = iter(
            [{input_name: X[i : i + batch].astype(np.float32)} for i in range(0, len(X), batch)]
        )

    def get_next(self):
        return next(self.batches, None)


def session(path_or_bytes, threads: int):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    return onnxruntime.InferenceSession(path_or_bytes, options, providers=["CPUExecutionProvider"])


def r2(y: np.ndarray, prediction: np.ndarray) -> float:
    return float(1 - np.sum((y - prediction) ** 2) / np.sum((y - y.mean()) ** 2))


def quiet(function: Callable, *args, **kwargs):
    """Run a quantization call without its progress prints; exceptions pass through."""
    with contextlib.redirect_stdout(io.StringIO()):
        return function(*args, **kwargs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    parser.add_argument("--calibration-batch", type=int, default=1000)
    args = parser.parse_args()

    import onnx
    import onnxruntime
    import skl2onnx
    import sklearn
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )
    from skl2onnx import to_onnx
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import linreg_ops
    from linreg_ops.exports.c import c_header_text
    from linreg_ops.exports.onnx import ONNX_IR_VERSION, ONNX_OPSET, onnx_model_bytes

    logging.getLogger().setLevel(logging.ERROR)  # the quantizer's pre-processing advice
    onnxruntime.set_default_logger_severity(3)

    bunch, X_train, X_test, y_train, y_test = load_split()
    sk_float = LinearRegression().fit(X_train, y_train)
    y_float = sk_float.predict(X_test)
    X_test32, sample = X_test.astype(np.float32), X_train[:1].astype(np.float32)
    batch = args.calibration_batch
    print(
        f"California Housing, 80/20 split, random_state 42: {len(X_train):,} training rows "
        f"(calibration), {len(X_test):,} test rows; float R² {r2(y_test, y_float):.4f}"
    )
    print(
        f"onnxruntime {onnxruntime.__version__}, skl2onnx {skl2onnx.__version__}, "
        f"onnx {onnx.__version__}, scikit-learn {sklearn.__version__}, numpy {np.__version__}, "
        f"linreg-ops {linreg_ops.__version__} (opset {ONNX_OPSET}, IR {ONNX_IR_VERSION}), "
        f"Python {platform.python_version()}, {platform.machine()}"
    )
    print()
    print("| route | R² | mean / max \\|Δŷ\\| vs float | file bytes |")
    print("|---|---:|---:|---:|")
    folder = Path(tempfile.mkdtemp(prefix="bench_export_"))

    def row(label: str, path_or_bytes, *, output: int = 0) -> None:
        runner = session(
            str(path_or_bytes) if isinstance(path_or_bytes, Path) else path_or_bytes, 1
        )
        name = runner.get_inputs()[0].name
        feed = X_test if runner.get_inputs()[0].type == "tensor(double)" else X_test32
        y = np.asarray(runner.run(None, {name: feed})[output], dtype=np.float64).ravel()
        difference = np.abs(y - y_float)
        size = (
            path_or_bytes.stat().st_size if isinstance(path_or_bytes, Path) else len(path_or_bytes)
        )
        print(
            f"| {label} | {r2(y_test, y):.4f} | {difference.mean():.3g} / {difference.max():.3g} "
            f"| {size:,} |"
        )

    def failure(label: str, error: Exception) -> None:
        message = str(error).splitlines()[0][:160]
        print(f"| {label} | fails: {type(error).__name__}: {message} | | |")

    def static(source: Path, target: Path, reader_batch: int, **options) -> Path:
        model = onnx.load(str(source))
        reader = Reader(X_train, model.graph.input[0].name, reader_batch)
        quiet(quantize_static, str(source), str(target), reader, **options)
        return target

    try:
        # 1. skl2onnx's default: the ai.onnx.ml LinearRegressor operator.
        default = folder / "linear_regressor.onnx"
        onnx.save(to_onnx(sk_float, sample), str(default))
        try:
            static(default, folder / "linear_regressor_q.onnx", batch)
            row("skl2onnx LinearRegressor → quantize_static", folder / "linear_regressor_q.onnx")
        except Exception as error:  # the point of this row is how it fails
            failure("skl2onnx → LinearRegressor op (ai.onnx.ml) → ORT quantize_static", error)

        # 2./3. Forced to standard MatMul + Add.
        matmul = folder / "matmul.onnx"
        onnx.save(to_onnx(sk_float, sample, black_op={"LinearRegressor"}), str(matmul))
        row("skl2onnx forced to MatMul (black_op LinearRegressor), float32, not quantized", matmul)
        for per_channel in (False, True):
            label = "per-channel" if per_channel else "per-tensor"
            target = folder / f"matmul_qdq_{label}.onnx"
            options = {"quant_format": QuantFormat.QDQ, "per_channel": per_channel}
            static(matmul, target, batch, weight_type=QuantType.QInt8, **options)
            row(f"same → ORT quantize_static QDQ int8 {label} (MinMax)", target)
        dynamic = folder / "matmul_dynamic.onnx"
        quiet(quantize_dynamic, str(matmul), str(dynamic), weight_type=QuantType.QInt8)
        row("same → ORT quantize_dynamic int8", dynamic)

        # 4. Standardize first: StandardScaler (as standard Sub/Div) + LinearRegression.
        pipeline = make_pipeline(StandardScaler(), LinearRegression()).fit(X_train, y_train)
        scaled = folder / "scaled.onnx"
        converted = to_onnx(
            pipeline,
            sample,
            options={StandardScaler: {"div": "div"}},
            black_op={"LinearRegressor"},
        )
        onnx.save(converted, str(scaled))
        methods = [
            CalibrationMethod.MinMax,
            CalibrationMethod.Percentile,
            CalibrationMethod.Entropy,
        ]
        for method in methods:
            label = (
                "StandardScaler (Sub/Div: option div=div) + LinearRegression (MatMul) → "
                f"quantize_static QDQ int8, {method.name}"
            )
            target = folder / f"scaled_{method.name}.onnx"
            try:
                static(scaled, target, batch, calibrate_method=method)
                row(label, target)
            except Exception as error:
                failure(label, error)
        equal = next(b for b in range(batch, len(X_train) + 1) if len(X_train) % b == 0)
        for method in methods[1:]:
            label = f"same, {method.name}, equal calibration batches of {equal:,} rows"
            target = folder / f"scaled_{method.name}_equal.onnx"
            try:
                static(scaled, target, equal, calibrate_method=method)
                row(label, target)
            except Exception as error:
                failure(label, error)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    model, quantized, integer = linreg_ops_models(bunch, X_train, y_train)
    digest = "0" * 64  # no artifact behind an in-memory model
    graphs = {
        "float": onnx_model_bytes(model, artifact_sha256=digest),
        "quantized": onnx_model_bytes(quantized, artifact_sha256=digest),
        "integer": onnx_model_bytes(integer, artifact_sha256=digest),
    }
    row("**linreg-ops ONNX float** (float64 in and out)", graphs["float"])
    row(
        f"**linreg-ops ONNX quantized** ({quantized.dtype} {quantized.granularity} "
        f"{quantized.rounding}, float64 in and out)",
        graphs["quantized"],
    )
    row(
        f"**linreg-ops ONNX integer-only** ({integer.weight_dtype} weights × "
        f"int{integer.input_bits} inputs, int64 accumulator; ŷ output)",
        graphs["integer"],
        output=2,
    )
    header = c_header_text(integer, artifact_sha256=digest)
    print(
        f"| linreg-ops C99 header (same integer model), {object_size(header)} | | | "
        f"{len(header.encode()):,} |"
    )

    # ---------------------------------------------------------------- throughput
    rng = np.random.default_rng(0)
    X = np.ascontiguousarray(X_test[rng.integers(0, len(X_test), args.rows)])
    sessions = {kind: session(data, args.threads) for kind, data in graphs.items()}
    methods_timed = {
        "numpy float64 `model.predict`": lambda: model.predict(X),
        "ONNX float (float64 X)": lambda: sessions["float"].run(None, {"X": X})[0],
        f"numpy dequantized {quantized.dtype} `quantized.predict`": lambda: quantized.predict(X),
        "ONNX quantized (float64 X)": lambda: sessions["quantized"].run(None, {"X": X})[0],
        "numpy integer-only `integer.predict_codes`": lambda: integer.predict_codes(X)[0],
        "ONNX integer-only (float64 X → codes, clipped, ŷ)": lambda: sessions["integer"].run(
            None, {"X": X}
        ),
    }
    print()
    print(
        f"{args.rows:,} rows × {model.n_features} features drawn from the test split; best of "
        f"{args.repeats}; onnxruntime intra-op threads: {args.threads}"
    )
    print("| method | seconds | rows/s |")
    print("|---|---:|---:|")
    results = {}
    for label, function in methods_timed.items():
        seconds, results[label] = best_time(function, args.repeats)
        print(f"| {label} | {seconds:.3f} | {args.rows / seconds:,.0f} |")
    codes, clipped, _ = results["ONNX integer-only (float64 X → codes, clipped, ŷ)"]
    reference, reference_clipped = integer.predict_codes(X)
    exact = np.array_equal(codes, reference) and np.array_equal(clipped, reference_clipped)
    print(
        f"ONNX integer-only codes and clipped flags equal numpy's on all {args.rows:,} rows: {exact}"
    )


def object_size(header: str) -> str:
    """``cc -std=c99 -O2 -c`` of the header's three functions, or why it was not measured."""
    compiler = shutil.which("cc")
    if compiler is None:
        return "no cc to measure the object size"
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "linreg_model.h").write_text(header)
        Path(folder, "unit.c").write_text(
            '#include "linreg_model.h"\n'
            "int16_t f(const int16_t *q) { return linreg_predict_codes(q); }\n"
            "int16_t g(size_t j, double x) { return linreg_quantize_input(j, x); }\n"
            "double h(const double *x) { return linreg_predict(x); }\n"
        )
        subprocess.run(
            [compiler, "-std=c99", "-O2", "-c", "unit.c", "-o", "unit.o"], cwd=folder, check=True
        )
        size = Path(folder, "unit.o").stat().st_size
        text = ""
        if shutil.which("size"):
            lines = subprocess.run(
                ["size", "unit.o"], cwd=folder, capture_output=True, text=True, check=True
            ).stdout.splitlines()
            text = f", text+data {lines[1].split()[3]} B"
        return f"`cc -std=c99 -O2 -c` object {size:,} B{text}"


if __name__ == "__main__":
    main()
