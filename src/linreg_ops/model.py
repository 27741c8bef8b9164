"""The model objects every stage passes around: plain data, numpy only.

Each knows how to predict, because prediction is a line or two of arithmetic that has to be
identical wherever it runs (batch CLI, HTTP service, container). None knows a file format.
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Protocol

import numpy as np

ROW_BLOCK = 32_768  # rows per block in integer-only inference (times 8 / n_features on the
# float64 route): its temporaries stay in cache


def row_dot(X: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """Σ_j X[i, j]·coef[j] for each row, summed in feature order.

    Not ``X @ coef``: BLAS picks its summation order by batch size and memory layout, so a
    row's prediction would change in the last bits with the rows around it. This loop gives
    every row the same bits whether it comes alone over HTTP or in a block of a million (C
    order first, because the inner loop differs for strided rows).
    """
    products: np.ndarray = np.einsum("ij,j->i", np.ascontiguousarray(X, dtype=np.float64), coef)
    return products


KNOWN_ANSWER_TOLERANCE = 1e-9  # relative: a float path's known answers (integer codes: exact)


class Predictor(Protocol):
    """What every model kind offers, so no caller needs to ask which kind it holds."""

    @property
    def feature_names(self) -> tuple[str, ...]: ...

    @property
    def n_features(self) -> int: ...

    @property
    def label(self) -> str:
        """The model as a table, a plot or a message names it."""
        ...

    def predict(self, X: np.ndarray) -> np.ndarray: ...

    def predict_clipped(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predictions, and which rows had an input clipped to a calibrated range."""
        ...

    def answers(self, rows: np.ndarray) -> np.ndarray:
        """What a manifest records to recognize this model: its exact output on ``rows``."""
        ...

    def reproduces(self, rows: np.ndarray, answers: np.ndarray) -> bool:
        """Whether this model gives ``answers`` on ``rows`` (as ``answers`` recorded them)."""
        ...


class _FloatOutput(ABC):
    """The float kinds' shared answers: nothing is clipped, answers agree to a tolerance."""

    @abstractmethod
    def predict(self, X: np.ndarray) -> np.ndarray: ...

    def predict_clipped(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.predict(X), np.zeros(len(X), dtype=bool)

    def answers(self, rows: np.ndarray) -> np.ndarray:
        return self.predict(rows)

    def reproduces(self, rows: np.ndarray, answers: np.ndarray) -> bool:
        tolerance = KNOWN_ANSWER_TOLERANCE * (1.0 + np.abs(answers))
        return bool(np.all(np.abs(self.predict(rows) - answers) <= tolerance))


@dataclass(frozen=True)
class FeatureStats:
    """What the training split looked like, per feature: enough to standardize, calibrate and
    weigh rounding errors without the training rows themselves.

    ``correlation`` is ZᵀZ/n for the standardized training features Z (a constant feature
    has σ = 1 and a zero row), the Gram matrix that Hessian-aware rounding needs.
    """

    n: int
    mean: np.ndarray
    std: np.ndarray
    minimum: np.ndarray
    maximum: np.ndarray
    quantile_level: float
    low: np.ndarray  # the quantile_level quantile
    high: np.ndarray  # the 1 − quantile_level quantile
    correlation: np.ndarray


@dataclass(frozen=True)
class LinearModel(_FloatOutput):
    """A fitted float64 linear model ``y = X @ coef + intercept`` and its training statistics."""

    feature_names: tuple[str, ...]
    target_name: str
    coef: np.ndarray
    intercept: float
    stats: FeatureStats

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    @property
    def feature_mean(self) -> np.ndarray:
        return self.stats.mean

    @property
    def feature_std(self) -> np.ndarray:
        return self.stats.std

    @property
    def label(self) -> str:
        return "float64"

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Float64 predictions for rows of ``X`` in ``feature_names`` order."""
        return row_dot(X, self.coef) + self.intercept


@dataclass(frozen=True)
class QuantizedLinearModel(_FloatOutput):
    """Integer weights in standardized feature space: real = scale·(q − zero_point).

    Prediction: ``z = (x − feature_mean) / feature_std`` (float32 statistics), then
    ``ŷ = Σ_j scale_j·(q_j − zero_point_j)·z_j + bias·bias_scale`` with ``bias`` an int32.
    ``scale``/``zero_point`` hold one entry (per-tensor) or one per feature (per-channel).
    """

    feature_names: tuple[str, ...]
    target_name: str
    dtype: str
    bits: int
    symmetric: bool
    granularity: str
    rounding: str
    weights: np.ndarray  # int64 codes, shape (d,)
    scale: np.ndarray  # float32 values, shape (1,) or (d,)
    zero_point: np.ndarray  # int64, shape (1,) or (d,)
    bias: int  # int32
    bias_scale: float  # float32 value: the weight scale times a power of two
    feature_mean: np.ndarray  # float32
    feature_std: np.ndarray  # float32, 1 where the training feature was constant

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    @property
    def label(self) -> str:
        return f"{self.dtype} {self.granularity} {self.rounding}"

    def dequantized_weights(self) -> np.ndarray:
        """Real-valued weights in standardized space, exactly as the integers encode them."""
        scale = self.scale.astype(np.float64)
        weights: np.ndarray = scale * (self.weights - self.zero_point).astype(np.float64)
        return weights

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predictions from the integers: dequantize once and fold the standardization into
        the weights, so a batch costs one matrix-vector product, like the float model."""
        coef, intercept = self.to_raw_space()
        return row_dot(X, coef) + intercept

    def to_raw_space(self) -> tuple[np.ndarray, float]:
        """Equivalent raw-feature coefficients and intercept, for the seed's comparison."""
        std = self.feature_std.astype(np.float64)
        mean = self.feature_mean.astype(np.float64)
        coef = self.dequantized_weights() / std
        return coef, float(self.bias * self.bias_scale - coef @ mean)


@dataclass(frozen=True)
class IntegerLinearModel:
    """Integer-only inference (Jacob et al. 2018): no float operation between codes in and out.

    1. inputs:  q_x = clip(round_half_even(x / input_scale) + input_zero_point, qmin, qmax)
    2. accumulate in int64: acc = Σ_j weights_j · q_x,j + bias   (bias: int32; it already holds
       −Σ_j weights_j · input_zero_point_j, so zero points cost nothing per row)
    3. requantize once: out = clip((acc · multiplier + 2^(shift−1)) >> shift, output range),
       multiplier an int32 M0·2^31 with M0 in [0.5, 1)
    4. outside the integer path: ŷ = output_scale · out
    """

    feature_names: tuple[str, ...]
    target_name: str
    weight_dtype: str
    weights: np.ndarray  # int64 codes: the per-tensor standardized weights
    accumulator_scale: float  # real value of one accumulator unit (weight scale × input step)
    rounding: str
    bias: int  # int32, at accumulator_scale
    input_bits: int
    input_scale: np.ndarray  # float32 values, per feature
    input_zero_point: np.ndarray  # int64 (may lie outside the code range)
    calibration: str
    output_bits: int
    output_scale: float  # float32 value
    multiplier: int  # int32, M0·2^31
    shift: int  # total right shift

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    @property
    def input_range(self) -> tuple[int, int]:
        return -(2 ** (self.input_bits - 1)), 2 ** (self.input_bits - 1) - 1

    @property
    def output_range(self) -> tuple[int, int]:
        return -(2 ** (self.output_bits - 1)), 2 ** (self.output_bits - 1) - 1

    def quantize_inputs(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Input codes, and for each row whether any feature was clipped to the calibrated range."""
        raw = np.asarray(X, dtype=np.float64) / self.input_scale.astype(np.float64)
        np.rint(raw, out=raw)
        raw += self.input_zero_point
        qmin, qmax = self.input_range
        clipped: np.ndarray = np.asarray(((raw < qmin) | (raw > qmax)).any(axis=1))
        np.clip(raw, qmin, qmax, out=raw)
        return raw.astype(np.int64), clipped

    def accumulate(self, codes: np.ndarray) -> np.ndarray:
        accumulator: np.ndarray = codes @ self.weights + self.bias
        return accumulator

    def requantize(self, accumulator: np.ndarray) -> np.ndarray:
        rounding = np.int64(1) << np.int64(self.shift - 1)
        out = (accumulator * np.int64(self.multiplier) + rounding) >> np.int64(self.shift)
        codes: np.ndarray = np.clip(out, *self.output_range)
        return codes

    def predict_codes(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Integer output codes and the per-row clipped flags, in cache-sized row blocks.

        Bit for bit the arithmetic above, on one of two routes. When the weights prove that no
        accumulator can reach 2^50 (checked once per call), the sum of products runs in
        float64, where every product and partial sum of integers below 2^53 is exact, and rows
        with a clipped input are found without comparing each value (``_predict_codes_float``).
        Otherwise the codes are accumulated in int64, as written.
        """
        X = np.asarray(X, dtype=np.float64)
        if _float_accumulation_is_exact(self, X):
            return _predict_codes_float(self, X)
        return self._predict_codes_int64(X)

    def _predict_codes_int64(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The exact int64 route, for any model and any input shape."""
        out = np.empty(len(X), dtype=np.int64)
        clipped = np.empty(len(X), dtype=bool)
        for start in range(0, len(X), ROW_BLOCK):
            block = slice(start, start + ROW_BLOCK)
            codes, clipped[block] = self.quantize_inputs(X[block])
            out[block] = self.requantize(self.accumulate(codes))
        return out, clipped

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.predict_clipped(X)[0]

    def predict_clipped(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        codes, clipped = self.predict_codes(X)
        return codes * np.float64(self.output_scale), clipped

    @property
    def label(self) -> str:
        return f"integer-only {self.weight_dtype}×int{self.input_bits} {self.calibration}"

    def answers(self, rows: np.ndarray) -> np.ndarray:
        """The output codes: an integer model is recognized bit for bit."""
        return self.predict_codes(rows)[0]

    def reproduces(self, rows: np.ndarray, answers: np.ndarray) -> bool:
        return bool(np.array_equal(self.answers(rows), answers))


def _float_accumulation_is_exact(model: IntegerLinearModel, X: np.ndarray) -> bool:
    """Whether ``_predict_codes_float`` reproduces the int64 arithmetic bit for bit on ``X``.

    The bound: an input code has magnitude at most 2^(input_bits−1), so no accumulator
    (without the bias) exceeds Σ_j |w_j|·2^(input_bits−1); below 2^50 it, its half-unit
    offset and every partial sum are exact in float64, with room for the conversion to int64.
    The other conditions keep the integer constants in int64 and the overflow test sound.
    """
    d = model.n_features
    weights, zero_point = model.weights, model.input_zero_point
    if X.ndim != 2 or d == 0 or X.shape[1] != d:
        return False
    if weights.shape != (d,) or zero_point.shape != (d,) or model.input_scale.shape != (d,):
        return False
    if not (
        np.issubdtype(weights.dtype, np.signedinteger)
        and np.issubdtype(zero_point.dtype, np.signedinteger)
    ):
        return False
    if not (3 <= model.input_bits <= 32 and 1 <= model.output_bits <= 64):
        return False
    if not 1 <= model.shift <= 62:
        return False
    if not (-(2**63) <= model.multiplier < 2**63 and -(2**63) <= model.bias < 2**63):
        return False
    if max(abs(int(z)) for z in zero_point) >= 2**50:
        return False
    return sum(abs(int(w)) for w in weights) << (model.input_bits - 1) < 2**50


def _predict_codes_float(model: IntegerLinearModel, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``predict_codes`` with a float64 accumulator, exact under ``_float_accumulation_is_exact``.

    Per block, four passes over the values, all in place in one buffer:

    1. ``x / input_scale``, rounded half to even: the same float64 operations as
       ``quantize_inputs``, so the same integers r.
    2. ``u = r + (input_zero_point + 0.5)``: the input code plus one half. A code lies in
       [qmin, qmax] = [−2^(b−1), 2^(b−1) − 1] exactly when |u| ≤ 2^(b−1) − 0.5, and lies
       outside exactly when |u| ≥ 2^(b−1) + 0.5.
    3. ``u · 2^(1025−b)``: exact and finite inside the range, ±inf (overflow) outside it.
    4. A dot product with the weights times 2^−(1025−b): Σ_j w_j·u_j exactly, or inf/NaN
       when any input of the row was out of range (inf·0 is NaN, so zero weights count too).

    Then, per row, ``_requantization`` says how to turn that accumulator into the output code
    with one or two float additions and three int64 operations. Rows whose accumulator is not
    finite (a clipped input, or a NaN) are redone exactly, with the clipping, by
    ``_predict_rows_clipped``.
    """
    n_rows, d = X.shape
    block = max(1, min(n_rows, ROW_BLOCK * 8 // d))
    exponent = 1025 - model.input_bits
    scale = np.tile(model.input_scale.astype(np.float64), block)
    centre = np.tile(model.input_zero_point.astype(np.float64) + 0.5, block)
    lift = np.float64(2.0**exponent)
    lowered = model.weights.astype(np.float64) * 2.0**-exponent
    offsets, multiplier, constant, shift, float_clip, int_clip = _requantization(model)
    out_low, out_high = model.output_range

    out = np.empty(n_rows, dtype=np.int64)
    clipped = np.empty(n_rows, dtype=bool)  # "accumulator finite" until the inversion below
    work = np.empty(block * d)
    total = np.empty(block)
    total_bits = total.view(np.int64)
    flat = X.reshape(-1) if X.flags.c_contiguous else None  # a view: rows as one run
    with np.errstate(over="ignore", invalid="ignore"):
        for start in range(0, n_rows, block):
            stop = min(start + block, n_rows)
            rows, size = stop - start, (stop - start) * d
            values = work[:size]
            inputs = _flat_rows(X, start, stop) if flat is None else flat[start * d : stop * d]
            np.divide(inputs, scale[:size], out=values)
            np.rint(values, out=values)
            np.add(values, centre[:size], out=values)
            np.multiply(values, lift, out=values)
            accumulator, accumulator_bits = total[:rows], total_bits[:rows]
            np.matmul(values.reshape(rows, d), lowered, out=accumulator)
            np.isfinite(accumulator, out=clipped[start:stop])
            if float_clip is not None:
                np.clip(accumulator, *float_clip, out=accumulator)
            for offset in offsets:
                np.add(accumulator, offset, out=accumulator)
            np.multiply(accumulator_bits, multiplier, out=accumulator_bits)
            np.add(accumulator_bits, constant, out=accumulator_bits)
            codes = out[start:stop]
            np.right_shift(accumulator_bits, shift, out=codes)
            if int_clip:
                np.clip(codes, out_low, out_high, out=codes)
    np.logical_not(clipped, out=clipped)

    redo = np.flatnonzero(clipped)
    for start in range(0, len(redo), block):
        rows_index = redo[start : start + block]
        out[rows_index], clipped[rows_index] = _predict_rows_clipped(
            model, X[rows_index], scale, centre, lift
        )
    return out, clipped


def _flat_rows(X: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of a non-C-ordered ``X`` as one C-ordered run of values."""
    rows = X[start:stop]
    return (rows if rows.flags.c_contiguous else np.ascontiguousarray(rows)).reshape(-1)


def _requantization(
    model: IntegerLinearModel,
) -> tuple[list[float], np.int64, np.int64, np.int64, tuple[float, float] | None, bool]:
    """How ``_predict_codes_float`` turns a row's float accumulator into its output code.

    The accumulator is a = A + Σw/2, A = Σ_j w_j·q_j the int64 accumulator without the bias,
    |A| < 2^50. The result must be ``clip(((A + bias)·multiplier + 2^(shift−1)) >> shift)``,
    wrap-around included. Returns ``(offsets, multiplier, constant, shift, float_clip,
    int_clip)`` for: clip a to ``float_clip`` (if any), add the offsets, take the float64's
    bits B as int64, then ``(B·multiplier + constant) >> shift``, clipped if ``int_clip``.

    In general: adding 1.5·2^52 − Σw/2 (or −Σw/2, then 1.5·2^52, when Σw is odd) gives
    B = bits(1.5·2^52) + A, so the constant is (bias − bits(1.5·2^52))·multiplier +
    2^(shift−1) modulo 2^64, and the result is the documented int64 value, wrap-around
    included, then clipped in int64. ``_requantization_halves`` does it with fewer passes
    when nothing can wrap and the output moves by at most 1 per unit of A.
    """
    weights = [int(w) for w in model.weights]
    weight_sum = sum(weights)
    multiplier, bias, shift = int(model.multiplier), int(model.bias), int(model.shift)
    rounding = 1 << (shift - 1)
    low, high = model.output_range
    qmin, qmax = model.input_range
    a_min = sum(min(w * qmin, w * qmax) for w in weights)
    a_max = sum(max(w * qmin, w * qmax) for w in weights)
    ends = [(a + bias) * multiplier + rounding for a in (a_min, a_max)]  # monotonic in A
    if 0 < multiplier <= 2**shift and shift <= 61:
        a_low = -((rounding - low * 2**shift) // multiplier) - bias  # first A with out ≥ low
        a_high = ((high + 1) * 2**shift - 1 - rounding) // multiplier - bias  # last A ≤ high
        lower = a_low if a_low > a_min else None  # None: no row needs that side clipped
        upper = a_high if a_high < a_max else None
        reached = [a_min, a_max] + [bound for bound in (lower, upper) if bound is not None]
        if all(abs(a) < 2**50 and abs((a + bias) * multiplier + rounding) < 2**62 for a in reached):
            return _requantization_halves(weight_sum, multiplier, bias, shift, lower, upper)
    magic = 1.5 * 2.0**52
    offsets = [magic - weight_sum // 2] if weight_sum % 2 == 0 else [-weight_sum / 2, magic]
    constant = (bias - _float_bits(magic)) * multiplier + rounding
    in_range = all(-(2**63) <= e < 2**63 and low <= e >> shift <= high for e in ends)
    return (
        offsets,
        np.int64(multiplier),
        np.int64(_wrap_int64(constant)),
        np.int64(shift),
        None,
        not in_range,
    )


def _requantization_halves(
    weight_sum: int, multiplier: int, bias: int, shift: int, lower: int | None, upper: int | None
) -> tuple[list[float], np.int64, np.int64, np.int64, tuple[float, float] | None, bool]:
    """``_requantization`` with one float addition and the clip done on the float accumulator.

    For 0 < multiplier ≤ 2^shift and |(A + bias)·multiplier + 2^(shift−1)| < 2^62 for every
    reachable A. Adding 1.5·2^51 − Σw/2 gives B = bits(1.5·2^51) + 2A (the float64 step there
    is 1/2), from which one multiplication and one addition give 2·((A + bias)·multiplier +
    2^(shift−1)) without wrap-around; shifted by shift + 1 it is the result. The output then
    grows by at most 1 per unit of A, so clipping A to ``[lower, upper]``, the first and last
    A whose outputs are inside the range, clips the output.
    """
    magic = 1.5 * 2.0**51
    constant = (2 * bias - _float_bits(magic)) * multiplier + (1 << shift)
    float_clip = None
    if lower is not None or upper is not None:
        half = weight_sum / 2
        float_clip = (
            -np.inf if lower is None else lower + half,
            np.inf if upper is None else upper + half,
        )
    return (
        [magic - weight_sum / 2],
        np.int64(multiplier),
        np.int64(_wrap_int64(constant)),
        np.int64(shift + 1),
        float_clip,
        False,
    )


def _float_bits(value: float) -> int:
    """The IEEE 754 bits of a float64, as an int."""
    return int(np.array([value]).view(np.int64)[0])


def _wrap_int64(value: int) -> int:
    """``value`` modulo 2^64, as a signed int64: what int64 arithmetic would have produced."""
    return (value + 2**63) % 2**64 - 2**63


def _predict_rows_clipped(
    model: IntegerLinearModel,
    X: np.ndarray,
    scale: np.ndarray,
    centre: np.ndarray,
    lift: np.float64,
) -> tuple[np.ndarray, np.ndarray]:
    """Output codes and clipped flags of C-ordered rows, with the clipping, exactly.

    The passes of ``_predict_codes_float`` up to u = code + 1/2 (``scale`` and ``centre`` its
    tiled constants), then: the lifted u summed with weights 2^−(1025−b) is finite exactly
    when no input of the row is out of range (the clipped flag); u clipped to [qmin + 1/2,
    qmax + 1/2] and summed with the weights is the accumulator of the clipped codes plus
    Σw/2, exact under the same bound; ``requantize`` finishes. Rows with a NaN, whose int64
    codes float64 cannot carry, go the int64 way.
    """
    rows, d = X.shape
    size = rows * d
    values = np.divide(X.reshape(-1), scale[:size])
    np.rint(values, out=values)
    values += centre[:size]
    with np.errstate(over="ignore", invalid="ignore"):
        lifted = values * lift
        inside = np.isfinite(lifted.reshape(rows, d) @ np.full(d, 1 / lift))
    qmin, qmax = model.input_range
    np.clip(values, qmin + 0.5, qmax + 0.5, out=values)
    accumulator = values.reshape(rows, d) @ model.weights.astype(np.float64)
    accumulator -= int(model.weights.sum()) / 2  # exact: multiples of 1/2 below 2^51
    out = np.empty(rows, dtype=np.int64)
    clipped = ~inside
    finite = np.isfinite(accumulator)
    out[finite] = model.requantize(accumulator[finite].astype(np.int64) + model.bias)
    if not finite.all():
        nan_rows = ~finite
        codes, clipped[nan_rows] = model.quantize_inputs(X[nan_rows])
        out[nan_rows] = model.requantize(model.accumulate(codes))
    return out, clipped
