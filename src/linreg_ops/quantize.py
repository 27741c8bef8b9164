"""Real low-bit quantization of a linear model's weights.

Convention (TFLite / ONNX QuantizeLinear): real = scale·(q − zero_point), q = saturate(round
half to even(real/scale) + zero_point). Weights are quantized *in standardized feature space*
(w_j·σ_j): on raw features the coefficients of California Housing span six orders of
magnitude (Population's −2e-6 next to MedInc's 0.45), and one shared scale would round the
small ones to zero. After standardization every weight measures the effect of one standard
deviation of its feature, so one scale fits them all.

The intercept becomes the folded bias c = b + Σ w_j·μ_j, stored as int32 at the weight scale.
"""

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from linreg_ops import artifacts
from linreg_ops.errors import InputError
from linreg_ops.metrics import quantized_fidelity
from linreg_ops.model import LinearModel, QuantizedLinearModel

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
SUPPORTED_BITS = range(2, 17)


@dataclass(frozen=True)
class QuantDtype:
    """An integer code type: ``intN`` is symmetric (zero point 0), ``uintN`` asymmetric."""

    name: str
    bits: int
    symmetric: bool

    @property
    def qmin(self) -> int:
        # Symmetric codes use the restricted range [-(2^(b-1)-1), 2^(b-1)-1] so +x and -x
        # are both representable (TFLite's weight convention).
        return -(2 ** (self.bits - 1) - 1) if self.symmetric else 0

    @property
    def qmax(self) -> int:
        return 2 ** (self.bits - 1) - 1 if self.symmetric else 2**self.bits - 1


def parse_dtype(name: str) -> QuantDtype:
    """``int8`` → symmetric 8-bit, ``uint8`` → asymmetric 8-bit; any width from 2 to 16."""
    match = re.fullmatch(r"(u?)int(\d+)", name)
    if not match or int(match.group(2)) not in SUPPORTED_BITS:
        raise InputError(
            f"unsupported dtype {name!r}: expected intN or uintN with N from 2 to 16 "
            "(for example int8 or uint8)"
        )
    return QuantDtype(name=name, bits=int(match.group(2)), symmetric=not match.group(1))


def choose_scale_and_zero_point(values: np.ndarray, dtype: QuantDtype) -> tuple[float, int]:
    """Min/max calibration: the range covers every value and always contains 0 exactly."""
    values = np.asarray(values, dtype=np.float64)
    if dtype.symmetric:
        largest = float(np.max(np.abs(values), initial=0.0))
        return (largest / dtype.qmax if largest > 0.0 else 1.0), 0
    low = min(float(np.min(values, initial=0.0)), 0.0)
    high = max(float(np.max(values, initial=0.0)), 0.0)
    if high == low:
        return 1.0, 0
    scale = (high - low) / (dtype.qmax - dtype.qmin)
    zero_point = int(np.clip(np.rint(dtype.qmin - low / scale), dtype.qmin, dtype.qmax))
    return scale, zero_point


def quantize_values(
    values: np.ndarray, scale: float, zero_point: int, dtype: QuantDtype
) -> np.ndarray:
    """Round half to even, then saturate to the dtype's range."""
    codes = np.rint(np.asarray(values, dtype=np.float64) / scale) + zero_point
    return np.clip(codes, dtype.qmin, dtype.qmax).astype(np.int64)


def dequantize_values(codes: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return scale * (np.asarray(codes, dtype=np.int64) - zero_point).astype(np.float64)


def quantize_model(model: LinearModel, dtype: str = "int8") -> QuantizedLinearModel:
    """Quantize the standardized weights with one scale (per-tensor) and fold the intercept."""
    qtype = parse_dtype(dtype)
    if not (np.isfinite(model.coef).all() and np.isfinite(model.intercept)):
        raise InputError("the model has NaN or infinite coefficients; refit it before quantizing")
    mean32 = model.feature_mean.astype(np.float32)
    std32 = model.feature_std.astype(np.float32)
    # Fold with the float32 statistics the quantized model will use at prediction time.
    folded_weights = model.coef * std32.astype(np.float64)
    folded_bias = model.intercept + float(model.coef @ mean32.astype(np.float64))
    scale, zero_point = choose_scale_and_zero_point(folded_weights, qtype)
    if not np.any(folded_weights):
        # No weight constrains the scale: choose it for the bias alone (30 bits of precision).
        scale = abs(folded_bias) / 2**30 if folded_bias else 1.0
    bias = round(folded_bias / scale)
    if not INT32_MIN <= bias <= INT32_MAX:
        raise InputError(
            f"the folded intercept {folded_bias:.6g} does not fit in int32 at the weight scale "
            f"{scale:.6g}; the weights are too small relative to the intercept for {dtype}"
        )
    return QuantizedLinearModel(
        feature_names=model.feature_names,
        target_name=model.target_name,
        dtype=qtype.name,
        bits=qtype.bits,
        symmetric=qtype.symmetric,
        granularity="per-tensor",
        weights=quantize_values(folded_weights, scale, zero_point, qtype),
        scale=np.array([scale]),
        zero_point=np.array([zero_point], dtype=np.int64),
        bias=bias,
        bias_scale=scale,
        feature_mean=mean32,
        feature_std=std32,
    )


def fidelity(
    model: LinearModel,
    quantized: QuantizedLinearModel,
    X: np.ndarray,
    y: np.ndarray,
) -> dict[str, float | str]:
    """R², MSE and prediction drift of the quantized model against the float one."""
    return {
        "dtype": quantized.dtype,
        **quantized_fidelity(y, model.predict(X), quantized.predict(X)),
    }


@dataclass(frozen=True)
class QuantizeResult:
    model: LinearModel
    quantized: QuantizedLinearModel
    metrics: dict[str, float | str]
    paths: list[Path]


def quantize(models_dir: Path, dtype: str = "int8") -> QuantizeResult:
    """Quantize the model in ``models_dir``, measure it on the stored test split, publish it."""
    model = artifacts.load_model(models_dir)
    quantized = quantize_model(model, dtype)
    test = artifacts.load_test_split(models_dir)
    quantized_metrics = fidelity(model, quantized, test.values[:, :-1], test.values[:, -1])
    coef, intercept = quantized.to_raw_space()
    summary = artifacts.load_metrics(models_dir)
    summary["quantized"] = quantized_metrics
    paths = artifacts.write_artifacts(
        models_dir,
        {
            artifacts.UNQUANT_PARAMS_JOBLIB: artifacts.joblib_bytes(
                {"coef": model.coef, "intercept": model.intercept}
            ),
            artifacts.QUANT_PARAMS_JOBLIB: artifacts.joblib_bytes(
                {
                    "dtype": quantized.dtype,
                    "weights": quantized.weights,
                    "scale": float(quantized.scale[0]),
                    "zero_point": int(quantized.zero_point[0]),
                    "bias": quantized.bias,
                    "feature_mean": quantized.feature_mean,
                    "feature_std": quantized.feature_std,
                    "dequantized_coef": coef,
                    "dequantized_intercept": intercept,
                }
            ),
            artifacts.QUANTIZED_MODEL_JSON: artifacts.quantized_model_bytes(quantized),
            artifacts.METRICS_JSON: artifacts.json_bytes(summary),
        },
    )
    return QuantizeResult(model=model, quantized=quantized, metrics=quantized_metrics, paths=paths)
