"""The model objects every stage passes around: plain data, numpy only.

Each knows how to predict, because prediction is a line or two of arithmetic that has to be
identical wherever it runs (batch CLI, HTTP service, container). None knows a file format.
"""

from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import cache, cached_property
from typing import TYPE_CHECKING, Protocol

import numpy as np

from linreg_ops.config import Calibration, Granularity, Rounding

if TYPE_CHECKING:
    from threadpoolctl import ThreadpoolController

__all__ = [
    "FLOAT64_MAX",
    "PREDICTION_HEADROOM",
    "ROW_BLOCK",
    "SMALLEST_SUBNORMAL",
    "UNIT_ROUNDOFF",
    "FeatureStats",
    "IntegerLinearModel",
    "LinearModel",
    "Predictor",
    "QuantizedLinearModel",
    "domain_error",
    "outside_domain",
    "raw_input_bounds",
    "rounding_bound",
    "row_dot",
]

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


# --------------------------------------------------------------------------- the input domain

FLOAT64_MAX = float(np.finfo(np.float64).max)
PREDICTION_HEADROOM = 2.0**1022  # |Σ_j x_j·c_j| + |intercept| stays below this, in any order
UNIT_ROUNDOFF = 2.0**-53
SMALLEST_SUBNORMAL = 2.0**-1074


def raw_input_bounds(coef: np.ndarray, intercept: float) -> np.ndarray:
    """Per feature, the largest |x_j| a float prediction Σ_j x_j·c_j + b accepts.

    With |x_j| ≤ (2^1022 − |b|) / (d·|c_j|) for every j, the d terms and the intercept add up
    to at most 2^1022·(1 + d·2^−52) in magnitude, in whatever order a runtime sums them
    (numpy's einsum, onnxruntime's MatMul, a BLAS): no partial sum can overflow float64
    (2^1024), so every runtime computes a finite answer, equal to the others' within
    ``rounding_bound``. Beyond it the answer depends on the order (one runtime's 4.7e307 is
    another's inf). A weightless feature accepts every finite value.
    """
    coef = np.abs(np.asarray(coef, dtype=np.float64))
    headroom = max(PREDICTION_HEADROOM - abs(intercept), 0.0)
    with np.errstate(divide="ignore", over="ignore"):
        bounds = headroom / (len(coef) * coef)
    bounds[~(bounds <= FLOAT64_MAX)] = FLOAT64_MAX  # c_j = 0 (or tiny): any finite value
    return bounds


def _read_only(array: np.ndarray) -> np.ndarray:
    """``array``, shared by every caller of a cached property: nobody may change it."""
    array.flags.writeable = False
    return array


def outside_domain(model: "Predictor", X: np.ndarray) -> np.ndarray:
    """The rows no runtime answers, one flag per row: a value that is NaN or ±inf, or beyond
    the model's ``input_bounds`` (for the float kinds, where a sum could overflow).

    The one statement of the domain: ``predict`` (CLI, HTTP, MLflow) refuses these rows with
    ``domain_error``'s message, the ONNX graphs answer them NaN and the C header's
    ``linreg_predict_clipped`` returns −1. Inside it, every runtime gives predict's answer.
    """
    inside: np.ndarray = (np.abs(X) <= model.input_bounds).all(axis=1)  # NaN compares False
    return ~inside


def domain_error(model: "Predictor", row: np.ndarray) -> str:
    """Why a row ``outside_domain`` flagged is refused, naming the first offending column."""
    bounds = model.input_bounds
    j = int(np.flatnonzero(~(np.abs(row) <= bounds))[0])
    name, value = model.feature_names[j], float(row[j])
    if not np.isfinite(value):
        what = "NaN" if np.isnan(value) else "an infinite value"
        return f"column {name!r} holds {what}: linreg-ops predicts from finite numbers only"
    return (
        f"column {name!r} holds {value:.6g}, beyond ±{bounds[j]:.6g}, where the prediction "
        "could overflow float64 (the inputs are far outside anything the model was trained on)"
    )


def rounding_bound(terms: np.ndarray, operations: int) -> np.ndarray:
    """How far a float64 result may lie from the exact one when it is computed with
    ``operations`` roundings on any path whose absolute terms add up to ``terms`` (Higham's
    γ_n = n·u/(1 − n·u), u = 2^−53, for any summation order), plus one subnormal per
    operation for products that underflow."""
    n = operations + 1  # one more: |terms| is itself a rounded sum
    gamma = n * UNIT_ROUNDOFF / (1.0 - n * UNIT_ROUNDOFF)
    bound: np.ndarray = gamma * terms + n * SMALLEST_SUBNORMAL
    return bound


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

    @property
    def input_bounds(self) -> np.ndarray:
        """Per feature, the largest |x| the model answers (``outside_domain``)."""
        ...

    def predict(self, X: np.ndarray) -> np.ndarray: ...

    def predict_clipped(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predictions, and which rows were clipped: an input outside its calibrated codes,
        or an output beyond the output codes (integer-only; never for the float kinds)."""
        ...

    @property
    def exact_answers(self) -> bool:
        """Whether ``answers`` are the same bits in every runtime (integer codes), so that a
        digest of them over many rows recognizes the model."""
        ...

    def answers(self, rows: np.ndarray) -> np.ndarray:
        """What a manifest records to recognize this model: its exact output on ``rows``."""
        ...

    def sensitive_rows(self, X: np.ndarray) -> np.ndarray:
        """Indices of the rows of ``X`` whose answers best reveal an edit of one parameter
        (beyond the answers' rounding): for each way an edit can move the answers, the row
        it moves most relative to that row's tolerance."""
        ...

    def reproduces(self, rows: np.ndarray, answers: np.ndarray) -> bool:
        """Whether this model gives ``answers`` on ``rows`` (as ``answers`` recorded them)."""
        ...


class _FloatOutput(ABC):
    """The float kinds' shared answers: nothing is clipped, and two runtimes agree to the
    rounding of the row's own arithmetic (``rounding_bound``), not to a fixed tolerance."""

    @abstractmethod
    def predict(self, X: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def rounding_bound(self, X: np.ndarray) -> np.ndarray:
        """Per row, how far a correct float64 evaluation of ``predict`` may lie from the exact
        value of this model's arithmetic, whatever the runtime's summation order."""

    @abstractmethod
    def edit_directions(self) -> np.ndarray:
        """Rows (u, u₀), one per way an edit of one stored number can move the answers: such
        an edit moves the answer of row x by a multiple of u·x + u₀ (see ``sensitive_rows``)."""

    exact_answers = False

    def predict_clipped(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.predict(X), np.zeros(len(X), dtype=bool)

    def answers(self, rows: np.ndarray) -> np.ndarray:
        return self.predict(rows)

    def sensitive_rows(self, X: np.ndarray) -> np.ndarray:
        """For each edit direction, the row where that edit shows most against the tolerance:
        an edit of amplitude a moves row i by a·|u·x_i + u₀|, so if it exceeds row i's
        tolerance anywhere, it does at the row that maximises |u·x_i + u₀| / tolerance_i."""
        if len(X) == 0:
            return np.empty(0, dtype=np.int64)
        directions = self.edit_directions()
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):  # huge rows: 0
            movement = np.abs(X @ directions[:, :-1].T + directions[:, -1])  # (rows, dirs)
            ratio = movement / self.rounding_bound(X)[:, None]
        ratio[~np.isfinite(ratio)] = 0.0
        return np.unique(np.argmax(ratio, axis=0))

    def reproduces(self, rows: np.ndarray, answers: np.ndarray) -> bool:
        """Within twice the rounding bound: each evaluation lies within one of the exact value,
        so a larger difference means the exact value itself moved — another model."""
        tolerance = 2.0 * self.rounding_bound(rows)
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

    @cached_property
    def input_bounds(self) -> np.ndarray:
        """Computed once per model (every prediction checks its rows against it)."""
        return _read_only(raw_input_bounds(self.coef, self.intercept))

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Float64 predictions for rows of ``X`` in ``feature_names`` order."""
        return row_dot(X, self.coef) + self.intercept

    def rounding_bound(self, X: np.ndarray) -> np.ndarray:
        """d products and d additions: γ_(2d)·(Σ_j |x_j·c_j| + |b|)."""
        terms = row_dot(np.abs(X), np.abs(self.coef)) + abs(self.intercept)
        return rounding_bound(terms, 2 * self.n_features)

    def edit_directions(self) -> np.ndarray:
        """A coefficient moves the answers along x_j, the intercept along 1."""
        return np.eye(self.n_features + 1)


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
    granularity: Granularity
    rounding: Rounding
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

    @cached_property
    def input_bounds(self) -> np.ndarray:
        """Computed once per model (every prediction checks its rows against it)."""
        return _read_only(raw_input_bounds(*self.to_raw_space()))

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predictions from the integers: dequantize once and fold the standardization into
        the weights, so a batch costs one matrix-vector product, like the float model."""
        coef, intercept = self.to_raw_space()
        return row_dot(X, coef) + intercept

    def rounding_bound(self, X: np.ndarray) -> np.ndarray:
        """The roundings of ``to_raw_space`` (one per coefficient; the intercept's product,
        dot product and difference) and of the row's dot product, all bounded by γ_(4d+4)
        times the sum of every absolute term they involve."""
        coef, intercept = self.to_raw_space()
        mean = self.feature_mean.astype(np.float64)
        model_terms = abs(self.bias * self.bias_scale) + float(np.abs(coef) @ np.abs(mean))
        terms = row_dot(np.abs(X), np.abs(coef)) + (abs(intercept) + model_terms)
        return rounding_bound(terms, 4 * self.n_features + 4)

    def edit_directions(self) -> np.ndarray:
        """Answers are Σ_j c_j·(x_j − μ_j) + bias·bias_scale with c_j = scale_j·(q_j − zp_j)/σ_j.
        One weight code, per-channel scale or zero point, or σ_j moves c_j: along x_j − μ_j.
        The per-tensor scale moves every c_j in proportion: along Σ_j c_j·(x_j − μ_j). The
        per-tensor zero point moves every c_j by scale/σ_j: along Σ_j (x_j − μ_j)/σ_j. The
        bias, its scale and a mean move the constant: along 1."""
        d = self.n_features
        mean = self.feature_mean.astype(np.float64)
        centred = np.hstack([np.eye(d), -mean[:, None]])
        coef = self.to_raw_space()[0]
        inverse_std = 1.0 / self.feature_std.astype(np.float64)
        return np.vstack(
            [
                centred,
                np.append(coef, -float(coef @ mean)),
                np.append(inverse_std, -float(inverse_std @ mean)),
                np.append(np.zeros(d), 1.0),
            ]
        )

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

    A row is *clipped* when either clip in steps 1 and 3 changed a value.
    """

    feature_names: tuple[str, ...]
    target_name: str
    weight_dtype: str
    weights: np.ndarray  # int64 codes: the per-tensor standardized weights
    accumulator_scale: float  # real value of one accumulator unit (weight scale × input step)
    rounding: Rounding
    bias: int  # int32, at accumulator_scale
    input_bits: int
    input_scale: np.ndarray  # float32 values, per feature
    input_zero_point: np.ndarray  # int64 (may lie outside the code range)
    calibration: Calibration
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

    @cached_property
    def input_bounds(self) -> np.ndarray:
        """Every finite value: the codes saturate, so no input can overflow anything."""
        return _read_only(np.full(self.n_features, FLOAT64_MAX))

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
        return self.requantize_saturated(accumulator)[0]

    def requantize_saturated(self, accumulator: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Output codes, and which of them saturated: (acc·M + 2^(s−1)) >> s lay beyond the
        output codes, so the row's answer is the end of the range, not its own."""
        rounding = np.int64(1) << np.int64(self.shift - 1)
        out = (accumulator * np.int64(self.multiplier) + rounding) >> np.int64(self.shift)
        low, high = self.output_range
        saturated = (out < low) | (out > high)
        codes: np.ndarray = np.clip(out, low, high)
        return codes, saturated

    def predict_codes(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Integer output codes and the per-row clipped flags, in cache-sized row blocks.

        A row is clipped when an input lay outside its codes or the output saturated: the
        input codes share one σ-step, so a row can stay inside every input range and still
        reach an output the calibration never saw (31.73 served as 31.20). Both mean the
        answer is the range's, not the row's own.

        Bit for bit the arithmetic above, on one of two routes. When the weights prove that no
        accumulator can reach 2^50 (checked once per call), the sum of products runs in
        float64, where every product and partial sum of integers below 2^53 is exact, and rows
        with a clipped input are found without comparing each value (``_predict_codes_float``).
        Otherwise the codes are accumulated in int64, as written.
        """
        X = np.asarray(X, dtype=np.float64)
        with np.errstate(over="ignore"):  # x / input_scale beyond float64: a clipped code
            if _float_accumulation_is_exact(self, X):
                return _predict_codes_float(self, X)
            return self._predict_codes_int64(X)

    def _predict_codes_int64(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The exact int64 route, for any model and any input shape."""
        out = np.empty(len(X), dtype=np.int64)
        clipped = np.empty(len(X), dtype=bool)
        for start in range(0, len(X), ROW_BLOCK):
            block = slice(start, start + ROW_BLOCK)
            codes, inputs_clipped = self.quantize_inputs(X[block])
            out[block], saturated = self.requantize_saturated(self.accumulate(codes))
            clipped[block] = inputs_clipped | saturated
        return out, clipped

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.predict_clipped(X)[0]

    def predict_clipped(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        codes, clipped = self.predict_codes(X)
        return codes * np.float64(self.output_scale), clipped

    @property
    def label(self) -> str:
        return f"integer-only {self.weight_dtype}×int{self.input_bits} {self.calibration}"

    exact_answers = True

    def answers(self, rows: np.ndarray) -> np.ndarray:
        """The output codes: an integer model is recognized bit for bit."""
        return self.predict_codes(rows)[0]

    def sensitive_rows(self, X: np.ndarray) -> np.ndarray:
        """None: an edit of one integer moves the codes of rows that no small set predicts
        (a multiplier one higher moves a row only where its product crosses a rounding
        boundary), so integer models are checked on a digest of every stored test row."""
        return np.empty(0, dtype=np.int64)

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
    with one or two float additions and three int64 operations; where the output can saturate,
    the value about to be clipped (the float accumulator, or the int64 result) is compared
    with the ends first, which flags the row. Rows whose accumulator is not finite (a clipped
    input, or a NaN) are redone exactly, with the clipping, by ``_predict_rows_clipped``.
    """
    n_rows, d = X.shape
    block = max(1, min(n_rows, ROW_BLOCK * 8 // d))
    exponent = 1025 - model.input_bits
    scale = np.tile(model.input_scale.astype(np.float64), block)
    centre = np.tile(model.input_zero_point.astype(np.float64) + 0.5, block)
    lift = np.float64(2.0**exponent)
    lowered = model.weights.astype(np.float64) * 2.0**-exponent
    if n_rows > block:  # many blocks: one BLAS thread (a lone row pays no thread set-up)
        with _one_blas_thread():
            return _predict_blocks(model, X, block, scale, centre, lift, lowered)
    return _predict_blocks(model, X, block, scale, centre, lift, lowered)


@cache
def _blas_threads() -> "ThreadpoolController":
    """The process's thread pools, found once (0.2 ms), so a limit costs microseconds;
    imported here, not at start-up (18 ms), as only a batch of many blocks needs it."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _one_blas_thread() -> AbstractContextManager[object]:
    """One BLAS thread for the per-block d-long products: too small to share, a second
    OpenBLAS thread only spins for work (on a busy 2-core machine the blocks' products took
    twice as long with it)."""
    limit: AbstractContextManager[object] = _blas_threads().limit(limits=1, user_api="blas")
    return limit


def _predict_blocks(
    model: IntegerLinearModel,
    X: np.ndarray,
    block: int,
    scale: np.ndarray,
    centre: np.ndarray,
    lift: np.float64,
    lowered: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The block loop of ``_predict_codes_float`` (see there)."""
    n_rows, d = X.shape
    requantize = _requantization(model)
    out_low, out_high = model.output_range
    out = np.empty(n_rows, dtype=np.int64)
    clipped = np.empty(n_rows, dtype=bool)  # "accumulator finite" until the inversion below
    saturated = np.zeros(n_rows, dtype=bool)
    side = np.empty(block, dtype=bool)
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
            if requantize.float_clip is not None:
                low, high = requantize.float_clip
                _flag_beyond(accumulator, low, high, saturated[start:stop], side[:rows])
                np.clip(accumulator, low, high, out=accumulator)
            for offset in requantize.offsets:
                np.add(accumulator, offset, out=accumulator)
            np.multiply(accumulator_bits, requantize.multiplier, out=accumulator_bits)
            np.add(accumulator_bits, requantize.constant, out=accumulator_bits)
            codes = out[start:stop]
            np.right_shift(accumulator_bits, requantize.shift, out=codes)
            if requantize.int_clip:
                _flag_beyond(codes, out_low, out_high, saturated[start:stop], side[:rows])
                np.clip(codes, out_low, out_high, out=codes)
    np.logical_not(clipped, out=clipped)
    redo = np.flatnonzero(clipped)
    np.logical_or(clipped, saturated, out=clipped)
    for start in range(0, len(redo), block):
        rows_index = redo[start : start + block]
        out[rows_index], clipped[rows_index] = _predict_rows_clipped(
            model, X[rows_index], scale, centre, lift
        )
    return out, clipped


def _flag_beyond(
    values: np.ndarray, low: float, high: float, flags: np.ndarray, side: np.ndarray
) -> None:
    """``flags`` = values < low or values > high, comparing only with the finite ends (an
    end of ±inf is a side the output cannot reach); ``side`` is scratch space."""
    if high < np.inf:
        np.greater(values, high, out=flags)
    else:
        flags.fill(False)
    if low > -np.inf:
        np.less(values, low, out=side)
        np.logical_or(flags, side, out=flags)


def _flat_rows(X: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of a non-C-ordered ``X`` as one C-ordered run of values."""
    rows = X[start:stop]
    return (rows if rows.flags.c_contiguous else np.ascontiguousarray(rows)).reshape(-1)


@dataclass(frozen=True)
class _Requantization:
    """How ``_predict_codes_float`` turns a row's float accumulator a into its output code:
    clip a to ``float_clip`` (if any), add the ``offsets``, take the float64's bits B as
    int64, then ``(B·multiplier + constant) >> shift``, clipped if ``int_clip``."""

    offsets: list[float]
    multiplier: np.int64
    constant: np.int64
    shift: np.int64
    float_clip: tuple[float, float] | None
    int_clip: bool


def _requantization(model: IntegerLinearModel) -> _Requantization:
    """How ``_predict_codes_float`` turns a row's float accumulator into its output code.

    The accumulator is a = A + Σw/2, A = Σ_j w_j·q_j the int64 accumulator without the bias,
    |A| < 2^50. The result must be ``clip(((A + bias)·multiplier + 2^(shift−1)) >> shift)``,
    wrap-around included.

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
    return _Requantization(
        offsets,
        np.int64(multiplier),
        np.int64(_wrap_int64(constant)),
        np.int64(shift),
        None,
        not in_range,
    )


def _requantization_halves(
    weight_sum: int, multiplier: int, bias: int, shift: int, lower: int | None, upper: int | None
) -> _Requantization:
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
    return _Requantization(
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
    out[finite], saturated = model.requantize_saturated(
        accumulator[finite].astype(np.int64) + model.bias
    )
    clipped[finite] |= saturated
    if not finite.all():
        nan_rows = ~finite
        codes, inputs_clipped = model.quantize_inputs(X[nan_rows])
        out[nan_rows], saturated = model.requantize_saturated(model.accumulate(codes))
        clipped[nan_rows] = inputs_clipped | saturated
    return out, clipped
