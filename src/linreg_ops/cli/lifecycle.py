"""The lifecycle commands' handlers — ``versions``, ``show``, ``diff``, ``promote``,
``rollback``, ``history``, ``gc``, ``baseline`` (their grammar is in ``parser``) — and the
version that ``--version N | --alias NAME`` chose."""

import argparse
import os

from linreg_ops.cli import lifecycle_render as render
from linreg_ops.cli.render import say
from linreg_ops.errors import InputError

__all__ = [
    "chosen_version",
    "cmd_baseline",
    "cmd_diff",
    "cmd_gc",
    "cmd_history",
    "cmd_promote",
    "cmd_rollback",
    "cmd_show",
    "cmd_versions",
]


def chosen_version(args: argparse.Namespace) -> int | None:
    """The version ``--version``/``--alias`` chose (None: the current one)."""
    from linreg_ops.lifecycle import resolve

    return resolve(
        args.models_dir, getattr(args, "use_version", None), getattr(args, "use_alias", None)
    )


# --------------------------------------------------------------------------- handlers


def cmd_versions(args: argparse.Namespace) -> int:
    from linreg_ops.lifecycle import list_versions

    infos = list_versions(args.models_dir)
    if args.json:
        render.as_json([info.summary() for info in infos])
    else:
        render.versions(infos)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from linreg_ops.lifecycle import describe

    info = describe(args.models_dir, args.number)
    if args.json:
        render.as_json(asdict(info))
    else:
        render.show(info)
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from linreg_ops.lifecycle import describe

    a, b = describe(args.models_dir, args.a), describe(args.models_dir, args.b)
    if args.json:
        render.as_json({"a": asdict(a), "b": asdict(b)})
    else:
        render.diff(a, b)
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    """With a tracking URI the registry's alias moves too (exit 5 if only the folder's did)."""
    from linreg_ops.lifecycle import promote, promote_registered

    if args.tracking_uri is not None:
        result, registry = promote_registered(
            args.models_dir, args.number, args.alias, args.tracking_uri, args.registered_model,
            args.max_r2_regression, force=args.force, command=args.command_line,
            lock_timeout=args.lock_timeout,
        )  # fmt: skip
        if result is None:
            render.already(args.alias, args.number)
        else:
            render.promote(result)
        render.registry_move(registry)
        return 0
    result = promote(
        args.models_dir, args.number, args.alias, args.max_r2_regression, force=args.force,
        command=args.command_line, lock_timeout=args.lock_timeout,
    )  # fmt: skip
    render.promote(result)
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from linreg_ops.lifecycle import rollback, rollback_registered

    if args.tracking_uri is not None:
        move, registry = rollback_registered(
            args.models_dir, args.alias, args.tracking_uri, args.registered_model,
            command=args.command_line, lock_timeout=args.lock_timeout,
        )  # fmt: skip
        render.move(move)
        render.registry_move(registry)
        return 0
    render.move(
        rollback(
            args.models_dir, args.alias, command=args.command_line, lock_timeout=args.lock_timeout
        )
    )
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    from linreg_ops.lifecycle import history

    render.history(history(args.models_dir, args.alias), args.json)
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    from linreg_ops.lifecycle import gc

    render.gc(
        gc(args.models_dir, args.keep, command=args.command_line, lock_timeout=args.lock_timeout)
    )
    return 0


def cmd_baseline(args: argparse.Namespace) -> int:
    from linreg_ops import baseline

    if args.write:
        written = baseline.write(args.models_dir, args.file)
        render.baseline_written(args.file, written)
        return 0
    comparison = baseline.compare(args.models_dir, args.file, args.max_r2_regression)
    table = render.baseline_table(comparison)
    say(table)
    summary = args.summary or os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        try:
            with open(summary, "a", encoding="utf-8") as handle:
                handle.write(table + "\n")
        except OSError as exc:
            raise InputError(f"cannot write {summary}: {exc.strerror or exc}") from None
    return 0 if comparison.passed else 3
