"""Real low-bit quantization of a linear model: integer weights, and integer-only inference.

Convention (TFLite / ONNX QuantizeLinear): real = scale·(q − zero_point), q = saturate(round
half to even(real/scale) + zero_point); ``intN`` is symmetric (zero point 0, codes in
[−(2^(N−1)−1), 2^(N−1)−1]), ``uintN`` asymmetric with an integer zero point so 0 is exact.

Weights are quantized *in standardized feature space* (w_j·σ_j): on raw features California
Housing's coefficients span six orders of magnitude (Population's −2e-6 beside MedInc's 0.45)
and one shared scale would round the small ones to zero. After standardization each weight
is the effect of one standard deviation of its feature, so one scale suits them all, and the
Gram matrix of the standardized training features (kept in ``model.json``) says how rounding
errors add up on real data: ``rounding`` uses it (see ``quantization.rounding``).

The intercept is folded (c = b + Σ w_j·μ_j), re-fitted after rounding so the quantized model
keeps the float model's mean prediction, and stored as an int32.
"""

import warnings
from dataclasses import dataclass, replace

import numpy as np

from linreg_ops.config import (
    Calibration,
    Granularity,
    IntegerConfig,
    QuantConfig,
    QuantDtype,
    Rounding,
    parse_dtype,
)
from linreg_ops.errors import InputError
from linreg_ops.model import IntegerLinearModel, LinearModel, QuantizedLinearModel
from linreg_ops.quantization.rounding import (
    OPTIMAL_MAX_FEATURES,
    ROUNDERS,
    Grid,
    objective,
    sphere_decode,
)

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
OUTPUT_BITS = 16
BIAS_MAX_SHIFT = 16
TIE_WIDENINGS = 4  # scale widenings for rounding ties in the input calibration (1 suffices)

__all__ = [
    "BIAS_MAX_SHIFT",
    "FLOAT32_TINY",
    "INT32_MAX",
    "INT32_MIN",
    "OUTPUT_BITS",
    "TIE_WIDENINGS",
    "RoundingResult",
    "build_integer_model",
    "choose_scale_and_zero_point",
    "float_parameter_bytes",
    "quantize_model",
    "quantized_parameter_bytes",
    "round_weights",
    "rounding_note",
]


FLOAT32_TINY = float(np.finfo(np.float32).tiny)


def _float32(value: float) -> float:
    """Scales are stored as float32, so quantize with exactly the value another runtime reads.

    A positive scale never rounds to zero (or to a subnormal): it is at least float32's
    smallest normal number. One beyond float32's range is refused: the units are too large.
    """
    with np.errstate(over="ignore"):
        rounded = float(np.float32(value))
    if not np.isfinite(rounded):
        raise InputError(
            f"a quantization scale of {value:.3g} is beyond float32: the target's or the "
            "features' values are too large to quantize; express them in larger units"
        )
    return max(rounded, FLOAT32_TINY) if value > 0 else rounded


def _step(span: float, codes: int) -> float:
    """The float32 scale that spreads a positive ``span`` over ``codes`` steps.

    At least float32's smallest normal number even when ``span / codes`` underflows float64
    to zero (a span of 1.5e-322 over 127 codes): a zero scale divides by zero downstream.
    """
    return max(_float32(span / codes), FLOAT32_TINY)


def choose_scale_and_zero_point(values: np.ndarray, dtype: QuantDtype) -> tuple[float, int]:
    """Min/max calibration: the range covers every value and always contains 0 exactly."""
    values = np.asarray(values, dtype=np.float64)
    if dtype.symmetric:
        largest = float(np.max(np.abs(values), initial=0.0))
        return (_step(largest, dtype.qmax) if largest > 0.0 else 1.0), 0
    low = min(float(np.min(values, initial=0.0)), 0.0)
    high = max(float(np.max(values, initial=0.0)), 0.0)
    if high == low:
        return 1.0, 0
    scale = _step(high - low, dtype.qmax - dtype.qmin)
    zero_point = int(np.clip(np.rint(dtype.qmin - low / scale), dtype.qmin, dtype.qmax))
    return scale, zero_point


def float_parameter_bytes(n_features: int) -> int:
    """float64 coefficients plus a float64 intercept."""
    return 8 * (n_features + 1)


def quantized_parameter_bytes(n_features: int, bits: int, n_scales: int = 1) -> int:
    """Bit-packed codes, an int32 bias, and one float32 scale (and zero point) per tensor."""
    return -(-n_features * bits // 8) + 4 + 4 * n_scales + -(-n_scales * bits // 8)


# --------------------------------------------------------------------------- grids and search


def _grid(values: np.ndarray, dtype: QuantDtype, granularity: Granularity, shrink: float) -> Grid:
    """The min/max grid, with every range shrunk by ``shrink`` (≤ 1: finer steps, some clipping)."""
    d = values.size
    if granularity == "per-tensor":
        scale, zero_point = choose_scale_and_zero_point(values * shrink, dtype)
        scales, zero_points = np.full(d, scale), np.full(d, zero_point)
    else:
        pairs = [choose_scale_and_zero_point(values[j : j + 1] * shrink, dtype) for j in range(d)]
        scales = np.array([scale for scale, _ in pairs])
        zero_points = np.array([zero_point for _, zero_point in pairs])
        # A zero weight has no range of its own: give it the tensor's scale, zero point exact.
        tensor_scale, _ = choose_scale_and_zero_point(values * shrink, dtype)
        zero = values == 0.0
        scales[zero] = tensor_scale
        zero_points[zero] = 0 if dtype.symmetric else dtype.qmin
    return Grid(scales.astype(np.float64), zero_points.astype(np.int64), dtype.qmin, dtype.qmax)


def _shrink_factors(config: QuantConfig, d: int) -> np.ndarray:
    """Range factors to try: nearest keeps min/max (the textbook baseline); the others also
    try narrower ranges (finer steps, the largest weights clipped) and wider ones (coarser
    steps on which a sum of weights may land exactly: it matters for cancelling weights)."""
    if config.rounding == "nearest":
        return np.array([1.0])
    return np.unique(np.concatenate([np.linspace(0.5, 1.25, 76 if d <= 64 else 16), [1.0]]))[::-1]


@dataclass(frozen=True)
class RoundingResult:
    codes: np.ndarray
    grid: Grid
    rounding: Rounding
    cost: float


def rounding_note(config: QuantConfig, n_features: int) -> str | None:
    """What the user should know when the requested rounding is not the one applied."""
    if config.rounding == "optimal" and n_features > OPTIMAL_MAX_FEATURES:
        return (
            f"optimal rounding is exact only up to {OPTIMAL_MAX_FEATURES} features "
            f"(this model has {n_features}): used hessian rounding instead"
        )
    return None


def _clips(values: np.ndarray, grid: Grid) -> bool:
    """Whether some weight lies beyond the grid's range, so saturation must clip it."""
    codes = values / grid.scale + grid.zero_point
    return bool(np.any((codes < grid.qmin - 0.5) | (codes > grid.qmax + 0.5)))


def round_weights(
    values: np.ndarray, gram: np.ndarray, dtype: QuantDtype, config: QuantConfig
) -> RoundingResult:
    """Codes and grid minimising the training objective for this dtype, granularity, rounding."""
    d = values.size
    rounding = config.rounding
    if rounding == "optimal" and d > OPTIMAL_MAX_FEATURES:
        rounding = "hessian"
    search = "hessian" if rounding == "optimal" else rounding
    candidates = []
    for shrink in _shrink_factors(config, d):
        grid = _grid(values, dtype, config.granularity, shrink)
        codes = ROUNDERS[search](values, gram, grid)
        candidates.append(
            RoundingResult(codes, grid, rounding, objective(values, gram, grid, codes))
        )
    if config.granularity == "per-channel" and d > 1:
        # One shared scale is a special case of one scale per weight: never do worse than it.
        tensor = round_weights(values, gram, dtype, replace(config, granularity="per-tensor"))
        candidates.append(replace(tensor, rounding=rounding))
    candidates.sort(key=lambda result: result.cost)
    if rounding == "optimal":
        # Exact search where it is cheap and meaningful: on grids that hold every weight
        # (a clipped weight's error is irreducible and blows up the search radius), and
        # only when the best candidate is not already exact to rounding noise.
        exact_enough = 1e-12 * float(values @ gram @ values)
        holding = [result for result in candidates if not _clips(values, result.grid)]
        if candidates[0].cost > exact_enough:
            polished = []
            for result in holding[:3]:
                exact = sphere_decode(values, gram, result.grid, result.codes)
                if not exact.proven_optimal:
                    warnings.warn(
                        "optimal rounding hit its search budget: the result is the best "
                        "found, not proven optimal",
                        RuntimeWarning,
                        stacklevel=2,
                    )
                cost = objective(values, gram, result.grid, exact.codes)
                polished.append(replace(result, codes=exact.codes, cost=cost))
            candidates = sorted([*polished, *candidates], key=lambda result: result.cost)
    return candidates[0]


# --------------------------------------------------------------------------- models


def _check_finite(model: LinearModel) -> None:
    if not (np.isfinite(model.coef).all() and np.isfinite(model.intercept)):
        raise InputError("the model has NaN or infinite coefficients; refit it before quantizing")


def _int32_bias(value: float, base_scale: float, what: str) -> tuple[int, float]:
    """``value`` as an int32 at ``base_scale``·2^−k, with the largest k ≤ 16 that fits 2^30."""
    for shift in range(BIAS_MAX_SHIFT, -1, -1):
        bias_scale = _float32(base_scale * 2.0**-shift)
        code = round(value / bias_scale)
        if abs(code) <= 2**30:
            return code, bias_scale
    code = round(value / base_scale)
    if not INT32_MIN <= code <= INT32_MAX:
        raise InputError(
            f"the {what} {value:.6g} does not fit in int32 at the scale {base_scale:.6g}: "
            "the weights are too small relative to the intercept for this dtype"
        )
    return code, base_scale


def quantize_model(
    model: LinearModel, config: QuantConfig | str = QuantConfig()
) -> QuantizedLinearModel:
    """Quantize the standardized weights and re-fit the int32 bias; see the module docstring."""
    if isinstance(config, str):
        config = QuantConfig(dtype=config)
    dtype = parse_dtype(config.dtype)
    _check_finite(model)
    mean32 = model.feature_mean.astype(np.float32)
    std32 = model.feature_std.astype(np.float32)
    folded = model.coef * std32.astype(np.float64)
    result = round_weights(folded, model.stats.correlation, dtype, config)
    dequantized = result.grid.dequantize(result.codes)
    # Bias correction: keep the float model's mean training prediction under the float32
    # statistics the quantized model standardizes with.
    mean_shift = (model.feature_mean - mean32.astype(np.float64)) / std32.astype(np.float64)
    bias_value = (
        model.intercept + float(model.coef @ model.feature_mean) - float(dequantized @ mean_shift)
    )
    base_scale = float(result.grid.scale.max()) if np.any(folded) else 1.0
    bias, bias_scale = _int32_bias(bias_value, base_scale, "folded intercept")
    per_tensor = config.granularity == "per-tensor"
    return QuantizedLinearModel(
        feature_names=model.feature_names,
        target_name=model.target_name,
        dtype=dtype.name,
        bits=dtype.bits,
        symmetric=dtype.symmetric,
        granularity=config.granularity,
        rounding=result.rounding,
        weights=result.codes,
        scale=(result.grid.scale[:1] if per_tensor else result.grid.scale).astype(np.float32),
        zero_point=result.grid.zero_point[:1] if per_tensor else result.grid.zero_point,
        bias=bias,
        bias_scale=bias_scale,
        feature_mean=mean32,
        feature_std=std32,
    )


@dataclass(frozen=True)
class _InputQuantizers:
    """Per-feature input scales and zero points on one common σ-step, and the range they code."""

    scale: np.ndarray
    zero_point: np.ndarray
    low: np.ndarray  # the calibrated range
    high: np.ndarray
    step: float  # t: the largest σ-step of the features that share it, after float32 rounding


def _input_quantizers(
    model: LinearModel, bits: int, calibration: Calibration, weights: np.ndarray
) -> _InputQuantizers:
    """Per-feature input scale σ_j·t and zero point, one step t (in standard deviations) for all.

    A common step in standardized units is what lets the standardized integer weights multiply
    the input codes directly: every product then sits at the same scale, weight_scale·t.
    t is the smallest step that fits every feature's calibrated range into the codes. A
    feature whose weight code is 0 never reaches the accumulator, so where σ_j·t would need a
    zero point beyond int32 (a constant column of 1e9, say) it gets a scale of its own.
    """
    stats = model.stats
    low, high = (
        (stats.minimum, stats.maximum) if calibration == "minmax" else (stats.low, stats.high)
    )
    qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    std = model.feature_std
    widest = float(np.max((high - low) / std, initial=0.0))
    step = widest / (qmax - qmin) if widest > 0 else 1.0
    scale = _float32_at_least(std * step)
    unfit = (weights == 0) & ~(np.abs(qmin - np.rint(low / scale)) <= INT32_MAX)
    if unfit.any():
        reach = np.maximum(high - low, np.maximum(np.abs(low), np.abs(high)))
        scale = np.where(unfit, _float32_at_least(reach / (qmax - qmin)), scale)
    # The calibrated minimum is code qmin exactly; the maximum must then fit below qmax. A
    # float32 scale rounded up keeps (high − low)/scale within the code span, and a scale is
    # widened by one float32 step where a rounding tie would still carry it one code past
    # (once is enough: a tie needs (high − low)/scale within one rounding of the span).
    for _ in range(TIE_WIDENINGS):
        offset = np.rint(low / scale)
        _check_zero_points(model, qmin - offset, bits)
        zero_point = (qmin - offset).astype(np.int64)
        past = np.rint(high / scale) + zero_point > qmax
        if not past.any():
            sharing = ~unfit if (~unfit).any() else np.ones_like(unfit)
            step = float(np.max((scale / std)[sharing]))
            return _InputQuantizers(scale, zero_point, low, high, step)
        scale = np.where(past, _float32_at_least(np.nextafter(scale, np.inf)), scale)
    raise InputError(  # unreachable for finite ranges; a bound instead of a loop without end
        "cannot fit the calibrated input ranges into the input codes"
    )


def _check_zero_points(model: LinearModel, zero_points: np.ndarray, bits: int) -> None:
    """Zero points are stored as int32: a weighted feature far from zero for its spread has
    none, so name it instead of writing a model that cannot load."""
    outside = np.flatnonzero(~(np.abs(zero_points) <= INT32_MAX))
    if outside.size:
        j = int(outside[0])
        raise InputError(
            f"integer-only inference cannot code feature {model.feature_names[j]!r} as "
            f"int{bits} inputs: it lies around {model.stats.mean[j]:.6g}, far from zero for its "
            f"spread (σ {model.stats.std[j]:.3g}); centre it or leave it out"
        )


def _float32_at_least(values: np.ndarray) -> np.ndarray:
    """The smallest float32 values not below ``values`` (as float64): a scale never shrinks."""
    rounded = values.astype(np.float32)
    below = rounded.astype(np.float64) < values
    rounded[below] = np.nextafter(rounded[below], np.float32(np.inf))
    widened: np.ndarray = rounded.astype(np.float64)
    return widened


def build_integer_model(
    model: LinearModel,
    config: QuantConfig = QuantConfig(),
    integer: IntegerConfig = IntegerConfig(),
) -> IntegerLinearModel:
    """The integer-only model: the standardized weights, input codes on a common σ-step grid.

    Inputs are x_j ≈ s_j·(q_j − zp_j) with s_j = σ_j·t, so the weight per input code is
    w_j·s_j = (w_j·σ_j)·t: the standardized weight times one common t. The per-tensor
    standardized codes (symmetric, of the configured width and rounding) therefore serve
    unchanged at accumulator scale weight_scale·t, and one fixed-point multiplier maps the
    accumulator to the output scale.
    """
    _check_finite(model)
    bits = parse_dtype(config.dtype).bits
    weight_config = replace(config, dtype=f"int{bits}", granularity="per-tensor")
    quantized = quantize_model(model, weight_config)
    input_bits = integer.input_bits
    weights = quantized.weights
    inputs = _input_quantizers(model, input_bits, integer.calibration, weights)
    accumulator_scale = float(quantized.scale[0]) * inputs.step
    effective_coef = accumulator_scale * weights / inputs.scale
    # Bias correction: keep the float model's mean training prediction.
    bias_value = model.intercept + float((model.coef - effective_coef) @ model.feature_mean)
    bias = round(bias_value / accumulator_scale) - int(weights @ inputs.zero_point)
    input_max = 2 ** (input_bits - 1)
    worst = int(np.abs(weights).sum()) * input_max + abs(bias)
    if worst > INT32_MAX:
        raise InputError(
            f"integer-only accumulation could reach {worst:,}, beyond int32: "
            "use --input-dtype int8 or fewer weight bits"
        )
    # Output scale: the largest |ŷ| any input inside the calibrated range can produce.
    centre = model.intercept + float(model.coef @ model.feature_mean)
    mean = model.feature_mean
    reach = np.maximum(np.abs(inputs.low - mean), np.abs(inputs.high - mean))
    bound = 1.01 * (abs(centre) + float(np.abs(model.coef) @ reach))
    # Never finer than one accumulator step: a model that predicts (almost) one value
    # everywhere would otherwise need a multiplier beyond any shift. (A floor relative to
    # the accumulator, not an absolute one: the target's units must not matter.)
    bound = max(bound, accumulator_scale * (2 ** (OUTPUT_BITS - 1) - 1) * 2.0**-29)
    output_scale = _float32(bound / (2 ** (OUTPUT_BITS - 1) - 1))
    mantissa, exponent = np.frexp(accumulator_scale / output_scale)  # M = mantissa·2^exponent
    multiplier = round(float(mantissa) * 2**31)
    if multiplier == 2**31:
        multiplier, exponent = 2**30, exponent + 1
    shift = 31 - int(exponent)
    if not 1 <= shift <= 62:
        raise InputError(f"integer-only requantization shift {shift} is out of range")
    return IntegerLinearModel(
        feature_names=model.feature_names,
        target_name=model.target_name,
        weight_dtype=weight_config.dtype,
        weights=weights,
        accumulator_scale=accumulator_scale,
        rounding=quantized.rounding,
        bias=bias,
        input_bits=input_bits,
        input_scale=inputs.scale.astype(np.float32),
        input_zero_point=inputs.zero_point,
        calibration=integer.calibration,
        output_bits=OUTPUT_BITS,
        output_scale=output_scale,
        multiplier=multiplier,
        shift=shift,
    )
