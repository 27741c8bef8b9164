"""The three model kinds ↔ JSON, with typed schemas and the schema-version policy.

A JSON artifact is trusted only after two checks: its SHA-256 against the manifest (the
store's job) and its *content* against a schema here — types, lengths equal to the feature
count, finite values, integer codes inside their dtype, multiplier and shift inside the
range the integer arithmetic is exact for, and a known ``schema_version``. Whatever passes
can be predicted with: no NaN, no overflow, no index error further down.

Schema policy: ``schema_version`` is one integer, raised whenever a field changes meaning.
A newer one is "written by a newer linreg-ops"; an older one needs a retrain. Unknown
fields are refused, so a hand edit cannot hide in a typo.
"""

import json
from typing import Annotated, Any, Literal, Self, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from linreg_ops.config import Calibration, Granularity, QuantDtype, Rounding, parse_dtype
from linreg_ops.errors import ArtifactError, InputError
from linreg_ops.model import FeatureStats, IntegerLinearModel, LinearModel, QuantizedLinearModel

__all__ = [
    "FLOAT32_MAX",
    "FLOAT32_TINY",
    "INT32_MAX",
    "INT32_MIN",
    "NAME_MAX_CHARS",
    "SCHEMA_VERSION",
    "ColumnProfile",
    "Document",
    "DriftProfileDoc",
    "Figures",
    "Finite",
    "FloatModelDoc",
    "Int32",
    "IntegerModelDoc",
    "MetricsDoc",
    "Name",
    "QuantizedModelDoc",
    "TrainingStatistics",
    "Versioned",
    "check_schema_version",
    "decode",
    "decode_drift_profile",
    "decode_float",
    "decode_integer",
    "decode_metrics",
    "decode_quantized",
    "encode_drift_profile",
    "encode_float",
    "encode_integer",
    "encode_quantized",
    "first_error",
    "float_model_dict",
    "float_model_from",
    "integer_model_dict",
    "integer_model_from",
    "json_bytes",
    "quantized_model_dict",
    "quantized_model_from",
]

SCHEMA_VERSION = 2
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
FLOAT32_TINY = float(np.finfo(np.float32).tiny)
FLOAT32_MAX = float(np.finfo(np.float32).max)

NAME_MAX_CHARS = 1024
Name = Annotated[str, Field(min_length=1, max_length=NAME_MAX_CHARS)]
Finite = float  # finiteness comes from ``allow_inf_nan=False`` on every schema
Int32 = Annotated[int, Field(ge=INT32_MIN, le=INT32_MAX)]


class Document(BaseModel):
    """Strict JSON: no coercion (``true`` is not 1, ``"1"`` is not a number), no NaN or
    infinity, no unknown keys, immutable once read."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=True)


class Versioned(Document):
    schema_version: int


def _lengths(what: str, expected: int, **arrays: list[Any]) -> None:
    for name, values in arrays.items():
        if len(values) != expected:
            raise ValueError(f"{name} has {len(values)} values, expected {expected} ({what})")


def _float32(name: str, values: list[float], *, positive: bool) -> None:
    """Values a float32 holds exactly (what another runtime reads), positive where a scale."""
    array = np.asarray(values, dtype=np.float64)
    if np.any(np.abs(array) > FLOAT32_MAX) or np.any(array.astype(np.float32) != array):
        raise ValueError(f"{name} must hold float32 values")
    if positive and np.any(array < FLOAT32_TINY):
        raise ValueError(f"{name} must be positive (at least {FLOAT32_TINY:g})")


def _dtype(name: str) -> QuantDtype:
    """``parse_dtype`` inside a schema validator, where a refusal is a ValueError."""
    try:
        return parse_dtype(name)
    except InputError as exc:
        raise ValueError(str(exc)) from None


def _unique_features(features: list[str]) -> None:
    if not features:
        raise ValueError("features is empty")
    if len(set(features)) != len(features):
        raise ValueError("features lists a name twice")


# --------------------------------------------------------------------------- float model


class TrainingStatistics(Document):
    n: int = Field(ge=1)
    feature_mean: list[Finite]
    feature_std: list[Finite]
    feature_min: list[Finite]
    feature_max: list[Finite]
    quantile_level: float = Field(gt=0.0, lt=0.5)
    feature_low_quantile: list[Finite]
    feature_high_quantile: list[Finite]
    standardized_correlation: list[list[Finite]]


class FloatModelDoc(Versioned):
    kind: Literal["linear_regression"]
    target: Name
    features: list[Name]
    coef: list[Finite]
    intercept: Finite
    training_statistics: TrainingStatistics

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        _unique_features(self.features)
        d = len(self.features)
        stats = self.training_statistics
        _lengths(
            "one per feature", d, coef=self.coef, feature_mean=stats.feature_mean,
            feature_std=stats.feature_std, feature_min=stats.feature_min,
            feature_max=stats.feature_max, feature_low_quantile=stats.feature_low_quantile,
            feature_high_quantile=stats.feature_high_quantile,
            standardized_correlation=stats.standardized_correlation,
        )  # fmt: skip
        for row in stats.standardized_correlation:
            _lengths("a d×d matrix", d, standardized_correlation_row=row)
        _correlation(np.asarray(stats.standardized_correlation, dtype=np.float64))
        if min(stats.feature_std) <= 0.0:
            raise ValueError("feature_std must be positive (1 for a constant feature)")
        if any(lo > hi for lo, hi in zip(stats.feature_min, stats.feature_max, strict=True)):
            raise ValueError("feature_min exceeds feature_max")
        return self


def _correlation(matrix: np.ndarray) -> None:
    """ZᵀZ/n of standardized features: symmetric, 1 on the diagonal (0 for a constant
    feature), positive semi-definite — what the Hessian-aware rounding factorizes."""
    tolerance = 1e-6
    if not np.allclose(matrix, matrix.T, rtol=0.0, atol=tolerance):
        raise ValueError("standardized_correlation must be symmetric")
    diagonal = np.diag(matrix)
    if np.any((np.abs(diagonal - 1.0) > tolerance) & (np.abs(diagonal) > tolerance)):
        raise ValueError("standardized_correlation must have 1 (or 0) on its diagonal")
    if len(matrix) and np.linalg.eigvalsh(matrix).min() < -tolerance * len(matrix):
        raise ValueError("standardized_correlation must be positive semi-definite")


def float_model_dict(model: LinearModel) -> dict[str, Any]:
    stats = model.stats
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "linear_regression",
        "target": model.target_name,
        "features": list(model.feature_names),
        "coef": _floats(model.coef),
        "intercept": float(model.intercept),
        "training_statistics": {
            "n": stats.n,
            "feature_mean": _floats(stats.mean),
            "feature_std": _floats(stats.std),
            "feature_min": _floats(stats.minimum),
            "feature_max": _floats(stats.maximum),
            "quantile_level": stats.quantile_level,
            "feature_low_quantile": _floats(stats.low),
            "feature_high_quantile": _floats(stats.high),
            "standardized_correlation": _floats(stats.correlation),
        },
    }


def float_model_from(doc: FloatModelDoc) -> LinearModel:
    stats = doc.training_statistics
    return LinearModel(
        feature_names=tuple(doc.features),
        target_name=doc.target,
        coef=np.asarray(doc.coef, dtype=np.float64),
        intercept=doc.intercept,
        stats=FeatureStats(
            n=stats.n,
            mean=np.asarray(stats.feature_mean, dtype=np.float64),
            std=np.asarray(stats.feature_std, dtype=np.float64),
            minimum=np.asarray(stats.feature_min, dtype=np.float64),
            maximum=np.asarray(stats.feature_max, dtype=np.float64),
            quantile_level=stats.quantile_level,
            low=np.asarray(stats.feature_low_quantile, dtype=np.float64),
            high=np.asarray(stats.feature_high_quantile, dtype=np.float64),
            correlation=np.asarray(stats.standardized_correlation, dtype=np.float64),
        ),
    )


# --------------------------------------------------------------------------- quantized model


class QuantizedModelDoc(Versioned):
    kind: Literal["quantized_linear_regression"]
    target: Name
    features: list[Name]
    convention: str
    prediction: str
    dtype: str
    bits: int
    symmetric: bool
    granularity: Granularity
    rounding: Rounding
    weights: list[int]
    scale: list[Finite]
    scale_dtype: Literal["float32"]
    zero_point: list[int]
    bias: Int32
    bias_dtype: Literal["int32"]
    bias_scale: Finite
    feature_mean: list[Finite]
    feature_std: list[Finite]
    statistics_dtype: Literal["float32"]

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        _unique_features(self.features)
        d = len(self.features)
        dtype = _dtype(self.dtype)
        if (dtype.bits, dtype.symmetric) != (self.bits, self.symmetric):
            raise ValueError(f"bits/symmetric do not match dtype {self.dtype}")
        _lengths("one per feature", d, weights=self.weights, feature_mean=self.feature_mean,
                 feature_std=self.feature_std)  # fmt: skip
        scales = 1 if self.granularity == "per-tensor" else d
        _lengths(self.granularity, scales, scale=self.scale, zero_point=self.zero_point)
        for name, codes in (("weights", self.weights), ("zero_point", self.zero_point)):
            if any(not dtype.qmin <= q <= dtype.qmax for q in codes):
                raise ValueError(
                    f"{name} must lie in [{dtype.qmin}, {dtype.qmax}] for {self.dtype}"
                )
        _float32("scale", self.scale, positive=True)
        _float32("bias_scale", [self.bias_scale], positive=True)
        _float32("feature_mean", self.feature_mean, positive=False)
        _float32("feature_std", self.feature_std, positive=True)
        return self


def quantized_model_dict(model: QuantizedLinearModel) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "quantized_linear_regression",
        "target": model.target_name,
        "features": list(model.feature_names),
        "convention": "real = scale * (q - zero_point); round half to even; saturate",
        "prediction": (
            "z = (x - feature_mean) / feature_std; "
            "y = sum(scale * (q - zero_point) * z) + bias * bias_scale "
            "(equivalently: fold 1/feature_std and feature_mean into raw-space weights once)"
        ),
        "dtype": model.dtype,
        "bits": model.bits,
        "symmetric": model.symmetric,
        "granularity": model.granularity,
        "rounding": model.rounding,
        "weights": [int(q) for q in model.weights],
        "scale": _floats(model.scale),
        "scale_dtype": "float32",
        "zero_point": [int(z) for z in model.zero_point],
        "bias": int(model.bias),
        "bias_dtype": "int32",
        "bias_scale": float(model.bias_scale),
        "feature_mean": _floats(model.feature_mean),
        "feature_std": _floats(model.feature_std),
        "statistics_dtype": "float32",
    }


def quantized_model_from(doc: QuantizedModelDoc) -> QuantizedLinearModel:
    return QuantizedLinearModel(
        feature_names=tuple(doc.features),
        target_name=doc.target,
        dtype=doc.dtype,
        bits=doc.bits,
        symmetric=doc.symmetric,
        granularity=doc.granularity,
        rounding=doc.rounding,
        weights=np.asarray(doc.weights, dtype=np.int64),
        scale=np.asarray(doc.scale, dtype=np.float32),
        zero_point=np.asarray(doc.zero_point, dtype=np.int64),
        bias=doc.bias,
        bias_scale=doc.bias_scale,
        feature_mean=np.asarray(doc.feature_mean, dtype=np.float32),
        feature_std=np.asarray(doc.feature_std, dtype=np.float32),
    )


# --------------------------------------------------------------------------- integer-only model


class IntegerModelDoc(Versioned):
    kind: Literal["integer_only_linear_regression"]
    target: Name
    features: list[Name]
    inference: list[str]
    weight_dtype: str
    weights: list[int]
    accumulator_scale: Finite = Field(gt=0.0)
    rounding: Rounding
    bias: Int32
    bias_dtype: Literal["int32"]
    input_bits: Literal[8, 16]
    input_scale: list[Finite]
    input_zero_point: list[Int32]
    calibration: Calibration
    output_bits: Literal[16]
    output_scale: Finite
    multiplier: int = Field(ge=2**30, lt=2**31)  # M0 in [0.5, 1) as a Q31 integer
    shift: int = Field(ge=1, le=62)
    scale_dtype: Literal["float32"]

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        _unique_features(self.features)
        d = len(self.features)
        dtype = _dtype(self.weight_dtype)
        if not dtype.symmetric:
            raise ValueError("weight_dtype must be a symmetric intN")
        _lengths("one per feature", d, weights=self.weights, input_scale=self.input_scale,
                 input_zero_point=self.input_zero_point)  # fmt: skip
        if any(not dtype.qmin <= q <= dtype.qmax for q in self.weights):
            raise ValueError(f"weights must lie in [{dtype.qmin}, {dtype.qmax}]")
        _float32("input_scale", self.input_scale, positive=True)
        _float32("output_scale", [self.output_scale], positive=True)
        # The accumulator must stay an int32 for every input code, so acc·multiplier plus
        # the rounding term stays inside int64 (< 2^31 · 2^31 + 2^61 < 2^63).
        worst = sum(abs(w) for w in self.weights) * 2 ** (self.input_bits - 1) + abs(self.bias)
        if worst > INT32_MAX:
            raise ValueError(f"the accumulator could reach {worst:,}, beyond int32")
        return self


def integer_model_dict(model: IntegerLinearModel) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "integer_only_linear_regression",
        "target": model.target_name,
        "features": list(model.feature_names),
        "inference": [
            "q_x = clip(round_half_even(x / input_scale) + input_zero_point, input range)",
            "acc = sum(weights * q_x) + bias  (int64; bias already holds the zero points)",
            "out = clip((acc * multiplier + 2**(shift - 1)) >> shift, output range)",
            "y = output_scale * out",
        ],
        "weight_dtype": model.weight_dtype,
        "weights": [int(q) for q in model.weights],
        "accumulator_scale": float(model.accumulator_scale),
        "rounding": model.rounding,
        "bias": int(model.bias),
        "bias_dtype": "int32",
        "input_bits": model.input_bits,
        "input_scale": _floats(model.input_scale),
        "input_zero_point": [int(z) for z in model.input_zero_point],
        "calibration": model.calibration,
        "output_bits": model.output_bits,
        "output_scale": float(model.output_scale),
        "multiplier": int(model.multiplier),
        "shift": int(model.shift),
        "scale_dtype": "float32",
    }


def integer_model_from(doc: IntegerModelDoc) -> IntegerLinearModel:
    return IntegerLinearModel(
        feature_names=tuple(doc.features),
        target_name=doc.target,
        weight_dtype=doc.weight_dtype,
        weights=np.asarray(doc.weights, dtype=np.int64),
        accumulator_scale=doc.accumulator_scale,
        rounding=doc.rounding,
        bias=doc.bias,
        input_bits=doc.input_bits,
        input_scale=np.asarray(doc.input_scale, dtype=np.float32),
        input_zero_point=np.asarray(doc.input_zero_point, dtype=np.int64),
        calibration=doc.calibration,
        output_bits=doc.output_bits,
        output_scale=doc.output_scale,
        multiplier=doc.multiplier,
        shift=doc.shift,
    )


# --------------------------------------------------------------------------- metrics


class Figures(BaseModel):
    """Fidelity figures; open-ended (new figures may be added), but every value finite."""

    model_config = ConfigDict(strict=True, extra="allow", allow_inf_nan=False, frozen=True)

    r2: float
    mse: float


class MetricsDoc(Versioned):
    float: Figures
    quantized: Figures | None
    integer_only: Figures | None
    n_train: int = Field(ge=1)
    n_test: int = Field(ge=0)
    n_test_stored: int = Field(ge=0)
    features: list[Name]
    target: Name
    gate: dict[str, Any]


# --------------------------------------------------------------------------- drift profile


class ColumnProfile(Document):
    """One column of the training rows as drift monitoring sees it: grid edges (the first
    just below the training minimum, then training quantiles, the last the maximum), the
    share of training rows in each bin they make (below the range, the grid bins, above),
    the mean of the training rows in each bin (the bin's midpoint where it has none), which
    edges bound the coarser PSI bins, and the column's range and moments."""

    name: Name
    edges: list[Finite]
    shares: list[Finite]
    bin_means: list[Finite]
    psi_cuts: list[int]
    minimum: Finite
    maximum: Finite
    mean: Finite
    std: Finite = Field(ge=0.0)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        edges = np.asarray(self.edges, dtype=np.float64)
        if len(edges) < 2 or np.any(np.diff(edges) < 0.0):
            raise ValueError(f"{self.name}: edges must be at least 2, in ascending order")
        _lengths("one per bin", len(edges) + 1, shares=self.shares, bin_means=self.bin_means)
        shares = np.asarray(self.shares, dtype=np.float64)
        if np.any(shares < 0.0) or abs(float(shares.sum()) - 1.0) > 1e-9:
            raise ValueError(f"{self.name}: shares must be ≥ 0 and sum to 1")
        cuts = np.asarray(self.psi_cuts, dtype=np.int64)
        if np.any(np.diff(cuts) <= 0) or np.any((cuts < 0) | (cuts >= len(edges))):
            raise ValueError(f"{self.name}: psi_cuts must be ascending edge indices")
        if not self.minimum <= self.maximum:
            raise ValueError(f"{self.name}: minimum exceeds maximum")
        return self


class DriftProfileDoc(Versioned):
    """``drift_profile.json``: the training rows' profile every version stores for drift
    monitoring; its columns are the features, in order, then the float model's prediction."""

    kind: Literal["drift_profile"]
    features: list[Name]
    target: Name
    n: int = Field(ge=1)  # training rows
    sample_rows: int = Field(ge=1)  # the rows the quantiles and shares were read from
    columns: list[ColumnProfile]
    covariance: list[list[Finite]]  # of the features, over n (not n − 1)
    prediction_mean: Finite
    prediction_variance: Finite = Field(ge=0.0)
    target_mean: Finite
    target_variance: Finite = Field(ge=0.0)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        _unique_features(self.features)
        d = len(self.features)
        _lengths("one per feature and the prediction", d + 1, columns=self.columns)
        _lengths("a d×d matrix", d, covariance=self.covariance)
        for row in self.covariance:
            _lengths("a d×d matrix", d, covariance_row=row)
        sizes = {len(column.edges) for column in self.columns}
        if len(sizes) != 1:
            raise ValueError("every column must have as many edges")
        return self


# --------------------------------------------------------------------------- encode and decode


def json_bytes(payload: Any) -> bytes:
    """Deterministic JSON: sorted keys, shortest round-tripping floats, trailing newline."""
    return (json.dumps(payload, indent=2, sort_keys=True, allow_nan=False) + "\n").encode("utf-8")


def _floats(values: np.ndarray) -> Any:
    """JSON-ready floats (nested for 2-D), shortest repr that round-trips."""
    return np.asarray(values, dtype=np.float64).tolist()


_DocT = TypeVar("_DocT", bound=Versioned)


class _Head(BaseModel):
    """Just enough of any artifact to apply the schema policy before the full schema."""

    model_config = ConfigDict(extra="ignore")
    schema_version: Any = None


def decode(schema: type[_DocT], data: bytes, source: str) -> _DocT:
    """Bytes → validated document, or one line naming the file and the first problem.

    pydantic's JSON parser is used throughout: it bounds nesting depth, refuses NaN and
    infinity literals, and never builds Python objects for what it rejects.
    """
    try:
        head = _Head.model_validate_json(data)
    except ValidationError as exc:
        if exc.errors()[0]["type"] == "json_invalid":
            raise ArtifactError(f"{source} is not valid JSON: {first_error(exc)}") from None
        raise ArtifactError(
            f"{source} is not a linreg-ops artifact: expected a JSON object"
        ) from None
    check_schema_version(head.schema_version, source)
    try:
        return schema.model_validate_json(data)
    except ValidationError as exc:
        raise ArtifactError(
            f"{source} is not a valid linreg-ops artifact: {first_error(exc)}"
        ) from None


def check_schema_version(version: Any, source: str) -> None:
    """Known, older and newer schemas: say which, and what to do."""
    if type(version) is not int:
        raise ArtifactError(f"{source} has no integer schema_version (found {version!r})")
    if version > SCHEMA_VERSION:
        raise ArtifactError(
            f"{source} was written by a newer linreg-ops (schema_version {version}; this one "
            f"reads {SCHEMA_VERSION}): upgrade linreg-ops"
        )
    if version < SCHEMA_VERSION:
        raise ArtifactError(
            f"{source} was written by an older linreg-ops (schema_version {version}; this one "
            f"reads {SCHEMA_VERSION}): retrain with linreg-ops train"
        )


def first_error(error: ValidationError) -> str:
    """``field.sub[3]: message`` for the first error pydantic found."""
    first = error.errors(include_url=False)[0]
    where = ""
    for part in first["loc"]:
        where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def encode_float(model: LinearModel) -> bytes:
    return json_bytes(float_model_dict(model))


def encode_quantized(model: QuantizedLinearModel) -> bytes:
    return json_bytes(quantized_model_dict(model))


def encode_integer(model: IntegerLinearModel) -> bytes:
    return json_bytes(integer_model_dict(model))


def decode_float(data: bytes, source: str) -> LinearModel:
    return float_model_from(decode(FloatModelDoc, data, source))


def decode_quantized(data: bytes, source: str) -> QuantizedLinearModel:
    return quantized_model_from(decode(QuantizedModelDoc, data, source))


def decode_integer(data: bytes, source: str) -> IntegerLinearModel:
    return integer_model_from(decode(IntegerModelDoc, data, source))


def encode_drift_profile(doc: DriftProfileDoc) -> bytes:
    return json_bytes(doc.model_dump(mode="json"))


def decode_drift_profile(data: bytes, source: str) -> DriftProfileDoc:
    return decode(DriftProfileDoc, data, source)


def decode_metrics(data: bytes, source: str) -> dict[str, Any]:
    return decode(MetricsDoc, data, source).model_dump(mode="json")
