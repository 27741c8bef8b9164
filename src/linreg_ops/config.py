"""Every default, once: typed configuration objects that argparse, the service and the docs read.

Each object validates itself on construction, so a bad value is refused with one line
wherever it comes from (a flag, an environment variable, a test), and a stage function can
trust the object it is given.
"""

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from linreg_ops.errors import InputError

__all__ = [
    "ACCESS_LOGS",
    "BLOCK_BYTES",
    "CALIBRATIONS",
    "DEFAULT_BASELINE",
    "DEFAULT_CHUNK_ROWS",
    "DEFAULT_EXPORTS_DIR",
    "DEFAULT_LOCK_TIMEOUT",
    "DEFAULT_MAX_R2_REGRESSION",
    "DEFAULT_MODELS_DIR",
    "DEFAULT_REGISTERED_MODEL",
    "DEFAULT_REPORTS_DIR",
    "DRIFT_DEFAULTS",
    "ENGINES",
    "EXPORT_FORMATS",
    "GRANULARITIES",
    "INPUT_BITS",
    "IN_MEMORY_ROWS",
    "LOG_LEVELS",
    "MODELS_DIR_ENV",
    "MODEL_KINDS",
    "MODEL_NAMES",
    "ONNX_INPUT_TYPES",
    "PREDICT_ENGINES",
    "ROUNDINGS",
    "SERVE_DEFAULTS",
    "SUPPORTED_BITS",
    "TRACKED_MODEL_KIND",
    "TRACKING_URI_ENV",
    "AccessLog",
    "Calibration",
    "DriftConfig",
    "Engine",
    "ExportFormat",
    "FitEngine",
    "GateConfig",
    "Granularity",
    "InputDtype",
    "IntegerConfig",
    "LogLevel",
    "ModelKind",
    "PredictEngine",
    "QuantConfig",
    "QuantDtype",
    "Rounding",
    "ServeConfig",
    "TrainConfig",
    "models_dir_default",
    "parse_dtype",
    "tracking_uri_default",
]

FitEngine = Literal["sklearn", "streaming", "dask"]  # what fits; "auto" chooses one of them
Engine = Literal["auto", FitEngine]
PredictEngine = Literal["streaming", "dask"]
ModelKind = Literal["float", "quantized", "integer"]
Granularity = Literal["per-tensor", "per-channel"]
Rounding = Literal["nearest", "hessian", "optimal"]
Calibration = Literal["minmax", "percentile"]
InputDtype = Literal["int8", "int16"]
ExportFormat = Literal["onnx", "c", "mlflow"]

ENGINES: tuple[Engine, ...] = get_args(Engine)
PREDICT_ENGINES: tuple[PredictEngine, ...] = get_args(PredictEngine)
MODEL_KINDS: tuple[ModelKind, ...] = get_args(ModelKind)
# what the service calls each kind where a protocol names models (the Open Inference Protocol)
MODEL_NAMES: dict[ModelKind, str] = {
    "float": "linreg-ops",
    "quantized": "linreg-ops-quantized",
    "integer": "linreg-ops-integer",
}
GRANULARITIES: tuple[Granularity, ...] = get_args(Granularity)
ROUNDINGS: tuple[Rounding, ...] = get_args(Rounding)
CALIBRATIONS: tuple[Calibration, ...] = get_args(Calibration)
INPUT_BITS: dict[InputDtype, int] = {"int8": 8, "int16": 16}
EXPORT_FORMATS: tuple[ExportFormat, ...] = get_args(ExportFormat)
SUPPORTED_BITS = range(2, 17)
ONNX_INPUT_TYPES = ("float64", "float32")  # an ONNX export's input tensor; the first is default

MODELS_DIR_ENV = "LINREG_OPS_MODELS_DIR"  # every command's --models-dir, when not given
DEFAULT_MODELS_DIR = Path("models")
DEFAULT_REPORTS_DIR = Path("reports")
DEFAULT_EXPORTS_DIR = Path("exports")  # export's --output when not given (git ignores it)
IN_MEMORY_ROWS = 1_000_000  # engine "auto": scikit-learn below this many rows, streaming above
DEFAULT_CHUNK_ROWS = 131_072  # rows per block at most (--chunk-rows): larger blocks gain nothing
BLOCK_BYTES = 9 << 20  # and at most this much per block: 131,072 rows of 9 float64 columns
DEFAULT_BASELINE = Path("ci/baseline.json")  # the CI gate's committed metrics
DEFAULT_MAX_R2_REGRESSION = 0.001  # promote / the CI baseline: how much worse R² may be
DEFAULT_LOCK_TIMEOUT = 10.0  # seconds a second writer waits for the models folder
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"  # --tracking-uri when not given (MLflow's own variable)
DEFAULT_REGISTERED_MODEL = "linreg-ops"  # --registered-model: the registry's name for the model
TRACKED_MODEL_KIND: ModelKind = "float"  # the MLflow model logged and registered by run


def models_dir_default() -> Path:
    """``--models-dir`` when the flag is not given: ``$LINREG_OPS_MODELS_DIR``, else ``models``
    (read when called, never at import)."""
    return Path(os.environ.get(MODELS_DIR_ENV) or DEFAULT_MODELS_DIR)


def tracking_uri_default() -> str | None:
    """``--tracking-uri`` when the flag is not given: ``$MLFLOW_TRACKING_URI``, else None (no
    tracking; read when called, never at import)."""
    return os.environ.get(TRACKING_URI_ENV) or None


def _choice(value: str, choices: tuple[str, ...], what: str) -> None:
    if value not in choices:
        raise InputError(f"unknown {what} {value!r}: expected one of {', '.join(choices)}")


@dataclass(frozen=True)
class TrainConfig:
    """How to split and fit: the seed's 80/20 split with ``random_state=42`` by default."""

    test_size: float = 0.2
    random_state: int = 42
    engine: Engine = "auto"
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    scheduler: str | None = None  # tcp://HOST:PORT of a dask.distributed scheduler

    def __post_init__(self) -> None:
        if not (isinstance(self.test_size, float | int) and 0.0 < self.test_size < 1.0):
            raise InputError(f"--test-size must be between 0 and 1, got {self.test_size}")
        if not 0 <= self.random_state < 2**32:
            raise InputError(f"--random-state must be in [0, 2^32), got {self.random_state}")
        _choice(self.engine, ENGINES, "engine")
        if self.chunk_rows < 1:
            raise InputError(f"--chunk-rows must be ≥ 1, got {self.chunk_rows}")


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
        return int(2 ** (self.bits - 1) - 1 if self.symmetric else 2**self.bits - 1)


def parse_dtype(name: str) -> QuantDtype:
    """``int8`` → symmetric 8-bit, ``uint8`` → asymmetric 8-bit; any width from 2 to 16."""
    # ASCII digits without a leading zero: the name is stored and read by other runtimes, so
    # only its canonical spelling is accepted (not ``int08``, nor ``int٨`` with an Arabic 8).
    match = re.fullmatch(r"(u?)int([1-9][0-9]*)", name)
    if not match or int(match.group(2)) not in SUPPORTED_BITS:
        raise InputError(
            f"unsupported dtype {name!r}: expected intN or uintN with N from 2 to 16 "
            "(for example int8 or uint8)"
        )
    return QuantDtype(name=name, bits=int(match.group(2)), symmetric=not match.group(1))


@dataclass(frozen=True)
class QuantConfig:
    """How to quantize the weights: dtype, one scale or one per weight, and the rounding."""

    dtype: str = "int8"
    granularity: Granularity = "per-tensor"
    rounding: Rounding = "hessian"

    def __post_init__(self) -> None:
        parse_dtype(self.dtype)
        _choice(self.granularity, GRANULARITIES, "granularity")
        _choice(self.rounding, ROUNDINGS, "rounding")


@dataclass(frozen=True)
class IntegerConfig:
    """Integer-only inference: input code width and how its per-feature ranges are calibrated."""

    input_dtype: InputDtype = "int16"
    calibration: Calibration = "minmax"

    def __post_init__(self) -> None:
        _choice(self.input_dtype, tuple(INPUT_BITS), "input dtype")
        _choice(self.calibration, CALIBRATIONS, "calibration")

    @property
    def input_bits(self) -> int:
        return INPUT_BITS[self.input_dtype]


@dataclass(frozen=True)
class GateConfig:
    """Limits every published quantized model must meet on the test split (None: no limit)."""

    max_r2_drop: float | None = 0.001
    max_abs_diff: float | None = None

    def __post_init__(self) -> None:
        for name, value in (
            ("--max-r2-drop", self.max_r2_drop),
            ("--max-abs-diff", self.max_abs_diff),
        ):
            if value is not None and not (math.isfinite(value) and value >= 0):
                # inf would be written to metrics.json as Infinity, which is not JSON
                raise InputError(f"{name} must be a finite number ≥ 0 or 'none', got {value}")


LogLevel = Literal["critical", "error", "warning", "info", "debug"]
LOG_LEVELS: tuple[LogLevel, ...] = get_args(LogLevel)
AccessLog = Literal["json", "text", "off"]  # serve --access-log: one line per request, or none
ACCESS_LOGS: tuple[AccessLog, ...] = get_args(AccessLog)


@dataclass(frozen=True)
class ServeConfig:
    """Defaults of ``linreg-ops serve``; the service's settings class reads them too.

    Each can also come from a ``LINREG_OPS_<NAME>`` environment variable: a flag wins, then
    the environment, then these defaults.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    max_batch: int = 10_000  # rows per request
    max_body_bytes: int = 8 * 1024 * 1024
    max_json_depth: int = 32  # nesting levels of a JSON body, checked before parsing
    log_level: LogLevel = "info"
    drain_seconds: float = 5.0  # after SIGTERM: serve until clients stop, at most this long
    access_log: AccessLog = "json"
    metrics: bool = True  # GET /metrics, and the bookkeeping behind it
    alias: str = "current"  # the alias a service follows unless --version N pins one
    # serve --model-uri models:/NAME@ALIAS: how often each worker asks the registry (one
    # HTTP call; the folder's alias is read every 0.5 s, but a registry is a shared server)
    registry_poll_seconds: float = 2.0
    # the least it may be: a smaller value only adds load on the shared registry (1e-9 ran
    # ~150 lookups a second from two workers) and a folder's alias is read every 0.5 s
    registry_poll_min_seconds: float = 0.5


SERVE_DEFAULTS = ServeConfig()


@dataclass(frozen=True)
class DriftConfig:
    """How ``linreg-ops monitor`` and ``GET /monitor`` measure drift, and when they flag it.

    The reference profile keeps ``grid_bins`` training-quantile bins per column (KS and
    Wasserstein are read on them) that ``psi_bins`` coarser bins group (PSI). The verdict
    follows Evidently's default for numeric columns: normed Wasserstein ≥ 0.1 when the
    reference has more than 1,000 rows, otherwise the two-sample KS test at p < 0.05 (also
    NannyML's). PSI below 0.1 is stable, 0.1–0.25 moderate, from 0.25 significant: a drift.
    """

    psi_bins: int = 10
    grid_bins: int = 100  # a multiple of psi_bins: every PSI edge is a grid edge
    psi_moderate: float = 0.1
    psi_significant: float = 0.25
    wasserstein_threshold: float = 0.1  # normed by the training σ (Evidently)
    ks_p_value: float = 0.05  # Evidently and NannyML, for small references
    small_reference_rows: int = 1000  # Evidently: KS up to here, normed Wasserstein above
    share_floor: float = 1e-4  # an empty bin's share in PSI (Evidently's)

    def __post_init__(self) -> None:
        if not (2 <= self.psi_bins <= self.grid_bins and self.grid_bins % self.psi_bins == 0):
            raise InputError("grid_bins must be a multiple of psi_bins (both at least 2)")


DRIFT_DEFAULTS = DriftConfig()
