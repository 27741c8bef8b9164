"""``linreg-ops monitor``: the drift of new rows from a version's training rows.

Registered by one call (``register``) so the grammar in ``parser`` gains the command without
changing anything else; the handler parses, calls ``pipeline.monitor`` and prints.
"""

import argparse
import json
import sys
from pathlib import Path

from linreg_ops.config import DEFAULT_REPORTS_DIR, DRIFT_DEFAULTS

__all__ = ["EXIT_DRIFT", "cmd_monitor", "register"]

EXIT_DRIFT = 4  # --fail-on-drift, and drift was flagged


def register(
    subcommands: "argparse._SubParsersAction[argparse.ArgumentParser]",
    parents: list[argparse.ArgumentParser],
) -> None:
    """Add ``monitor`` to the command line (``parents``: the shared --models-dir flag)."""
    limits = DRIFT_DEFAULTS
    sub = subcommands.add_parser(
        "monitor",
        parents=parents,
        help="drift of --input rows from the training rows: PSI, KS, Wasserstein, attribution",
        epilog=f"A feature drifts when its Wasserstein distance / training σ is ≥ "
        f"{limits.wasserstein_threshold:g} (KS p < {limits.ks_p_value:g} for ≤ "
        f"{limits.small_reference_rows} training rows), or its PSI ≥ {limits.psi_significant:g}. "
        f"Exit {EXIT_DRIFT} with --fail-on-drift when a feature or the prediction drifts.",
    )
    sub.add_argument(
        "--input", required=True, help="rows to compare: a .csv/.parquet file, folder or glob"
    )
    sub.add_argument(
        "--target",
        dest="input_target",  # of --input, not of --data (which other commands check)
        help="the column of true values in --input: realised R² and MSE too",
    )
    sub.add_argument("--version", type=int, help="the version to compare with (default: current)")
    sub.add_argument("--json", action="store_true", help="print drift.json instead of the table")
    sub.add_argument(
        "--fail-on-drift", action="store_true", help=f"exit {EXIT_DRIFT} when drift is flagged"
    )
    sub.add_argument(
        "--reports-dir",
        type=Path,
        default=DEFAULT_REPORTS_DIR,
        help=f"where drift.md, drift.png and drift.json go (default: {DEFAULT_REPORTS_DIR})",
    )
    sub.set_defaults(handler=cmd_monitor)


def cmd_monitor(args: argparse.Namespace) -> int:
    from linreg_ops import pipeline
    from linreg_ops.errors import InputError

    if args.version is not None and args.version < 1:
        raise InputError(f"--version must be ≥ 1, got {args.version}")
    result = pipeline.monitor(
        args.models_dir,
        args.input,
        args.reports_dir,
        target=args.input_target,
        version=args.version,
    )
    if args.json:
        print(json.dumps(result.report, indent=2))
    else:
        print(result.table)
        print(f"Report: {', '.join(str(path) for path in result.reports)}", file=sys.stderr)
    return EXIT_DRIFT if args.fail_on_drift and result.report["drift"] else 0
