"""The lifecycle commands — ``versions``, ``show``, ``diff``, ``promote``, ``rollback``,
``history``, ``gc``, ``baseline`` — one registration function and one handler each, and
the ``--version N | --alias NAME`` flags of the commands that read one version."""

import argparse
import os
from pathlib import Path
from typing import Any

from linreg_ops.cli import lifecycle_render as render
from linreg_ops.config import DEFAULT_BASELINE, DEFAULT_MAX_R2_REGRESSION
from linreg_ops.errors import InputError

__all__ = [
    "add_baseline",
    "add_diff",
    "add_gc",
    "add_history",
    "add_promote",
    "add_rollback",
    "add_show",
    "add_versions",
    "chosen_version",
    "selecting",
]

_Subcommands = Any  # argparse's _SubParsersAction (private)


def _version_number(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a version number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"versions are numbered from 1, got {text}")
    return value


def _regression(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (value >= 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"must be a finite number ≥ 0, got {text}")
    return value


def selecting() -> argparse.ArgumentParser:
    """``--version N`` / ``--alias NAME``: which version a reading command uses."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--version", dest="use_version", type=_version_number, help="version N (default: current)"
    )
    parent.add_argument("--alias", dest="use_alias", help="the version alias NAME names")
    return parent


def chosen_version(args: argparse.Namespace) -> int | None:
    """The version ``--version``/``--alias`` chose (None: the current one)."""
    from linreg_ops.lifecycle import resolve

    return resolve(
        args.models_dir, getattr(args, "use_version", None), getattr(args, "use_alias", None)
    )


def _as_json(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--json", action="store_true", help="print JSON instead of a table")


# --------------------------------------------------------------------------- registration


def add_versions(subcommands: _Subcommands, common: argparse.ArgumentParser) -> None:
    sub = subcommands.add_parser(
        "versions", parents=[common], help="list every version: data, engine, R², aliases"
    )
    _as_json(sub)
    sub.set_defaults(handler=_cmd_versions)


def add_show(subcommands: _Subcommands, common: argparse.ArgumentParser) -> None:
    sub = subcommands.add_parser(
        "show", parents=[common], help="one version: parameters, metrics, coefficients"
    )
    sub.add_argument("number", type=_version_number, metavar="N")
    _as_json(sub)
    sub.set_defaults(handler=_cmd_show)


def add_diff(subcommands: _Subcommands, common: argparse.ArgumentParser) -> None:
    sub = subcommands.add_parser(
        "diff", parents=[common], help="two versions side by side: parameters, metrics, coef"
    )
    sub.add_argument("a", type=_version_number, metavar="A")
    sub.add_argument("b", type=_version_number, metavar="B")
    _as_json(sub)
    sub.set_defaults(handler=_cmd_diff)


def add_promote(
    subcommands: _Subcommands, common: argparse.ArgumentParser, writing: argparse.ArgumentParser
) -> None:
    sub = subcommands.add_parser(
        "promote",
        parents=[common, writing],
        help="point an alias at version N, gated on R² over the holder's test rows",
    )
    sub.add_argument("number", type=_version_number, metavar="N")
    sub.add_argument("--alias", required=True, help="any name: current, champion, …")
    sub.add_argument(
        "--max-r2-regression",
        type=_regression,
        default=DEFAULT_MAX_R2_REGRESSION,
        help="exit 3 if N's R² on the holder's test rows is worse by more "
        f"(default {DEFAULT_MAX_R2_REGRESSION:g})",
    )
    sub.add_argument("--force", action="store_true", help="promote even if the gate refuses")
    sub.set_defaults(handler=_cmd_promote)


def add_rollback(
    subcommands: _Subcommands, common: argparse.ArgumentParser, writing: argparse.ArgumentParser
) -> None:
    sub = subcommands.add_parser(
        "rollback",
        parents=[common, writing],
        help="give an alias back to the version that held it before",
    )
    sub.add_argument("--alias", required=True)
    sub.set_defaults(handler=_cmd_rollback)


def add_history(subcommands: _Subcommands, common: argparse.ArgumentParser) -> None:
    sub = subcommands.add_parser(
        "history", parents=[common], help="every move of an alias: time, user, versions"
    )
    sub.add_argument("--alias", required=True)
    _as_json(sub)
    sub.set_defaults(handler=_cmd_history)


def add_gc(
    subcommands: _Subcommands, common: argparse.ArgumentParser, writing: argparse.ArgumentParser
) -> None:
    sub = subcommands.add_parser(
        "gc",
        parents=[common, writing],
        help="remove old versions (never one an alias names or a server has open)",
    )
    sub.add_argument("--keep", required=True, type=_version_number, help="newest versions kept")
    sub.set_defaults(handler=_cmd_gc)


def add_baseline(subcommands: _Subcommands, common: argparse.ArgumentParser) -> None:
    sub = subcommands.add_parser(
        "baseline",
        parents=[common],
        help="compare the current version's R² with a committed baseline (CI), or --write it",
    )
    sub.add_argument(
        "--file", type=Path, default=DEFAULT_BASELINE, help=f"default: {DEFAULT_BASELINE}"
    )
    sub.add_argument("--write", action="store_true", help="record the current version's figures")
    sub.add_argument(
        "--max-r2-regression",
        type=_regression,
        default=DEFAULT_MAX_R2_REGRESSION,
        help=f"exit 3 if an R² is worse by more (default {DEFAULT_MAX_R2_REGRESSION:g})",
    )
    sub.add_argument(
        "--summary",
        type=Path,
        default=None,
        help="append the table as Markdown here (default: $GITHUB_STEP_SUMMARY when set)",
    )
    sub.set_defaults(handler=_cmd_baseline)


# --------------------------------------------------------------------------- handlers


def _cmd_versions(args: argparse.Namespace) -> int:
    from linreg_ops.lifecycle import list_versions

    infos = list_versions(args.models_dir)
    if args.json:
        render.as_json([info.summary() for info in infos])
    else:
        render.versions(infos)
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from linreg_ops.lifecycle import describe

    info = describe(args.models_dir, args.number)
    if args.json:
        render.as_json(asdict(info))
    else:
        render.show(info)
    return 0


def _cmd_diff(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from linreg_ops.lifecycle import describe

    a, b = describe(args.models_dir, args.a), describe(args.models_dir, args.b)
    if args.json:
        render.as_json({"a": asdict(a), "b": asdict(b)})
    else:
        render.diff(a, b)
    return 0


def _cmd_promote(args: argparse.Namespace) -> int:
    from linreg_ops.lifecycle import promote

    result = promote(
        args.models_dir, args.number, args.alias, args.max_r2_regression, force=args.force,
        command=args.command_line, lock_timeout=args.lock_timeout,
    )  # fmt: skip
    render.promote(result)
    return 0


def _cmd_rollback(args: argparse.Namespace) -> int:
    from linreg_ops.lifecycle import rollback

    render.move(
        rollback(
            args.models_dir, args.alias, command=args.command_line, lock_timeout=args.lock_timeout
        )
    )
    return 0


def _cmd_history(args: argparse.Namespace) -> int:
    from linreg_ops.lifecycle import history

    render.history(history(args.models_dir, args.alias), args.json)
    return 0


def _cmd_gc(args: argparse.Namespace) -> int:
    from linreg_ops.lifecycle import gc

    render.gc(
        gc(args.models_dir, args.keep, command=args.command_line, lock_timeout=args.lock_timeout)
    )
    return 0


def _cmd_baseline(args: argparse.Namespace) -> int:
    from linreg_ops import baseline

    if args.write:
        written = baseline.write(args.models_dir, args.file)
        render.baseline_written(args.file, written)
        return 0
    comparison = baseline.compare(args.models_dir, args.file, args.max_r2_regression)
    table = render.baseline_table(comparison)
    print(table)
    summary = args.summary or os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        try:
            with open(summary, "a", encoding="utf-8") as handle:
                handle.write(table + "\n")
        except OSError as exc:
            raise InputError(f"cannot write {summary}: {exc.strerror or exc}") from None
    return 0 if comparison.passed else 3
