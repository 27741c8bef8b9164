"""Seed-compatible `python src/quantize.py`: a shim over `linreg-ops quantize`."""

import sys

try:
    from linreg_ops.seed import run_script
except ImportError as missing:  # run outside the virtualenv that `make run` set up
    sys.exit(
        f"python src/quantize.py: {missing.name} is not installed for {sys.executable}. "
        "Run `make run` once, then `source .venv/bin/activate` (or use .venv/bin/python)."
    )

sys.exit(run_script("quantize", __file__, sys.argv[1:]))
