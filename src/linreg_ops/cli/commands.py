"""One handler per command, and one per mode of ``predict``: parse → call → render.

A handler turns the parsed flags into typed configs, calls one stage (or loads a version and
scores with it), and hands what came back to ``render``. Stages are imported when their
command runs, so ``linreg-ops predict`` never pays for training's imports.
"""

import argparse
from typing import TYPE_CHECKING, Any

from linreg_ops.cli import render
from linreg_ops.cli.lifecycle import chosen_version
from linreg_ops.config import (
    DEFAULT_EXPORTS_DIR,
    GRANULARITIES,
    ROUNDINGS,
    SUPPORTED_BITS,
    ExportFormat,
    GateConfig,
    IntegerConfig,
    ModelKind,
    QuantConfig,
    TrainConfig,
)
from linreg_ops.errors import InputError

if TYPE_CHECKING:
    from pathlib import Path

    from linreg_ops.inference.loading import Models
    from linreg_ops.inference.serve import ServeSettings
    from linreg_ops.storage.store import Version
    from linreg_ops.training.sources import Source

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_GATE",
    "EXIT_OK",
    "EXIT_OUT_OF_STEP",
    "EXIT_UNEXPECTED",
    "cmd_completion",
    "cmd_evaluate",
    "cmd_export",
    "cmd_predict",
    "cmd_quantize",
    "cmd_run",
    "cmd_serve",
    "cmd_sweep",
    "cmd_train",
    "export_path",
]

EXIT_OK, EXIT_UNEXPECTED, EXIT_BAD_INPUT, EXIT_GATE = 0, 1, 2, 3
EXIT_OUT_OF_STEP = 5  # the folder's alias moved, the MLflow registry's did not (4: drift)
_SEED_ENGINES = ("auto", "sklearn")  # California Housing in memory, as the seed fitted it


def cmd_train(args: argparse.Namespace) -> int:
    from linreg_ops import pipeline

    source = _training_source(args)
    with render.reading_bar(_streamed_bytes(args, source)) as progress:
        result = pipeline.train(
            source, args.models_dir, _train_config(args), command=args.command_line,
            lock_timeout=args.lock_timeout, progress=progress, joblib=args.joblib,
        )  # fmt: skip
    render.training(args.models_dir, result)
    if args.json:
        render.json_object(render.training_facts(args.models_dir, result))
    return EXIT_OK


def cmd_quantize(args: argparse.Namespace) -> int:
    if args.sweep:  # ``quantize --sweep``: the alias of ``sweep``
        return cmd_sweep(args)
    from linreg_ops import pipeline

    render.loading_trained_model()
    result = pipeline.quantize(
        args.models_dir, _quant_config(args), _integer_config(args), _gate_config(args),
        command=args.command_line, lock_timeout=args.lock_timeout,
    )  # fmt: skip
    check = pipeline.seed_check(result) if _is_seed(result.version) else None
    render.quantization(args.models_dir, result, check)
    facts = render.quantization_facts(args.models_dir, result)
    if args.data is not None:
        facts["evaluation"] = _evaluate(args.models_dir, args.data, args.target)
    if args.json:
        render.json_object(facts)
    return EXIT_OK


def cmd_sweep(args: argparse.Namespace) -> int:
    from linreg_ops import pipeline

    schemes = len(SUPPORTED_BITS) * len(ROUNDINGS) * len(GRANULARITIES)
    with render.progress_bar("schemes", total=schemes) as progress:
        result = pipeline.sweep(args.models_dir, args.reports_dir, args.data, args.target, progress)
    render.sweep(result)
    if args.json:
        render.json_object(render.sweep_facts(result))
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    """With a tracking URI, the server is asked first (a run must not end on a server that
    is down) and the published version is logged and registered after."""
    from linreg_ops import pipeline

    if args.tracking_uri is not None:
        from linreg_ops.exports import tracking

        tracking.check_tracking_server(args.tracking_uri, args.registered_model)
    source = _training_source(args)
    with render.reading_bar(_streamed_bytes(args, source)) as progress:
        result = pipeline.run(
            source, args.models_dir, args.reports_dir, _train_config(args), _quant_config(args),
            _integer_config(args), _gate_config(args), command=args.command_line,
            lock_timeout=args.lock_timeout, progress=progress, joblib=args.joblib,
        )  # fmt: skip
    check = pipeline.seed_check(result.quantize) if _is_seed(result.train.version) else None
    render.run(args.models_dir, result, check)
    tracked = None
    if args.tracking_uri is not None:
        version = result.train.version
        try:
            tracked = tracking.log_run(
                args.tracking_uri, version, result.reports, args.registered_model
            )
        except InputError as exc:
            raise InputError(f"{version} is published, but not logged to MLflow: {exc}") from None
        render.tracked(tracked)
    if args.json:
        render.json_object(render.run_facts(args.models_dir, result))
    return EXIT_OK


def cmd_predict(args: argparse.Namespace) -> int:
    """Three modes: the stored test split (or --data/--target) scored, or --input predicted
    into --output, streamed in this process or on a Dask cluster."""
    from linreg_ops.inference import loading

    kind = _model_kind(args)
    models = loading.load(args.models_dir, chosen_version(args))
    if args.input is None:
        if args.output is not None:
            raise InputError("--output needs --input PATH (the rows to predict)")
        if args.keep_columns:
            raise InputError("--keep-columns needs --input PATH (the rows to predict)")
        return _predict_labelled(args, models, kind)
    if args.output is None:
        raise InputError("--input needs --output PATH (.csv or .parquet, or - for stdout)")
    if args.json and str(args.output) == "-":
        raise InputError("--json and --output - both want standard output: choose one")
    if args.engine == "dask":
        if args.keep_columns:
            raise InputError("--keep-columns works with --engine streaming, not dask")
        return _predict_on_dask(args, models, kind)
    return _predict_file(args, models, kind)


def cmd_evaluate(args: argparse.Namespace) -> int:
    facts = _evaluate(args.models_dir, args.data, args.target, chosen_version(args))
    if args.json:
        render.json_object(facts)
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from linreg_ops import pipeline

    output = args.output or export_path(args.format, args.model)
    result = pipeline.export(
        args.models_dir, args.format, args.model, output, command=args.command_line,
        lock_timeout=args.lock_timeout, onnx_input=args.onnx_input, number=chosen_version(args),
    )  # fmt: skip
    render.export(result)
    if args.json:
        render.json_object(render.export_facts(result))
    return EXIT_OK


def export_path(export_format: ExportFormat, kind: ModelKind) -> "Path":
    """``export``'s output when ``--output`` is not given: in the ``exports/`` folder (which
    git ignores), named for the model and the format; the folder is made when needed."""
    from pathlib import Path

    from linreg_ops.pipeline import EXPORT_SUFFIXES

    suffix = EXPORT_SUFFIXES.get(export_format)
    name = f"{kind}{suffix}" if suffix else f"{export_format}-{kind}"
    try:
        Path(DEFAULT_EXPORTS_DIR).mkdir(exist_ok=True)
    except OSError as exc:  # a file named exports, a read-only folder
        raise InputError(
            f"cannot make the folder {DEFAULT_EXPORTS_DIR}/ for the export: "
            f"{exc.strerror or exc}; pass --output PATH"
        ) from None
    return DEFAULT_EXPORTS_DIR / name


def cmd_completion(args: argparse.Namespace) -> int:
    """The shell code that completes ``linreg-ops`` (argcomplete)."""
    from linreg_ops.cli.completion import shell_code

    print(shell_code(args.shell), end="")
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    """Check the version, bind the port (errors are exit 2), then hand over to uvicorn.
    ``--model-uri``: the registered version is fetched into a temporary models folder first."""
    import importlib.util

    from linreg_ops.extras import require
    from linreg_ops.inference import loading

    # FastAPI serves only /docs, /redoc and the OpenAPI document, imported on their first
    # request: here its presence is checked without importing it (a third of the start-up)
    for module in ("fastapi", "fastapi_offline"):
        if importlib.util.find_spec(module) is None:
            require(module, "serve", "linreg-ops serve")
    require("uvicorn", "serve", "linreg-ops serve")
    require("prometheus_client", "serve", "linreg-ops serve")
    from linreg_ops.inference import serve

    if args.model_uri is not None:
        return _serve_registered(args)
    if args.registry_poll_seconds is not None:
        raise InputError("--registry-poll-seconds needs --model-uri models:/NAME@ALIAS")
    settings = _serve_settings(args, args.models_dir)
    # fail fast, with a clear message, before binding: --version N pins, else the alias
    from linreg_ops.lifecycle import resolve
    from linreg_ops.storage.store import CURRENT

    pinned = settings.model_version is not None
    # current is resolved by loading itself: an empty folder is "no model in …", as before
    followed = None if pinned or settings.alias == CURRENT else settings.alias
    number = resolve(settings.models_dir, settings.model_version, followed)
    models = loading.load(settings.models_dir, number)
    return serve.run(models.version, settings, models)


def _serve_registered(args: argparse.Namespace) -> int:
    """``--model-uri``: the registered version fetched (and verified) into a temporary
    folder; ``models:/NAME@ALIAS`` is then followed by every worker, ``models:/NAME/N`` pinned."""
    import shutil
    import tempfile
    from pathlib import Path

    from linreg_ops.exports import registry, tracking
    from linreg_ops.inference import live, loading, serve

    if args.tracking_uri is None:
        raise InputError("--model-uri needs --tracking-uri URI (or MLFLOW_TRACKING_URI)")
    name, alias, _ = tracking.parse_model_uri(args.model_uri)  # before a folder is made
    if alias is None and args.registry_poll_seconds is not None:
        raise InputError(
            f"--registry-poll-seconds: {args.model_uri} names one version, nothing to poll "
            "(models:/NAME@ALIAS follows an alias)"
        )
    # asked once, as run does: MLflow's own retries on a server that is down take minutes
    tracking.check_tracking_server(args.tracking_uri)
    folder = Path(tempfile.mkdtemp(prefix="linreg-ops-registry-"))
    try:
        if alias is None:
            resolved, models_dir = tracking.fetch_registered_version(
                args.tracking_uri, args.model_uri, folder / "models"
            )
            models = loading.load(models_dir)
            render.fetched(args.model_uri, resolved, models.version)
            return serve.run(models.version, _serve_settings(args, models_dir))
        source = registry.RegistrySource(
            args.tracking_uri, args.model_uri, folder, args.registry_poll_seconds
            or serve.serve_settings().registry_poll_seconds,
        )  # fmt: skip
        start = live.first_version(source)  # nothing fetched yet: no fallback, exit 2
        render.fetched(args.model_uri, f"models:/{name}/{start.key}", start.models.version)
        settings = _serve_settings(
            args, start.models.version.models_dir, model_uri=args.model_uri,
            tracking_uri=args.tracking_uri, registry_poll_seconds=source.poll_seconds,
        )  # fmt: skip
        return serve.run(start.models.version, settings, start.models, registry.APP_FACTORY)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _serve_settings(
    args: argparse.Namespace, models_dir: "Path", **registry: object
) -> "ServeSettings":
    from linreg_ops.inference import serve

    return serve.serve_settings(
        **registry,
        models_dir=models_dir, host=args.host, port=args.port, workers=args.workers,
        max_batch=args.max_batch, max_body_bytes=args.max_body_bytes, log_level=args.log_level,
        drain_seconds=args.drain_seconds, access_log=args.access_log, metrics=args.metrics,
        model_version=getattr(args, "use_version", None), alias=getattr(args, "use_alias", None),
    )  # fmt: skip


# --------------------------------------------------------------------------- predict's modes


def _predict_labelled(args: argparse.Namespace, models: "Models", kind: ModelKind) -> int:
    """Score labelled rows (the stored test split, or --data/--target) and show the first."""
    from linreg_ops.inference.evaluate import labelled_rows
    from linreg_ops.inference.predict import predict_rows
    from linreg_ops.metrics import regression_metrics

    model = models.get(kind)
    rows = labelled_rows(models, args.data, args.target)
    predictions, clipped = predict_rows(model, rows.X, source=rows.source)
    metrics = regression_metrics(rows.y, predictions)
    render.labelled_predictions(
        kind, models.version.number, args.models_dir, rows.source, rows.y, predictions, clipped,
        metrics,
    )  # fmt: skip
    if args.json:
        render.json_object(
            render.labelled_facts(
                kind, models.version.number, rows.source, predictions, clipped, metrics
            )
        )
    return EXIT_OK


def _predict_file(args: argparse.Namespace, models: "Models", kind: ModelKind) -> int:
    """Stream --input through the model into --output, block by block, in this process."""
    from linreg_ops.inference.predict import predict_file
    from linreg_ops.storage import tables

    # asked before writing: replacing a file standard output points at changes the answer
    to_stdout = tables.is_stdout(args.output)
    with render.reading_bar(tables.total_bytes(args.input)) as progress:
        done = predict_file(
            models, kind, args.input, args.output, args.chunk_rows, progress,
            keep=args.keep_columns or (),
        )  # fmt: skip
    render.file_predictions(done, kind, args.output, to_stdout=to_stdout)
    if args.json:
        render.json_object(render.file_facts(done, kind, models.version.number, args.output))
    return EXIT_OK


def _predict_on_dask(args: argparse.Namespace, models: "Models", kind: ModelKind) -> int:
    """Score --input's partitions on a Dask cluster into a Parquet dataset at --output."""
    from linreg_ops.inference.dask_scoring import dask_predict
    from linreg_ops.storage import tables

    if args.output == tables.STDOUT:
        raise InputError("--engine dask writes a Parquet dataset (a folder), not -")
    rows = dask_predict(models, kind, args.input, args.output, args.scheduler)
    render.dask_predictions(rows, kind, args.output)
    if args.json:
        render.json_object(
            {"model": kind, "version": models.version.number, "output": args.output, "rows": rows}
        )
    return EXIT_OK


# --------------------------------------------------------------------------- helpers


def _evaluate(
    models_dir: "Path", data: str | None, target: str | None, version: int | None = None
) -> dict[str, Any]:
    """Print the comparison table; return its facts for ``--json``."""
    from linreg_ops.inference import loading
    from linreg_ops.inference.evaluate import evaluate, labelled_rows

    models = loading.load(models_dir, version)
    rows = labelled_rows(models, data, target)
    result = evaluate(models, rows.X, rows.y, rows.source)
    render.evaluation(models, result)
    return render.evaluation_facts(models, result)


def _is_seed(version: "Version") -> bool:
    """Whether a version was trained on the seed's data (California Housing), so the seed's
    own lines (its 10-row inference test) belong in the output."""
    from linreg_ops.training.sources import CALIFORNIA_SOURCE

    return bool(version.manifest.training_data.get("source") == CALIFORNIA_SOURCE)


def _training_source(args: argparse.Namespace) -> "Source":
    """The data source, announced with the seed's first three lines."""
    from linreg_ops.training import sources

    if args.data is None:
        render.loading("California Housing dataset")
        source: Source = sources.california_source()
    else:
        source = sources.file_source(args.data, args.target, args.features)
        render.loading(f"{args.data} (target {args.target!r})")
    # the seed fitted California Housing in memory; any other data or engine says what it does
    render.training_started(args.engine, seed=args.data is None and args.engine in _SEED_ENGINES)
    return source


def _streamed_bytes(args: argparse.Namespace, source: "Source") -> int | None:
    """The bytes training reads block by block in this process (every engine but Dask
    streams files; California Housing is in memory): a bar's total, or None for no bar."""
    from linreg_ops.storage import tables
    from linreg_ops.training.sources import FileSource

    if args.engine == "dask" or not isinstance(source, FileSource):
        return None
    return tables.total_bytes(list(source.files))


def _model_kind(args: argparse.Namespace) -> ModelKind:
    """``--model``, with ``--integer-only`` as the alias of ``--model integer``."""
    if args.integer_only:
        if args.model not in (None, "integer"):
            raise InputError(
                f"--integer-only means --model integer; it conflicts with --model {args.model}"
            )
        return "integer"
    kind: ModelKind = args.model or "float"
    return kind


def _train_config(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        args.test_size, args.random_state, args.engine, args.chunk_rows, args.scheduler
    )


def _quant_config(args: argparse.Namespace) -> QuantConfig:
    return QuantConfig(args.dtype, args.granularity, args.rounding)


def _integer_config(args: argparse.Namespace) -> IntegerConfig:
    return IntegerConfig(args.input_dtype, args.calibration)


def _gate_config(args: argparse.Namespace) -> GateConfig:
    return GateConfig(args.max_r2_drop, args.max_abs_diff)
