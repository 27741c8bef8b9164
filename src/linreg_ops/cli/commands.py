"""One handler per command, and one per mode of ``predict``: parse → call → render.

A handler turns the parsed flags into typed configs, calls one stage (or loads a version and
scores with it), and hands what came back to ``render``. Stages are imported when their
command runs, so ``linreg-ops predict`` never pays for training's imports.
"""

import argparse
from typing import TYPE_CHECKING

from linreg_ops.cli import render
from linreg_ops.cli.lifecycle import chosen_version
from linreg_ops.config import GateConfig, IntegerConfig, ModelKind, QuantConfig, TrainConfig
from linreg_ops.errors import InputError

if TYPE_CHECKING:
    from pathlib import Path

    from linreg_ops.inference.loading import Models
    from linreg_ops.training.sources import Source

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_GATE",
    "EXIT_OK",
    "EXIT_UNEXPECTED",
    "cmd_evaluate",
    "cmd_export",
    "cmd_predict",
    "cmd_quantize",
    "cmd_run",
    "cmd_serve",
    "cmd_sweep",
    "cmd_train",
]

EXIT_OK, EXIT_UNEXPECTED, EXIT_BAD_INPUT, EXIT_GATE = 0, 1, 2, 3


def cmd_train(args: argparse.Namespace) -> int:
    from linreg_ops import pipeline

    source = _training_source(args)
    result = pipeline.train(
        source, args.models_dir, _train_config(args), command=args.command_line,
        lock_timeout=args.lock_timeout,
    )  # fmt: skip
    render.training(args.models_dir, result)
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
    render.quantization(args.models_dir, result, pipeline.seed_check(result))
    if args.data is not None:
        _evaluate(args.models_dir, args.data, args.target)
    return EXIT_OK


def cmd_sweep(args: argparse.Namespace) -> int:
    from linreg_ops import pipeline

    render.sweep(pipeline.sweep(args.models_dir, args.reports_dir, args.data, args.target))
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from linreg_ops import pipeline

    source = _training_source(args)
    result = pipeline.run(
        source, args.models_dir, args.reports_dir, _train_config(args), _quant_config(args),
        _integer_config(args), _gate_config(args), command=args.command_line,
        lock_timeout=args.lock_timeout,
    )  # fmt: skip
    render.run(args.models_dir, result, pipeline.seed_check(result.quantize))
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
        return _predict_labelled(args, models, kind)
    if args.output is None:
        raise InputError("--input needs --output PATH (.csv or .parquet, or - for stdout)")
    if args.engine == "dask":
        return _predict_on_dask(args, models, kind)
    return _predict_file(args, models, kind)


def cmd_evaluate(args: argparse.Namespace) -> int:
    _evaluate(args.models_dir, args.data, args.target, chosen_version(args))
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from linreg_ops import pipeline

    result = pipeline.export(
        args.models_dir, args.format, args.model, args.output, command=args.command_line,
        lock_timeout=args.lock_timeout, onnx_input=args.onnx_input, number=chosen_version(args),
    )  # fmt: skip
    render.export(result)
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    """Check the version, bind the port (errors are exit 2), then hand over to uvicorn."""
    from linreg_ops.extras import require
    from linreg_ops.inference import loading

    require("fastapi", "serve", "linreg-ops serve")
    require("uvicorn", "serve", "linreg-ops serve")
    from linreg_ops.inference import serve

    settings = serve.serve_settings(
        models_dir=args.models_dir, host=args.host, port=args.port, workers=args.workers,
        max_batch=args.max_batch, max_body_bytes=args.max_body_bytes, log_level=args.log_level,
        drain_seconds=args.drain_seconds, alias=args.alias,
    )  # fmt: skip
    # fail fast, with a clear message, before binding
    number = settings.model_version
    if settings.alias is not None:
        from linreg_ops.lifecycle import resolve

        number = resolve(settings.models_dir, None, settings.alias)
    models = loading.load(settings.models_dir, number)
    return serve.run(models.version, settings)


# --------------------------------------------------------------------------- predict's modes


def _predict_labelled(args: argparse.Namespace, models: "Models", kind: ModelKind) -> int:
    """Score labelled rows (the stored test split, or --data/--target) and show the first."""
    from linreg_ops.inference.evaluate import labelled_rows
    from linreg_ops.inference.predict import predict_rows
    from linreg_ops.metrics import regression_metrics

    model = models.get(kind)
    rows = labelled_rows(models, args.data, args.target)
    predictions, clipped = predict_rows(model, rows.X, source=rows.source)
    render.labelled_predictions(
        kind, models.version.number, args.models_dir, rows.source, rows.y, predictions, clipped,
        regression_metrics(rows.y, predictions),
    )  # fmt: skip
    return EXIT_OK


def _predict_file(args: argparse.Namespace, models: "Models", kind: ModelKind) -> int:
    """Stream --input through the model into --output, block by block, in this process."""
    from linreg_ops.inference.predict import predict_file
    from linreg_ops.storage import tables

    # asked before writing: replacing a file standard output points at changes the answer
    to_stdout = tables.is_stdout(args.output)
    with render.progress_bar("rows") as progress:
        done = predict_file(models, kind, args.input, args.output, args.chunk_rows, progress)
    render.file_predictions(done, kind, args.output, to_stdout=to_stdout)
    return EXIT_OK


def _predict_on_dask(args: argparse.Namespace, models: "Models", kind: ModelKind) -> int:
    """Score --input's partitions on a Dask cluster into a Parquet dataset at --output."""
    from linreg_ops.inference.dask_scoring import dask_predict
    from linreg_ops.storage import tables

    if args.output == tables.STDOUT:
        raise InputError("--engine dask writes a Parquet dataset (a folder), not -")
    rows = dask_predict(models, kind, args.input, args.output, args.scheduler)
    render.dask_predictions(rows, kind, args.output)
    return EXIT_OK


# --------------------------------------------------------------------------- helpers


def _evaluate(
    models_dir: "Path", data: str | None, target: str | None, version: int | None = None
) -> None:
    from linreg_ops.inference import loading
    from linreg_ops.inference.evaluate import evaluate, labelled_rows

    models = loading.load(models_dir, version)
    rows = labelled_rows(models, data, target)
    render.evaluation(models, evaluate(models, rows.X, rows.y, rows.source))


def _training_source(args: argparse.Namespace) -> "Source":
    """The data source, announced with the seed's first three lines."""
    from linreg_ops.training import sources

    if args.data is None:
        render.loading("California Housing dataset")
        source: Source = sources.california_source()
    else:
        source = sources.file_source(args.data, args.target, args.features)
        render.loading(f"{args.data} (target {args.target!r})")
    render.training_started(args.engine)
    return source


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
