"""The pipeline's stages, one call each: ``train``, ``quantize`` and ``run`` write a version,
``export`` writes a model out of one, ``sweep`` measures without writing.

Each writing stage holds the models folder's writer lock for its whole run, computes everything in
memory, gates every quantized model, and publishes exactly one new version — or nothing:
bad input, a failed gate or a crash leave the current version as it was. ``run`` is
train → quantize → evaluate → publish → report in one version, so a gate failure in
``run`` cannot destroy the previous models.
"""

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from linreg_ops.config import (
    DEFAULT_CHUNK_ROWS,
    DEFAULT_LOCK_TIMEOUT,
    DRIFT_DEFAULTS,
    EXPORT_FORMATS,
    DriftConfig,
    ExportFormat,
    FitEngine,
    GateConfig,
    IntegerConfig,
    ModelKind,
    QuantConfig,
    TrainConfig,
)
from linreg_ops.errors import ArtifactError, InputError, QualityGateError
from linreg_ops.inference import loading
from linreg_ops.inference.evaluate import Evaluation, evaluate, labelled_rows
from linreg_ops.inference.loading import AnyModel, Models
from linreg_ops.metrics import r2_from_sums, regression_metrics
from linreg_ops.model import IntegerLinearModel, LinearModel, QuantizedLinearModel
from linreg_ops.monitoring import drift as drift_metrics
from linreg_ops.monitoring.profile import build_profile, load_profile
from linreg_ops.monitoring.stats import Accumulator, scan
from linreg_ops.quantization.gate import (
    check_float32_range,
    fidelity,
    gate_failure,
    limits_met,
)
from linreg_ops.quantization.quantize import build_integer_model, quantize_model, rounding_note
from linreg_ops.quantization.sweep import sweep as quantize_sweep
from linreg_ops.storage import codecs, store
from linreg_ops.storage.digests import sha256_bytes
from linreg_ops.storage.joblib_codec import estimator_from, joblib_bytes
from linreg_ops.storage.store import Version
from linreg_ops.training import engines
from linreg_ops.training.engines import Fit
from linreg_ops.training.features import feature_statistics
from linreg_ops.training.sources import ArraySource, Source

__all__ = [
    "EXPORT_SUFFIXES",
    "SEED_CHECK_ROWS",
    "ExportResult",
    "MonitorResult",
    "QuantizeResult",
    "RunResult",
    "SeedCheck",
    "SweepResult",
    "TrainResult",
    "check_export_path",
    "export",
    "monitor",
    "quantize",
    "run",
    "seed_check",
    "sweep",
    "train",
    "verify",
]

SEED_CHECK_ROWS = 10  # the seed's inference test: its first 10 test rows


@dataclass(frozen=True)
class TrainResult:
    version: Version
    model: LinearModel
    metrics: dict[str, float]
    n_train: int
    n_test: int
    engine: FitEngine
    joblib: bool  # whether the version holds the seed's joblib file


@dataclass(frozen=True)
class QuantizeResult:
    version: Version
    model: LinearModel
    quantized: QuantizedLinearModel
    integer: IntegerLinearModel
    figures: dict[str, float]
    integer_figures: dict[str, float]
    note: str | None  # what the user should know (e.g. optimal rounding fell back)
    first_rows: np.ndarray  # the seed's check runs on the first SEED_CHECK_ROWS test rows
    joblib: bool  # whether the version holds the seed's joblib files


@dataclass(frozen=True)
class RunResult:
    train: TrainResult
    quantize: QuantizeResult
    models: Models
    evaluation: Evaluation
    reports: list[Path]
    unwritten: list[str]  # reports that could not replace the old ones once published (why)


# --------------------------------------------------------------------------- stages


def train(
    source: Source,
    models_dir: Path,
    config: TrainConfig = TrainConfig(),
    *,
    command: str = "linreg-ops train",
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    progress: Callable[[int, int], None] | None = None,
    joblib: bool = False,
) -> TrainResult:
    """Fit ``source`` and publish a version holding the float model and its test split
    (``progress(rows, bytes)`` after each block a file source streams; the seed's joblib file when
    asked or when scikit-learn fitted: see ``_Trained``)."""
    with store.writer(models_dir, command, lock_timeout) as writer:
        trained = _Trained.of(source, config, progress, joblib)
        version = writer.publish(
            trained.files(),
            _sections(trained.provenance(source), {"float": trained.model}, trained.test_features),
            parent=_current_or_none(writer),
            verify=verify,
        )
    return trained.result(version)


def quantize(
    models_dir: Path,
    config: QuantConfig = QuantConfig(),
    integer: IntegerConfig = IntegerConfig(),
    gate: GateConfig = GateConfig(),
    *,
    command: str = "linreg-ops quantize",
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
) -> QuantizeResult:
    """Quantize the current version's float model; publish it with the quantized models."""
    with store.writer(models_dir, command, lock_timeout) as writer:
        base = writer.current()
        models = loading.load_models(base)
        test = loading.stored_test_rows(models)
        X, y = test.values[:, :-1], test.values[:, -1]
        quantized = _Quantized.of(
            models.float, X, y, config, integer, gate, base.has(store.ESTIMATOR_JOBLIB)
        )
        metrics = codecs.decode_metrics(
            store.read_artifact(base, store.METRICS_JSON), str(base.path / store.METRICS_JSON)
        )
        files = {
            **quantized.files(),
            store.METRICS_JSON: codecs.json_bytes(quantized.metrics(metrics, gate)),
        }
        provenance = {"training_data": base.manifest.training_data, "split": base.manifest.split}
        version = writer.publish(
            files,
            _sections(provenance, quantized.models(), X),
            parent=base,
            carry=(
                store.ESTIMATOR_JOBLIB,
                store.MODEL_JSON,
                store.TEST_SPLIT_CSV,
                store.DRIFT_PROFILE_JSON,
            ),
            verify=verify,
        )
    return quantized.result(version)


def run(
    source: Source,
    models_dir: Path,
    reports_dir: Path,
    config: TrainConfig = TrainConfig(),
    quant: QuantConfig = QuantConfig(),
    integer: IntegerConfig = IntegerConfig(),
    gate: GateConfig = GateConfig(),
    *,
    command: str = "linreg-ops run",
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    progress: Callable[[int, int], None] | None = None,
    joblib: bool = False,
) -> RunResult:
    """Train, quantize and gate in memory; evaluate the staged version and write its reports
    beside their places; publish it; then move the reports into place. Everything that can
    run out of space happens before the version is published, so a failure changes nothing;
    after it, a report that cannot replace the old one is named in ``unwritten``."""
    from linreg_ops import report  # only run and sweep write reports: train never pays

    store.check_outside(models_dir, reports_dir, "--reports-dir")
    store.check_writable(reports_dir)  # before any work: a run must not fail at its end
    units = source.target_units if isinstance(source, ArraySource) else None
    staged: dict[Path, store.StagedFile] = {}  # each report, by the path the user will see
    evaluated: list[tuple[Models, Evaluation]] = []

    def verify_and_report(version: Version) -> None:
        verify(version)
        models = loading.load_models(version)
        evaluation = evaluate(models, X, y, f"stored test split ({store.TEST_SPLIT_CSV})")
        evaluated.append((models, evaluation))
        for name, data in report.run_report_files(models, evaluation, X, y, units).items():
            path = Path(reports_dir) / name
            staged[path] = store.stage_file(path, data)

    with store.writer(models_dir, command, lock_timeout) as writer:
        trained = _Trained.of(source, config, progress, joblib)
        X, y = trained.test_features, trained.test_y
        quantized = _Quantized.of(trained.model, X, y, quant, integer, gate, trained.joblib)
        files = {
            **trained.files(),
            **quantized.files(),
            store.METRICS_JSON: codecs.json_bytes(quantized.metrics(trained.metrics_doc(), gate)),
        }
        try:
            version = writer.publish(
                files,
                _sections(trained.provenance(source), quantized.models(), X),
                parent=_current_or_none(writer),
                verify=verify_and_report,
            )
        except BaseException:
            store.discard_files(list(staged.values()))
            raise
    reports, unwritten = [], []
    for path, item in staged.items():
        try:
            store.place_file(item)
            reports.append(path)
        except InputError as exc:
            unwritten.append(str(exc))
    models, evaluation = evaluated[0]
    return RunResult(
        trained.result(version),
        quantized.result(version),
        replace(models, version=version),
        evaluation,
        reports,
        unwritten,
    )


def verify(version: Version) -> None:
    """Everything a reader will check, checked on the staged version before it is published."""
    models = loading.load_models(version)
    loading.stored_test_rows(models)
    codecs.decode_metrics(
        store.read_artifact(version, store.METRICS_JSON), str(version.path / store.METRICS_JSON)
    )


def _current_or_none(writer: store.Writer) -> Version | None:
    """The version a new training run replaces, if any can be read (a broken one is replaced)."""
    try:
        return writer.current()
    except ArtifactError:
        return None


def _sections(
    provenance: dict[str, Any], models: dict[ModelKind, AnyModel], rows: np.ndarray
) -> dict[str, Any]:
    return {
        **provenance,
        "versions": store.package_versions(),
        "known_answers": loading.known_answers(models, rows),
    }


# --------------------------------------------------------------------------- training


@dataclass(frozen=True)
class _Trained:
    """A fitted model and what its version stores.

    ``joblib``: whether the version holds the seed's joblib files. They are pickles of a
    scikit-learn estimator, for the seed's scripts only; building one costs importing
    scikit-learn (seconds), which the streaming and Dask engines otherwise never do. So they
    are written when asked (``--joblib``; the seed's shims ask) or when scikit-learn fitted
    (its estimator is at hand), and a quantized version has them when its parent has.
    """

    fit: Fit
    model: LinearModel
    metrics: dict[str, float]
    joblib: bool

    @classmethod
    def of(
        cls,
        source: Source,
        config: TrainConfig,
        progress: Callable[[int, int], None] | None = None,
        joblib: bool = False,
    ) -> "_Trained":
        fit = engines.fit(source, config, progress)
        model = LinearModel(
            feature_names=tuple(source.feature_names),
            target_name=source.target_name,
            coef=np.asarray(fit.coef, dtype=np.float64),
            intercept=float(fit.intercept),
            stats=feature_statistics(fit.train, fit.sample),
        )
        if fit.test_complete:
            metrics = regression_metrics(
                fit.stored_test[:, -1], model.predict(fit.stored_test[:, :-1])
            )
        else:  # beyond the stored rows: exact, from the test rows' own moments
            sse = fit.test.squared_error(model.coef, model.intercept)
            metrics = {"r2": r2_from_sums(sse, fit.test.cyy), "mse": sse / fit.test.n}
        return cls(fit, model, metrics, joblib or fit.estimator is not None)

    @property
    def test_features(self) -> np.ndarray:
        return np.ascontiguousarray(self.fit.stored_test[:, :-1])

    @property
    def test_y(self) -> np.ndarray:
        return np.ascontiguousarray(self.fit.stored_test[:, -1])

    def files(self) -> dict[str, bytes]:
        from linreg_ops.storage import tables

        names = [*self.model.feature_names, self.model.target_name]
        files = {
            store.MODEL_JSON: codecs.encode_float(self.model),
            store.TEST_SPLIT_CSV: tables.csv_bytes(names, self.fit.stored_test),
            store.METRICS_JSON: codecs.json_bytes(self.metrics_doc()),
            store.DRIFT_PROFILE_JSON: codecs.encode_drift_profile(
                build_profile(self.fit.train, self.fit.sample, self.model)
            ),
        }
        if self.joblib:
            estimator = self.fit.estimator
            if estimator is None:
                estimator = estimator_from(self.model.coef, self.model.intercept)
            files[store.ESTIMATOR_JOBLIB] = joblib_bytes(estimator)
        return files

    def metrics_doc(self) -> dict[str, Any]:
        return {
            "schema_version": codecs.SCHEMA_VERSION,
            "float": self.metrics,
            "quantized": None,
            "integer_only": None,
            "n_train": self.fit.train.n,
            "n_test": self.fit.test.n,
            "n_test_stored": len(self.fit.stored_test),
            "features": list(self.model.feature_names),
            "target": self.model.target_name,
            "gate": {},
        }

    def provenance(self, source: Source) -> dict[str, Any]:
        data: dict[str, Any]
        if isinstance(source, ArraySource):
            data = {"source": source.description, "sha256": source.sha256}
        else:
            data = {
                "source": source.description,
                "files": [str(path) for path in source.files],
                "sha256": source.sha256(),
            }
        split = {
            **self.fit.split,
            "engine": self.fit.engine,
            "n_train": self.fit.train.n,
            "n_test": self.fit.test.n,
        }
        return {"training_data": data, "split": split}

    def result(self, version: Version) -> TrainResult:
        return TrainResult(
            version,
            self.model,
            self.metrics,
            self.fit.train.n,
            self.fit.test.n,
            self.fit.engine,
            self.joblib,
        )


# --------------------------------------------------------------------------- quantization


@dataclass(frozen=True)
class _Quantized:
    """The quantized and integer-only models of a float model, both through the gate."""

    model: LinearModel
    quantized: QuantizedLinearModel
    integer: IntegerLinearModel
    figures: dict[str, float]
    integer_figures: dict[str, float]
    config: QuantConfig
    integer_config: IntegerConfig
    first_rows: np.ndarray
    joblib: bool  # the seed's joblib files too (when the float model's version has them)

    @classmethod
    def of(
        cls,
        model: LinearModel,
        X: np.ndarray,
        y: np.ndarray,
        config: QuantConfig,
        integer: IntegerConfig,
        gate: GateConfig,
        joblib: bool,
    ) -> "_Quantized":
        check_float32_range(model)
        quantized = quantize_model(model, config)
        integer_model = build_integer_model(model, config, integer)
        # decoded as a reader will, so a refusal names the new model, not a staging file
        codecs.decode_quantized(codecs.encode_quantized(quantized), "new quantized_model.json")
        codecs.decode_integer(codecs.encode_integer(integer_model), "new integer_model.json")
        figures = fidelity(model, quantized, X, y)
        integer_figures = fidelity(model, integer_model, X, y)
        for label, numbers in (
            (quantized.label, figures),
            (integer_model.label, integer_figures),
        ):
            failure = gate_failure(label, numbers, gate)
            if failure:
                clipped = int(numbers.get("clipped_rows", 0))
                hint = (
                    f" ({clipped} of {len(y)} test rows have inputs outside the training range "
                    "the integer-only model was calibrated on, and are clipped)"
                    if clipped
                    else ""
                )
                raise QualityGateError(f"quality gate: {failure}{hint}; nothing was written")
        return cls(
            model,
            quantized,
            integer_model,
            figures,
            integer_figures,
            config,
            integer,
            X[:SEED_CHECK_ROWS],
            joblib,
        )

    def models(self) -> dict[ModelKind, AnyModel]:
        return {"float": self.model, "quantized": self.quantized, "integer": self.integer}

    def files(self) -> dict[str, bytes]:
        quantized = self.quantized
        files = {
            store.QUANTIZED_MODEL_JSON: codecs.encode_quantized(quantized),
            store.INTEGER_MODEL_JSON: codecs.encode_integer(self.integer),
        }
        if not self.joblib:
            return files
        coef, intercept = quantized.to_raw_space()
        return {
            **files,
            store.UNQUANT_PARAMS_JOBLIB: joblib_bytes(
                {"coef": self.model.coef, "intercept": self.model.intercept}
            ),
            store.QUANT_PARAMS_JOBLIB: joblib_bytes(
                {
                    "dtype": quantized.dtype,
                    "granularity": quantized.granularity,
                    "weights": quantized.weights,
                    "scale": quantized.scale,
                    "zero_point": quantized.zero_point,
                    "bias": quantized.bias,
                    "bias_scale": quantized.bias_scale,
                    "feature_mean": quantized.feature_mean,
                    "feature_std": quantized.feature_std,
                    "dequantized_coef": coef,
                    "dequantized_intercept": intercept,
                }
            ),
        }

    def metrics(self, previous: dict[str, Any], gate: GateConfig) -> dict[str, Any]:
        """``metrics.json``: the float figures kept, the quantized ones and the limits met."""
        return {
            **previous,
            "quantized": {
                "dtype": self.quantized.dtype,
                "granularity": self.quantized.granularity,
                "rounding": self.quantized.rounding,
                **self.figures,
            },
            "integer_only": {
                "weight_dtype": self.integer.weight_dtype,
                "input_dtype": self.integer_config.input_dtype,
                "calibration": self.integer.calibration,
                **self.integer_figures,
            },
            "gate": {
                "max_r2_drop": gate.max_r2_drop,
                "max_abs_diff": gate.max_abs_diff,
                "quantized": limits_met(self.figures, gate),
                "integer_only": limits_met(self.integer_figures, gate),
            },
        }

    def result(self, version: Version) -> QuantizeResult:
        return QuantizeResult(
            version,
            self.model,
            self.quantized,
            self.integer,
            self.figures,
            self.integer_figures,
            rounding_note(self.config, self.model.n_features),
            self.first_rows,
            self.joblib,
        )


@dataclass(frozen=True)
class SeedCheck:
    """The seed's 10-row check: scikit-learn, manual float and manual dequantized predictions."""

    sklearn: np.ndarray
    manual: np.ndarray
    dequantized: np.ndarray
    max_coef_error: float
    intercept_error: float


@dataclass(frozen=True)
class SweepResult:
    source: str
    n_rows: int
    table: str
    reports: list[Path]
    rows: list[dict[str, Any]]  # one per scheme, as the table shows them


def sweep(
    models_dir: Path,
    reports_dir: Path,
    data: str | Path | None,
    target: str | None,
    progress: Callable[[int], None] | None = None,
) -> SweepResult:
    """Every symmetric intN × rounding × granularity of the current float model, measured on
    the same labelled rows, as a table and a plot. Writes only the reports."""
    from linreg_ops import report

    store.check_outside(models_dir, reports_dir, "--reports-dir")
    models = loading.load(models_dir)
    check_float32_range(models.float)
    X, y, source = labelled_rows(models, data, target)
    rows = quantize_sweep(models.float, X, y, progress=progress)
    table = report.sweep_table(rows)
    paths = report.write_sweep_report(reports_dir, table, source, models.float, X, y, rows)
    return SweepResult(source, int(y.size), table, paths, rows)


def seed_check(result: QuantizeResult) -> SeedCheck:
    """scikit-learn's own ``predict`` with the float coefficients (no unpickling), the same
    sum by hand, and the dequantized model's raw-space coefficients by hand."""
    rows, model = result.first_rows, result.model
    coef, intercept = result.quantized.to_raw_space()
    return SeedCheck(
        sklearn=estimator_from(model.coef, model.intercept).predict(rows),
        manual=rows @ model.coef + model.intercept,
        dequantized=rows @ coef + intercept,
        max_coef_error=float(np.max(np.abs(coef - model.coef))),
        intercept_error=abs(intercept - model.intercept),
    )


# --------------------------------------------------------------------------- monitor


@dataclass(frozen=True)
class MonitorResult:
    report: dict[str, Any]  # what drift.json and ``monitor --json`` hold
    table: str
    reports: list[Path]


def monitor(
    models_dir: Path,
    input_spec: str | Path,
    reports_dir: Path,
    *,
    target: str | None = None,
    version: int | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    config: DriftConfig = DRIFT_DEFAULTS,
) -> MonitorResult:
    """The drift of ``input_spec``'s rows from the training rows of a version (the current
    one by default), streamed in blocks; writes drift.md, drift.png and drift.json."""
    from linreg_ops import report  # drift's table, markdown and PNG: only monitor pays

    store.check_outside(models_dir, reports_dir, "--reports-dir")
    models = loading.load(models_dir, version)
    profile = load_profile(models.version, models.float)
    store.check_writable(reports_dir)
    stats = scan(
        input_spec, Accumulator.of(profile, models.float), models.float, target, chunk_rows
    )
    metrics = loading.load_metrics(models.version) or {}
    drift = drift_metrics.drift_report(
        profile, stats, models.float.coef, source=str(input_spec), version=models.version.number,
        training=metrics.get("float"), target=target, config=config,
    )  # fmt: skip
    table = report.drift_table(drift)
    files = {
        "drift.json": codecs.json_bytes(drift),
        "drift.md": report.drift_markdown(drift, table).encode("utf-8"),
        "drift.png": report.drift_png(drift),
    }
    staged = [store.stage_file(Path(reports_dir) / name, data) for name, data in files.items()]
    for item in staged:
        store.place_file(item)
    return MonitorResult(drift, table, [item.path for item in staged])


# --------------------------------------------------------------------------- export


EXPORT_SUFFIXES: dict[ExportFormat, str] = {"onnx": ".onnx", "c": ".h"}  # MLflow: a folder


@dataclass(frozen=True)
class ExportResult:
    version: Version
    kind: ModelKind
    format: ExportFormat
    path: Path
    sha256: str
    bytes: int


def export(
    models_dir: Path,
    export_format: ExportFormat,
    kind: ModelKind,
    output: Path,
    *,
    command: str = "linreg-ops export",
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    onnx_input: str | None = None,
    number: int | None = None,
) -> ExportResult:
    """Write the current version's (or version ``number``'s) ``kind`` model as ONNX, a C99
    header or an MLflow model, and record the export's SHA-256 in the store's ``exports.json``.

    The writer lock is held from the start: a folder that cannot record the export (busy,
    read-only, a copy) is refused before the output is written, and the version exported
    is the one current while it is recorded.
    """
    if export_format not in EXPORT_FORMATS:
        raise InputError(
            f"unknown format {export_format!r}: expected one of {', '.join(EXPORT_FORMATS)}"
        )
    if export_format == "c" and kind != "integer":
        raise InputError("the C export is of the integer-only model: use --model integer")
    if onnx_input is not None and export_format != "onnx":
        raise InputError(f"--onnx-input applies to --format onnx, not {export_format}")
    store.open_version(models_dir, number)  # "no model in …" before a lock file is made
    store.check_outside(models_dir, output, "--output")
    check_export_path(export_format, Path(output))
    with store.writer(models_dir, command, lock_timeout) as writer:
        version = writer.current() if number is None else store.open_version(models_dir, number)
        store.read_exports(models_dir)  # a broken record is refused before anything is written
        digest, size = _write_export(version, export_format, kind, output, onnx_input)
        artifact = loading.ARTIFACT_OF[kind]
        entry = {
            "version": version.number, "model": kind, "format": export_format,
            "path": str(Path(output).resolve()), "sha256": digest, "bytes": size,
            "artifact": artifact, "artifact_sha256": version.sha256(artifact),
        }  # fmt: skip
        store.record_export(writer, entry)
    return ExportResult(version, kind, export_format, Path(output), digest, size)


def check_export_path(export_format: ExportFormat, output: Path) -> None:
    """An export is a file (or, for MLflow, a folder) whose SHA-256 is recorded: not standard
    output, and named for what it holds, so ``x.h`` is never an ONNX graph."""
    if str(output) == "-":
        raise InputError("--output -: an export is written to a file whose SHA-256 is recorded")
    suffix = output.suffix.lower()
    expected = EXPORT_SUFFIXES.get(export_format)
    if expected is not None and suffix != expected:
        raise InputError(
            f"--output {output}: {export_format} exports are {expected} files; "
            f"name it {output.stem}{expected}"
        )
    if expected is None and suffix in EXPORT_SUFFIXES.values():
        raise InputError(
            f"--output {output}: {export_format} exports are folders, not {suffix} files"
        )


def _write_export(
    version: Version,
    export_format: ExportFormat,
    kind: ModelKind,
    output: Path,
    onnx_input: str | None,
) -> tuple[str, int]:
    """Write one export of ``version``; its SHA-256 and size (of every file, for MLflow)."""
    models = loading.load_models(version)
    model = models.get(kind)
    artifact = loading.ARTIFACT_OF[kind]
    artifact_sha = version.sha256(artifact)
    if export_format == "mlflow":
        from linreg_ops.exports.mlflow import model_metadata, tree_sha256, write_mlflow_model

        metadata = model_metadata(models, kind)
        example = loading.stored_test_rows(models).values[:, :-1]
        write_mlflow_model(
            output, models, kind, example, metadata, store.read_artifact(version, artifact)
        )
        return tree_sha256(output)
    if export_format == "onnx":
        from linreg_ops.exports.onnx import INPUT_TYPES, onnx_model_bytes

        input_type = onnx_input or INPUT_TYPES[0]
        data = onnx_model_bytes(model, artifact_sha256=artifact_sha, input_type=input_type)
    else:
        from linreg_ops.exports.c import c_header_text

        assert isinstance(model, IntegerLinearModel)
        data = c_header_text(model, artifact_sha256=artifact_sha).encode("utf-8")
    store.atomic_write(output, data)
    return sha256_bytes(data), len(data)
