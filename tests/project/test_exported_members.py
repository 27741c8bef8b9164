"""The public surface, pinned, as httpx's test_exported_members pins its own: each public
module's ``__all__`` is the list written here, every name in it exists, and nothing public
is left out of it. A name appears in or disappears from the API in a reviewed diff of this
file, never by accident.

Public: every module of linreg_ops whose dotted path has no part starting with ``_``, but
``exports.mlflow_model`` (the file MLflow runs as a model, which registers itself when
imported). A wing's ``__init__`` lists its modules; ``linreg_ops`` itself the curated API,
loaded on first use.
"""

import ast
import importlib
import inspect
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import linreg_ops

NOT_IMPORTED = {"linreg_ops.exports.mlflow_model"}

# fmt: off
EXPORTED = {
    "linreg_ops": [
        "GateConfig", "InputError", "IntegerConfig", "IntegerLinearModel", "LinearModel", "Models",
        "QualityGateError", "QuantConfig", "QuantizedLinearModel", "TrainConfig", "__version__",
        "california_source", "evaluate", "export", "file_source", "labelled_rows", "load",
        "predict_file", "predict_rows", "quantize", "run", "sweep", "train",
    ],
    "linreg_ops.baseline": [
        "BASELINE_KINDS", "ComparedRow", "Comparison", "compare", "figures", "write",
    ],
    "linreg_ops.cli": ["main"],
    "linreg_ops.cli.commands": [
        "EXIT_BAD_INPUT", "EXIT_GATE", "EXIT_OK", "EXIT_OUT_OF_STEP", "EXIT_UNEXPECTED", "cmd_completion",
        "cmd_evaluate", "cmd_export", "cmd_predict", "cmd_quantize", "cmd_run", "cmd_serve",
        "cmd_sweep", "cmd_train", "export_path",
    ],
    "linreg_ops.cli.completion": ["SHELLS", "complete", "shell_code"],
    "linreg_ops.cli.parser": [
        "EXAMPLES_HEADING", "REGISTRATIONS", "Parents", "Parser", "Registration", "add_command", "build_parser", "check_labelled", "examples", "register_baseline", "register_completion", "register_diff", "register_evaluate", "register_export", "register_gc", "register_history", "register_monitor", "register_predict", "register_promote", "register_quantize", "register_rollback", "register_run", "register_serve", "register_show", "register_sweep", "register_train", "register_versions",
    ],
    "linreg_ops.cli.lifecycle": [
        "chosen_version", "cmd_baseline", "cmd_diff", "cmd_gc", "cmd_history", "cmd_promote",
        "cmd_rollback", "cmd_show", "cmd_versions",
    ],
    "linreg_ops.cli.lifecycle_render": [
        "already", "as_json", "baseline_table", "baseline_written", "diff", "gc", "history", "move",
        "promote", "registry_move", "show", "versions",
    ],
    "linreg_ops.cli.monitor": ["EXIT_DRIFT", "cmd_monitor"],
    "linreg_ops.cli.render": [
        "FIRST_ROWS", "Prose", "clipped", "configure", "dask_predictions", "evaluation", "evaluation_facts", "export", "export_facts", "fetched", "file_facts", "file_predictions", "json_object", "labelled_facts", "labelled_predictions", "loading", "loading_trained_model", "progress_bar", "quantization", "quantization_facts", "reading_bar", "run", "run_facts", "say", "sweep", "sweep_facts", "tracked", "training", "training_facts", "training_started", "warn",
    ],
    "linreg_ops.config": [
        "ACCESS_LOGS", "BLOCK_BYTES", "CALIBRATIONS", "DEFAULT_BASELINE", "DEFAULT_CHUNK_ROWS", "DEFAULT_EXPORTS_DIR", "DEFAULT_LOCK_TIMEOUT", "DEFAULT_MAX_R2_REGRESSION", "DEFAULT_MODELS_DIR", "DEFAULT_REGISTERED_MODEL", "DEFAULT_REPORTS_DIR", "DRIFT_DEFAULTS", "ENGINES", "EXPORT_FORMATS", "GRANULARITIES", "INPUT_BITS", "IN_MEMORY_ROWS", "LOG_LEVELS", "MODELS_DIR_ENV", "MODEL_KINDS", "MODEL_NAMES", "ONNX_INPUT_TYPES", "PREDICT_ENGINES", "ROUNDINGS", "SERVE_DEFAULTS", "SUPPORTED_BITS", "TRACKED_MODEL_KIND", "TRACKING_URI_ENV", "AccessLog", "Calibration", "DriftConfig", "Engine", "ExportFormat", "FitEngine", "GateConfig", "Granularity", "InputDtype", "IntegerConfig", "LogLevel", "ModelKind", "PredictEngine", "QuantConfig", "QuantDtype", "Rounding", "ServeConfig", "TrainConfig", "models_dir_default", "parse_dtype", "tracking_uri_default",
    ],
    "linreg_ops.errors": [
        "ArtifactError", "InputError", "MissingExtraError", "QualityGateError",
        "RegistryOutOfStepError", "StoreBusyError", "did_you_mean",
    ],
    "linreg_ops.exports": ["c", "mlflow", "onnx", "registry", "tracking"],
    "linreg_ops.exports.registry": [
        "APP_FACTORY", "LAST_GOOD", "POLL_TIMEOUT_SECONDS", "RegistrySource", "create_app",
    ],
    "linreg_ops.exports.c": [
        "C_STRING_MAX", "HEADER_NAME", "c_comment_text", "c_header_text", "c_string",
    ],
    "linreg_ops.exports.mlflow": [
        "EXAMPLE_ROWS", "model_metadata", "pyfunc_arguments", "quiet_mlflow", "tree_sha256",
        "write_mlflow_model",
    ],
    "linreg_ops.exports.tracking": [
        "MODEL_ARTIFACT", "REPORT_ARTIFACTS", "TAGS", "VERSION_ARTIFACTS", "TrackedRun",
        "check_registered_name", "check_registry_alias", "check_tracking_server", "fetch_registered_version", "log_run", "parse_model_uri",
        "registered_version_of", "registry_tags", "resolve_model_uri", "run_metrics", "run_params",
        "set_registry_alias",
    ],
    "linreg_ops.exports.onnx": [
        "INPUT_NAME", "INPUT_TYPES", "ONNX_IR_VERSION", "ONNX_OPSET", "ROWS", "Model",
        "float_graph", "integer_graph", "model_kind", "onnx_model", "onnx_model_bytes",
        "quantized_graph", "require_onnx", "weight_code_dtype",
    ],
    "linreg_ops.extras": ["install_command", "require"],
    "linreg_ops.inference": [
        "access_log", "dask_scoring", "evaluate", "live", "loading", "oip", "openapi", "predict", "requests",
        "serve", "telemetry",
    ],
    "linreg_ops.inference.access_log": [
        "MAX_REQUEST_ID", "AccessLogger", "Entry", "request_id",
    ],
    "linreg_ops.inference.live": [
        "POLL_SECONDS", "AliasSource", "Follower", "Source", "Start", "first_version", "lease",
        "load",
    ],
    "linreg_ops.inference.openapi": [
        "ERROR_STATUSES", "route_documentation",
    ],
    "linreg_ops.inference.telemetry": [
        "LATENCY_BUCKETS", "MULTIPROC_ENV", "ROWS_BUCKETS", "Telemetry", "compact_dead_workers", "gauge_exposition", "prediction_buckets",
    ],
    "linreg_ops.inference.dask_scoring": ["dask_predict"],
    "linreg_ops.inference.evaluate": ["Evaluation", "LabelledRows", "evaluate", "labelled_rows"],
    "linreg_ops.inference.loading": [
        "ARTIFACT_OF", "KNOWN_ANSWER_ROWS", "AnyModel", "Models", "answers_digest",
        "check_known_answers", "known_answers", "load", "load_metrics", "load_models",
        "probe_rows", "stored_test_rows",
    ],
    "linreg_ops.inference.oip": [
        "CLIPPED", "DATATYPES", "EXTENSIONS", "HEADER_LENGTH", "MATRIX_INPUT", "OUTPUT_DATATYPES",
        "PLATFORM", "PREDICTION", "Answer", "InferenceRequest", "ParsedRequest", "RequestInput",
        "RequestOutput", "answer", "encode_infer_response", "model_metadata", "output_names",
        "owns", "parse_infer_request", "server_metadata",
    ],
    "linreg_ops.inference.predict": [
        "SHOWN_CLIPPED", "FilePrediction", "Progress", "check_kept", "check_output",
        "output_columns", "predict_file", "predict_rows",
    ],
    "linreg_ops.inference.requests": [
        "CSV_TYPES", "JSON_TYPES", "MLFLOW_KEYS", "ROWS", "Limits", "Number", "PredictRequest",
        "RequestError", "Row", "check_batch", "check_depth", "columns_to_matrix", "csv_matrix",
        "invocations_request", "json_depth", "load_json", "media_type", "mlflow_matrix",
        "numeric_matrix", "predict_request", "rows_to_matrix", "validation_message",
    ],
    "linreg_ops.inference.serve": [
        "APP_FACTORY", "CLIPPED_HEADER", "DOCUMENTATION_PATHS", "HOT_ROUTES", "LARGE_BODY", "MODEL_KIND_HEADER", "OIP_INFER_ROUTE", "OIP_ROUTE", "SMALL_INTEGER_BATCH", "UNSUPPORTED", "Answer", "Call", "Drain", "ErrorResponse", "Front", "Handler", "HotRoute", "InvocationsResponse", "Live", "Message", "ModelInfo", "PredictResponse", "Receive", "Scope", "Send", "ServeSettings", "Service", "asked_kind", "bind", "create_app", "describe_service", "documented_app", "example_rows", "handle_health", "handle_invocations", "handle_metadata", "handle_metrics", "handle_monitor", "handle_ping", "handle_predict", "handle_ready", "handle_version", "invocations_kind", "make_live", "run", "serve_settings",
    ],
    "linreg_ops.lifecycle": [
        "GcResult", "PromoteResult", "RegistryMove", "VersionInfo", "describe", "gc", "history",
        "list_versions", "promote", "promote_registered", "resolve", "rollback",
        "rollback_registered", "rollback_target",
    ],
    "linreg_ops.metrics": [
        "mean_squared_error", "prediction_drift", "quantized_fidelity", "r2_from_sums", "r2_score",
        "regression_metrics",
    ],
    "linreg_ops.model": [
        "FLOAT64_MAX", "PREDICTION_HEADROOM", "ROW_BLOCK", "SMALLEST_SUBNORMAL", "UNIT_ROUNDOFF",
        "FeatureStats", "IntegerLinearModel", "LinearModel", "Predictor", "QuantizedLinearModel",
        "domain_error", "outside_domain", "raw_input_bounds", "rounding_bound", "row_dot",
    ],
    "linreg_ops.moments": ["BLOCK_BYTES", "BLOCK_ROWS", "MomentStats", "block_rows", "merge_all"],
    "linreg_ops.monitoring": ["drift", "profile", "served", "stats"],
    "linreg_ops.monitoring.drift": [
        "GAUGES", "column_drift", "drift_report", "gauge_samples", "ks_p_value", "ks_statistic",
        "psi", "wasserstein",
    ],
    "linreg_ops.monitoring.profile": [
        "PREDICTION", "Profile", "bin_shares", "build_profile", "load_profile",
    ],
    "linreg_ops.monitoring.served": [
        "BUFFER_ROWS", "FILE_GLOB", "MAGIC", "Monitor", "ServedStats", "read_served",
    ],
    "linreg_ops.monitoring.stats": [
        "BROADCAST_CELLS", "MAX_DEVIATION", "Accumulator", "DriftStats", "merge", "monitorable",
        "record", "record_into", "scan",
    ],
    "linreg_ops.pipeline": [
        "EXPORT_SUFFIXES", "SEED_CHECK_ROWS", "ExportResult", "MonitorResult", "QuantizeResult",
        "RunResult", "SeedCheck", "SweepResult", "TrainResult", "check_export_path", "export",
        "monitor", "quantize", "run", "seed_check", "sweep", "train", "verify",
    ],
    "linreg_ops.quantization": ["gate", "quantize", "rounding", "sweep"],
    "linreg_ops.quantization.gate": [
        "check_float32_range", "fidelity", "gate_failure", "limits_met",
    ],
    "linreg_ops.quantization.quantize": [
        "BIAS_MAX_SHIFT", "FLOAT32_TINY", "INT32_MAX", "INT32_MIN", "OUTPUT_BITS", "TIE_WIDENINGS",
        "RoundingResult", "build_integer_model", "choose_scale_and_zero_point",
        "float_parameter_bytes", "quantize_model", "quantized_parameter_bytes", "round_weights",
        "rounding_note",
    ],
    "linreg_ops.quantization.rounding": [
        "OPTIMAL_MAX_FEATURES", "ROUNDERS", "SPHERE_NODE_BUDGET", "Grid", "SphereResult",
        "lll_reduce", "objective", "round_hessian", "round_nearest", "round_optimal",
        "sphere_decode",
    ],
    "linreg_ops.quantization.sweep": ["sweep"],
    "linreg_ops.report": [
        "COLORS", "SWEEP_FLOOR", "ModelRow", "comparison_rows", "comparison_table", "context_lines",
        "drift_markdown", "drift_png", "drift_table", "model_card", "predicted_vs_actual_figure",
        "predicted_vs_actual_png", "quantization_png", "residuals_figure", "residuals_png",
        "run_report_files", "sweep_table", "write_sweep_report",
    ],
    "linreg_ops.seed": ["run_script"],
    "linreg_ops.storage": ["cluster", "codecs", "digests", "joblib_codec", "store", "tables"],
    "linreg_ops.storage.cluster": [
        "CONNECT_TIMEOUT", "PARTITION_BYTES", "DaskSession", "Piece", "checked_headers",
        "checked_scheduler", "count_pieces", "handshake", "read_in_order", "tree",
    ],
    "linreg_ops.storage.codecs": [
        "FLOAT32_MAX", "FLOAT32_TINY", "INT32_MAX", "INT32_MIN", "NAME_MAX_CHARS", "SCHEMA_VERSION",
        "ColumnProfile", "Document", "DriftProfileDoc", "Figures", "Finite", "FloatModelDoc",
        "Int32", "IntegerModelDoc", "MetricsDoc", "Name", "QuantizedModelDoc", "TrainingStatistics",
        "Versioned", "check_schema_version", "decode", "decode_drift_profile", "decode_float",
        "decode_integer", "decode_metrics", "decode_quantized", "encode_drift_profile",
        "encode_float", "encode_integer", "encode_quantized", "first_error", "float_model_dict",
        "float_model_from", "integer_model_dict", "integer_model_from", "json_bytes",
        "quantized_model_dict", "quantized_model_from",
    ],
    "linreg_ops.storage.digests": ["sha256_bytes", "sha256_file"],
    "linreg_ops.storage.joblib_codec": ["estimator_from", "joblib_bytes"],
    "linreg_ops.storage.store": [
        "ALIASES", "ARTIFACTS", "ARTIFACT_MAX_BYTES", "CURRENT", "DRIFT_PROFILE_JSON", "ESTIMATOR_JOBLIB", "EXPORTS_JSON", "HISTORY_JSONL", "INTEGER_MODEL_JSON", "LEASES", "LOCK", "MANIFEST_JSON", "MANIFEST_MAX_BYTES", "MAX_VERSION", "METRICS_JSON", "MODEL_JSON", "QUANTIZED_MODEL_JSON", "QUANT_PARAMS_JOBLIB", "SEED_PATHS", "STAGING", "STREAMS", "TEST_SPLIT_CSV", "UNQUANT_PARAMS_JOBLIB", "VERSIONS", "ArtifactEntry", "ArtifactName", "ExportEntry", "Exports", "Holder", "Lease", "Manifest", "Move", "StagedFile", "Version", "Writer", "alias_holder", "aliases", "atomic_write", "check_alias_name", "check_outside", "check_writable", "copy_current", "discard_files", "import_version", "leased_versions", "moves", "open_version", "output_target", "package_versions", "place_file", "read_artifact", "read_exports", "read_regular_file", "record_export", "remove_tree", "rename_into_place", "stage_file", "staging_sibling", "take_lease", "version_numbers", "writer",
    ],
    "linreg_ops.storage.tables": [
        "STDOUT", "Block", "Partition", "Table", "check_columns", "check_finite",
        "check_rows_per_file", "count_csv_rows", "csv_bytes", "csv_header_of", "is_stdout",
        "iter_blocks", "parse_csv", "partition_blocks", "partition_rows", "partitions",
        "prediction_writer", "read_header", "read_table", "rows_per_block", "splittable",
        "table_files", "total_bytes",
    ],
    "linreg_ops.storage.tables.csv_reading": [
        "CSV_BLOCK_BYTES", "MAX_CSV_BLOCK_BYTES", "CsvSource", "batches", "count_csv_rows",
        "csv_blocks", "csv_reader", "parse_csv", "read_columns",
    ],
    "linreg_ops.storage.tables.discovery": [
        "check_columns", "check_table_path", "csv_header", "csv_header_of", "read_header",
        "table_files", "total_bytes",
    ],
    "linreg_ops.storage.tables.parquet": ["parquet_blocks"],
    "linreg_ops.storage.tables.partitions": [
        "Partition", "arrow_range", "check_rows_per_file", "csv_ranges", "partition_blocks",
        "partition_rows", "partitions", "splittable",
    ],
    "linreg_ops.storage.tables.reading": [
        "PARSE_BYTES", "PARSE_THREADS", "iter_blocks", "parallel_csv_blocks", "read_table",
    ],
    "linreg_ops.storage.tables.writing": ["STDOUT", "csv_bytes", "is_stdout", "prediction_writer"],
    "linreg_ops.training": [
        "checks", "engines", "features", "solve", "sources", "split", "summary",
    ],
    "linreg_ops.training.checks": [
        "SMALLEST_SPREAD", "check_counts", "check_rows", "check_solution", "check_trainable",
    ],
    "linreg_ops.training.engines": [
        "HASH_SPLIT", "SEED_SPLIT", "Fit", "chosen_engine", "dask_arrays", "fit",
        "fit_linear_regression", "stream_arrays",
    ],
    "linreg_ops.training.features": ["CALIBRATION_QUANTILE", "feature_statistics"],
    "linreg_ops.training.solve": ["RankWarning", "constant_features", "intercept_of", "solve"],
    "linreg_ops.training.sources": [
        "CALIFORNIA_SOURCE", "CALIFORNIA_UNITS", "SHARED_CACHE", "ArraySource", "FileSource",
        "Source", "california_source", "feature_columns", "file_source", "use_shared_cache",
    ],
    "linreg_ops.training.split": ["GOLDEN", "held_out_rows", "row_uniforms"],
    "linreg_ops.training.summary": [
        "KEPT_BYTES", "SAMPLE_ROWS", "STORED_TEST_ROWS", "Summary", "kept_rows", "summarize",
    ],
}
# fmt: on


def public_modules() -> list[str]:
    found = ["linreg_ops"]
    for info in pkgutil.walk_packages(linreg_ops.__path__, "linreg_ops."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            found.append(info.name)
    return sorted(set(found) - NOT_IMPORTED)


def defined_names(module: object) -> set[str]:
    """The public names a module's own source defines at its top level."""
    tree = ast.parse(Path(inspect.getfile(module)).read_text())  # type: ignore[arg-type]
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    # TYPE_CHECKING = False: typing's flag without importing typing, never API
    return {name for name in names if not name.startswith("_") and name != "TYPE_CHECKING"}


def test_every_public_module_is_pinned():
    assert public_modules() == sorted(EXPORTED)


@pytest.mark.parametrize("name", sorted(EXPORTED))
def test_all_is_the_pinned_list(name):
    assert importlib.import_module(name).__all__ == EXPORTED[name]


@pytest.mark.parametrize("name", sorted(EXPORTED))
def test_every_name_in_all_exists(name):
    module = importlib.import_module(name)
    for member in module.__all__:
        if not hasattr(module, member):  # a wing's module: imported on request
            importlib.import_module(f"{name}.{member}")
        assert hasattr(module, member), f"{name}.__all__ names {member!r}, which is missing"


@pytest.mark.parametrize("name", sorted(EXPORTED))
def test_nothing_public_is_left_out(name):
    """Every public definition is in ``__all__``; a package's public modules are too."""
    module = importlib.import_module(name)
    missing = defined_names(module) - set(module.__all__)
    if hasattr(module, "__path__") and name != "linreg_ops":
        modules = {
            info.name for info in pkgutil.iter_modules(module.__path__)
            if not info.name.startswith("_") and f"{name}.{info.name}" not in NOT_IMPORTED
        }  # fmt: skip
        if set(module.__all__) <= modules:  # a wing: its modules are its API, all of them
            missing |= modules - set(module.__all__)
    assert not missing, f"{name} defines public {sorted(missing)} outside __all__"


def test_importing_the_package_imports_no_stage():
    """The API loads on first use: ``import linreg_ops`` costs what it did before it had
    one (a cold ``linreg-ops predict`` must not pay for training's imports)."""
    code = (
        "import sys, linreg_ops\n"
        "print(sorted(m for m in sys.modules if m.startswith('linreg_ops') or m == 'numpy'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "['linreg_ops', 'linreg_ops._version']"
    assert linreg_ops.train.__module__ == "linreg_ops.pipeline"
    assert set(linreg_ops.__all__) <= set(dir(linreg_ops))
