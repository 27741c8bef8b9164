"""The command line's grammar: every command, flag, default and argument type.

Every default comes from ``linreg_ops.config``; each command's handler is in ``commands``.
Each command is added by one registration function ``(subcommands, parents) -> None``
listed in ``REGISTRATIONS``: a new command is one function and one line there.
"""

import argparse
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from linreg_ops._version import __version__
from linreg_ops.cli import commands, lifecycle, monitor
from linreg_ops.cli.completion import SHELLS as COMPLETION_SHELLS
from linreg_ops.config import (
    ACCESS_LOGS,
    CALIBRATIONS,
    DEFAULT_BASELINE,
    DEFAULT_EXPORTS_DIR,
    DEFAULT_LOCK_TIMEOUT,
    DEFAULT_MAX_R2_REGRESSION,
    DEFAULT_MODELS_DIR,
    DEFAULT_REGISTERED_MODEL,
    DEFAULT_REPORTS_DIR,
    DRIFT_DEFAULTS,
    ENGINES,
    EXPORT_FORMATS,
    GRANULARITIES,
    INPUT_BITS,
    LOG_LEVELS,
    MODEL_KINDS,
    MODELS_DIR_ENV,
    ONNX_INPUT_TYPES,
    PREDICT_ENGINES,
    ROUNDINGS,
    SERVE_DEFAULTS,
    TRACKED_MODEL_KIND,
    TRACKING_URI_ENV,
    GateConfig,
    IntegerConfig,
    QuantConfig,
    TrainConfig,
    models_dir_default,
    tracking_uri_default,
)
from linreg_ops.errors import InputError, did_you_mean

__all__ = [
    "EXAMPLES_HEADING",
    "REGISTRATIONS",
    "Parents",
    "Parser",
    "Registration",
    "add_command",
    "build_parser",
    "check_labelled",
    "examples",
    "register_baseline",
    "register_completion",
    "register_diff",
    "register_evaluate",
    "register_export",
    "register_gc",
    "register_history",
    "register_monitor",
    "register_predict",
    "register_promote",
    "register_quantize",
    "register_rollback",
    "register_run",
    "register_serve",
    "register_show",
    "register_sweep",
    "register_train",
    "register_versions",
]

_TRAIN, _QUANT, _GATE = TrainConfig(), QuantConfig(), GateConfig()


def check_labelled(args: argparse.Namespace) -> None:
    """``--target`` and ``--features`` describe the ``--data`` file: alone they mean nothing,
    and silently ignoring them would hide a forgotten ``--data``."""
    if getattr(args, "data", None) is not None:
        return
    given = [
        flag
        for flag, name in (("--target", "target"), ("--features", "features"))
        if getattr(args, name, None) is not None
    ]
    if given:
        raise InputError(f"{' and '.join(given)} need{'s' if len(given) == 1 else ''} --data PATH")


# --------------------------------------------------------------------------- argument types


_T = TypeVar("_T")


def _converted(text: str, convert: Callable[[str], _T], expected: str) -> _T:
    """``convert(text)``, or argparse's one-line refusal naming what was ``expected``."""
    try:
        return convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None


def _positive(text: str) -> int:
    value = _converted(text, int, "a whole number")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be ≥ 1, got {text}")
    return value


def _port(text: str) -> int:
    value = _converted(text, int, "a port number")
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be from 0 (any free port) to 65535, got {text}")
    return value


def _seconds(text: str) -> float:
    value = _converted(text, float, "seconds")
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be ≥ 0 seconds, got {text}")
    return value


def _registry_poll_seconds(text: str) -> float:
    value = _seconds(text)
    least = SERVE_DEFAULTS.registry_poll_min_seconds
    if value < least:
        raise argparse.ArgumentTypeError(f"must be ≥ {least:g} seconds, got {text}")
    return value


def _version_number(text: str) -> int:
    value = _converted(text, int, "a version number")
    if value < 1:
        raise argparse.ArgumentTypeError(f"versions are numbered from 1, got {text}")
    return value


def _regression(text: str) -> float:
    value = _converted(text, float, "a number")
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number ≥ 0, got {text}")
    return value


def _feature_list(text: str) -> list[str]:
    """Column names between commas, taken exactly as written: a column may be named
    " HouseAge " (spaces are part of a CSV header's names)."""
    names = text.split(",")
    if any(name == "" for name in names):
        raise argparse.ArgumentTypeError(f"an empty column name in {text!r}")
    return names


def _test_size(text: str) -> float:
    value = _converted(text, float, "a number")
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _limit(text: str) -> float | None:
    """A non-negative limit; ``none`` switches the check off."""
    if text.lower() == "none":
        return None
    value = _converted(text, float, "a number or 'none'")
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number ≥ 0 or 'none', got {text}")
    return value


# --------------------------------------------------------------------------- the parser class


EXAMPLES_HEADING = "examples:"


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors that suggest the closest command, flag or choice."""

    def error(self, message: str) -> NoReturn:
        """One line, as every other bad input: what was wrong and where to read more."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        if action.choices is not None and value not in action.choices:
            choices = [str(choice) for choice in action.choices]
            raise argparse.ArgumentError(
                action,
                f"invalid choice: {value!r} (choose from {', '.join(choices)})"
                + did_you_mean(str(value), choices),
            )

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        """As argparse's, but an unknown flag is named with the closest flag of its command."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            scope = self._command_parser(getattr(parsed, "command", None))
            word = extras[0]
            flag = word.split("=", 1)[0]
            hint = did_you_mean(flag, list(scope._option_string_actions)) if word[:1] == "-" else ""
            scope.error(f"unrecognized argument {word!r}{hint}")
        return parsed

    def _command_parser(self, command: str | None) -> argparse.ArgumentParser:
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction) and command in action.choices:
                found: argparse.ArgumentParser = action.choices[command]
                return found
        return self


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples' layout, and states every option's default that its help omits."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if (
            action.option_strings
            and "default" not in text
            and action.default not in (None, False, argparse.SUPPRESS)
        ):
            text += " (default: %(default)s)"
        return text


def examples(parser: argparse.ArgumentParser) -> list[str]:
    """The example command lines of a parser's epilog (what its ``--help`` shows under
    ``examples:``), for the test that runs each of them."""
    lines = (parser.epilog or "").splitlines()
    if EXAMPLES_HEADING not in lines:
        return []
    found = []
    for line in lines[lines.index(EXAMPLES_HEADING) + 1 :]:
        text = line.strip()
        if not line.startswith("  "):
            break
        if text and not text.startswith("#"):
            found.append(text)
    return found


# --------------------------------------------------------------------------- shared options


@dataclass(frozen=True)
class Parents:
    """Groups of options that several commands share (argparse ``parents``)."""

    common: Parser  # --models-dir, -q, -v: every command
    writing: Parser  # --lock-timeout: commands that publish or record
    labelled: Parser  # --data, --target
    training: Parser  # --features, --test-size, --random-state, --engine
    quantizing: Parser  # scheme and gate
    scaling: Parser  # --chunk-rows, --scheduler
    reporting: Parser  # --reports-dir
    json: Parser  # --json: commands that report results
    tracking: Parser  # --tracking-uri: an MLflow tracking server
    selecting: Parser  # --version N | --alias NAME: commands that read one version


Registration = Callable[["argparse._SubParsersAction[Parser]", Parents], None]


def add_command(
    subcommands: "argparse._SubParsersAction[Parser]",
    name: str,
    *,
    summary: str,
    description: str,
    example_lines: Sequence[str],
    parents: Sequence[Parser],
    handler: Callable[[argparse.Namespace], int],
) -> Parser:
    """One subcommand: a one-line summary for ``linreg-ops --help``, a description and
    examples (each run by tests/cli/test_cli_help.py) for its own ``--help``."""
    epilog = "\n".join([EXAMPLES_HEADING, *(f"  {line}" for line in example_lines)])
    sub: Parser = subcommands.add_parser(
        name,
        parents=list(parents),
        help=summary,
        description=description,
        epilog=epilog,
        formatter_class=_Formatter,
    )
    sub.set_defaults(handler=handler)
    return sub


def _parents() -> Parents:
    common = Parser(add_help=False)
    common.add_argument(
        "--models-dir",
        type=Path,
        default=models_dir_default(),
        help=f"models folder (default: ${MODELS_DIR_ENV}, else {DEFAULT_MODELS_DIR})",
    )
    talk = common.add_mutually_exclusive_group()
    talk.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="print no prose: only errors, warnings and --json's object",
    )
    talk.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="say more: the command's wall time, and the traceback of an error",
    )
    writing = Parser(add_help=False)
    writing.add_argument(
        "--lock-timeout",
        type=_seconds,
        default=DEFAULT_LOCK_TIMEOUT,
        help=f"seconds to wait for another writer (default: {DEFAULT_LOCK_TIMEOUT:g})",
    )
    labelled = Parser(add_help=False)
    labelled.add_argument(
        "--data",
        metavar="PATH",
        help="a CSV or Parquet file, a folder or a glob of them (default: California Housing)",
    )
    labelled.add_argument(
        "--target",
        metavar="COLUMN",
        help="the --data column holding the value to predict (required with --data)",
    )
    training = Parser(add_help=False)
    training.add_argument(
        "--features",
        type=_feature_list,
        metavar="A,B,C",
        help="comma-separated feature columns (default: every other column)",
    )
    training.add_argument(
        "--test-size",
        type=_test_size,
        default=_TRAIN.test_size,
        help="the share of rows held out for the test split",
    )
    training.add_argument(
        "--random-state", type=int, default=_TRAIN.random_state, help="the split's seed"
    )
    training.add_argument(
        "--engine",
        choices=ENGINES,
        default=_TRAIN.engine,
        help="auto: scikit-learn in memory under 1M rows, streaming above it and for files",
    )
    training.add_argument(
        "--joblib",
        action="store_true",
        help="also write the seed's joblib files (pickles; always when scikit-learn fits): "
        "the streaming and Dask engines then import scikit-learn to build them",
    )
    quantizing = Parser(add_help=False)
    quantizing.add_argument(
        "--dtype",
        default=_QUANT.dtype,
        help="weights: intN symmetric or uintN asymmetric, N in 2..16",
    )
    quantizing.add_argument(
        "--granularity",
        choices=GRANULARITIES,
        default=_QUANT.granularity,
        help="one weight scale for the model, or one per feature",
    )
    quantizing.add_argument(
        "--rounding",
        choices=ROUNDINGS,
        default=_QUANT.rounding,
        help="nearest, hessian (GPTQ-style) or optimal (exact, up to 32 features)",
    )
    quantizing.add_argument(
        "--input-dtype",
        choices=tuple(INPUT_BITS),
        default=IntegerConfig().input_dtype,
        help="the integer-only model's input codes",
    )
    quantizing.add_argument(
        "--calibration",
        choices=CALIBRATIONS,
        default=IntegerConfig().calibration,
        help="integer-only input ranges: training min/max or 0.1%%/99.9%% quantiles",
    )
    quantizing.add_argument(
        "--max-r2-drop",
        type=_limit,
        default=_GATE.max_r2_drop,
        help="gate for every quantized model: exit 3 if R² falls more ('none': no gate)",
    )
    quantizing.add_argument(
        "--max-abs-diff",
        type=_limit,
        default=_GATE.max_abs_diff,
        help="gate for every quantized model: exit 3 if a prediction moves more (default: none)",
    )
    scaling = Parser(add_help=False)
    scaling.add_argument(
        "--chunk-rows", type=_positive, default=_TRAIN.chunk_rows, help="rows per block at most"
    )
    scaling.add_argument(
        "--scheduler",
        metavar="tcp://HOST:PORT",
        help="a dask.distributed scheduler (default: 2 worker threads in this process)",
    )
    reporting = Parser(add_help=False)
    reporting.add_argument(
        "--reports-dir", type=Path, default=DEFAULT_REPORTS_DIR, help="where reports are written"
    )
    json = Parser(add_help=False)
    json.add_argument(
        "--json",
        action="store_true",
        help="print the results as one JSON object on standard output (prose goes to stderr)",
    )
    tracking = Parser(add_help=False)
    tracking.add_argument(
        "--tracking-uri",
        default=tracking_uri_default(),
        help=f"an MLflow tracking server (default: ${TRACKING_URI_ENV}; needs the mlflow extra)",
    )
    selecting = Parser(add_help=False)
    choice = selecting.add_mutually_exclusive_group()
    choice.add_argument(
        "--version",
        dest="use_version",
        type=_version_number,
        metavar="N",
        help="use version N (default: the version current names)",
    )
    choice.add_argument(
        "--alias",
        dest="use_alias",
        metavar="NAME",
        help="use the version alias NAME names (default: current)",
    )
    return Parents(
        common,
        writing,
        labelled,
        training,
        quantizing,
        scaling,
        reporting,
        json,
        tracking,
        selecting,
    )


# --------------------------------------------------------------------------- the commands


def register_train(subcommands: "argparse._SubParsersAction[Parser]", p: Parents) -> None:
    add_command(
        subcommands,
        "train",
        summary="fit on California Housing (default) or --data/--target; publish a version",
        description="Fit LinearRegression on California Housing (the seed's 80/20 split) or on "
        "your own CSV/Parquet\nfiles, and publish the model and its test split as a new "
        "version of --models-dir.",
        example_lines=[
            "# the seed's run: California Housing, 80/20 split, random_state 42",
            "linreg-ops train",
            "# your own CSV: predict the 'price' column from every other column",
            "linreg-ops train --data examples/houses.csv --target price --json",
        ],
        parents=[p.common, p.writing, p.labelled, p.training, p.scaling, p.json],
        handler=commands.cmd_train,
    )


def register_quantize(subcommands: "argparse._SubParsersAction[Parser]", p: Parents) -> None:
    sub = add_command(
        subcommands,
        "quantize",
        summary="quantize the current model (gated) into a new version",
        description="Quantize the current float model to integer weights (and an integer-only "
        "model), measure\nboth on the test split, and publish them as a new version unless "
        "a gate fails (exit 3).",
        example_lines=[
            "linreg-ops quantize",
            "linreg-ops quantize --dtype int6 --granularity per-channel --json",
        ],
        parents=[p.common, p.writing, p.labelled, p.quantizing, p.reporting, p.json],
        handler=commands.cmd_quantize,
    )
    sub.add_argument(
        "--sweep",
        action="store_true",
        help="the same as the sweep command: compare schemes, publish nothing",
    )


def register_sweep(subcommands: "argparse._SubParsersAction[Parser]", p: Parents) -> None:
    add_command(
        subcommands,
        "sweep",
        summary="compare bits 2–16 × rounding × granularity on the current model",
        description="Quantize the current float model every way (bits 2–16 × rounding × "
        "granularity), measure each\non the same rows, and write reports/quantization.{md,png}. "
        "Publishes nothing.",
        example_lines=["linreg-ops sweep --reports-dir sweep-reports"],
        parents=[p.common, p.labelled, p.reporting, p.json],
        handler=commands.cmd_sweep,
    )


def register_predict(subcommands: "argparse._SubParsersAction[Parser]", p: Parents) -> None:
    sub = add_command(
        subcommands,
        "predict",
        summary="predict --input rows to --output, or score the stored test split",
        description="With --input: predict every row of a file, folder or glob into --output "
        "(CSV or Parquet,\nor - for CSV on standard output), block by block. Without it: "
        "score the stored test split\n(or --data/--target) and show the first predictions.",
        example_lines=[
            "# the stored test split: R², MSE and the first 10 predictions",
            "linreg-ops predict",
            "linreg-ops predict --model integer --json",
            "# your rows' predictions as CSV on standard output",
            "linreg-ops predict --input examples/houses.csv --output -",
            "linreg-ops predict --input examples/houses.csv --output predictions.parquet -q",
            "# input columns beside each prediction, row for row (an id to join back on)",
            "linreg-ops predict --input examples/houses.csv --output - --keep-columns price",
        ],
        parents=[p.common, p.labelled, p.scaling, p.json, p.selecting],
        handler=commands.cmd_predict,
    )
    sub.add_argument(
        "--input", metavar="PATH", help="rows to predict: a .csv/.parquet file, folder or glob"
    )
    sub.add_argument(
        "--output",
        type=Path,
        help="where --input's predictions go: .csv or .parquet, or - for CSV on standard output",
    )
    sub.add_argument(
        "--keep-columns",
        type=_feature_list,
        metavar="A,B",
        help="--input columns written before the predictions, row for row (default: none)",
    )
    _model_option(sub, default=None)
    sub.add_argument(
        "--integer-only",
        action="store_true",
        help="the same as --model integer",
    )
    sub.add_argument(
        "--engine",
        choices=PREDICT_ENGINES,
        default="streaming",
        help="--input scoring: blocks in this process, or partitions on a Dask cluster",
    )


def register_evaluate(subcommands: "argparse._SubParsersAction[Parser]", p: Parents) -> None:
    add_command(
        subcommands,
        "evaluate",
        summary="float vs quantized vs integer-only on the test split or --data/--target",
        description="Score the current version's three models on the same labelled rows and "
        "print one table\n(R², ΔR², MSE, prediction changes, clipped rows, artifact sizes).",
        example_lines=["linreg-ops evaluate", "linreg-ops evaluate --json"],
        parents=[p.common, p.labelled, p.json, p.selecting],
        handler=commands.cmd_evaluate,
    )


def register_run(subcommands: "argparse._SubParsersAction[Parser]", p: Parents) -> None:
    sub = add_command(
        subcommands,
        "run",
        summary="train → quantize → evaluate → publish one version → reports/",
        description="The whole pipeline in one version: train, quantize (gated), evaluate, "
        "and write the\nreport, the model card and the plots to --reports-dir.",
        example_lines=[
            "# California Housing, as make run does",
            "linreg-ops run",
        ],
        parents=[
            p.common,
            p.writing,
            p.labelled,
            p.training,
            p.scaling,
            p.quantizing,
            p.reporting,
            p.json,
            p.tracking,
        ],
        handler=commands.cmd_run,
    )
    sub.add_argument(
        "--registered-model",
        default=DEFAULT_REGISTERED_MODEL,
        help=f"with --tracking-uri: log the run and register its {TRACKED_MODEL_KIND} MLflow "
        f"model as a new version of this registered model (default: {DEFAULT_REGISTERED_MODEL})",
    )


def register_export(subcommands: "argparse._SubParsersAction[Parser]", p: Parents) -> None:
    sub = add_command(
        subcommands,
        "export",
        summary="write the model as ONNX, a C99 header or an MLflow model; record its SHA-256",
        description="Write one model of the current version in a portable format and record "
        "the file's SHA-256\nin the models folder's exports.json.",
        example_lines=[
            f"# writes {DEFAULT_EXPORTS_DIR}/float.onnx",
            "linreg-ops export --format onnx",
            "linreg-ops export --format c --model integer --output linreg_model.h",
        ],
        parents=[p.common, p.writing, p.json, p.selecting],
        handler=commands.cmd_export,
    )
    sub.add_argument("--format", required=True, choices=EXPORT_FORMATS, help="the file format")
    _model_option(sub, default="float")
    sub.add_argument(
        "--output",
        type=Path,
        help=f"a file (onnx, c) or a new folder (mlflow) (default: {DEFAULT_EXPORTS_DIR}/"
        "<model>.onnx, <model>.h or mlflow-<model>)",
    )
    sub.add_argument(
        "--onnx-input",
        choices=ONNX_INPUT_TYPES,
        default=None,
        help=f"the ONNX graph's input type (default: {ONNX_INPUT_TYPES[0]}, predict's numbers; "
        "float32 rounds the inputs first)",
    )


def register_serve(subcommands: "argparse._SubParsersAction[Parser]", p: Parents) -> None:
    serving = SERVE_DEFAULTS  # each default below can also come from LINREG_OPS_<FLAG>
    sub = add_command(
        subcommands,
        "serve",
        summary="serve /predict, /invocations (MLflow), /v2 (Open Inference Protocol), /metrics",
        description="Serve the version an alias names over HTTP (Swagger UI at /docs) and "
        "follow the alias:\nwhen it moves (a retrain moves current; promote and rollback move "
        "any alias), every\nworker loads and verifies the new version beside the old one and "
        "swaps it in, within\n0.5 s plus one load; a version that fails to verify is refused "
        "and the old one keeps\nserving. --version N pins one version instead. Each default can "
        "also be set by the\nenvironment variable LINREG_OPS_<FLAG>, e.g. LINREG_OPS_PORT=9000.",
        example_lines=[
            "linreg-ops serve",
            "linreg-ops serve --workers 2 --max-batch 1000",
            "# pinned: version 1 whatever current names later",
            "linreg-ops serve --version 1",
        ],
        parents=[p.common, p.tracking],
        handler=commands.cmd_serve,
    )
    choice = sub.add_mutually_exclusive_group()
    choice.add_argument(
        "--alias",
        dest="use_alias",
        metavar="NAME",
        help="serve the version this alias names and follow its moves (hot reload) "
        f"(default: {serving.alias})",
    )
    choice.add_argument(
        "--version",
        dest="use_version",
        type=_version_number,
        metavar="N",
        help="serve version N and never change it (default: follow --alias)",
    )
    sub.add_argument("--host", help=f"address to listen on (default: {serving.host})")
    sub.add_argument("--port", type=_port, help=f"port (default: {serving.port}; 0: any free port)")
    sub.add_argument("--workers", type=_positive, help=f"processes (default: {serving.workers})")
    sub.add_argument(
        "--max-batch", type=_positive, help=f"rows per request (default: {serving.max_batch})"
    )
    sub.add_argument(
        "--max-body-bytes",
        type=_positive,
        help=f"bytes per request body (default: {serving.max_body_bytes})",
    )
    sub.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        help=f"uvicorn's log level (default: {serving.log_level})",
    )
    sub.add_argument(
        "--drain-seconds",
        type=_seconds,
        help="after SIGTERM, keep serving until requests stop, at most this long "
        f"(default: {serving.drain_seconds:g})",
    )
    sub.add_argument(
        "--access-log",
        choices=ACCESS_LOGS,
        help=f"one line per request on stderr, or none (default: {serving.access_log})",
    )
    sub.add_argument(
        "--metrics",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="GET /metrics and its bookkeeping (default: on; --no-metrics turns both off)",
    )
    sub.add_argument(
        "--model-uri",
        help="serve a registered version instead of --models-dir: models:/NAME@ALIAS (followed: "
        "when the alias moves, every worker fetches, verifies and swaps in the new version) or "
        "models:/NAME/VERSION (pinned), downloaded from --tracking-uri and verified",
    )
    sub.add_argument(
        "--registry-poll-seconds",
        type=_registry_poll_seconds,
        help="with --model-uri models:/NAME@ALIAS: how often each worker asks the registry "
        f"(default: {serving.registry_poll_seconds:g}; at least "
        f"{serving.registry_poll_min_seconds:g})",
    )


def register_completion(subcommands: "argparse._SubParsersAction[Parser]", p: Parents) -> None:
    sub = add_command(
        subcommands,
        "completion",
        summary="print the shell code that completes linreg-ops's commands, flags and choices",
        description="Print the shell code for tab completion (argcomplete). Load it in the "
        "current shell with eval,\nor save it where your shell looks for completions.",
        example_lines=[
            'eval "$(linreg-ops completion bash)"',
            "linreg-ops completion zsh > _linreg-ops",
        ],
        parents=[],
        handler=commands.cmd_completion,
    )
    sub.add_argument("shell", choices=COMPLETION_SHELLS, help="the shell to complete in")


def register_monitor(subcommands: "argparse._SubParsersAction[Parser]", p: Parents) -> None:
    limits = DRIFT_DEFAULTS
    sub = add_command(
        subcommands,
        "monitor",
        summary="drift of --input rows from the training rows: PSI, KS, Wasserstein, attribution",
        description="Compare new rows with the version's training rows, feature by feature, "
        "and attribute the\nchange of the predictions to the features exactly. A feature "
        f"drifts when its Wasserstein distance\n/ training σ is ≥ {limits.wasserstein_threshold:g}"
        f" (KS p < {limits.ks_p_value:g} for ≤ {limits.small_reference_rows} training rows), "
        f"or its PSI ≥ {limits.psi_significant:g}.\nExit {monitor.EXIT_DRIFT} with "
        "--fail-on-drift when a feature or the prediction drifts.",
        example_lines=[
            "# the held-out rows of the current version: no drift",
            "linreg-ops monitor --input models/current/test_split.csv --target MedHouseVal",
            "linreg-ops monitor --input models/current/test_split.csv --json",
        ],
        parents=[p.common, p.json, p.selecting],
        handler=monitor.cmd_monitor,
    )
    sub.add_argument(
        "--input", required=True, help="rows to compare: a .csv/.parquet file, folder or glob"
    )
    sub.add_argument(
        "--target",
        dest="input_target",  # of --input, not of --data (which other commands check)
        help="the column of true values in --input: realised R² and MSE too",
    )
    sub.add_argument(
        "--fail-on-drift",
        action="store_true",
        help=f"exit {monitor.EXIT_DRIFT} when drift is flagged",
    )
    sub.add_argument(
        "--reports-dir",
        type=Path,
        default=DEFAULT_REPORTS_DIR,
        help=f"where drift.md, drift.png and drift.json go (default: {DEFAULT_REPORTS_DIR})",
    )


# --------------------------------------------------------------------------- lifecycle


def _listing_json(sub: Parser, what: str) -> None:
    """``--json`` where the answer is a list (``versions``, ``history``)."""
    sub.add_argument("--json", action="store_true", help=f"print {what} as JSON instead")


def register_versions(subcommands: "argparse._SubParsersAction[Parser]", p: Parents) -> None:
    sub = add_command(
        subcommands,
        "versions",
        summary="list every version: data, engine, R², aliases",
        description="List every version of --models-dir, oldest first: when it was made, its "
        "data and SHA-256,\nthe engine, float / quantized / integer-only R² and ΔR², and the "
        "aliases naming it.",
        example_lines=["linreg-ops versions"],
        parents=[p.common],
        handler=lifecycle.cmd_versions,
    )
    _listing_json(sub, "a list of objects, oldest first,")


def register_show(subcommands: "argparse._SubParsersAction[Parser]", p: Parents) -> None:
    add_command(
        subcommands,
        "show",
        summary="one version: parameters, metrics, coefficients",
        description="Show one version: the command that made it, its data, split and "
        "quantization parameters,\nits metrics and its coefficients.",
        example_lines=["linreg-ops show 2", "linreg-ops show 1 --json"],
        parents=[p.common, p.json],
        handler=lifecycle.cmd_show,
    ).add_argument("number", type=_version_number, metavar="N", help="the version to show")


def register_diff(subcommands: "argparse._SubParsersAction[Parser]", p: Parents) -> None:
    sub = add_command(
        subcommands,
        "diff",
        summary="two versions side by side: parameters, metrics, coefficients",
        description="Compare two versions line by line: parameters, metrics and coefficients, "
        "with the change\nfrom A to B.",
        example_lines=["linreg-ops diff 1 2"],
        parents=[p.common, p.json],
        handler=lifecycle.cmd_diff,
    )
    sub.add_argument("a", type=_version_number, metavar="A", help="the version compared from")
    sub.add_argument("b", type=_version_number, metavar="B", help="the version compared to")


def register_promote(subcommands: "argparse._SubParsersAction[Parser]", p: Parents) -> None:
    sub = add_command(
        subcommands,
        "promote",
        summary="point an alias at version N, gated on R² over the holder's test rows",
        description="Point an alias (current, champion or any name) at version N in one "
        "atomic, logged move.\nGate: exit 3, nothing changed, if N's float R² on the "
        "holder's test rows is worse than\nthe holder's by more than --max-r2-regression, "
        "unless --force. A service following\nthe alias swaps to N within 0.5 s plus one load. "
        "With --tracking-uri (or $MLFLOW_TRACKING_URI)\nthe MLflow registry's alias moves too "
        "(--registered-model NAME@ALIAS, to the registered version\nof N): checked first, moved "
        "after the folder's; exit 5 if only the folder's moved.",
        example_lines=[
            "linreg-ops promote 2 --alias champion",
            "linreg-ops promote 1 --alias current --force",
        ],
        parents=[p.common, p.writing, p.tracking],
        handler=lifecycle.cmd_promote,
    )
    _registered_model_option(sub)
    sub.add_argument("number", type=_version_number, metavar="N", help="the version to promote")
    sub.add_argument(
        "--alias", required=True, metavar="NAME", help="the alias to move: current, champion, …"
    )
    sub.add_argument(
        "--max-r2-regression",
        type=_regression,
        default=DEFAULT_MAX_R2_REGRESSION,
        help="exit 3 if N's R² on the holder's test rows is worse by more "
        f"(default: {DEFAULT_MAX_R2_REGRESSION:g})",
    )
    sub.add_argument("--force", action="store_true", help="promote even if the gate refuses")


def register_rollback(subcommands: "argparse._SubParsersAction[Parser]", p: Parents) -> None:
    sub = add_command(
        subcommands,
        "rollback",
        summary="give an alias back to the version that held it before",
        description="Move an alias back to the version that held it before its last move "
        "(from its history),\nin one atomic, logged move; a service following it swaps back. "
        "With --tracking-uri the\nMLflow registry's alias moves back too (exit 5 if only the "
        "folder's moved).",
        example_lines=["linreg-ops rollback --alias current"],
        parents=[p.common, p.writing, p.tracking],
        handler=lifecycle.cmd_rollback,
    )
    sub.add_argument("--alias", required=True, metavar="NAME", help="the alias to move back")
    _registered_model_option(sub)


def _registered_model_option(sub: Parser) -> None:
    """promote and rollback: the registered model whose alias moves with the folder's."""
    sub.add_argument(
        "--registered-model",
        default=DEFAULT_REGISTERED_MODEL,
        help="with --tracking-uri: move this registered model's alias too, to the registered "
        f"version of the same version (default: {DEFAULT_REGISTERED_MODEL}); exit 5 if the "
        "folder's alias moved but the registry's could not",
    )


def register_history(subcommands: "argparse._SubParsersAction[Parser]", p: Parents) -> None:
    sub = add_command(
        subcommands,
        "history",
        summary="every move of an alias: time, user, versions",
        description="Every move of an alias, oldest first: when, which action (publish, "
        "promote, rollback),\nthe version it named, the one before, the user and the command.",
        example_lines=["linreg-ops history --alias current"],
        parents=[p.common],
        handler=lifecycle.cmd_history,
    )
    sub.add_argument("--alias", required=True, metavar="NAME", help="the alias whose moves")
    _listing_json(sub, "a list of moves, oldest first,")


def register_gc(subcommands: "argparse._SubParsersAction[Parser]", p: Parents) -> None:
    add_command(
        subcommands,
        "gc",
        summary="remove old versions (never one an alias names or a server has open)",
        description="Remove all but the newest --keep versions, except a version an alias "
        "names or a running\nservice has leased; say which were kept and why.",
        example_lines=["linreg-ops gc --keep 1"],
        parents=[p.common, p.writing],
        handler=lifecycle.cmd_gc,
    ).add_argument(
        "--keep", required=True, type=_version_number, metavar="N", help="newest versions kept"
    )


def register_baseline(subcommands: "argparse._SubParsersAction[Parser]", p: Parents) -> None:
    sub = add_command(
        subcommands,
        "baseline",
        summary="compare the current version's R² with a committed baseline (CI), or --write it",
        description="The CI gate against regressions: compare the current version's float, "
        "quantized and\ninteger-only R² with --file (the last release's), exit 3 if one is "
        "worse by more than\n--max-r2-regression, and append the table to "
        "$GITHUB_STEP_SUMMARY when it is set.\n--write records the current version's figures "
        "instead (at a release).",
        example_lines=["linreg-ops baseline --write --file baseline.json"],
        parents=[p.common],
        handler=lifecycle.cmd_baseline,
    )
    sub.add_argument("--file", type=Path, default=DEFAULT_BASELINE, help="the baseline's JSON file")
    sub.add_argument("--write", action="store_true", help="record the current version's figures")
    sub.add_argument(
        "--max-r2-regression",
        type=_regression,
        default=DEFAULT_MAX_R2_REGRESSION,
        help="exit 3 if an R² is worse by more",
    )
    sub.add_argument(
        "--summary",
        type=Path,
        metavar="PATH",
        help="append the table as Markdown here (default: $GITHUB_STEP_SUMMARY when set)",
    )


REGISTRATIONS: tuple[Registration, ...] = (
    register_train,
    register_quantize,
    register_sweep,
    register_evaluate,
    register_predict,
    register_run,
    register_export,
    register_serve,
    register_monitor,
    register_versions,
    register_show,
    register_diff,
    register_promote,
    register_rollback,
    register_history,
    register_gc,
    register_baseline,
    register_completion,
)


def _model_option(sub: argparse.ArgumentParser, default: str | None) -> None:
    """``--model``: one vocabulary for the three models, on every command that picks one."""
    sub.add_argument(
        "--model",
        choices=MODEL_KINDS,
        default=default,
        help="float, quantized (integer weights) or integer (integer-only inference)"
        + (" (default: float)" if default is None else ""),
    )


def build_parser(registrations: Sequence[Registration] = REGISTRATIONS) -> Parser:
    """The whole command line: the top-level options, then each registered command."""
    parser = Parser(
        prog="linreg-ops",
        description="Train, quantize, evaluate, predict, export and serve a linear regression "
        "model,\npublishing each run as an immutable, verified version of a models folder.",
        epilog="Exit codes: 0 ok, 1 a bug, 2 bad input or usage, 3 quality gate failed, "
        "4 drift found (monitor --fail-on-drift).\n"
        "Run `linreg-ops COMMAND --help` for a command's options and examples.",
        formatter_class=_Formatter,
    )
    parser.add_argument("-V", "--version", action="version", version=f"%(prog)s {__version__}")
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    shared = _parents()
    for register in registrations:
        register(subcommands, shared)
    return parser
