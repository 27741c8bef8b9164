"""``linreg-ops``: parse the command line, call one stage function, print what it returned.

Exit codes: 0 success, 2 bad input or usage (one line on stderr, no traceback), 3 a
quantized model missed the quality gate (nothing written), 5 an alias moved in the models
folder but not in the MLflow registry (``promote``/``rollback --tracking-uri``: one line says
which, and how to finish), 1 anything unexpected (with the traceback, because that is a bug
worth reporting).

- ``parser``: the grammar — commands, flags, defaults (all from ``linreg_ops.config``), each
  command added by one registration function.
- ``commands``: one handler per command and per mode: parse → call → render.
- ``render``: every line printed about results, and the ``--json`` objects.
- ``completion``: shell completion (argcomplete).
"""

import os
import shlex
import sys
import time
import traceback
from collections.abc import Sequence

from linreg_ops.cli import render
from linreg_ops.cli.commands import (
    EXIT_BAD_INPUT,
    EXIT_GATE,
    EXIT_OK,
    EXIT_OUT_OF_STEP,
    EXIT_UNEXPECTED,
)
from linreg_ops.cli.completion import complete
from linreg_ops.cli.parser import build_parser, check_labelled
from linreg_ops.errors import InputError, QualityGateError, RegistryOutOfStepError

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``linreg-ops`` console script."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    complete(parser)
    args = parser.parse_args(arguments)
    if args.command is None:  # bare `linreg-ops`, a newcomer's first try: the commands
        parser.print_help()
        return EXIT_OK
    args.command_line = shlex.join(["linreg-ops", *arguments])
    quiet, verbose = getattr(args, "quiet", False), getattr(args, "verbose", False)
    render.configure("quiet" if quiet else "stderr" if getattr(args, "json", False) else "stdout")
    started = time.perf_counter()
    try:
        check_labelled(args)
        status: int = args.handler(args)
        if verbose:
            took = time.perf_counter() - started
            print(f"linreg-ops {args.command}: done in {took:.2f} s", file=sys.stderr)
        return status
    except QualityGateError as exc:
        print(f"linreg-ops {args.command}: {exc}", file=sys.stderr)
        return EXIT_GATE
    except RegistryOutOfStepError as exc:
        print(f"linreg-ops {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_OUT_OF_STEP
    except InputError as exc:
        if verbose:
            traceback.print_exc()
        print(f"linreg-ops {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly, as Unix tools do.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - stdout must stay open until exit
        return EXIT_OK
    except Exception:
        traceback.print_exc()
        print(
            f"linreg-ops {args.command}: unexpected error (a bug; please report it)",
            file=sys.stderr,
        )
        return EXIT_UNEXPECTED
    finally:
        render.configure("stdout")
