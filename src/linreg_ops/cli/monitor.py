"""``linreg-ops monitor``: the drift of new rows from a version's training rows.

The handler (registered by ``parser.register_monitor``) calls ``pipeline.monitor`` and
prints: the table, or with ``--json`` the report ``drift.json`` holds.
"""

import argparse

from linreg_ops.cli import render

__all__ = ["EXIT_DRIFT", "cmd_monitor"]

EXIT_DRIFT = 4  # --fail-on-drift, and drift was flagged


def cmd_monitor(args: argparse.Namespace) -> int:
    from linreg_ops import pipeline
    from linreg_ops.lifecycle import resolve

    version = resolve(args.models_dir, args.use_version, args.use_alias)

    result = pipeline.monitor(
        args.models_dir,
        args.input,
        args.reports_dir,
        target=args.input_target,
        version=version,
    )
    render.say(result.table)
    render.say(f"Report: {', '.join(str(path) for path in result.reports)}", aside=True)
    if args.json:
        render.json_object(result.report)
    return EXIT_DRIFT if args.fail_on_drift and result.report["drift"] else 0
